package engine

import (
	"bytes"
	"net/netip"
	"runtime"
	"testing"
	"time"

	"tcpcrypt-gw/crypto/endpoint"
	"tcpcrypt-gw/flowtable"
	"tcpcrypt-gw/gateway/packet"
)

// floodHost is the i-th spoofed WAN source of a SYN flood at the server
// behind gateway B.
func floodHost(i int) *host {
	a := netip.AddrFrom4([4]byte{198, 18, byte(i >> 8), byte(i)})
	return &host{addr: netip.AddrPortFrom(a, uint16(1024+i%60000)), peer: serverAddr, seq: uint32(i * 7919)}
}

// BenchmarkHalfOpenFlowMemory floods gateway B with b.N spoofed WAN SYNs
// that its LAN server answers with a SYN-ACK, and reports the live heap
// each half-open flow costs, table included, after a GC: plain, SYNs
// without ENO as hping3 sends them; eno, SYNs with an ENO offer, which
// the gateway must negotiate.
func BenchmarkHalfOpenFlowMemory(b *testing.B) {
	for _, bc := range []struct {
		name string
		opts []byte
	}{{"plain", synOpts(1460)}, {"eno", append(synOpts(1460), packet.OptENO, 3, 0x21, packet.OptNOP)}} {
		b.Run(bc.name, func(b *testing.B) {
			g := newGWFlows(b, testConfig(b, lanB), 2*b.N+16) // inbound flows get 3/4 of a table
			now := time.Unix(1000, 0)
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				h := floodHost(i)
				g.process(h.seg(packet.FlagSYN, nil, bc.opts), now)
				srv := &host{addr: serverAddr, peer: h.addr, seq: 5000, ack: h.seq + 1}
				g.process(srv.seg(packet.FlagSYN|packet.FlagACK, nil, synOpts(1460)), now)
			}
			b.StopTimer()
			runtime.GC()
			runtime.ReadMemStats(&after)
			if g.table.Len() != b.N {
				b.Fatalf("%d flows after %d SYNs", g.table.Len(), b.N)
			}
			b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/float64(b.N), "heapB/flow")
			runtime.KeepAlive(g)
		})
	}
}

// floodGW is gateway B (its LAN host is the server) with room for max
// flows, a quarter of them kept for the LAN.
func floodGW(t testing.TB, max int) (*gw, *Config) {
	cfg := testConfig(t, lanB)
	return newGWFlows(t, cfg, max), cfg
}

// spoofedSYN sends the i-th flood SYN to g, and the LAN server's SYN-ACK
// when answer.
func spoofedSYN(t testing.TB, g *gw, i int, now time.Time, answer bool) {
	t.Helper()
	h := floodHost(i)
	g.process(h.seg(packet.FlagSYN, nil, synOpts(1460)), now)
	if answer {
		srv := &host{addr: serverAddr, peer: h.addr, seq: 5000, ack: h.seq + 1}
		g.process(srv.seg(packet.FlagSYN|packet.FlagACK, nil, synOpts(1460)), now)
	}
}

// lanSYN: the LAN host of g opens connection i to a WAN server; it
// reports whether the SYN went out (a flow was made for it).
func lanSYN(t testing.TB, g *gw, i int, now time.Time) bool {
	t.Helper()
	cl := &host{addr: netip.AddrPortFrom(serverAddr.Addr(), uint16(30000+i)), peer: netip.MustParseAddrPort("203.0.113.7:443"), seq: 77}
	return len(g.process(cl.seg(packet.FlagSYN, nil, synOpts(1460)), now)) == 1
}

// TestFloodKeepsLANReserve: a WAN SYN flood fills only the inbound share
// of the table; beyond it each new spoofed SYN evicts the oldest half-open
// inbound flow (counted), never a LAN flow, and every LAN SYN still gets a
// flow.
func TestFloodKeepsLANReserve(t *testing.T) {
	const max = 64
	g, _ := floodGW(t, max)
	now := time.Unix(1000, 0)
	for i := 0; i < 10*max; i++ {
		spoofedSYN(t, g, i, now, i%2 == 0)
		now = now.Add(time.Millisecond)
	}
	if n, in := g.table.Len(), g.table.InboundLen(); n != g.table.MaxInbound() || in != n {
		t.Fatalf("%d flows (%d inbound) after the flood, want the inbound share %d", n, in, g.table.MaxInbound())
	}
	if ev := g.stats.Evictions[EvictHalfOpen].Load(); ev != uint64(10*max-g.table.MaxInbound()) {
		t.Fatalf("%d half-open flows evicted, want %d", ev, 10*max-g.table.MaxInbound())
	}
	// The newest spoofed flows are the ones kept.
	if _, ok := g.table.Get(0, flowKey(floodHost(10*max-1))); !ok {
		t.Fatal("the newest flood flow was evicted")
	}
	if _, ok := g.table.Get(0, flowKey(floodHost(0))); ok {
		t.Fatal("the oldest flood flow is still there")
	}
	for i := 0; i < max-g.table.MaxInbound(); i++ {
		if !lanSYN(t, g, i, now) {
			t.Fatalf("LAN SYN %d refused during the flood (table full %d)", i, g.stats.TableFull.Load())
		}
		spoofedSYN(t, g, 10*max+i, now, true) // the flood goes on
	}
	if g.stats.TableFull.Load() != 0 {
		t.Fatalf("%d SYNs refused as table-full", g.stats.TableFull.Load())
	}
	// The LAN filled its reserve: from now on the flood can take nothing
	// from it, and a LAN SYN evicts a half-open inbound flow.
	if !lanSYN(t, g, max, now) {
		t.Fatal("a LAN SYN with the table full was refused though half-open flows exist")
	}
	if g.table.Len() != max {
		t.Fatalf("%d flows, want %d", g.table.Len(), max)
	}
}

func flowKey(wan *host) flowtable.Key { return flowtable.Key{LAN: serverAddr, WAN: wan.addr} }

// TestEvictHalfOpenThenIdlePlainNeverEncrypted: with the table full, a new
// LAN flow evicts half-open flows from the WAN first, then plain flows idle
// for evictIdleAfter, then the LAN's own half-open flows, and never an
// encrypted flow or a plain flow in use.
func TestEvictHalfOpenThenIdlePlainNeverEncrypted(t *testing.T) {
	c := newPair(t)
	c.b = newGWFlows(t, testConfig(t, lanB), 8)
	c.handshake() // one encrypted flow at B
	g := c.b
	now := c.now
	// Two established plain inbound flows, one of which stays busy, and
	// half-open ones to fill the inbound share (6).
	for i := 0; i < 2; i++ {
		h := floodHost(i)
		g.process(h.seg(packet.FlagSYN, nil, synOpts(1460)), now)
		srv := &host{addr: serverAddr, peer: h.addr, seq: 5000, ack: h.seq + 1}
		g.process(srv.seg(packet.FlagSYN|packet.FlagACK, nil, synOpts(1460)), now)
		h.seq++
		h.ack = 5001
		g.process(h.seg(packet.FlagACK, nil, nil), now)
		if en, _ := g.table.Get(0, flowKey(h)); !en.Value.established {
			t.Fatalf("plain flow %d not established after its ACK", i)
		}
	}
	for i := 2; i < 5; i++ {
		spoofedSYN(t, g, i, now, true)
	}
	if g.table.Len() != 6 {
		t.Fatalf("%d flows, want 6", g.table.Len())
	}
	later := now.Add(evictIdleAfter + time.Second)
	busy := floodHost(1)
	busy.seq, busy.ack = busy.seq+1, 5001
	g.process(busy.seg(packet.FlagACK, []byte("x"), nil), later)
	// LAN SYNs 0, 1 fill the table; 2..4 evict the half-open flows, 5 the
	// idle plain one.
	for i := 0; i < 6; i++ {
		if !lanSYN(t, g, i, later) {
			t.Fatalf("LAN SYN %d refused", i)
		}
	}
	if h, p := g.stats.Evictions[EvictHalfOpen].Load(), g.stats.Evictions[EvictIdlePlain].Load(); h != 3 || p != 1 {
		t.Fatalf("evicted %d half-open and %d idle plain flows, want 3 and 1", h, p)
	}
	if _, ok := g.table.Get(0, flowKey(floodHost(0))); ok {
		t.Fatal("the idle plain flow is still there")
	}
	if _, ok := g.table.Get(0, flowKey(busy)); !ok {
		t.Fatal("the busy plain flow was evicted")
	}
	if f := g.flow(t); f.State != StateEncrypted {
		t.Fatalf("the encrypted flow is %v", f.State)
	}
	// Now the LAN's own half-open flows are the victims, oldest first.
	if !lanSYN(t, g, 6, later) || g.stats.Evictions[EvictHalfOpenLAN].Load() != 1 {
		t.Fatalf("LAN SYN 6 did not evict the oldest half-open LAN flow")
	}
	if g.flow(t).State != StateEncrypted || g.stats.TableFull.Load() != 0 {
		t.Fatalf("the encrypted flow was evicted, or a SYN refused (%d)", g.stats.TableFull.Load())
	}
}

// TestFloodHalfOpenPlainFlowsExpire: an inbound plain flow the LAN server
// answered lives on the handshake timeout until the opener acknowledges
// the SYN-ACK (a blind ACK does not count), then on the idle timeout.
func TestFloodHalfOpenPlainFlowsExpire(t *testing.T) {
	g, cfg := floodGW(t, 64)
	now := time.Unix(1000, 0)
	spoofedSYN(t, g, 0, now, true) // never acknowledged
	spoofedSYN(t, g, 1, now, true) // a blind ACK
	blind := floodHost(1)
	blind.seq, blind.ack = blind.seq+1, 12345
	g.process(blind.seg(packet.FlagACK, nil, nil), now)
	spoofedSYN(t, g, 2, now, true) // completed
	done := floodHost(2)
	done.seq, done.ack = done.seq+1, 5001
	g.process(done.seg(packet.FlagACK, nil, nil), now)
	g.tick(now.Add(cfg.HandshakeTimeout + time.Second))
	if _, ok := g.table.Get(0, flowKey(floodHost(0))); ok {
		t.Fatal("an unacknowledged SYN-ACK kept its flow past the handshake timeout")
	}
	if _, ok := g.table.Get(0, flowKey(floodHost(1))); ok {
		t.Fatal("a blind ACK kept its flow past the handshake timeout")
	}
	if _, ok := g.table.Get(0, flowKey(done)); !ok {
		t.Fatal("an established plain flow expired at the handshake timeout")
	}
}

// TestFloodEvictionDoesNotAllocate: with the table full of a flood's
// half-open flows, each new spoofed SYN (and the LAN server's SYN-ACK)
// evicts the oldest and reuses its memory (recycle): the flood makes no
// garbage for the collector to catch up with.
func TestFloodEvictionDoesNotAllocate(t *testing.T) {
	// eno: SYNs with an ENO offer, whose flows hold a SYN record
	// (synRecord), reused too.
	for _, bc := range []struct {
		name string
		opts []byte
	}{{"plain", synOpts(1460)}, {"eno", append(synOpts(1460), packet.OptENO, 3, 0x21, packet.OptNOP)}} {
		t.Run(bc.name, func(t *testing.T) { floodEvictionDoesNotAllocate(t, bc.opts) })
	}
}

func floodEvictionDoesNotAllocate(t *testing.T, synOptions []byte) {
	const max = 256
	g, _ := floodGW(t, max)
	now := time.Unix(1000, 0)
	const n = 4 * max
	pkts := make([][]byte, 0, 2*n)
	for i := range n {
		h := floodHost(i)
		srv := &host{addr: serverAddr, peer: h.addr, seq: 5000, ack: h.seq + 1}
		pkts = append(pkts, h.seg(packet.FlagSYN, nil, synOptions), srv.seg(packet.FlagSYN|packet.FlagACK, nil, synOpts(1460)))
	}
	for _, p := range pkts[:2*max] { // fill the inbound share
		lk := g.e.Lock(now, &g.out)
		lk.Process(p)
		lk.Unlock()
		g.out.Reset()
	}
	next := 2 * max
	// One run is a SYN and its SYN-ACK: AllocsPerRun rounds down, so an
	// allocation every other packet would not show per packet.
	allocs := testing.AllocsPerRun(max, func() {
		for range 2 {
			lk := g.e.Lock(now, &g.out)
			lk.Process(pkts[next])
			lk.Unlock()
			g.out.Reset()
			next++
		}
	})
	if ev := g.stats.Evictions[EvictHalfOpen].Load(); ev < max {
		t.Fatalf("%d evictions: the table was not full", ev)
	}
	if allocs > 0 {
		t.Fatalf("%.1f allocations per flood SYN and SYN-ACK with the table full", allocs)
	}
}

// TestFloodLostSYNACKKeepsResumptionOffer: under a flood the gateway's
// queue drops packets; when the peer's SYN-ACK is lost on its way to the
// LAN host, the host's SYN retransmission must go out with the first
// offer, on the same flow. (A new flow offered the next cached secret,
// the peer answered the first, and the connection went plain as a
// suspected downgrade: found by TestSpoofedSYNFloodAtPortForward.)
func TestFloodLostSYNACKKeepsResumptionOffer(t *testing.T) {
	cacheA, cacheB := endpoint.NewCache(16, time.Minute), endpoint.NewCache(16, time.Minute)
	mk := func(port uint16) *pair {
		c := newPair(t)
		c.a.e.Config().Cache, c.b.e.Config().Cache = cacheA, cacheB
		c.client.addr = netip.AddrPortFrom(clientAddr.Addr(), port)
		c.server.peer = c.client.addr
		c.a.client, c.b.client = c.client.addr, c.client.addr
		return c
	}
	mk(40001).handshake() // fills both caches
	c := mk(40002)
	syn := c.client.seg(packet.FlagSYN, nil, synOpts(1460))
	wanSYN := one(t, c.a.process(syn, c.now))
	_, o1 := mustParse(t, wanSYN)
	id := flowID(t, c.a)
	p, _ := mustParse(t, one(t, c.b.process(wanSYN, c.now)))
	c.server.ack = p.Seq + 1
	synack := c.server.seg(packet.FlagSYN|packet.FlagACK, nil, synOpts(1460))
	c.a.process(one(t, c.b.process(synack, c.now)), c.now) // the SYN-ACK to the client is lost
	again := one(t, c.a.process(syn, c.now))
	_, o2 := mustParse(t, again)
	if !bytes.Equal(o1.ENO, o2.ENO) || flowID(t, c.a) != id {
		t.Fatalf("retransmitted SYN: ENO %x, first %x; flow %d, first %d", o2.ENO, o1.ENO, flowID(t, c.a), id)
	}
	c.b.process(again, c.now) // B passes it to the server, which answers again
	toClient := one(t, c.a.process(one(t, c.b.process(synack, c.now)), c.now))
	cp, _ := mustParse(t, toClient)
	c.client.seq++
	c.client.ack = cp.Seq + 1
	c.a.process(c.client.seg(packet.FlagACK, nil, nil), c.now)
	if f := c.a.flow(t); f.State == StatePassthrough || f.Downgrade || !f.Resumed {
		t.Fatalf("after the lost SYN-ACK: state %v, downgrade %v, resumed %v, reason %q", f.State, f.Downgrade, f.Resumed, f.Reason)
	}
}

func flowID(t *testing.T, g *gw) uint64 {
	t.Helper()
	en, ok := g.table.Get(0, flowtable.Key{LAN: g.lanEnd(), WAN: g.wanEnd()})
	if !ok {
		t.Fatal("no flow")
	}
	return en.ID
}
