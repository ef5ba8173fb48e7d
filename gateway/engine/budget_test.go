package engine

import (
	"bytes"
	"testing"
	"time"

	"tcpcrypt-gw/flowtable"
	"tcpcrypt-gw/gateway/packet"
)

// withBudget gives g a fresh table with a global budget of maxBytes.
func withBudget(t *testing.T, g *gw, maxBytes int64) *gw {
	tb := flowtable.New[*Flow](flowtable.Config{Shards: 1, MaxFlows: 64, MaxBytesTotal: maxBytes})
	st := new(Stats)
	return &gw{client: g.client, e: New(g.e.Config(), tb, 0, st), table: tb, stats: st, out: Output{Offset: 4}}
}

// toServer parses what B sent, split into the segments for its LAN server
// and those for the WAN.
func toServer(t *testing.T, pkts [][]byte) (lan, wan []packet.Packet) {
	l, w := split(t, pkts, serverAddr.Addr())
	for _, q := range l {
		p, _ := mustParse(t, q)
		lan = append(lan, p)
	}
	for _, q := range w {
		p, _ := mustParse(t, q)
		wan = append(wan, p)
	}
	return lan, wan
}

// TestBudgetGlobalEnforcedOnDelivery: plaintext delivered to the LAN host
// and kept until it acknowledges it counts against the global budget. With
// the budget spent, further frames are refused (not delivered, not
// acknowledged), the window the WAN peer is given shrinks to what the
// budget holds, and once the LAN host acknowledges, the refused frames,
// sent again, are delivered: every byte exactly once, in order.
func TestBudgetGlobalEnforcedOnDelivery(t *testing.T) {
	const budget = 4000
	c := newPair(t)
	c.b = withBudget(t, c.b, budget)
	c.handshake()
	var frames [][]byte
	var sent []byte
	for i := range 8 {
		msg := bytes.Repeat([]byte{byte('a' + i)}, 1000)
		frames = append(frames, one(t, c.a.process(c.client.seg(packet.FlagACK|packet.FlagPSH, msg, nil), c.now)))
		c.client.seq += uint32(len(msg))
		sent = append(sent, msg...)
	}
	var got []byte
	var refused [][]byte
	for _, fr := range frames {
		lan, _ := toServer(t, c.b.process(fr, c.now))
		for _, p := range lan {
			got = append(got, p.Payload()...)
		}
		if len(lan) == 0 {
			refused = append(refused, fr)
		}
		if used := c.b.table.BytesInUse(); used > budget {
			t.Fatalf("%d bytes in use, budget %d", used, budget)
		}
	}
	if len(got) == 0 || len(got) > budget || len(refused) == 0 || c.b.stats.BufferDrops.Load() == 0 {
		t.Fatalf("delivered %d bytes with a budget of %d; %d frames refused, %d drops", len(got), budget, len(refused), c.b.stats.BufferDrops.Load())
	}
	// The LAN server acknowledges: the bytes go back to the budget, and
	// the WAN peer hears of a window no larger than the budget.
	c.server.ack = c.client.seq - uint32(len(sent)-len(got))
	_, wan := toServer(t, c.b.process(c.server.seg(packet.FlagACK, nil, nil), c.now))
	if len(wan) != 1 {
		t.Fatalf("%d segments to the WAN for the server's ACK", len(wan))
	}
	if w := int(wan[0].Window) << c.b.flow(t).lanWS; w == 0 || w > budget {
		t.Fatalf("window to the WAN %d, budget %d", w, budget)
	}
	if used := c.b.table.BytesInUse(); used != 0 {
		t.Fatalf("%d bytes in use after the LAN host acknowledged everything", used)
	}
	for _, fr := range refused { // A retransmits them
		lan, _ := toServer(t, c.b.process(fr, c.now))
		for _, p := range lan {
			got = append(got, p.Payload()...)
		}
		c.server.ack += uint32(len(lan[0].Payload()))
		c.b.process(c.server.seg(packet.FlagACK, nil, nil), c.now)
	}
	if !bytes.Equal(got, sent) {
		t.Fatalf("the server got %d bytes, not the %d sent", len(got), len(sent))
	}
}

// TestBudgetDirectionsDoNotWaitForEachOther: a flow whose LAN-to-WAN
// direction is at its limit (the WAN peer acknowledges nothing) still
// delivers the peer's data to its LAN host: each direction has its own
// half of the per-flow limit, so neither waits for the other.
func TestBudgetDirectionsDoNotWaitForEachOther(t *testing.T) {
	const perFlow = 8 << 10
	c := newPair(t)
	for _, g := range []*gw{c.a, c.b} {
		cfg := *g.e.Config()
		cfg.MaxBufferPerFlow = perFlow
		g.e.SetConfig(&cfg)
	}
	c.handshake()
	for range 8 { // 8 KB from the client; B never sees it, so never acknowledges
		msg := bytes.Repeat([]byte("c"), 1000)
		c.a.process(c.client.seg(packet.FlagACK|packet.FlagPSH, msg, nil), c.now)
		c.client.seq += 1000
	}
	fa := c.a.flow(t)
	if framed := fa.enc.recs.len(); framed == 0 || framed == 8 || fa.enc.reserved > perFlow/2 {
		t.Fatalf("%d of 8 segments framed, %d bytes reserved LAN to WAN, limit %d", framed, fa.enc.reserved, perFlow/2)
	}
	for i := range 3 { // meanwhile the server answers; the client acknowledges as it reads
		msg := bytes.Repeat([]byte{byte('s' + i)}, 1000)
		wan := one(t, c.b.process(c.server.seg(packet.FlagACK|packet.FlagPSH, msg, nil), c.now))
		c.server.seq += 1000
		toClient := c.a.process(wan, c.now)
		if len(toClient) != 1 {
			t.Fatalf("reply %d: A sent %d segments to the client while its other direction is full", i, len(toClient))
		}
		if p, _ := mustParse(t, toClient[0]); !bytes.Equal(p.Payload(), msg) {
			t.Fatalf("reply %d: the client got %d other bytes", i, len(p.Payload()))
		}
		c.client.ack = c.server.seq
		c.a.process(c.client.seg(packet.FlagACK, nil, nil), c.now)
	}
	if fa.dec.reserved != 0 || int(c.a.table.BytesInUse()) != fa.enc.reserved {
		t.Fatalf("after the client acknowledged: %d reserved WAN to LAN, %d in use, %d LAN to WAN", fa.dec.reserved, c.a.table.BytesInUse(), fa.enc.reserved)
	}
}

// TestRingParkedWhileTheAllowanceLasts: a ring of a bulk flow that the LAN
// host has emptied keeps its buffer, counted in the parking allowance and
// not against the budget, and refills it without a new one; when the flow
// goes idle the buffer goes and the allowance is whole again. A small
// buffer is not parked, and with the allowance spent an empty ring gives
// its buffer back at once.
func TestRingParkedWhileTheAllowanceLasts(t *testing.T) {
	for _, tc := range []struct {
		name          string
		segs          int // delivered before the server acknowledges
		crowded, park bool
	}{{"bulk", 80, false, true}, {"small", 3, false, false}, {"allowance spent", 80, true, false}} {
		c := newPair(t)
		c.handshake()
		if tc.crowded { // other flows have parked all they may
			c.b.stats.ParkedBytes.Add(c.b.table.MaxBytesTotal() / ParkShare)
		}
		fb := c.b.flow(t)
		deliver := func() *[]byte {
			for range tc.segs {
				msg := bytes.Repeat([]byte{'d'}, 1000)
				wan := one(t, c.a.process(c.client.seg(packet.FlagACK, msg, nil), c.now))
				c.client.seq += 1000
				one(t, c.b.process(wan, c.now))
			}
			buf := fb.dec.ring.pool
			c.server.ack = c.client.seq
			c.b.process(c.server.seg(packet.FlagACK, nil, nil), c.now) // the server takes it all
			return buf
		}
		first := deliver()
		if fb.dec.ring.len() != 0 || first == nil {
			t.Fatalf("%s: ring holds %d after the ACK", tc.name, fb.dec.ring.len())
		}
		if !tc.park {
			if fb.dec.ring.pool != nil || fb.parked() != 0 {
				t.Fatalf("%s: the empty ring kept %d bytes parked (buffer of %d)", tc.name, fb.parked(), len(*first))
			}
			continue
		}
		if fb.dec.ring.pool != first || int(fb.dec.ring.parked) != len(*first) || c.b.stats.ParkedBytes.Load() != int64(fb.parked()) || c.b.table.BytesInUse() != 0 {
			t.Fatalf("the empty ring did not park its buffer (same %v, %d bytes): parked %d, allowance used %d, %d of the budget in use",
				fb.dec.ring.pool == first, len(*first), fb.parked(), c.b.stats.ParkedBytes.Load(), c.b.table.BytesInUse())
		}
		if deliver() != first {
			t.Fatal("the second burst took a new buffer")
		}
		c.b.table.LockShard(0)
		c.b.e.releaseIdle(c.now.Add(time.Hour))
		c.b.table.UnlockShard(0)
		if fb.dec.ring.pool != nil || fb.enc.ring.pool != nil || fb.parked() != 0 || c.b.stats.ParkedBytes.Load() != 0 {
			t.Fatalf("idle: ring buffers kept %v %v, %d parked, allowance used %d", fb.dec.ring.pool != nil, fb.enc.ring.pool != nil, fb.parked(), c.b.stats.ParkedBytes.Load())
		}
	}
}

// TestBudgetQueueHoldsEachByteOnce: segments beyond a hole that overlap or
// touch merge, so the queue's byte count (what is reserved) is the size of
// their union, newBytes counts only what is not held, and the bytes and
// the FIN come out as sent.
func TestBudgetQueueHoldsEachByteOnce(t *testing.T) {
	stream := make([]byte, 100)
	for i := range stream {
		stream[i] = byte(i)
	}
	var q oooQueue[cSpace]
	put := func(from, to int, fin bool) { q.insert(cSeq(1000+from), stream[from:to], fin) }
	put(10, 20, false)
	put(40, 50, false)
	if n := q.newBytes(1000+15, 30); n != 20 { // of [15,45) only [20,40) is not held
		t.Fatalf("newBytes([15,45)) = %d, want 20", n)
	}
	put(15, 45, false) // bridges both: one segment [10,50)
	put(50, 60, true)  // touches it: merged, with the FIN at its end
	put(70, 80, false)
	if q.len() != 2 || q.bytes != 50+10 {
		t.Fatalf("%d segments, %d bytes; want 2 segments, 60 bytes", q.len(), q.bytes)
	}
	s := q.first()
	if s.seq != 1010 || !bytes.Equal(s.data, stream[10:60]) || !s.fin {
		t.Fatalf("first segment at %d, %d bytes, fin %v", s.seq, len(s.data), s.fin)
	}
	if n := q.newBytes(1000+5, 90); n != 90-60 {
		t.Fatalf("newBytes([5,95)) = %d, want 30", n)
	}
	put(0, 100, false) // covers everything: one segment, each byte once
	if q.len() != 1 || q.bytes != 100 || !bytes.Equal(q.first().data, stream) || q.first().fin {
		t.Fatalf("%d segments, %d bytes, fin %v", q.len(), q.bytes, q.first().fin)
	}
}

// TestBudgetQueueAllocatesNothing: once warm, queuing segments beyond a
// hole, merging them and taking them off again allocates nothing (pooled
// buffers, oooPool).
func TestBudgetQueueAllocatesNothing(t *testing.T) {
	seg := make([]byte, 1448)
	var q oooQueue[cSpace]
	cycle := func() {
		q.insert(3000, seg, false)
		q.insert(3000+1448, seg, false) // touches: merged
		q.insert(9000, seg, true)
		q.pop()
		q.pop()
	}
	for i := 0; i < 10; i++ {
		cycle()
	}
	// A garbage collection may empty the pool once in a while (sync.Pool);
	// allocating in every cycle is what must not happen.
	if a := testing.AllocsPerRun(200, cycle); a >= 0.5 && !raceEnabled {
		t.Fatalf("%.2f allocations per cycle", a)
	}
	if q.len() != 0 || q.bytes != 0 {
		t.Fatalf("%d segments, %d bytes left", q.len(), q.bytes)
	}
}

// TestQueueIslandsBounded: a queue beyond a hole takes at most
// oooMaxIslands separate islands (each costs a pooled buffer of at least
// 2 KiB, whatever its size); bytes that join or bridge an island are still
// taken once it is full.
func TestQueueIslandsBounded(t *testing.T) {
	var q oooQueue[cSpace]
	defer q.clear()
	for i := 0; i < oooMaxIslands; i++ {
		if !q.room(cSeq(10*i), 1) {
			t.Fatalf("island %d refused", i)
		}
		q.insert(cSeq(10*i), []byte{1}, false)
	}
	if q.len() != oooMaxIslands || q.room(10*oooMaxIslands, 1) {
		t.Fatalf("%d islands, one more accepted: %v", q.len(), q.room(10*oooMaxIslands, 1))
	}
	if !q.room(1, 3) || !q.room(5, 5) {
		t.Fatal("bytes that touch an island refused")
	}
	q.insert(1, make([]byte, 9), false) // bridges islands 0 and 1
	if q.len() != oooMaxIslands-1 || !q.room(10*oooMaxIslands, 1) {
		t.Fatalf("after a bridge: %d islands, room %v", q.len(), q.room(10*oooMaxIslands, 1))
	}
}

// TestLANQueueYieldsToTheRepair: with the global budget spent, partly by
// LAN bytes waiting beyond a hole, the segment that fills the hole cannot
// be framed; the queue then gives its bytes up (the LAN host never had
// them acknowledged and sends them again), so that the next repair finds
// the budget: no flow waits for budget that only its own queue holds.
func TestLANQueueYieldsToTheRepair(t *testing.T) {
	const budget = 4000
	c := newPair(t)
	c.a = withBudget(t, c.a, budget)
	c.handshake()
	fa := c.a.flow(t)
	start := c.client.seq
	msgs := [][]byte{bytes.Repeat([]byte{'a'}, 1000), bytes.Repeat([]byte{'b'}, 1000), bytes.Repeat([]byte{'c'}, 1000)}
	var segs [][]byte
	for _, m := range msgs {
		segs = append(segs, c.client.seg(packet.FlagACK, m, nil))
		c.client.seq += uint32(len(m))
	}
	c.a.process(segs[1], c.now)
	c.a.process(segs[2], c.now)
	if fa.enc.ooo.bytes != 2000 {
		t.Fatalf("queued %d bytes, want 2000", fa.enc.ooo.bytes)
	}
	// Someone else takes what is left of the budget.
	other := int(c.a.table.MaxBytesTotal() - c.a.table.BytesInUse())
	if !c.a.table.Reserve(other) {
		t.Fatal("reserve")
	}
	c.a.process(segs[0], c.now)
	if uint32(fa.enc.pNxt) != start {
		t.Fatalf("the repair was framed with the budget spent (pNxt moved %d)", uint32(fa.enc.pNxt)-start)
	}
	if fa.enc.ooo.len() != 0 || fa.enc.reserved != fa.heldOut() || c.a.table.BytesInUse() != int64(other) {
		t.Fatalf("after the failed repair: %d bytes still queued, reserved %d held %d, %d in use (others %d)",
			fa.enc.ooo.bytes, fa.enc.reserved, fa.heldOut(), c.a.table.BytesInUse(), other)
	}
	// The LAN host sends it all again: now it fits.
	c.a.table.Release(other)
	c.client.seq = start
	var framed int
	for _, m := range msgs {
		for _, w := range c.a.process(c.client.seg(packet.FlagACK, m, nil), c.now) {
			if p, _ := mustParse(t, w); len(p.Payload()) > 0 {
				framed++
			}
		}
		c.client.seq += uint32(len(m))
	}
	if framed != 3 || uint32(fa.enc.pNxt) != c.client.seq {
		t.Fatalf("after the retransmission: %d frames, pNxt at %d of %d", framed, uint32(fa.enc.pNxt)-start, c.client.seq-start)
	}
}
