// The printed report: the machine, one table of all paths with the
// gateway's ratios, one of their CPU costs and parallel streams, the loss
// counters, the idle-flow memory and the goals of issues 22 and 21 (and
// those of issue 10 that are held).

package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

// describeMachine says what the figures came from: CPUs, CPU model, kernel,
// date, and whether anything else was running.
func describeMachine() string {
	model := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
	}
	kernel := "?"
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		kernel = strings.TrimSpace(string(b))
	}
	return fmt.Sprintf("machine: %d CPUs, %s, Linux %s, %s\n%s", runtime.NumCPU(), model, kernel,
		time.Now().UTC().Format("2006-01-02 15:04 UTC"), loadNote())
}

// loadNote counts other `go test` processes (what `ps aux | grep -c "go
// test"` shows, less the grep) and tcpcrypt-gw processes not started by
// this run (a demo, another engineer's test), and gives the load average.
func loadNote() string {
	n, gws := 0, 0
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		if e.Name()[0] < '0' || e.Name()[0] > '9' {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || len(b) == 0 {
			continue
		}
		cmd := bytes.ReplaceAll(b, []byte{0}, []byte{' '})
		argv0, _, _ := bytes.Cut(b, []byte{0})
		switch {
		case bytes.Contains(cmd, []byte("go test")):
			n++
		case filepath.Base(string(argv0)) == "tcpcrypt-gw" && (scratchDir == "" || !bytes.Contains(cmd, []byte(scratchDir))):
			gws++
		}
	}
	la, _ := os.ReadFile("/proc/loadavg")
	avg := strings.Join(strings.Fields(string(la))[:min(3, len(strings.Fields(string(la))))], " ")
	if n > 0 || gws > 0 {
		return fmt.Sprintf("load: WARNING: %d `go test` and %d other tcpcrypt-gw process(es) running, load average %s: these figures were taken under load", n, gws, avg)
	}
	return fmt.Sprintf("load: no `go test` and no other tcpcrypt-gw running, load average %s", avg)
}

var pathNames = map[string]string{
	pathPlain:     "plain kernel forwarding",
	pathIdentity:  "identity TUN forwarder",
	pathWireGuard: "wireguard-go tunnel",
	pathGateway:   "tcpcrypt-gw pair",
}

func mbit(v float64) string {
	if v == 0 {
		return "-"
	}
	return fmt.Sprintf("%.0f", v/1e6)
}

func num(v float64) string {
	if v == 0 {
		return "-"
	}
	return fmt.Sprintf("%.0f", v)
}

func ms(d time.Duration) float64 { return float64(d) / 1e6 }

func lat(l latency) string {
	if l.n == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f (%.2f)", ms(l.p50), ms(l.p90))
}

func ratio(a, b float64) string {
	if a == 0 || b == 0 {
		return "-"
	}
	return fmt.Sprintf("%.3f", a/b)
}

// latRatio is the gateway's p50 over the other path's, and the difference.
func latRatio(a, b latency) string {
	if a.n == 0 || b.n == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f %+.2f", ms(a.p50)/ms(b.p50), ms(a.p50-b.p50))
}

func report(o *options, results []*result, idle *idleResult) {
	by := map[string]*result{}
	for _, r := range results {
		by[r.path] = r
	}
	if len(results) > 0 {
		table(o, results, by)
	}
	if idle != nil {
		fmt.Println()
		if idle.err != nil {
			fmt.Printf("idle-flow memory: %v\n", idle.err)
		} else {
			fmt.Printf("idle-flow memory: %d of %d encrypted connections opened and held idle through the pair in %.1f s (%d failed attempts); gwa holds %d flows (%d encrypted since start), gwb %d\n",
				idle.open, idle.want, idle.openTime.Seconds(), idle.fails, idle.gwFlowsA, idle.encrypted, idle.gwFlowsB)
			fmt.Printf("  gateway A RSS %.1f MB -> %.1f MB: %.0f bytes per idle flow (gateway B: %.1f MB -> %.1f MB, %.0f bytes per flow)\n",
				float64(idle.rssA0)/1e6, float64(idle.rssA1)/1e6, idle.perFlow(),
				float64(idle.rssB0)/1e6, float64(idle.rssB1)/1e6, float64(idle.rssB1-idle.rssB0)/float64(max(1, idle.open)))
		}
	}
	goals(o, by, idle)
	fmt.Printf("\n%s\n", loadNote())
}

// goals prints the targets of issue 22 (speed), issue 21 (the hybrid TEP)
// and those of issue 10 that issue 22 holds, against this run.
func goals(o *options, by map[string]*result, idle *idleResult) {
	g := by[pathGateway]
	if g == nil {
		g = &result{}
	}
	fmt.Println("\ngoals of issues 22 and 21 (and those of issue 10 that are held), this run:")
	line := func(goal string, have string, met bool, ok bool) {
		verdict := "not met"
		switch {
		case !ok:
			have, verdict = "-", "not measured"
		case met:
			verdict = "met"
		}
		fmt.Printf("  %-56s %12s   %s\n", goal, have, verdict)
	}
	id, wg := by[pathIdentity], by[pathWireGuard]
	if id == nil {
		id = &result{}
	}
	if wg == nil {
		wg = &result{}
	}
	r := func(a, b float64) (string, float64, bool) {
		if a == 0 || b == 0 {
			return "", 0, false
		}
		return fmt.Sprintf("%.3fx", a/b), a / b, true
	}
	s, v, ok := r(g.tput, id.tput)
	line("throughput >= 1.2x identity", s, v >= 1.2, ok)
	s, v, ok = r(g.tput, wg.tput)
	line("throughput >= 3x wireguard-go", s, v >= 3, ok)
	s, v, ok = r(g.tputPar, id.tputPar)
	line(fmt.Sprintf("%d streams, aggregate >= 0.9x identity's", o.parStreams), s, v >= 0.9, ok)
	s, v, ok = r(g.cpuPerGB, wg.cpuPerGB)
	line("CPU per GB <= 0.5x wireguard-go's", s, ok && v <= 0.5, ok)
	s, v, ok = r(g.conns, id.conns)
	line("connections/s, full handshake >= 0.8x identity", s, v >= 0.8, ok)
	s, v, ok = r(g.connsResumed, id.conns)
	line("connections/s, resumed >= 0.95x identity", s, v >= 0.95, ok)
	if g.lat.n > 0 && id.lat.n > 0 {
		d := ms(g.lat.p50 - id.lat.p50)
		line("connect + echo p50, full <= identity + 0.2 ms", fmt.Sprintf("%+.2f ms", d), d <= 0.2, true)
	} else {
		line("connect + echo p50, full <= identity + 0.2 ms", "", false, false)
	}
	if g.cpuConn > 0 {
		vs := ""
		if id.cpuConn > 0 {
			vs = fmt.Sprintf(", %.2fx identity's", g.cpuConn/id.cpuConn)
		}
		fmt.Printf("  %-56s %12s   (no goal%s)\n", "CPU per connection, full handshake", fmt.Sprintf("%.3f ms", 1e3*g.cpuConn), vs)
	}
	s, v, ok = r(g.connsPQ, g.conns)
	line("connections/s, x25519mlkem768 >= 0.8x X25519 (issue 21)", s, v >= 0.8, ok)
	s, v, ok = r(g.tputLoss, id.tputLoss)
	line(fmt.Sprintf("held: with %d%% loss >= 0.5x identity with the same loss", o.loss), s, v >= 0.5, ok)
	if idle != nil && idle.err == nil && idle.open > 0 {
		line(fmt.Sprintf("held: idle flow <= 2 KiB (%d flows)", idle.open), fmt.Sprintf("%.0f B", idle.perFlow()), idle.perFlow() <= 2048, true)
	} else {
		line("held: idle flow <= 2 KiB", "", false, false)
	}
}

// costTable prints what each path costs in CPU per byte and per
// connection, and the aggregate of parallel streams, with the gateway's
// ratios.
func costTable(o *options, results []*result, by map[string]*result) {
	any := false
	for _, r := range results {
		any = any || r.cpuPerGB > 0 || r.tputPar > 0 || r.cpuConn > 0
	}
	if !any {
		return
	}
	sec := func(v float64) string {
		if v == 0 {
			return "-"
		}
		return fmt.Sprintf("%.2f", v)
	}
	msec := func(v float64) string {
		if v == 0 {
			return "-"
		}
		return fmt.Sprintf("%.3f", 1e3*v)
	}
	fmt.Printf("\nCPU of both router processes (user + system, /proc/PID/stat, before and after), and %d parallel streams:\n", o.parStreams)
	f := "%-26s %9s %9s   %9s   %9s %9s %9s\n"
	fmt.Printf(f, "", "CPU s/GB", "", "Mbit/s", "CPU ms per", "connection", "")
	fmt.Printf(f, "path", "1 stream", fmt.Sprintf("%d streams", o.parStreams), fmt.Sprintf("%d streams", o.parStreams), "full", "resumed", "mlkem768")
	for _, r := range results {
		res, pq := "-", "-"
		if r.path == pathGateway {
			res, pq = msec(r.cpuConnResumed), msec(r.cpuConnPQ)
		}
		fmt.Printf(f, pathNames[r.path], sec(r.cpuPerGB), sec(r.cpuPerGBPar), mbit(r.tputPar), msec(r.cpuConn), res, pq)
	}
	g := by[pathGateway]
	if g == nil {
		return
	}
	for _, p := range []string{pathIdentity, pathWireGuard} {
		x := by[p]
		if x == nil {
			continue
		}
		name := map[string]string{pathIdentity: "gateway / identity", pathWireGuard: "gateway / wireguard-go"}[p]
		fmt.Printf(f, name, ratio(g.cpuPerGB, x.cpuPerGB), ratio(g.cpuPerGBPar, x.cpuPerGBPar), ratio(g.tputPar, x.tputPar),
			ratio(g.cpuConn, x.cpuConn), ratio(g.cpuConnResumed, x.cpuConn), ratio(g.cpuConnPQ, x.cpuConn))
	}
	fmt.Println("(CPU per GB: over the no-loss iperf3 runs, per 1e9 bytes received; per connection: over the connection-rate runs;")
	fmt.Println(" the kernel's forwarding of what a process writes to its TUN device counts as that process's system time)")
}

// table prints the paths side by side, the ratios and the footnotes.
func table(o *options, results []*result, by map[string]*result) {
	lossHdr := "-"
	if o.loss > 0 {
		lossHdr = fmt.Sprintf("%d%% loss", o.loss)
	}
	fmt.Println()
	if o.secs > 0 {
		fmt.Printf("iperf3: %d stream(s), %d s per run; loss: random on the wan router, both directions (nftables numgen)\n", o.streams, o.secs)
	}
	fmt.Printf("connections: connect, 1 byte each way, close, %d in parallel, %d s per run; latency: connect + 4-byte echo, one at a time, %d samples\n", o.par, o.connSec, o.latN)
	fmt.Printf("throughput and connections/s: median of %d runs; 'resumed' applies to the gateway only (the others have no handshake)\n\n", o.runs)
	f := "%-26s %9s %9s   %8s %8s   %-13s %-13s\n"
	fmt.Printf(f, "", "iperf3", "Mbit/s", "conn/s", "", "connect+echo", "ms p50 (p90)")
	fmt.Printf(f, "path", "no loss", lossHdr, "full", "resumed", "full", "resumed")
	for _, r := range results {
		resumed, latR := "-", "-"
		if r.path == pathGateway {
			resumed, latR = num(r.connsResumed), lat(r.latResumed)
		}
		name := pathNames[r.path]
		if r.path == pathGateway {
			name += ", X25519"
		}
		fmt.Printf(f, name, mbit(r.tput), mbit(r.tputLoss), num(r.conns), resumed, lat(r.lat), latR)
		if r.path == pathGateway {
			fmt.Printf(f, "  ... x25519mlkem768", "", "", num(r.connsPQ), "", lat(r.latPQ), "")
		}
	}
	if g := by[pathGateway]; g != nil {
		for _, p := range []string{pathIdentity, pathWireGuard, pathPlain} {
			x := by[p]
			if x == nil {
				continue
			}
			name := map[string]string{pathIdentity: "gateway / identity", pathWireGuard: "gateway / wireguard-go", pathPlain: "gateway / plain"}[p]
			fmt.Printf(f, name, ratio(g.tput, x.tput), ratio(g.tputLoss, x.tputLoss), ratio(g.conns, x.conns), ratio(g.connsResumed, x.conns),
				latRatio(g.lat, x.lat), latRatio(g.latResumed, x.lat))
		}
		fmt.Printf(f, "x25519mlkem768 / X25519", "", "", ratio(g.connsPQ, g.conns), "", latRatio(g.latPQ, g.lat), "")
		fmt.Println("(latency ratios: gateway p50 / other p50, then the difference in ms; the gateway's full handshakes use curve25519")
		fmt.Println(" except on the x25519mlkem768 line, the hybrid post-quantum TEP, the default; resumed runs use the default)")
	}
	for _, r := range results {
		if r.note != "" {
			fmt.Printf("%s: %s\n", pathNames[r.path], r.note)
		}
	}
	if g := by[pathGateway]; g != nil && g.note == "" {
		fmt.Printf("gateway A counted %d flows encrypted in the full-handshake runs (the bench completed %d connections there, plus one check),\n  %d post-quantum flows in the x25519mlkem768 runs (of %d connections),\n  and %d resumptions in the resumed runs (of %d connections; resume_offered %d, resume_misses %d)\n",
			g.encrypted, g.madeFull, g.encryptedPQ, g.madePQ, g.resumed, g.madeResume, g.resumeOffered, g.resumeMisses)
	}
	costTable(o, results, by)
	cpuLine := ""
	for _, r := range results {
		if len(r.cpu) == 0 {
			continue
		}
		var parts []string
		for _, c := range r.cpu {
			parts = append(parts, fmt.Sprintf("%.0f%%", 100*c))
		}
		cpuLine += fmt.Sprintf("  %-24s %s\n", pathNames[r.path], strings.Join(parts, " + "))
	}
	if cpuLine != "" {
		fmt.Printf("\nCPU of the routers' processes during the no-loss iperf3 runs (share of one core; gwa + gwb):\n%s", cpuLine)
	}
	if o.loss > 0 && o.secs > 0 {
		fmt.Printf("\nwhat the wan forwarded under %d%% loss (a GSO super-packet is one packet to nftables, so the loss falls on bursts of segments where a path keeps them together):\n", o.loss)
		for _, r := range results {
			c := r.lossSeen
			if c.pkts == 0 || c.fwdPkts == 0 {
				continue
			}
			fmt.Printf("  %-24s towards the server %8d packets of %6.0f bytes on average; both ways %8d packets, %6d dropped (%.2f%%)\n",
				pathNames[r.path], c.fwdPkts, float64(c.fwdBytes)/float64(c.fwdPkts), c.pkts, c.dropped, 100*float64(c.dropped)/float64(c.pkts))
		}
	}
}
