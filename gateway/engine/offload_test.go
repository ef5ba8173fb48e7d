package engine

// Super-packets: what the engine writes with offload headers must stand
// for exactly the segments it writes without them (checked by cutting it
// up as the kernel does, gsotest), and runs of segments must really join.

import (
	"bytes"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"tcpcrypt-gw/crypto/tcpcrypt"
	"tcpcrypt-gw/flowtable"
	"tcpcrypt-gw/gateway/packet"
	"tcpcrypt-gw/gateway/packet/gsotest"
)

// expand cuts every packet of out into the segments it stands for.
func expand(t *testing.T, out *Output) [][]byte {
	t.Helper()
	var segs [][]byte
	for i, b := range out.Packets() {
		meta := packet.Offload{}
		if out.Offload {
			meta = out.Meta[i]
		}
		s, err := gsotest.Segments(b[out.Offset:], meta)
		if err != nil {
			t.Fatalf("packet %d: %v", i, err)
		}
		segs = append(segs, s...)
	}
	return segs
}

// sameSegment compares two segments but for the IPv4 ID and header
// checksum (GSO numbers the IDs of its segments up from the first).
func sameSegment(a, b []byte) bool {
	if len(a) != len(b) || len(a) < 20 {
		return false
	}
	if a[0]>>4 == 4 {
		return bytes.Equal(a[:4], b[:4]) && bytes.Equal(a[6:10], b[6:10]) && bytes.Equal(a[12:], b[12:])
	}
	return bytes.Equal(a, b)
}

func TestCoalescedOutputStandsForTheSameSegments(t *testing.T) {
	e := New(&Config{MaxBufferPerFlow: 1 << 20}, flowtable.New[*Flow](flowtable.Config{Shards: 1, MaxFlows: 4}), 0, new(Stats))
	plain := &Output{Offset: 16}
	super := &Output{Offset: 16, Offload: true}
	rng := rand.New(rand.NewPCG(1, 2))
	flows := []struct{ src, dst netip.Addr }{
		{netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("192.0.2.1")},
		{netip.MustParseAddr("10.0.0.2"), netip.MustParseAddr("192.0.2.1")},
		{netip.MustParseAddr("fd00::1"), netip.MustParseAddr("2001:db8::1")},
	}
	seqs := []uint32{100, 5000, 1 << 31}
	payload := make([]byte, 1500)
	for i := range payload {
		payload[i] = byte(i)
	}
	var ts packet.OptionWriter
	ts.Timestamp(7, 9)
	opts := ts.Bytes()
	for round := 0; round < 200; round++ {
		plain.Reset()
		super.Reset()
		for k := 0; k < 1+rng.IntN(60); k++ {
			fi := 0
			if rng.IntN(10) == 0 { // mostly one flow, as in a burst
				fi = rng.IntN(len(flows))
			}
			n := 1400
			switch rng.IntN(12) {
			case 0:
				n = rng.IntN(1400)
			case 1:
				seqs[fi] += 1000 // a gap
			}
			flags := uint8(packet.FlagACK)
			switch rng.IntN(20) {
			case 0:
				flags |= packet.FlagPSH
			case 1:
				flags |= packet.FlagFIN
			case 2:
				flags |= packet.FlagCWR
			case 3:
				flags = packet.FlagRST
			}
			win := uint16(1000)
			if rng.IntN(15) == 0 {
				win = 999
			}
			h := packet.Header{V6: flows[fi].src.Is6(), Src: flows[fi].src, Dst: flows[fi].dst, SrcPort: 1, DstPort: 2,
				Seq: seqs[fi], Ack: 77, Flags: flags, Window: win, TTL: 64, Options: opts, Payload: payload[:n]}
			if rng.IntN(15) == 0 {
				h.Options = nil
			}
			seqs[fi] += uint32(n)
			h2 := h
			(&pkt{Engine: e, out: plain}).emit(&h)
			(&pkt{Engine: e, out: super}).emit(&h2)
		}
		want := expand(t, plain)
		got := expand(t, super)
		if len(got) != len(want) {
			t.Fatalf("round %d: %d segments from %d super-packets, want %d", round, len(got), super.N, len(want))
		}
		for i := range want {
			if !sameSegment(got[i], want[i]) {
				t.Fatalf("round %d segment %d differs:\n got %x\nwant %x", round, i, got[i][:60], want[i][:60])
			}
			if p, err := packet.Parse(got[i]); err != nil || !p.VerifyChecksum() {
				t.Fatalf("round %d segment %d: parse %v, checksum ok %v", round, i, err, err == nil && p.VerifyChecksum())
			}
		}
	}
}

func TestRunsOfSegmentsJoinUpTo64KiB(t *testing.T) {
	e := New(&Config{MaxBufferPerFlow: 1 << 20}, flowtable.New[*Flow](flowtable.Config{Shards: 1, MaxFlows: 4}), 0, new(Stats))
	out := &Output{Offset: 16, Offload: true}
	src, dst := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("192.0.2.1")
	pay := make([]byte, 1448)
	for i := 0; i < 100; i++ {
		h := packet.Header{Src: src, Dst: dst, SrcPort: 1, DstPort: 2, Seq: uint32(i * len(pay)), Flags: packet.FlagACK, TTL: 64, Payload: pay}
		(&pkt{Engine: e, out: out}).emit(&h)
	}
	// 45 segments of 1448 bytes fit under the 65,535-byte IPv4 limit.
	if out.N != 3 || out.Meta[0].GSOSize != 1448 || out.Meta[0].GSOType != packet.GSOTCPv4 || len(out.Bufs[0])-out.Offset != 40+45*1448 {
		t.Fatalf("100 segments became %d packets, first %+v of %d bytes", out.N, out.Meta[0], len(out.Bufs[0])-out.Offset)
	}
}

// TestSuperPacketThroughThePair: a LAN host's GSO super-packet becomes
// frames of one segment each on the WAN, written as super-packets; gateway
// B takes those whole and gives the server the plaintext, again as
// super-packets of MSS-sized segments, byte for byte.
func TestSuperPacketThroughThePair(t *testing.T) { superPacketThroughThePair(t, false) }

// TestSuperPacketThroughThePairLent is the same with frames and kept
// plaintext lent from the rings (Output.Lend), as the writev path writes
// them (Output.Vec).
func TestSuperPacketThroughThePairLent(t *testing.T) { superPacketThroughThePair(t, true) }

func superPacketThroughThePair(t *testing.T, lend bool) {
	c := newPair(t)
	c.handshake()
	c.a.out.Lend, c.b.out.Lend = lend, lend
	c.a.out.Offload, c.b.out.Offload = true, true
	c.a.out.Offset, c.b.out.Offset = 16, 16
	mss := 1460 - tcpcrypt.FrameOverhead - 12 // the clamped MSS, less the timestamp option
	data := make([]byte, 40*mss+100)
	for i := range data {
		data[i] = byte(i * 7)
	}
	seg := c.client.seg(packet.FlagACK|packet.FlagPSH, data, nil)
	// As the kernel hands it over: partial checksum, GSO.
	p, _ := mustParse(t, seg)
	binary16(seg[p.IPLen+16:], packet.OffloadOf(seg), p)
	in := packet.OffloadOf(seg)
	in.GSOType, in.GSOSize = packet.GSOTCPv4, uint16(mss)

	wan := c.a.processOffload(seg, in, c.now)
	var wanSegs [][]byte
	for _, w := range wan {
		s, err := gsotest.Segments(w.pkt, w.meta)
		if err != nil {
			t.Fatal(err)
		}
		wanSegs = append(wanSegs, s...)
	}
	if len(wan) >= len(wanSegs) {
		t.Fatalf("%d frames on the WAN in %d packets: nothing joined", len(wanSegs), len(wan))
	}
	for i, s := range wanSegs {
		sp, _ := mustParse(t, s)
		n, _, err := tcpcrypt.FrameLen(sp.Payload())
		if err != nil || n != len(sp.Payload()) {
			t.Fatalf("WAN segment %d: %d bytes, frame length %d (%v): one frame per segment", i, len(sp.Payload()), n, err)
		}
		if bytes.Contains(sp.Payload(), data[:64]) {
			t.Fatal("plaintext on the WAN")
		}
	}
	var got []byte
	nextSeq := c.client.seq
	for _, w := range wan {
		for _, d := range c.b.processOffload(w.pkt, w.meta, c.now) {
			segs, err := gsotest.Segments(d.pkt, d.meta)
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range segs {
				sp, _ := mustParse(t, s)
				if sp.Dst != serverAddr.Addr() || len(sp.Payload()) == 0 {
					continue
				}
				if sp.Seq != nextSeq || len(sp.Payload()) > mss {
					t.Fatalf("to the server: seq %d (want %d), %d bytes (MSS %d)", sp.Seq, nextSeq, len(sp.Payload()), mss)
				}
				nextSeq += uint32(len(sp.Payload()))
				got = append(got, sp.Payload()...)
			}
		}
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("server got %d bytes, want the %d sent", len(got), len(data))
	}
	if lend && (c.a.lent == 0 || c.b.lent == 0) {
		t.Fatalf("slices lent: %d by A (frames), %d by B (plaintext); want both", c.a.lent, c.b.lent)
	}
}

// binary16 writes the pseudo-header sum into the checksum field, as the
// kernel leaves it for NEEDS_CSUM.
func binary16(dst []byte, _ packet.Offload, p packet.Packet) {
	s := packet.PseudoSum(p.Src, p.Dst, len(p.Buf)-p.IPLen)
	dst[0], dst[1] = byte(s>>8), byte(s)
}

type offloaded struct {
	pkt  []byte
	meta packet.Offload
}

// processOffload runs one packet with an offload header through the engine
// and returns copies of what it sent, with their headers.
func (g *gw) processOffload(pkt []byte, off packet.Offload, now time.Time) []offloaded {
	lk := g.e.Lock(now, &g.out)
	lk.ProcessOffload(append([]byte(nil), pkt...), off)
	lk.Unlock()
	var res []offloaded
	if g.out.Lend {
		g.lent += len(g.out.iovs)
		for i, b := range written(&g.out) {
			res = append(res, offloaded{b, g.out.Meta[i]})
		}
	} else {
		for i, b := range g.out.Packets() {
			res = append(res, offloaded{append([]byte(nil), b[g.out.Offset:]...), g.out.Meta[i]})
		}
	}
	g.out.Reset()
	return res
}

// written returns what the writev path writes of each packet of out
// (Output.Vec), without its virtio-net header.
func written(out *Output) [][]byte {
	var res [][]byte
	for i := 0; i < out.N; i++ {
		var b []byte
		for _, v := range out.Vec(i) {
			b = append(b, v...)
		}
		res = append(res, b[packet.OffloadLen:])
	}
	return res
}
