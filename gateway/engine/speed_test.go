package engine

// What lets the TUN device coalesce and the LAN host keep sending: PSH only
// where the sender put it, and windows no larger than the flow can hold.

import (
	"bytes"
	"testing"
	"time"

	"tcpcrypt-gw/crypto/tcpcrypt"
	"tcpcrypt-gw/gateway/packet"
)

// TestPSHFollowsTheSender: a frame carries PSH exactly when the LAN
// segment did, and plaintext delivered to a LAN host exactly when the WAN
// segment did; segments without it can be coalesced into super-packets.
func TestPSHFollowsTheSender(t *testing.T) {
	c := newPair(t)
	c.handshake()
	for _, psh := range []bool{false, true} {
		flags := uint8(packet.FlagACK)
		if psh {
			flags |= packet.FlagPSH
		}
		msg := []byte("some data")
		wan := one(t, c.a.process(c.client.seg(flags, msg, nil), c.now))
		wp, _ := mustParse(t, wan)
		if got := wp.Flags&packet.FlagPSH != 0; got != psh {
			t.Fatalf("LAN PSH %v: frame PSH %v", psh, got)
		}
		c.client.seq += uint32(len(msg))
		got := one(t, c.b.process(wan, c.now))
		gp, _ := mustParse(t, got)
		if gotPSH := gp.Flags&packet.FlagPSH != 0; gotPSH != psh || string(gp.Payload()) != string(msg) {
			t.Fatalf("WAN PSH %v: server got PSH %v, %q", psh, gotPSH, gp.Payload())
		}
	}
}

// TestWindowsBoundedByTheFlowBuffer: a WAN peer (or LAN host) that offers
// a huge window is passed on clamped to what the flow can hold, half the
// per-flow buffer less framing, in the receiver's window scale.
func TestWindowsBoundedByTheFlowBuffer(t *testing.T) {
	c := newPair(t)
	c.handshake()
	fa := c.a.flow(t)
	if fa.wanWS != 7 || fa.lanWS != 7 {
		t.Fatalf("window scales: LAN %d WAN %d, want 7 (synOpts)", fa.lanWS, fa.wanWS)
	}
	fa.wanWin = 0xffff // 8 MiB with scale 7
	limit := c.a.e.Config().MaxBufferPerFlow / 2
	m := fa.maxFrameData()
	want := uint16(limit * m / (m + tcpcrypt.FrameOverhead) >> 7)
	if got := c.a.at(c.now).winToLAN(fa); got != want {
		t.Fatalf("window to the LAN host %d (x128), want %d", got, want)
	}
	fa.wanWin = 10 // small windows pass, scaled down by framing only
	if got := c.a.at(c.now).winToLAN(fa); got != uint16(10*m/(m+tcpcrypt.FrameOverhead)) {
		t.Fatalf("small window to the LAN host %d", got)
	}
	fa.lanWin = 0xffff
	if got := c.a.at(c.now).winToWAN(fa); got != uint16(limit>>7) {
		t.Fatalf("window to the WAN %d (x128), want %d", got, limit>>7)
	}
}

// TestSACKBlocksLeadWithTheNewest: the first SACK block is the island of
// the segment that arrived last (RFC 2018 §4), the others follow highest
// first, and nothing below the hole is reported.
func TestSACKBlocksLeadWithTheNewest(t *testing.T) {
	var q oooQueue[cSpace]
	q.insert(1000, make([]byte, 100), false)
	q.insert(3000, make([]byte, 100), false)
	q.insert(2000, make([]byte, 100), false) // newest, in the middle
	q.insert(2100, make([]byte, 100), false) // extends it
	got := q.blocks(nil, 3)
	want := []packet.SACKBlock{{Left: 2000, Right: 2200}, {Left: 3000, Right: 3100}, {Left: 1000, Right: 1100}}
	if len(got) != len(want) {
		t.Fatalf("blocks %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("blocks %v, want %v", got, want)
		}
	}
	if got := q.blocks(nil, 1); len(got) != 1 || got[0] != want[0] {
		t.Fatalf("one block: %v", got)
	}
}

// TestIdleFlowReleasesItsAEAD: an encrypted flow with nothing in flight
// that has been quiet for idleAfter drops its AEAD states at the next scan,
// and its next packets go through under the same keys.
func TestIdleFlowReleasesItsAEAD(t *testing.T) {
	c := newPair(t)
	c.handshake()
	msg := []byte("before the pause")
	wan := one(t, c.a.process(c.client.seg(packet.FlagACK|packet.FlagPSH, msg, nil), c.now))
	c.client.seq += uint32(len(msg))
	one(t, c.b.process(wan, c.now))
	c.server.ack = c.client.seq
	c.a.process(one(t, c.b.process(c.server.seg(packet.FlagACK, nil, nil), c.now)), c.now)
	fa := c.a.flow(t)
	if fa.enc.sealer.Released() {
		t.Fatal("released before any pause")
	}
	c.a.tick(c.now.Add(time.Second)) // a scan, but the flow is not idle yet
	if fa.enc.sealer.Released() {
		t.Fatal("released a flow active a second ago")
	}
	later := c.now.Add(idleAfter + idleScanEvery + time.Second)
	c.a.tick(later)
	if !fa.enc.sealer.Released() {
		t.Fatal("an idle flow keeps its AEAD state")
	}
	if n := c.a.stats.IdleReleases.Load(); n != 1 {
		t.Fatalf("IdleReleases = %d after one flow went idle (the dataplane returns memory by it)", n)
	}
	c.a.tick(later.Add(idleScanEvery))
	if n := c.a.stats.IdleReleases.Load(); n != 1 {
		t.Fatalf("IdleReleases = %d: a flow released twice counts twice", n)
	}
	c.now = later
	msg = []byte("after the pause")
	wan = one(t, c.a.process(c.client.seg(packet.FlagACK|packet.FlagPSH, msg, nil), c.now))
	gp, _ := mustParse(t, one(t, c.b.process(wan, c.now)))
	if string(gp.Payload()) != string(msg) || fa.enc.sealer.Released() {
		t.Fatalf("after the pause the server got %q", gp.Payload())
	}
}

// TestHoleReportedOnceTheLANHostCaughtUp: data beyond a hole is reported to
// the sender (duplicate ACK with SACK) only when the LAN host has
// acknowledged every frame delivered before the hole; until then the
// sender would see a hole as wide as those frames and retransmit them all.
func TestHoleReportedOnceTheLANHostCaughtUp(t *testing.T) {
	c := newPair(t)
	c.handshake()
	send := func(msg string) []byte {
		w := one(t, c.a.process(c.client.seg(packet.FlagACK, []byte(msg), nil), c.now))
		c.client.seq += uint32(len(msg))
		return w
	}
	f1, f2, f3 := send("frame one"), send("frame two"), send("frame three")
	one(t, c.b.process(f1, c.now)) // delivered to the server, not yet acknowledged
	_ = f2                         // lost on the WAN
	if outs := c.b.process(f3, c.now); len(outs) != 0 {
		t.Fatalf("gateway B sent %d packets for data beyond a hole before the server caught up", len(outs))
	}
	// The server acknowledges frame one: its ACK, translated, reports the
	// hole and the SACK block of frame three.
	p1, _ := mustParse(t, f1)
	c.server.ack = c.client.seq - uint32(len("frame two")+len("frame three")) // P: the end of frame one
	ack := one(t, c.b.process(c.server.seg(packet.FlagACK, nil, nil), c.now))
	ap, ao := mustParse(t, ack)
	p3, _ := mustParse(t, f3)
	if ap.Ack != p1.Seq+uint32(len(p1.Payload())) || ao.NSACK != 1 || ao.SACK[0].Left != p3.Seq || ao.SACK[0].Right != p3.Seq+uint32(len(p3.Payload())) {
		t.Fatalf("server's ACK on the WAN: ack %d, SACK %v; want ack %d and the block of frame three [%d, %d)",
			ap.Ack, ao.SACK[:ao.NSACK], p1.Seq+uint32(len(p1.Payload())), p3.Seq, p3.Seq+uint32(len(p3.Payload())))
	}
	// Now the hole is reportable: more data beyond it gets a duplicate ACK.
	f4 := send("frame four")
	if outs := c.b.process(f4, c.now); len(outs) != 1 {
		t.Fatalf("after the server caught up: %d packets, want a duplicate ACK with SACK", len(outs))
	}
}

// TestEmptyFINFrameIsOneSegment: the LAN host's FIN becomes an empty FIN
// frame with the TCP FIN; gateway B gives the server one segment for it,
// the FIN, not an empty segment first (a packet less per connection).
func TestEmptyFINFrameIsOneSegment(t *testing.T) {
	c := newPair(t)
	c.handshake()
	wan := one(t, c.a.process(c.client.seg(packet.FlagACK|packet.FlagFIN, nil, nil), c.now))
	wp, _ := mustParse(t, wan)
	if wp.Flags&packet.FlagFIN == 0 || len(wp.Payload()) != tcpcrypt.FrameOverhead {
		t.Fatalf("WAN: flags %#x, %d bytes, want an empty frame with FIN", wp.Flags, len(wp.Payload()))
	}
	got := one(t, c.b.process(wan, c.now))
	gp, _ := mustParse(t, got)
	if gp.Flags&packet.FlagFIN == 0 || len(gp.Payload()) != 0 || gp.Seq != c.client.seq {
		t.Fatalf("server got flags %#x, %d bytes at %d, want the FIN at %d", gp.Flags, len(gp.Payload()), gp.Seq, c.client.seq)
	}
}

// TestInitAcknowledgedWithoutExtraPackets: data the client sent during the
// key exchange leaves in one frame that also acknowledges Init2 (no pure
// ACK besides), and gateway B does not pass the ACK of its own Init2 to
// the server, which never sent those bytes.
func TestInitAcknowledgedWithoutExtraPackets(t *testing.T) {
	c := newPair(t)
	c.held = []byte("early data")
	c.handshake() // checks A's single packet after Init2
	got := c.b.process(c.initAck, c.now)
	if len(got) != 1 {
		t.Fatalf("B sent %d packets for the frame", len(got))
	}
	if gp, _ := mustParse(t, got[0]); string(gp.Payload()) != "early data" {
		t.Fatalf("server got %q", gp.Payload())
	}

	c = newPair(t)
	c.handshake()
	if got := c.b.process(c.initAck, c.now); len(got) != 0 {
		gp, _ := mustParse(t, got[0])
		t.Fatalf("B passed the ACK of its Init2 on: %d packets, the first to %v ack %d", len(got), gp.Dst, gp.Ack)
	}
}

// TestInit2AckWaitsForData: when the LAN host's data comes just after
// Init2 (as often as not: it follows the host's ACK by microseconds), its
// frame is A's only packet and acknowledges Init2; no pure ACK goes
// before it, nor at the next Tick. When nothing comes, the next Tick
// acknowledges Init2 once (the harness checks that ACK), and the Tick
// after sends nothing.
func TestInit2AckWaitsForData(t *testing.T) {
	c := newPair(t)
	c.afterInit2 = []byte("right after Init2")
	c.handshake() // checks that A sent nothing at Init2, then one frame acknowledging it
	if c.ackByTick {
		t.Fatal("the harness acknowledged Init2 by Tick")
	}
	if got := c.a.tick(c.now.Add(tickSpan)); len(got) != 0 {
		t.Fatalf("A sent %d packets at the Tick after its frame acknowledged Init2", len(got))
	}
	if got := one(t, c.b.process(c.initAck, c.now)); string(got[len(got)-len(c.afterInit2):]) != string(c.afterInit2) {
		t.Fatal("the server did not get the data")
	}

	c = newPair(t)
	c.handshake()
	if !c.ackByTick {
		t.Fatal("A acknowledged Init2 before a Tick with nothing to carry it")
	}
	if got := c.a.tick(c.now.Add(tickSpan)); len(got) != 0 {
		t.Fatalf("A acknowledged Init2 again at the next Tick: %d packets", len(got))
	}
}

// tickSpan is a Tick interval of the gateway (gateway.tickEvery).
const tickSpan = 50 * time.Millisecond

// TestRetransmissionOverQueuedBytesRepairsTheHole: the sender's
// retransmission of a hole arrives as one super-packet that also covers
// everything queued beyond the hole (as Linux retransmits with TSO). Only
// the hole's bytes are new; reserving the whole packet again would exceed
// the direction's limit and drop the hole's only repair every time (the
// connection stalled, TestRekeyUnderLoss).
func TestRetransmissionOverQueuedBytesRepairsTheHole(t *testing.T) {
	c := newPair(t)
	c.handshake()
	cfg := *c.b.e.Config()
	cfg.MaxBufferPerFlow = 64 << 10 // each direction may hold 32 KiB
	c.b.e.SetConfig(&cfg)
	const n = 20
	var frames [][]byte
	var want []byte
	for i := 0; i < n; i++ {
		msg := bytes.Repeat([]byte{byte('a' + i)}, 1400)
		want = append(want, msg...)
		frames = append(frames, one(t, c.a.process(c.client.seg(packet.FlagACK, msg, nil), c.now)))
		c.client.seq += uint32(len(msg))
	}
	var got []byte
	take := func(pkts [][]byte) {
		for _, q := range pkts {
			if p, _ := mustParse(t, q); p.Dst == serverAddr.Addr() && len(p.Payload()) > 0 {
				got = append(got, p.Payload()...)
			}
		}
	}
	for _, w := range frames[1:] { // the first is lost: the rest waits beyond the hole
		take(c.b.process(w, c.now))
	}
	if len(got) != 0 || c.b.flow(t).dec.ooo.bytes == 0 {
		t.Fatalf("before the repair: %d bytes delivered, %d queued", len(got), c.b.flow(t).dec.ooo.bytes)
	}
	// The retransmission: all 20 frames in one packet.
	p0, _ := mustParse(t, frames[0])
	h := packet.HeaderFrom(&p0)
	var ow packet.OptionWriter
	ow.Timestamp(1, 1)
	h.Options = ow.Bytes()
	for _, w := range frames {
		p, _ := mustParse(t, w)
		h.Payload = append(h.Payload, p.Payload()...)
	}
	take(c.b.process(packet.Build(make([]byte, h.Len()), &h), c.now))
	if !bytes.Equal(got, want) {
		t.Fatalf("after the retransmission the server got %d of %d bytes", len(got), len(want))
	}
}

// TestPureACKsThatMoveOnlyC: a WAN ACK that moves the C acknowledgment but
// not the P one (part of a frame) tells the LAN host nothing and is not
// passed on, where it would count as a duplicate ACK; a true duplicate
// (the C ack unchanged) is passed on, and so is one that completes frames.
func TestPureACKsThatMoveOnlyC(t *testing.T) {
	c := newPair(t)
	c.handshake()
	msg := []byte("one frame")
	w1 := one(t, c.a.process(c.client.seg(packet.FlagACK, msg, nil), c.now))
	c.client.seq += uint32(len(msg))
	p1, _ := mustParse(t, w1)
	wanACK := func(ack uint32) [][]byte {
		h := packet.Header{Src: serverAddr.Addr(), Dst: clientAddr.Addr(), SrcPort: serverAddr.Port(), DstPort: clientAddr.Port(),
			Seq: p1.Ack, Ack: ack, Flags: packet.FlagACK, Window: 5000, TTL: 64}
		return c.a.process(packet.Build(make([]byte, h.Len()), &h), c.now)
	}
	if got := wanACK(p1.Seq + 10); len(got) != 0 {
		t.Fatalf("an ACK of part of a frame reached the client: %d packets", len(got))
	}
	if got := wanACK(p1.Seq + 10); len(got) != 1 {
		t.Fatalf("a duplicate ACK: %d packets to the client, want 1", len(got))
	}
	got := wanACK(p1.Seq + uint32(len(p1.Payload())))
	if len(got) != 1 {
		t.Fatalf("the ACK of the whole frame: %d packets to the client, want 1", len(got))
	}
	if gp, _ := mustParse(t, got[0]); gp.Ack != c.client.seq {
		t.Fatalf("client told ack %d, want %d", gp.Ack, c.client.seq)
	}
}

// TestLANReorderingIsQueued: LAN segments that overtake an earlier one
// (a veth reorders a sender's super-packets when it moves between CPUs)
// wait at gateway A until the hole is filled, then leave as frames in
// stream order; nothing is dropped, and no duplicate ACK goes to the WAN
// while they wait. A retransmission that spans the hole and the queued
// bytes, and a FIN beyond the hole, come out right too.
func TestLANReorderingIsQueued(t *testing.T) {
	for _, tc := range []struct {
		name   string
		refill bool // the hole is filled by one segment spanning all three
		fin    bool // the last segment carries FIN
	}{{"in order after the hole", false, false}, {"one retransmission over the queue", true, false}, {"FIN beyond the hole", false, true}} {
		t.Run(tc.name, func(t *testing.T) {
			c := newPair(t)
			c.handshake()
			start := c.client.seq
			msgs := [][]byte{bytes.Repeat([]byte{'a'}, 1000), bytes.Repeat([]byte{'b'}, 1000), bytes.Repeat([]byte{'c'}, 700)}
			var segs [][]byte
			for i, m := range msgs {
				flags := uint8(packet.FlagACK)
				if tc.fin && i == len(msgs)-1 {
					flags |= packet.FlagFIN
				}
				segs = append(segs, c.client.seg(flags, m, nil))
				c.client.seq += uint32(len(m))
			}
			for _, s := range segs[1:] {
				if out := c.a.process(s, c.now); len(out) != 0 {
					t.Fatalf("a segment beyond the hole sent %d packets, want none (its ACK is not new)", len(out))
				}
			}
			fa := c.a.flow(t)
			if fa.enc.ooo.bytes != 1700 || c.a.stats.LANReordered.Load() != 2 {
				t.Fatalf("queued %d bytes, %d reordered; want 1700, 2", fa.enc.ooo.bytes, c.a.stats.LANReordered.Load())
			}
			fill := segs[0]
			if tc.refill {
				c.client.seq = start
				fill = c.client.seg(packet.FlagACK, bytes.Join(msgs, nil), nil)
			}
			wan := c.a.process(fill, c.now)
			if fa.enc.ooo.len() != 0 || fa.enc.reserved != fa.heldOut() || c.a.stats.BufferDrops.Load() != 0 {
				t.Fatalf("after the hole: %d queued, reserved %d held %d, %d drops", fa.enc.ooo.len(), fa.enc.reserved, fa.heldOut(), c.a.stats.BufferDrops.Load())
			}
			var got []byte
			fin := false
			for _, w := range wan {
				if p, _ := mustParse(t, w); len(p.Payload()) == 0 {
					t.Fatalf("A sent a segment without a frame after the hole was filled (seq %d, flags %#x)", p.Seq, p.Flags)
				}
				for _, q := range c.b.process(w, c.now) {
					if p, _ := mustParse(t, q); p.Dst == serverAddr.Addr() {
						if p.Seq != start+uint32(len(got)) {
							t.Fatalf("server got bytes at %d, want %d", p.Seq-start, len(got))
						}
						got = append(got, p.Payload()...)
						fin = fin || p.Flags&packet.FlagFIN != 0
					}
				}
			}
			if !bytes.Equal(got, bytes.Join(msgs, nil)) || fin != tc.fin {
				t.Fatalf("server got %d of %d bytes in order, FIN %v (want %v)", len(got), 2700, fin, tc.fin)
			}
		})
	}
}
