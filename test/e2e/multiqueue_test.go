// The multi-queue data plane (gateway/queues.go): both gateways with two
// TUN queues and a worker each, many connections at once through an
// impaired WAN, every byte checked both ways, and the per-worker counters
// showing that both queues carried traffic and that the kernel delivered
// each flow to the worker that owns it once it had learnt the flow.
package e2e

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"tcpcrypt-gw/gateway/monitor"
	"tcpcrypt-gw/test/impair"
	"tcpcrypt-gw/test/netns"
)

// TestMultiQueueTUN runs 16 IPv4 connections at once, then 8 IPv6 ones
// (both directions, up to 4 MiB each way), through gateways with tun_queues: 2 over a WAN
// with delay, loss, reordering and duplication.
func TestMultiQueueTUN(t *testing.T) {
	const queues = 2
	e := newEnv(t, envOptions{tunQueues: queues, impair: []string{"--seed", "22", "--delay", "5ms", "--jitter", "2ms",
		"--loss", "1", "--reorder", "1", "--dup", "1"}})
	before := map[string][]monitor.WorkerJSON{"gwa": e.workers(e.topo.GwA), "gwb": e.workers(e.topo.GwB)}

	l4 := listen(t, e.topo.Server, "0.0.0.0:9220")
	l6 := listen(t, e.topo.Server, "[::]:9221")
	start := time.Now()
	runConcurrent(t, l4, e.topo.Client, fmt.Sprintf("%s:9220", e.topo.ServerAddr4), 16)
	runConcurrent(t, l6, e.topo.Client, fmt.Sprintf("[%s]:9221", e.topo.ServerAddr6), 8)
	t.Logf("16 + 8 connections: %v", time.Since(start).Round(time.Millisecond))
	if t.Failed() {
		return
	}
	requireEncrypted(t, e, 9220, 16)
	requireEncrypted(t, e, 9221, 8)

	st := e.impair.stats()
	for _, dir := range []string{"a2b", "b2a"} {
		for _, c := range []impair.Counter{impair.Lost, impair.Reordered, impair.Duplicated} {
			if st[dir].Counts[c] == 0 {
				t.Errorf("impairer direction %s: no packet %s: the WAN was not impaired", dir, c)
			}
		}
	}
	for name, ns := range map[string]*netns.NS{"gwa": e.topo.GwA, "gwb": e.topo.GwB} {
		after := e.workers(ns)
		if len(after) != queues || len(before[name]) != queues {
			t.Fatalf("%s: /api/stats workers %+v, want %d (one per TUN queue)", name, after, queues)
		}
		var total, foreign uint64
		for i, w := range after {
			n, f := w.Packets-before[name][i].Packets, w.Foreign-before[name][i].Foreign
			t.Logf("%s queue %d: %d packets read, %d of them another worker's", name, w.Queue, n, f)
			// 24 flows hashed onto 2 queues: all on one has odds 2^-23.
			if n < 100 {
				t.Errorf("%s: queue %d read %d packets: the traffic did not use every queue", name, w.Queue, n)
			}
			total, foreign = total+n, foreign+f
		}
		// Only a flow's first packets, before the kernel learns from the
		// gateway's writes which queue it belongs on, should reach the
		// other worker; per-packet hand-overs would be about half.
		if foreign*10 > total {
			t.Errorf("%s: %d of %d packets read by a worker that does not own their flow: the kernel does not deliver flows to their owners", name, foreign, total)
		}
	}
}

// workers reads the per-worker counters of the gateway in ns.
func (e *env) workers(ns *netns.NS) []monitor.WorkerJSON {
	e.t.Helper()
	b, err := e.api(ns, "/api/stats")
	if err != nil {
		e.t.Fatalf("api: %v", err)
	}
	var st monitor.StatsJSON
	if err := json.Unmarshal(b, &st); err != nil {
		e.t.Fatalf("api json: %v", err)
	}
	return st.Workers
}
