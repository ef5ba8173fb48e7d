// Router speed (make router-bench): one TCP stream's throughput (iperf3,
// client to server, then server to client) through the router VM, for each
// path the VM can be:
//
//	kernel     the VM forwards with its kernel; gwa forwards plainly
//	identity   the identity TUN forwarder (test/bench/cmd/identity-tun) in
//	           the VM: the gateway's TUN path with no protocol work
//	wireguard  wireguard-go in gwa (amd64) and in the VM (linux/arm), a
//	           tunnel between them carrying the LANs
//	gateway    tcpcrypt-gw in gwa and in the VM, tcpcrypt.ciphers set to one
//	           cipher in both: aes128gcm, aes256gcm, chacha20poly1305
//
// The VM is the bottleneck in every path (gwa is the amd64 host). The
// figures are TCG emulation on a shared host, not a real CPU's speed: only
// the ratios between paths mean something. Nothing is asserted about speed;
// the test fails only when a path does not work (or the gateway's flow did
// not use the configured cipher). Each round measures every path once; the
// table has each path's median. Last, crypto/tcpcrypt's frame benchmarks
// (its test binary, cross-built) run in the VM: the ciphers alone.

package router

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/curve25519"

	"tcpcrypt-gw/test/netns"
)

var (
	benchFlag   = flag.Bool("router-bench", false, "run TestRouterSpeed (make router-bench)")
	benchSecs   = flag.Int("router-bench-secs", 10, "seconds of each iperf3 run")
	benchRounds = flag.Int("router-bench-rounds", 3, "runs of each path (the median is reported)")
)

const iperfPort = 5201

func TestRouterSpeed(t *testing.T) {
	if !*benchFlag {
		t.Skip("a measurement, not a test: run with -router-bench (make router-bench)")
	}
	needVM(t)
	bins := map[string]string{}
	a := ARM
	for name, b := range map[string]struct {
		pkg   string
		cross *Arch
	}{
		"identity-arm":  {"tcpcrypt-gw/test/bench/cmd/identity-tun", &a},
		"wg-arm":        {"golang.zx2c4.com/wireguard", &a},
		"wg-uapi-arm":   {"tcpcrypt-gw/test/router/cmd/wg-uapi", &a},
		"wireguard-go":  {"golang.zx2c4.com/wireguard", nil},
		"tcpcrypt.test": {"tcpcrypt-gw/crypto/tcpcrypt", &a}, // go test -c
	} {
		bins[name] = filepath.Join(binDir, name)
		if err := goBuild(bins[name], b.pkg, b.cross); err != nil {
			t.Fatal(err)
		}
	}
	img := image(t, a,
		File{Path: "/usr/sbin/identity-tun", Src: bins["identity-arm"], Mode: 0o755},
		File{Path: "/usr/sbin/wireguard-go", Src: bins["wg-arm"], Mode: 0o755},
		File{Path: "/usr/sbin/wg-uapi", Src: bins["wg-uapi-arm"], Mode: 0o755},
		File{Path: "/usr/sbin/tcpcrypt.test", Src: bins["tcpcrypt.test"], Mode: 0o755})
	l := newLab(t, a, img)
	tp := l.topo
	srv, err := tp.Server.Start(context.Background(), filepath.Join(l.dir, "iperf3-server.log"), "iperf3", "-s", "-p", strconv.Itoa(iperfPort))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	time.Sleep(500 * time.Millisecond)

	// Each round measures every path once, in turn, so that a change of
	// the host's load (the CPU is shared) spreads over all paths; the
	// table takes each path's median.
	type path struct {
		name        string
		start, stop func()
		cipher      string // for the gateway: the cipher its flow must use
	}
	noop := func() {}
	paths := []path{{name: "kernel forwarding", start: noop, stop: noop}}
	paths = append(paths, path{name: "identity TUN forwarder",
		start: func() {
			l.run(background(fmt.Sprintf("identity-tun -lan lan0 -wan wan0 -prefixes %s,%s", tp.GwBLANPrefixes[0], tp.GwBLANPrefixes[1]), "/tmp/id.log", "/tmp/id.pid"))
			l.waitVM("grep -q 'identity-tun: ready' /tmp/id.log", "identity-tun", "cat /tmp/id.log")
		},
		stop: func() {
			l.run("kill $(cat /tmp/id.pid); i=0; while kill -0 $(cat /tmp/id.pid) 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done; ! kill -0 $(cat /tmp/id.pid) 2>/dev/null")
		}})
	var stopWG func()
	paths = append(paths, path{name: "wireguard-go",
		start: func() { stopWG = l.startWireGuard(bins["wireguard-go"]) },
		stop:  func() { stopWG() }})
	for _, c := range []string{"aes128gcm", "aes256gcm", "chacha20poly1305"} {
		extra := "tcpcrypt:\n  ciphers: [" + c + "]\n"
		paths = append(paths, path{name: "tcpcrypt-gw " + c, cipher: c,
			start: func() { l.startGwA(extra); l.startVMGateway(extra) },
			stop:  func() { l.stopVMGateway(); l.stopGwA() }})
	}
	load0, _ := os.ReadFile("/proc/loadavg")
	got := map[string][]float64{}
	for round := 1; round <= *benchRounds; round++ {
		for _, p := range paths {
			p.start()
			bps, share, retr, err := l.iperfCPU(false)
			if err != nil {
				t.Fatalf("%s: %v", p.name, err)
			}
			rbps, rshare, rretr, err := l.iperfCPU(true)
			if err != nil {
				t.Fatalf("%s, reverse: %v", p.name, err)
			}
			if p.cipher != "" {
				f := flowWithPort(l.flowsVM(), iperfPort)
				if f == nil || !f.Encrypted || f.Cipher != p.cipher {
					t.Fatalf("the VM gateway's iperf3 flow: %+v; want encrypted with %s", f, p.cipher)
				}
			}
			p.stop()
			t.Logf("round %d: %-28s %7.1f Mbit/s (%d retransmits, VM %3.0f%% of a core), reverse %7.1f Mbit/s (%d, %3.0f%%)",
				round, p.name, bps/1e6, retr, 100*share, rbps/1e6, rretr, 100*rshare)
			got[p.name] = append(got[p.name], bps)
			got[p.name+" rev"] = append(got[p.name+" rev"], rbps)
			got[p.name+" core"] = append(got[p.name+" core"], bps/share)
			got[p.name+" rev core"] = append(got[p.name+" rev core"], rbps/rshare)
		}
	}
	load1, _ := os.ReadFile("/proc/loadavg")
	med := func(v []float64) float64 { v = slices.Clone(v); slices.Sort(v); return v[len(v)/2] }
	var b strings.Builder
	fmt.Fprintf(&b, "one stream through the router VM (%s, %d MB, %d CPU, TCG), %ds per run, median of %d rounds; host load %s -> %s:\n",
		a.Name, MemoryMB, CPUs, *benchSecs, *benchRounds, strings.Join(strings.Fields(string(load0))[:3], " "), strings.Join(strings.Fields(string(load1))[:3], " "))
	fmt.Fprintf(&b, "  %-28s %29s  %29s\n", "", "client -> server (VM opens)", "server -> client (VM seals)")
	for _, p := range paths {
		fmt.Fprintf(&b, "  %-28s", p.name)
		for _, dir := range []string{"", " rev"} {
			m := med(got[p.name+dir])
			fmt.Fprintf(&b, "  %5.1f Mbit/s %5.3fx k %5.2fx wg", m/1e6, m/med(got["kernel forwarding"+dir]), m/med(got["wireguard-go"+dir]))
		}
		b.WriteString("\n")
	}
	b.WriteString("  (k: the VM's kernel forwarding; wg: wireguard-go in the VM)\n")
	b.WriteString("the same per host core the VM's qemu used (Mbit/s divided by its CPU share; less sensitive to the host's load):\n")
	for _, p := range paths {
		fmt.Fprintf(&b, "  %-28s", p.name)
		for _, dir := range []string{" core", " rev core"} {
			m := med(got[p.name+dir])
			fmt.Fprintf(&b, "  %5.1f Mbit/s %5.3fx k %5.2fx wg", m/1e6, m/med(got["kernel forwarding"+dir]), m/med(got["wireguard-go"+dir]))
		}
		b.WriteString("\n")
	}
	// The ciphers alone, on the VM's CPU: the frame sealing benchmark of
	// crypto/tcpcrypt (no network, no TUN).
	if out, err := l.vm.Run("tcpcrypt.test -test.run '^$' -test.bench '(Seal|Open)Frame/.*/1400$' -test.benchtime 2s", 10*time.Minute); err != nil {
		t.Errorf("the frame benchmarks in the VM: %v", err)
	} else {
		b.WriteString("crypto/tcpcrypt BenchmarkSealFrame and BenchmarkOpenFrame in the VM, 1,400-byte frames:\n")
		for _, line := range strings.Split(out, "\n") {
			if strings.HasPrefix(line, "Benchmark") {
				b.WriteString("  " + line + "\n")
			}
		}
	}
	t.Log("\n" + b.String())
}

// waitVM polls check in the VM (bounded) until it succeeds.
func (l *lab) waitVM(check, what, diag string) {
	l.t.Helper()
	deadline := time.Now().Add(gwStartLimit)
	for {
		if _, err := l.vm.Run(check, commandLimit); err == nil {
			return
		}
		if time.Now().After(deadline) {
			out, _ := l.vm.Run(diag, commandLimit)
			l.t.Fatalf("%s not ready after %v: %s", what, gwStartLimit, out)
		}
		time.Sleep(time.Second)
	}
}

// iperfCPU is iperf with the share of one host core the VM's qemu process
// used meanwhile (user + system time over wall time).
func (l *lab) iperfCPU(reverse bool) (bps, share float64, retr int, err error) {
	c0, err := procCPU(l.vm.Pid())
	if err != nil {
		return 0, 0, 0, err
	}
	start := time.Now()
	if bps, retr, err = l.iperf(reverse); err != nil {
		return 0, 0, 0, err
	}
	c1, err := procCPU(l.vm.Pid())
	if err != nil {
		return 0, 0, 0, err
	}
	share = (c1 - c0).Seconds() / time.Since(start).Seconds()
	if share <= 0 {
		return 0, 0, 0, fmt.Errorf("qemu used no CPU time")
	}
	return bps, share, retr, nil
}

// procCPU is a process's user + system time (all threads), from
// /proc/PID/stat in clock ticks of 1/100 s (USER_HZ on Linux).
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// Fields after the command name (which may hold spaces) in ")".
	i := strings.LastIndexByte(string(b), ')')
	f := strings.Fields(string(b[i+1:]))
	if i < 0 || len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %q", pid, b)
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: %q", pid, b)
	}
	return time.Duration(ut+st) * 10 * time.Millisecond, nil
}

// iperf runs one iperf3 stream from client to server (reverse: server to
// client); it returns the receiver's rate and the sender's retransmits.
// iperf3's server sometimes refuses a test right after the previous one
// ("busy"): up to two more tries.
func (l *lab) iperf(reverse bool) (bps float64, retr int, err error) {
	for try := 0; try < 3; try++ {
		if try > 0 {
			time.Sleep(2 * time.Second)
		}
		if bps, retr, err = l.iperfOnce(reverse); err == nil {
			return
		}
		l.t.Logf("iperf3: %v; again", err)
	}
	return
}

func (l *lab) iperfOnce(reverse bool) (float64, int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(*benchSecs+60)*time.Second)
	defer cancel()
	args := []string{"-c", l.topo.ServerAddr4.String(), "-p", strconv.Itoa(iperfPort), "-t", strconv.Itoa(*benchSecs), "-O", "2", "-J"}
	if reverse {
		args = append(args, "-R")
	}
	out, err := l.topo.Client.Run(ctx, "iperf3", args...)
	if err != nil {
		return 0, 0, err
	}
	return netns.Iperf3Result(out)
}

// wgEnd is one end of the WireGuard tunnel.
type wgEnd struct {
	priv, pub [32]byte
	port      int
	endpoint  string // this end's WAN address, for the other end
	tunAddr   string
	lan       string
}

func newWGEnd(port int, endpoint, tunAddr, lan string) *wgEnd {
	e := &wgEnd{port: port, endpoint: endpoint, tunAddr: tunAddr, lan: lan}
	rand.Read(e.priv[:])
	e.priv[0] &= 248
	e.priv[31] = e.priv[31]&127 | 64
	p, _ := curve25519.X25519(e.priv[:], curve25519.Basepoint)
	copy(e.pub[:], p)
	return e
}

// uapi is the UAPI request configuring x with peer.
func (x *wgEnd) uapi(peer *wgEnd) string {
	return fmt.Sprintf("set=1\nprivate_key=%s\nlisten_port=%d\nreplace_peers=true\npublic_key=%s\nendpoint=%s\nreplace_allowed_ips=true\nallowed_ip=%s\nallowed_ip=%s/32\n\n",
		hex.EncodeToString(x.priv[:]), x.port, hex.EncodeToString(peer.pub[:]), net.JoinHostPort(peer.endpoint, strconv.Itoa(peer.port)), peer.lan, peer.tunAddr)
}

// startWireGuard runs wireguard-go in gwa (bin, amd64) and in the VM,
// configures the tunnel, routes each LAN through it, and returns the stop.
func (l *lab) startWireGuard(bin string) func() {
	t := l.t
	t.Helper()
	tp := l.topo
	a := newWGEnd(51820, tp.GwAWANAddr4.String(), "10.91.10.1", tp.GwALANPrefixes[0].String())
	b := newWGEnd(51821, tp.GwBWANAddr4.String(), "10.91.10.2", tp.GwBLANPrefixes[0].String())
	ifA := fmt.Sprintf("rvmwg%d", os.Getpid())
	if len(ifA) > 15 {
		ifA = ifA[:15]
	}
	sockA := filepath.Join("/var/run/wireguard", ifA+".sock")
	logA := filepath.Join(l.dir, "wg-gwa.log")
	p, err := tp.GwA.Start(context.Background(), logA, "env", "WG_PROCESS_FOREGROUND=1", "LOG_LEVEL=error", bin, "-f", ifA)
	if err != nil {
		t.Fatal(err)
	}
	stop := func() {
		p.Stop()
		os.Remove(sockA)
		l.run("kill $(cat /tmp/wg.pid); i=0; while kill -0 $(cat /tmp/wg.pid) 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done; true")
	}
	t.Cleanup(func() { p.Stop(); os.Remove(sockA) })
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := os.Stat(sockA); err == nil {
			break
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(logA)
			t.Fatalf("wireguard-go in gwa: no socket: %s", b)
		}
		time.Sleep(100 * time.Millisecond)
	}
	c, err := net.DialTimeout("unix", sockA, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	c.Write([]byte(a.uapi(b)))
	resp := make([]byte, 64)
	n, _ := c.Read(resp)
	c.Close()
	if !strings.HasPrefix(string(resp[:n]), "errno=0\n") {
		t.Fatalf("wireguard-go in gwa: uapi answered %q", resp[:n])
	}
	for _, args := range [][]string{
		{"addr", "add", a.tunAddr + "/24", "dev", ifA},
		{"link", "set", ifA, "up"},
		{"route", "add", b.lan, "dev", ifA},
	} {
		if _, err := tp.GwA.Run(context.Background(), "ip", args...); err != nil {
			t.Fatal(err)
		}
	}
	l.run(background("env WG_PROCESS_FOREGROUND=1 LOG_LEVEL=error wireguard-go -f wg0", "/tmp/wg.log", "/tmp/wg.pid"))
	l.waitVM("[ -S /var/run/wireguard/wg0.sock ]", "wireguard-go in the VM", "cat /tmp/wg.log")
	if err := l.vm.WriteFile("/tmp/wg.uapi", b.uapi(a)); err != nil {
		t.Fatal(err)
	}
	l.run("wg-uapi /var/run/wireguard/wg0.sock < /tmp/wg.uapi")
	l.run(fmt.Sprintf("ip addr add %s/24 dev wg0 && ip link set wg0 up && ip route add %s dev wg0", b.tunAddr, a.lan))
	// The tunnel carries traffic before it is measured.
	l.waitVM("ping -c 1 -W 2 "+a.tunAddr, "the wireguard-go tunnel", "cat /tmp/wg.log; ip addr show wg0")
	return stop
}
