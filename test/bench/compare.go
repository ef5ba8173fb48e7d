// -compare: the connection figures of other gateway binaries (builds of
// other commits) in the same run as -gw's, so that a change is judged
// against its base minutes apart on the same machine rather than runs apart
// (single runs on a shared machine swing by 10-20 %).
//
//  1. For each round (-runs): one connection-rate run through the identity
//     TUN forwarder; then for each binary (-gw first, then -compare's in
//     order): start the pair with full handshakes only (curve25519, session
//     cache off), one connection-rate run, stop; start it with the
//     defaults, one warm-up connection, one rate run, stop. Rounds
//     interleave the binaries and the forwarder, so a change of the
//     machine's load falls on all of them.
//  2. Per binary: the median rates and their ratio to the forwarder's, the
//     CPU seconds of both gateway processes per connection
//     (/proc/PID/stat, over all rounds), gateway A's packets per connection
//     (/api/stats), and the ratios to -gw's.

package main

import (
	"fmt"
	"path/filepath"
	"time"
)

// cmpResult is one binary's figures.
type cmpResult struct {
	bin               string
	full, resumed     []float64 // conn/s per round
	cpuFull, cpuRes   float64   // CPU seconds, all rounds
	connFull, connRes int64     // connections completed, all rounds
	pktsFull, pktsRes uint64    // gwa packets in + out, all rounds
	resumedN, resMiss uint64    // gwa resumptions and misses, all rounds
	retrFull, retrRes retrans   // the hosts' retransmissions, all rounds
	pq                []float64 // conn/s per round, x25519mlkem768 (-compare-pq)
	cpuPQ             float64
	connPQ            int64
	pqErr             error
	err               error
}

// compareConfigs are the two starts of each round: full handshakes, then
// the defaults (resumption).
var compareConfigs = []struct{ name, yaml string }{
	{"full", "tcpcrypt:\n  teps: [curve25519]\n  session_cache: {size: 0}\n"},
	{"resumed", ""},
	// Full handshakes with the hybrid TEP (issue 21), with -compare-pq; a
	// binary older than the TEP refuses the configuration and gets "-".
	{"pq", "tcpcrypt:\n  teps: [x25519mlkem768]\n  session_cache: {size: 0}\n"},
}

func (e *env) measureCompare() []*cmpResult {
	var rs []*cmpResult
	for _, b := range append([]string{e.o.gw}, e.o.compare...) {
		rs = append(rs, &cmpResult{bin: b})
	}
	id := &cmpResult{bin: "identity"}
	for round := 0; round < e.o.runs; round++ {
		if id.err == nil {
			id.err = e.compareIdentity(id)
		}
		for _, r := range rs {
			if r.err != nil {
				continue
			}
			for _, c := range compareConfigs {
				if c.name == "pq" {
					if e.o.comparePQ && r.pqErr == nil {
						r.pqErr = e.compareOne(r, c.name, c.yaml)
					}
					continue
				}
				if r.err = e.compareOne(r, c.name, c.yaml); r.err != nil {
					break
				}
			}
		}
	}
	return append([]*cmpResult{id}, rs...)
}

// compareIdentity measures one connection-rate run through the identity
// forwarder (its figures go in id.full).
func (e *env) compareIdentity(id *cmpResult) error {
	stop, err := e.startIdentity()
	if err != nil {
		return err
	}
	defer stop()
	cpu0 := e.cpuTicks()
	rate, n, _, err := e.connRate()
	if err != nil {
		return err
	}
	cpu, _ := e.cpuSince(cpu0)
	id.full = append(id.full, rate)
	id.cpuFull += cpu
	id.connFull += n
	return nil
}

// compareOne starts r's binary with one configuration and measures one
// connection-rate run.
func (e *env) compareOne(r *cmpResult, name, yaml string) error {
	gws, err := e.startGatewaysBin(r.bin, yaml, "")
	if err != nil {
		return err
	}
	defer gws.stop()
	if name == "resumed" {
		// One connection first, so that the others can resume its session.
		if err := waitEcho(e.topo.Client, e.echo, 10*time.Second); err != nil {
			return err
		}
	}
	st0, err := gws.stats(e.topo.GwA)
	if err != nil {
		return err
	}
	cpu0, r0 := e.cpuTicks(), e.hostRetrans()
	rate, n, fails, err := e.connRate()
	if err != nil {
		return err
	}
	cpu, _ := e.cpuSince(cpu0)
	retr := e.hostRetrans().sub(r0)
	st1, err := gws.stats(e.topo.GwA)
	if err != nil {
		return err
	}
	pkts := st1.PacketsIn + st1.PacketsOut - st0.PacketsIn - st0.PacketsOut
	if e.o.verbose || fails > 0 {
		fmt.Printf("  %s, %s: %.0f connections/s (%d, %d failed), %.3f ms CPU and %.1f gwa packets per connection; the hosts retransmitted %d SYNs or SYN-ACKs, %d segments in all\n",
			filepath.Base(r.bin), name, rate, n, fails, 1e3*cpu/float64(max(1, n)), float64(pkts)/float64(max(1, n)), retr.syn, retr.segs)
	}
	switch name {
	case "pq":
		r.pq = append(r.pq, rate)
		r.cpuPQ += cpu
		r.connPQ += n
	case "full":
		r.full = append(r.full, rate)
		r.cpuFull += cpu
		r.connFull += n
		r.pktsFull += pkts
		r.retrFull.syn, r.retrFull.segs = r.retrFull.syn+retr.syn, r.retrFull.segs+retr.segs
	default:
		r.resumed = append(r.resumed, rate)
		r.cpuRes += cpu
		r.connRes += n
		r.pktsRes += pkts
		r.retrRes.syn, r.retrRes.segs = r.retrRes.syn+retr.syn, r.retrRes.segs+retr.segs
		r.resumedN += st1.Resumptions - st0.Resumptions
		r.resMiss += st1.ResumeMisses - st0.ResumeMisses
	}
	return nil
}

// reportCompare prints the forwarder and the binaries side by side.
func reportCompare(rs []*cmpResult) {
	fmt.Printf("\nconnection figures of gateway binaries, rounds interleaved (conn/s: median, and / the identity forwarder's;\n CPU: both routers' processes, per connection; packets: gateway A in + out per connection):\n")
	f := "%-22s %7s %7s %6s %6s   %7s %7s   %5s %5s   %s\n"
	fmt.Printf(f, "binary", "conn/s", "", "/ id", "", "CPU ms", "", "pkts", "", "/ the first binary: conn/s full, resumed; CPU full, resumed")
	fmt.Printf(f, "", "full", "resumed", "full", "res.", "full", "resumed", "full", "res.", "")
	per := func(v float64, n int64) float64 {
		if n == 0 {
			return 0
		}
		return v / float64(n)
	}
	id, base := rs[0], rs[1]
	idRate := 0.0
	if len(id.full) > 0 {
		idRate = median(id.full)
		fmt.Printf(f, "identity forwarder", num(idRate), "-", "", "", fmt.Sprintf("%.3f", 1e3*per(id.cpuFull, id.connFull)), "-", "", "", "")
	} else if id.err != nil {
		fmt.Printf("identity forwarder: %v\n", id.err)
	}
	r2 := func(a, b float64) string { // ratio() with 2 decimals
		if a == 0 || b == 0 {
			return "-"
		}
		return fmt.Sprintf("%.2f", a/b)
	}
	for _, r := range rs[1:] {
		name := filepath.Base(r.bin)
		if r.err != nil {
			fmt.Printf("%-22s %v\n", name, r.err)
			continue
		}
		if len(r.full) == 0 || len(r.resumed) == 0 {
			continue
		}
		vs := "-"
		if r != base && len(base.full) > 0 && len(base.resumed) > 0 {
			vs = fmt.Sprintf("%s %s; %s %s", ratio(median(r.full), median(base.full)), ratio(median(r.resumed), median(base.resumed)),
				ratio(per(r.cpuFull, r.connFull), per(base.cpuFull, base.connFull)), ratio(per(r.cpuRes, r.connRes), per(base.cpuRes, base.connRes)))
		}
		fmt.Printf(f, name, num(median(r.full)), num(median(r.resumed)), r2(median(r.full), idRate), r2(median(r.resumed), idRate),
			fmt.Sprintf("%.3f", 1e3*per(r.cpuFull, r.connFull)), fmt.Sprintf("%.3f", 1e3*per(r.cpuRes, r.connRes)),
			fmt.Sprintf("%.1f", per(float64(r.pktsFull), r.connFull)), fmt.Sprintf("%.1f", per(float64(r.pktsRes), r.connRes)), vs)
		if len(r.pq) > 0 {
			fmt.Printf("  (%s: x25519mlkem768 full handshakes %s conn/s, %s x X25519's, %.3f ms CPU per connection)\n",
				name, num(median(r.pq)), ratio(median(r.pq), median(r.full)), 1e3*per(r.cpuPQ, r.connPQ))
		} else if r.pqErr != nil {
			fmt.Printf("  (%s: x25519mlkem768: %v)\n", name, r.pqErr)
		}
		if r.retrFull.segs+r.retrRes.segs > 0 {
			fmt.Printf("  (%s: the hosts retransmitted %d SYNs or SYN-ACKs and %d segments in all in the full runs, %d and %d in the resumed)\n",
				name, r.retrFull.syn, r.retrFull.segs, r.retrRes.syn, r.retrRes.segs)
		}
		if r.connRes > 0 && r.resumedN < uint64(r.connRes)*9/10 {
			fmt.Printf("  (%s: only %d of %d connections resumed, %d misses)\n", name, r.resumedN, r.connRes, r.resMiss)
		}
	}
}
