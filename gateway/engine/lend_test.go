package engine

import (
	"bytes"
	"math/rand/v2"
	"testing"

	"tcpcrypt-gw/gateway/packet"
)

// lentSnap is what one lend put into an Output: the slice and its bytes
// then. Until the Output is Reset, the slice must still hold them.
type lentSnap struct {
	b, was []byte
}

func (s lentSnap) intact() bool { return bytes.Equal(s.b, s.was) }

// scribblePool takes buffers of every class the rings use from the pool
// and overwrites them, as other flows would: a lent buffer given back to
// the pool too early gets overwritten.
func scribblePool() {
	for c := 0; c < 6; c++ {
		var got []*[]byte
		for k := 0; k < 2; k++ {
			p := bufPool.get(bufPool.minLen << c)
			for i := range *p {
				(*p)[i] = 0xee
			}
			got = append(got, p)
		}
		for _, p := range got {
			bufPool.put(p)
		}
	}
}

// TestRingPinKeepsLentBytes drives a ring as a flow does (records
// appended, trimmed, the ring freed when the flow ends) while records are
// lent into an Output, and other flows take and overwrite pooled buffers:
// every lent byte stays as it was until the Output is Reset (the write),
// however the ring trims, wraps, grows or frees in between (hazards 1-3
// of docs/performance.md, "The last copies"), and every held record still
// reads back whole.
func TestRingPinKeepsLentBytes(t *testing.T) {
	for seed := uint64(1); seed <= 30; seed++ {
		rng := rand.New(rand.NewPCG(seed, 22))
		var r byteRing[cSpace]
		r.reset(0xffff0000)
		out := &Output{Offset: 16, Offload: true, Lend: true}
		type rec struct {
			start, end cSeq
			data       []byte
		}
		var recs []rec
		var snaps []lentSnap
		next := byte(1)
		window := 1 << (13 + rng.IntN(5))
		for step := 0; step < 3000; step++ {
			before := r.pool
			switch op := rng.IntN(10); {
			case op < 4 && r.len() < window:
				n := 1 + rng.IntN(3000)
				tl := r.tail(n, 0)[:n]
				for i := range tl {
					tl[i] = next
					next++
				}
				start := r.end()
				r.commit(n)
				recs = append(recs, rec{start, r.end(), append([]byte(nil), tl...)})
			case op < 7 && len(recs) > 0:
				k := rng.IntN(len(recs))
				out.next(64)
				out.commit(40, packet.Offload{})
				r.lend(out, recs[k].start, recs[k].end)
				b := out.tail(out.N - 1)[0]
				snaps = append(snaps, lentSnap{b, append([]byte(nil), b...)})
			case op < 8 && len(recs) > 0:
				k := rng.IntN(len(recs) + 1)
				if k == len(recs) {
					r.trim(r.end())
					recs = recs[:0]
				} else {
					r.trim(recs[k].start)
					recs = recs[k:]
				}
			case op == 8 && rng.IntN(8) == 0:
				end := r.end()
				r.free() // the flow ends
				r.seq = end
				recs = recs[:0]
			default:
				for i, s := range snaps {
					if !s.intact() {
						t.Fatalf("seed %d step %d: lent slice %d overwritten before the write", seed, step, i)
					}
				}
				out.Reset()
				snaps = snaps[:0]
			}
			if r.pool != before {
				scribblePool() // the ring dropped a buffer
			}
			for i, s := range snaps {
				if !s.intact() {
					t.Fatalf("seed %d step %d: lent slice %d of %d overwritten before the write", seed, step, i, len(snaps))
				}
			}
			for _, rc := range recs {
				if got := r.slice(rc.start, rc.end); !bytes.Equal(got, rc.data) {
					t.Fatalf("seed %d step %d: record [%d, %d) reads back wrong", seed, step, rc.start, rc.end)
				}
			}
		}
	}
}

// lentPair is a handshaken pair whose gateways lend, as on the writev
// path.
func lentPair(t *testing.T) *pair {
	c := newPair(t)
	c.handshake()
	for _, g := range []*gw{c.a, c.b} {
		g.out.Offload, g.out.Offset, g.out.Lend = true, 16, true
	}
	return c
}

// snapLent records every slice lent into out so far.
func snapLent(out *Output) []lentSnap {
	var res []lentSnap
	for _, b := range out.iovs {
		res = append(res, lentSnap{b, append([]byte(nil), b...)})
	}
	return res
}

func checkSnaps(t *testing.T, snaps []lentSnap) {
	t.Helper()
	for i, s := range snaps {
		if !s.intact() {
			t.Fatalf("lent slice %d of %d overwritten before the batch was written", i, len(snaps))
		}
	}
}

// payloadAt returns the TCP payload of the packet among pkts with
// sequence number seq.
func payloadAt(t *testing.T, pkts []offloaded, seq uint32) []byte {
	t.Helper()
	for _, w := range pkts {
		if p, err := packet.Parse(w.pkt); err == nil && p.Seq == seq && len(p.Payload()) > 0 {
			return p.Payload()
		}
	}
	t.Fatalf("no packet with seq %d", seq)
	return nil
}

// TestLentFrameSurvivesAckAndNewData is hazard 1: a frame retransmitted
// from the ring is lent; a WAN ACK later in the same batch trims the ring
// empty and the next frame is sealed into it. The retransmission written
// at the end of the batch is still byte for byte the first transmission,
// and the new frame authenticates at gateway B.
func TestLentFrameSurvivesAckAndNewData(t *testing.T) {
	c := lentPair(t)
	data := func(k byte) []byte { return bytes.Repeat([]byte{k}, 1000) }
	var segs [][]byte
	var firstSeq []uint32
	var wan []offloaded
	for k := byte(1); k <= 3; k++ {
		firstSeq = append(firstSeq, uint32(c.a.flow(t).enc.cNxt))
		segs = append(segs, c.client.seg(packet.FlagACK|packet.FlagPSH, data(k), nil))
		c.client.seq += 1000
		wan = append(wan, c.a.processOffload(segs[k-1], packet.Offload{}, c.now)...)
	}
	for _, w := range wan {
		c.b.processOffload(w.pkt, w.meta, c.now)
	}
	c.server.ack = c.client.seq
	wanAck := c.b.processOffload(c.server.seg(packet.FlagACK, nil, nil), packet.Offload{}, c.now)
	if len(wanAck) != 1 {
		t.Fatalf("B sent %d packets for the server's ACK", len(wanAck))
	}

	lk := c.a.e.Lock(c.now, &c.a.out)
	lk.ProcessOffload(append([]byte(nil), segs[0]...), packet.Offload{}) // the LAN host retransmits
	if len(c.a.out.iovs) == 0 {
		t.Fatal("the retransmitted frame was not lent")
	}
	snaps := snapLent(&c.a.out)
	lk.ProcessOffload(append([]byte(nil), wanAck[0].pkt...), wanAck[0].meta)
	if n := c.a.flow(t).enc.ring.len(); n != 0 {
		t.Fatalf("ring holds %d bytes after the WAN acknowledged all", n)
	}
	lk.ProcessOffload(c.client.seg(packet.FlagACK|packet.FlagPSH, data(4), nil), packet.Offload{})
	c.client.seq += 1000
	lk.Unlock()
	scribblePool()
	checkSnaps(t, snaps)
	var out []offloaded
	for i, b := range written(&c.a.out) {
		out = append(out, offloaded{b, c.a.out.Meta[i]})
	}
	c.a.out.Reset()
	if got, want := payloadAt(t, out, firstSeq[0]), payloadAt(t, wan, firstSeq[0]); !bytes.Equal(got, want) {
		t.Fatal("the retransmitted frame differs from its first transmission")
	}
	var got []byte
	for _, w := range out {
		for _, d := range c.b.processOffload(w.pkt, w.meta, c.now) {
			if p, err := packet.Parse(d.pkt); err == nil && p.Dst == serverAddr.Addr() {
				got = append(got, p.Payload()...)
			}
		}
	}
	if !bytes.Equal(got, data(4)) {
		t.Fatalf("server got %d bytes after the batch, want the new 1000", len(got))
	}
}

// TestLentFrameSurvivesFlowRelease is hazard 3: the flow ends (its rings
// freed) after its frame was lent, in the same batch, and other flows
// take pooled buffers: the frame is still intact when the batch is
// written, its buffer held by the Output until Reset.
func TestLentFrameSurvivesFlowRelease(t *testing.T) {
	c := lentPair(t)
	lk := c.a.e.Lock(c.now, &c.a.out)
	lk.ProcessOffload(c.client.seg(packet.FlagACK|packet.FlagPSH, bytes.Repeat([]byte{9}, 1200), nil), packet.Offload{})
	snaps := snapLent(&c.a.out)
	if len(snaps) == 0 {
		t.Fatal("the frame was not lent")
	}
	c.a.flow(t).release(c.a.table, c.a.stats)
	lk.Unlock()
	if len(c.a.out.parked) == 0 {
		t.Fatal("the released ring's buffer was not parked on the Output")
	}
	scribblePool()
	checkSnaps(t, snaps)
	c.a.out.Reset()
	if len(c.a.out.parked) != 0 || len(c.a.out.pins) != 0 {
		t.Fatal("Reset kept pins or parked buffers")
	}
}
