// Command bench measures throughput through the gateway pair next to plain
// kernel forwarding over the same namespaces, in one run (`make bench`).
//
//  1. Build the standard topology (test/netns).
//  2. iperf3 client -> server with no gateway running: plain forwarding.
//  3. Start gateway A and gateway B; iperf3 again: every byte encrypted.
//  4. Print both rates and their ratio.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"tcpcrypt-gw/test/netns"
)

func main() {
	gw := flag.String("gw", "bin/tcpcrypt-gw", "gateway binary")
	secs := flag.Int("t", 10, "seconds per iperf3 run")
	streams := flag.Int("P", 1, "parallel iperf3 streams")
	loss := flag.Int("loss", 0, "random loss in percent on the wan (nftables numgen), both directions")
	conns := flag.Bool("conns", false, "measure new connections per second instead: plain, full handshakes, resumption")
	flag.Parse()
	if *conns {
		if err := runConns(*gw, *secs); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
		return
	}
	if err := run(*gw, *secs, *streams, *loss); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(gw string, secs, streams, loss int) error {
	gw, _ = filepath.Abs(gw)
	topo, dir, cleanup, err := newTopology()
	if err != nil {
		return err
	}
	defer cleanup()
	if loss > 0 {
		rules := fmt.Sprintf("table inet tcgwloss {\n chain forward_loss { type filter hook forward priority 0; policy accept;\n  meta l4proto tcp numgen random mod 100 < %d drop\n }\n}\n", loss)
		if out, err := topo.Wan.RunStdin(rules, "nft", "-f", "-"); err != nil {
			return fmt.Errorf("nft: %v %s", err, out)
		}
	}
	srv, err := topo.Server.Start(context.Background(), filepath.Join(dir, "iperf3-s.log"), "iperf3", "-s", "-p", "5201")
	if err != nil {
		return err
	}
	defer srv.Stop()
	time.Sleep(300 * time.Millisecond)

	plain, err := iperf(topo, secs, streams)
	if err != nil {
		return fmt.Errorf("plain forwarding: %w", err)
	}
	stop, err := startGateways(topo, gw, dir, "")
	if err != nil {
		return err
	}
	defer stop()
	enc, err := iperf(topo, secs, streams)
	if err != nil {
		return fmt.Errorf("through the gateways: %w", err)
	}
	lossNote := ""
	if loss > 0 {
		lossNote = fmt.Sprintf(", %d%% random loss on the wan", loss)
	}
	fmt.Printf("iperf3, %d s, %d stream(s)%s, one run:\n", secs, streams, lossNote)
	fmt.Printf("  plain kernel forwarding:          %8.0f Mbit/s\n", plain/1e6)
	fmt.Printf("  through the gateway pair (tcpcrypt): %6.0f Mbit/s\n", enc/1e6)
	fmt.Printf("  ratio gateway/plain:              %8.3f\n", enc/plain)
	return nil
}

func join(ps []netip.Prefix) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return strings.Join(s, ", ")
}

func iperf(topo *netns.Topology, secs, streams int) (float64, error) {
	out, err := topo.Client.Run(context.Background(), "iperf3", "-c", topo.ServerAddr4.String(), "-p", "5201",
		"-t", fmt.Sprint(secs), "-P", fmt.Sprint(streams), "-J")
	if err != nil {
		return 0, fmt.Errorf("%v: %s", err, out)
	}
	var res struct {
		End struct {
			SumReceived struct {
				BitsPerSecond float64 `json:"bits_per_second"`
			} `json:"sum_received"`
			SumSent struct {
				Retransmits int `json:"retransmits"`
			} `json:"sum_sent"`
		} `json:"end"`
	}
	if err := json.Unmarshal(out, &res); err != nil {
		return 0, err
	}
	if os.Getenv("BENCH_VERBOSE") != "" {
		fmt.Printf("  (retransmits %d)\n", res.End.SumSent.Retransmits)
	}
	return res.End.SumReceived.BitsPerSecond, nil
}

func waitPort(ns *netns.NS, addr string) error {
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
		time.Sleep(100 * time.Millisecond)
	}
}

// runConns measures connections per second (connect, one byte each way,
// close) from the client to the server: with plain forwarding, through the
// gateways with full handshakes (resumption off), and with resumption.
func runConns(gw string, secs int) error {
	gw, _ = filepath.Abs(gw)
	topo, dir, cleanup, err := newTopology()
	if err != nil {
		return err
	}
	defer cleanup()
	var l net.Listener
	if err := topo.Server.Do(func() (err error) { l, err = net.Listen("tcp", ":5300"); return }); err != nil {
		return err
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				b := make([]byte, 1)
				if _, err := c.Read(b); err == nil {
					c.Write(b)
				}
				c.Close()
			}()
		}
	}()
	addr := net.JoinHostPort(topo.ServerAddr4.String(), "5300")
	rate := func() (float64, error) {
		n := 0
		start := time.Now()
		err := topo.Client.Do(func() error {
			for time.Since(start) < time.Duration(secs)*time.Second {
				c, err := net.DialTimeout("tcp", addr, 5*time.Second)
				if err != nil {
					return err
				}
				c.Write([]byte{1})
				b := make([]byte, 1)
				_, err = c.Read(b)
				c.Close()
				if err != nil {
					return err
				}
				n++
			}
			return nil
		})
		return float64(n) / time.Since(start).Seconds(), err
	}
	plain, err := rate()
	if err != nil {
		return fmt.Errorf("plain: %w", err)
	}
	stop, err := startGateways(topo, gw, dir, "tcpcrypt:\n  session_cache: {size: 0}\n")
	if err != nil {
		return err
	}
	full, err := rate()
	stop()
	if err != nil {
		return fmt.Errorf("full handshakes: %w", err)
	}
	stop, err = startGateways(topo, gw, dir, "")
	if err != nil {
		return err
	}
	resumed, err := rate()
	stop()
	if err != nil {
		return fmt.Errorf("resumption: %w", err)
	}
	fmt.Printf("new connections per second (connect, 1 byte each way, close), %d s each, one run:\n", secs)
	fmt.Printf("  plain kernel forwarding:              %8.0f /s\n", plain)
	fmt.Printf("  gateways, full handshakes (curve25519): %6.0f /s\n", full)
	fmt.Printf("  gateways, session resumption:         %8.0f /s\n", resumed)
	return nil
}

// startGateways runs gateway A and B on embedded defaults plus extra YAML
// and waits for their APIs; the returned func stops both.
func startGateways(topo *netns.Topology, gw, dir, extra string) (func(), error) {
	var procs []*netns.Proc
	stop := func() {
		for _, p := range procs {
			p.Stop()
		}
	}
	for _, g := range []struct {
		ns   *netns.NS
		name string
		pfx  string
	}{{topo.GwA, "gwa", join(topo.GwALANPrefixes)}, {topo.GwB, "gwb", join(topo.GwBLANPrefixes)}} {
		cfg := filepath.Join(dir, g.name+".yaml")
		yaml := fmt.Sprintf("interfaces: {lan: [lan0], wan: [wan0]}\nlan_prefixes: [%s]\n%s", g.pfx, extra)
		if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
			stop()
			return nil, err
		}
		p, err := g.ns.Start(context.Background(), filepath.Join(dir, g.name+".log"), gw, "run", "-c", cfg)
		if err != nil {
			stop()
			return nil, err
		}
		procs = append(procs, p)
		if err := waitPort(g.ns, "127.0.0.1:8473"); err != nil {
			stop()
			return nil, fmt.Errorf("%s: %w", g.name, err)
		}
	}
	return stop, nil
}

// newTopology builds the standard topology and a scratch folder; cleanup
// removes both.
func newTopology() (*netns.Topology, string, func(), error) {
	netns.RemoveOrphans("tcgwbench")
	topo, err := netns.NewTopology("tcgwbench", netns.TopologyOptions{})
	if err != nil {
		return nil, "", nil, err
	}
	dir, err := os.MkdirTemp("", "tcgw-bench")
	if err != nil {
		topo.Close()
		return nil, "", nil, err
	}
	return topo, dir, func() { os.RemoveAll(dir); topo.Close() }, nil
}
