// Setting up and tearing down the paths through gwa and gwb: the identity
// TUN forwarder, the wireguard-go tunnel and the gateway pair.

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"tcpcrypt-gw/gateway/netsetup"
	"tcpcrypt-gw/test/netns"
)

// scratchDir is this run's scratch folder: the gateways started here name
// their configuration in it.
var scratchDir string

// newTopology builds the standard topology and a scratch folder, both
// removed by the cleanups.
func newTopology() (*netns.Topology, string, error) {
	netns.RemoveOrphans("tcgwbench")
	topo, err := netns.NewTopology("tcgwbench", netns.TopologyOptions{})
	if err != nil {
		return nil, "", err
	}
	atCleanup(func() { topo.Close() })
	dir, err := os.MkdirTemp("", "tcgw-bench")
	if err != nil {
		return nil, "", err
	}
	scratchDir = dir
	atCleanup(func() { os.RemoveAll(dir) })
	return topo, dir, nil
}

func join(ps []netip.Prefix) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return strings.Join(s, ",")
}

// routers are gwa and gwb with the LAN prefixes behind each.
func (e *env) routers() []struct {
	ns   *netns.NS
	name string
	pfx  []netip.Prefix
} {
	return []struct {
		ns   *netns.NS
		name string
		pfx  []netip.Prefix
	}{{e.topo.GwA, "gwa", e.topo.GwALANPrefixes}, {e.topo.GwB, "gwb", e.topo.GwBLANPrefixes}}
}

// steering are the routing parameters the gateway uses by default (and the
// identity forwarder with it).
func steering(pfx []netip.Prefix) netsetup.Params {
	return netsetup.Params{TUN: "tcpcrypt0", MTU: 1500, LAN: []string{netns.LANIf}, WAN: []string{netns.WANIf},
		LANPrefixes: pfx, Table: 7463, RulePriority: 7463, IPv6: true}
}

// unsteer checks that a stopped TUN path left nothing behind in the
// routers, and removes what it did leave (a path killed with SIGKILL keeps
// its rules, which would blackhole the next path's TCP).
func (e *env) unsteer(what string) error {
	var errs []string
	for _, r := range e.routers() {
		p := steering(r.pfx)
		err := r.ns.Do(func() error {
			rules, routes, nft, err := netsetup.Installed(p)
			if err != nil {
				return err
			}
			if rules+routes > 0 || nft {
				fmt.Fprintf(os.Stderr, "bench: %s left %d rules, %d routes, nftables %v in %s; removing them\n", what, rules, routes, nft, r.name)
				return netsetup.CleanStale(p)
			}
			return nil
		})
		if err != nil {
			errs = append(errs, r.name+": "+err.Error())
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%s: cleaning the routers: %s", what, strings.Join(errs, "; "))
	}
	return nil
}

// build compiles a Go package into the scratch folder (once).
func (e *env) build(name, pkg string) (string, error) {
	out := filepath.Join(e.dir, name)
	if _, err := os.Stat(out); err == nil {
		return out, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if b, err := exec.CommandContext(ctx, e.o.goCmd, "build", "-o", out, pkg).CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s: %v: %s", pkg, err, bytes.TrimSpace(b))
	}
	return out, nil
}

// waitLog waits (bounded) until a process's log contains marker.
func waitLog(p *netns.Proc, log, marker string, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		if b, _ := os.ReadFile(log); bytes.Contains(b, []byte(marker)) {
			return nil
		}
		select {
		case <-p.Done():
			b, _ := os.ReadFile(log)
			return fmt.Errorf("exited: %v: %s", p.Wait(), bytes.TrimSpace(b))
		case <-time.After(50 * time.Millisecond):
		}
	}
	b, _ := os.ReadFile(log)
	return fmt.Errorf("not ready after %v: %s", limit, bytes.TrimSpace(b))
}

// startIdentity runs the identity TUN forwarder in gwa and gwb.
func (e *env) startIdentity() (func(), error) {
	bin, err := e.build("identity-tun", "tcpcrypt-gw/test/bench/cmd/identity-tun")
	if err != nil {
		return nil, err
	}
	var procs []*netns.Proc
	stop := func() {
		e.cur = nil
		for _, p := range procs {
			p.Stop()
		}
		if err := e.unsteer("identity-tun"); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
		}
		if e.o.verbose {
			for _, r := range e.routers() {
				b, _ := os.ReadFile(filepath.Join(e.dir, "identity-"+r.name+".log"))
				fmt.Printf("  %s %s", r.name, lastLine(b))
			}
		}
	}
	for _, r := range e.routers() {
		log := filepath.Join(e.dir, "identity-"+r.name+".log")
		os.Remove(log)
		p, err := r.ns.Start(context.Background(), log, bin, "-lan", netns.LANIf, "-wan", netns.WANIf, "-prefixes", join(r.pfx))
		if err != nil {
			stop()
			return nil, err
		}
		procs = append(procs, p)
		e.cur = procs
		if err := waitLog(p, log, "identity-tun: ready", 10*time.Second); err != nil {
			stop()
			return nil, fmt.Errorf("identity-tun in %s: %w", r.name, err)
		}
	}
	if err := waitEcho(e.topo.Client, e.echo, 10*time.Second); err != nil {
		stop()
		return nil, fmt.Errorf("through the identity forwarders: %w", err)
	}
	return stop, nil
}

func lastLine(b []byte) string {
	b = bytes.TrimSpace(b)
	if i := bytes.LastIndexByte(b, '\n'); i >= 0 {
		b = b[i+1:]
	}
	return string(b) + "\n"
}

// gateways is a running gateway pair.
type gateways struct {
	procs []*netns.Proc // gwa, gwb
	prof  string        // CPU profile label, "" none
	bin   string
	e     *env
}

// startGateways runs gateway A and B on embedded defaults plus extra YAML
// and waits for their APIs. With -profile and a label they write CPU
// profiles to <profile>/<label>-<gwa|gwb>.<pid>.
func (e *env) startGateways(extra, label string) (*gateways, error) {
	return e.startGatewaysBin(e.o.gw, extra, label)
}

// startGatewaysBin is startGateways with another gateway binary (-compare).
func (e *env) startGatewaysBin(bin, extra, label string) (*gateways, error) {
	g := &gateways{bin: bin, e: e}
	if e.o.profile != "" && label != "" {
		if err := os.MkdirAll(e.o.profile, 0o755); err != nil {
			return nil, err
		}
		g.prof = label
	}
	for _, r := range e.routers() {
		cfg := filepath.Join(e.dir, r.name+".yaml")
		yaml := fmt.Sprintf("interfaces: {lan: [%s], wan: [%s]}\nlan_prefixes: [%s]\n%s", netns.LANIf, netns.WANIf, join(r.pfx), extra)
		if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
			g.stop()
			return nil, err
		}
		args := []string{bin, "run", "-c", cfg}
		if g.prof != "" {
			// env execs the gateway in place: the process is still ours.
			args = append([]string{"env", "TCPCRYPT_GW_CPUPROFILE=" + filepath.Join(e.o.profile, g.prof+"-"+r.name)}, args...)
		}
		p, err := r.ns.Start(context.Background(), filepath.Join(e.dir, r.name+".log"), args[0], args[1:]...)
		if err != nil {
			g.stop()
			return nil, err
		}
		g.procs = append(g.procs, p)
		e.cur = g.procs
		if err := waitPort(r.ns, "127.0.0.1:8473", p); err != nil {
			g.stop()
			b, _ := os.ReadFile(filepath.Join(e.dir, r.name+".log"))
			return nil, fmt.Errorf("gateway %s: %w: %s", r.name, err, bytes.TrimSpace(b))
		}
	}
	if err := waitEcho(e.topo.Client, e.echo, 10*time.Second); err != nil {
		g.stop()
		return nil, fmt.Errorf("through the gateways: %w", err)
	}
	return g, nil
}

func (g *gateways) stop() {
	g.e.cur = nil
	for _, p := range g.procs {
		if err := p.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "bench: gateway:", err)
		}
	}
	if err := g.e.unsteer("tcpcrypt-gw"); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
	}
}

// gwStats is the part of the gateway's /api/stats the bench reads.
type gwStats struct {
	Flows            int    `json:"flows"`
	FlowsEncrypted   uint64 `json:"flows_encrypted"`
	FlowsPostQuantum uint64 `json:"flows_post_quantum"`
	FlowsPlain       uint64 `json:"flows_plain"`
	Resumptions      uint64 `json:"resumptions"`
	ResumeOffered    uint64 `json:"resume_offered"`
	ResumeMisses     uint64 `json:"resume_misses"`
	BufferDrops      uint64 `json:"buffer_drops"`
	TableFull        uint64 `json:"table_full"`
	PacketsIn        uint64 `json:"packets_in"`
	PacketsOut       uint64 `json:"packets_out"`
}

func (g *gateways) stats(ns *netns.NS) (*gwStats, error) {
	b, err := ns.HTTPGet("127.0.0.1:8473", "/api/stats")
	if err != nil {
		return nil, err
	}
	var st gwStats
	return &st, json.Unmarshal(b, &st)
}

// waitPort waits (bounded) until addr accepts connections in ns, or p exits.
func waitPort(ns *netns.NS, addr string, p *netns.Proc) error {
	deadline := time.Now().Add(15 * time.Second)
	for {
		err := ns.Do(func() error {
			c, err := net.DialTimeout("tcp", addr, time.Second)
			if err == nil {
				c.Close()
			}
			return err
		})
		if err == nil || time.Now().After(deadline) {
			return err
		}
		select {
		case <-p.Done():
			return fmt.Errorf("exited: %v", p.Wait())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// printProfiles prints where the gateways' profiles are and their top
// functions (after the gateways stopped and wrote them).
func (g *gateways) printProfiles(what string) {
	if g.prof == "" {
		return
	}
	for i, name := range []string{"gwa", "gwb"} {
		if i >= len(g.procs) {
			break
		}
		f := filepath.Join(g.e.o.profile, fmt.Sprintf("%s-%s.%d", g.prof, name, g.procs[i].Pid()))
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		out, err := exec.CommandContext(ctx, g.e.o.goCmd, "tool", "pprof", "-top", "-nodecount=20", g.bin, f).CombinedOutput()
		cancel()
		fmt.Printf("CPU profile of %s during %s: %s\n", name, what, f)
		if err != nil {
			fmt.Printf("  (pprof: %v)\n", err)
		}
		fmt.Printf("%s\n", out)
	}
}
