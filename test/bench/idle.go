// The idle-flow memory figure: N encrypted connections opened through a
// fresh gateway pair, each with one byte echoed (so its handshake and key
// exchange are done), then held open with no traffic at all (no
// keep-alives). Gateway A's RSS (VmRSS in /proc/<pid>/status) is read
// before and after; the growth divided by N is the memory an idle flow
// costs, including whatever the flow table and the Go heap hold for it.
//
//  1. Split N over pairs of idle-conns processes (cmd/idle-conns), at most
//     15,000 flows per pair: a process may not hold more sockets than its
//     open-file limit (20,000 here, and not raisable without
//     CAP_SYS_RESOURCE). Pair i listens on server port 5400+i.
//  2. Start the gateways with flows.max above N; one connection warms them
//     up (keys, session cache); wait 1 s and read RSS.
//  3. Start the servers, then the clients (16 connections in parallel in
//     all), and wait until every client says done (bounded: 30 s + 5 ms per
//     flow).
//  4. Wait -idle-for (20 s: an encrypted flow quiet for 10 s gives back its
//     AEAD states, engine.releaseIdle), read RSS and the gateways' flow
//     counts.
//  5. Stop the clients and servers, then the gateways.

package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"tcpcrypt-gw/test/netns"
)

type idleResult struct {
	want, open         int
	fails              int64
	rssA0, rssA1       int64 // bytes
	rssB0, rssB1       int64
	encrypted          uint64
	openTime           time.Duration
	err                error
	gwFlowsA, gwFlowsB int
}

// perFlow is gateway A's RSS growth per open idle flow.
func (r *idleResult) perFlow() float64 {
	if r.open == 0 {
		return 0
	}
	return float64(r.rssA1-r.rssA0) / float64(r.open)
}

func rss(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(rest)
			if len(f) >= 1 {
				kb, err := strconv.ParseInt(f[0], 10, 64)
				return kb * 1024, err
			}
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}

// perPair is the most flows one pair of idle-conns processes holds.
const perPair = 15000

var doneRE = regexp.MustCompile(`idle-conns: done opened (\d+) failed (\d+)`)

func (e *env) measureIdle(n int, idleFor time.Duration) (*idleResult, error) {
	r := &idleResult{want: n}
	bin, err := e.build("idle-conns", "tcpcrypt-gw/test/bench/cmd/idle-conns")
	if err != nil {
		return nil, err
	}
	// 1.
	pairs := (n + perPair - 1) / perPair
	// 2.
	gws, err := e.startGateways(fmt.Sprintf("flows:\n  max: %d\n", max(65536, n+n/2)), "")
	if err != nil {
		return nil, err
	}
	var procs []*netns.Proc
	defer func() {
		for _, p := range procs {
			p.Stop()
		}
		gws.stop()
	}()
	time.Sleep(time.Second)
	pidA, pidB := gws.procs[0].Pid(), gws.procs[1].Pid()
	if r.rssA0, err = rss(pidA); err != nil {
		return nil, err
	}
	r.rssB0, _ = rss(pidB)
	// 3.
	for i := 0; i < pairs; i++ {
		log := filepath.Join(e.dir, fmt.Sprintf("idle-server-%d.log", i))
		p, err := e.topo.Server.Start(context.Background(), log, bin, "-listen", ":"+strconv.Itoa(idlePort0+i))
		if err != nil {
			return nil, err
		}
		procs = append(procs, p)
		if err := waitLog(p, log, "idle-conns: listening", 10*time.Second); err != nil {
			return nil, fmt.Errorf("idle-conns server: %w", err)
		}
	}
	start := time.Now()
	limit := 30*time.Second + time.Duration(n)*5*time.Millisecond
	var clients []string
	for i := 0; i < pairs; i++ {
		k := min(perPair, n-i*perPair)
		log := filepath.Join(e.dir, fmt.Sprintf("idle-client-%d.log", i))
		addr := e.topo.ServerAddr4.String() + ":" + strconv.Itoa(idlePort0+i)
		p, err := e.topo.Client.Start(context.Background(), log, bin, "-connect", addr, "-n", strconv.Itoa(k),
			"-par", strconv.Itoa(max(2, e.o.par/pairs)), "-limit", limit.String())
		if err != nil {
			return nil, err
		}
		procs = append(procs, p)
		clients = append(clients, log)
	}
	deadline := start.Add(limit + 10*time.Second)
	for _, log := range clients {
		for {
			b, _ := os.ReadFile(log)
			if m := doneRE.FindSubmatch(b); m != nil {
				o, _ := strconv.Atoi(string(m[1]))
				f, _ := strconv.ParseInt(string(m[2]), 10, 64)
				r.open += o
				r.fails += f
				break
			}
			if time.Now().After(deadline) {
				return nil, fmt.Errorf("idle-conns client not done after %v: %s", limit, strings.TrimSpace(string(b)))
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	r.openTime = time.Since(start)
	// 4.
	time.Sleep(idleFor)
	if r.rssA1, err = rss(pidA); err != nil {
		return nil, err
	}
	r.rssB1, _ = rss(pidB)
	if st, err := gws.stats(e.topo.GwA); err == nil {
		r.gwFlowsA, r.encrypted = st.Flows, st.FlowsEncrypted
	}
	if st, err := gws.stats(e.topo.GwB); err == nil {
		r.gwFlowsB = st.Flows
	}
	// 5. (deferred)
	return r, nil
}
