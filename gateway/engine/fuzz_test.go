package engine

import (
	"encoding/binary"
	"net/netip"
	"testing"
	"time"

	"tcpcrypt-gw/flowtable"
	"tcpcrypt-gw/gateway/downgrade"
	"tcpcrypt-gw/gateway/packet"
)

// FuzzProcess drives the scripted pair client - A - B - server (see
// engine_test.go) with a program read from the fuzz input: arbitrary
// packets into either side of either gateway, well-formed segments with
// fuzzed fields at sequence numbers near the flow's, real traffic between
// the hosts, and the WAN segments in flight between the gateways delivered
// late, twice, truncated, corrupted (checksum fixed or not) or split. After
// each step no flow may hold more than the per-flow limit, and the global
// budget must match. A panic anywhere is a failure.
//
// The program: byte 0 bit 0 runs the handshake first (so the fuzzing hits
// an encrypted flow); then steps of an opcode byte and its operands, until
// the input ends or maxSteps.
func FuzzProcess(f *testing.F) {
	for _, seed := range fuzzSeeds() {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, prog []byte) {
		if len(prog) == 0 {
			return
		}
		r := newFuzzRun(t, prog[0]&1 != 0)
		in := fuzzInput(prog[1:])
		for step := 0; step < maxSteps && in.more(); step++ {
			r.step(&in)
			r.check()
		}
	})
}

const (
	maxSteps     = 256
	maxWire      = 64      // WAN segments kept in flight per direction
	fuzzFlowMax  = 8 << 10 // a small per-flow limit, so that fuzzing reaches it
	fuzzRawLimit = 2048
	maxInitBytes = 2 * 1024 // both Init messages, whatever the TEP
	maxFrame     = 1 << 16  // the largest frame (a 16-bit length)
)

// Opcodes of the fuzz program.
const (
	opRaw        = iota // target, len16, bytes: any bytes into one side of one gateway
	opSegment           // target, flags, seqDelta16, ackDelta16, win16, optLen, opts, payLen16, payload (v6 when target&4)
	opClientSend        // n: the client sends n*16 bytes through A
	opServerSend        // n: the server sends n*16 bytes through B
	opDeliver           // dir, index, how, pos16: a segment in flight reaches the other gateway
	opTick              // n: time advances n*50ms; both engines tick
	opHostACK           // which: the client and/or server acknowledge what they got
	numOps
)

type fuzzInput []byte

func (in *fuzzInput) more() bool { return len(*in) > 0 }

func (in *fuzzInput) byte() byte {
	if len(*in) == 0 {
		return 0
	}
	b := (*in)[0]
	*in = (*in)[1:]
	return b
}

func (in *fuzzInput) u16() uint16 { return uint16(in.byte())<<8 | uint16(in.byte()) }

func (in *fuzzInput) bytes(n int) []byte {
	n = min(n, len(*in))
	b := (*in)[:n]
	*in = (*in)[n:]
	return b
}

type fuzzRun struct {
	*pair
	wire [2][][]byte // [0]: A to B, [1]: B to A
}

func newFuzzRun(t *testing.T, encrypted bool) *fuzzRun {
	r := &fuzzRun{pair: newPair(t)}
	if encrypted {
		r.handshake()
	}
	for _, g := range []*gw{r.a, r.b} {
		cfg := *g.e.Config()
		cfg.MaxBufferPerFlow = fuzzFlowMax
		// The paths of refuse.go too: odd ports must be encrypted, every
		// peer is remembered, and downgrades of odd addresses are blocked.
		cfg.RequireEncryption = func(lan, wan netip.AddrPort) bool { return lan.Port()%2 == 1 || wan.Port()%2 == 1 }
		cfg.Peers = downgrade.New(64, time.Hour)
		cfg.BlockDowngrade = func(a netip.Addr) bool { return a.As16()[15]%2 == 1 }
		g.e.SetConfig(&cfg)
	}
	return r
}

// send runs pkt through g and routes what comes out: to a LAN host (gone:
// the scripted hosts keep their own numbers) or onto the wire.
func (r *fuzzRun) send(g *gw, pkt []byte) {
	for _, o := range g.process(pkt, r.now) {
		p, err := packet.Parse(o)
		if err != nil || g.e.Config().IsLAN(p.Dst) {
			continue
		}
		dir := 0
		if g == r.b {
			dir = 1
		}
		if len(r.wire[dir]) < maxWire {
			r.wire[dir] = append(r.wire[dir], o)
		}
	}
}

func (r *fuzzRun) step(in *fuzzInput) {
	switch in.byte() % numOps {
	case opRaw:
		tgt := in.byte()
		pkt := in.bytes(int(in.u16()) % fuzzRawLimit)
		r.send(r.target(tgt), append([]byte(nil), pkt...))
	case opSegment:
		r.segment(in)
	case opClientSend:
		n := int(in.byte()) * 16
		r.send(r.a, r.client.seg(packet.FlagACK|packet.FlagPSH, make([]byte, n), nil))
		r.client.seq += uint32(n)
	case opServerSend:
		n := int(in.byte()) * 16
		r.send(r.b, r.server.seg(packet.FlagACK|packet.FlagPSH, make([]byte, n), nil))
		r.server.seq += uint32(n)
	case opDeliver:
		r.deliver(int(in.byte()&1), int(in.byte()), in.byte(), int(in.u16()))
	case opTick:
		r.now = r.now.Add(time.Duration(in.byte()) * 50 * time.Millisecond)
		for _, g := range []*gw{r.a, r.b} {
			lk := g.e.Lock(r.now, &g.out)
			lk.Tick()
			lk.Unlock()
			for _, o := range g.out.Packets() {
				p, err := packet.Parse(o[g.out.Offset:])
				if err == nil && !g.e.Config().IsLAN(p.Dst) {
					dir := 0
					if g == r.b {
						dir = 1
					}
					if len(r.wire[dir]) < maxWire {
						r.wire[dir] = append(r.wire[dir], append([]byte(nil), o[g.out.Offset:]...))
					}
				}
			}
			g.out.Reset()
		}
	case opHostACK:
		which := in.byte()
		if which&1 != 0 {
			if fl := r.flowOf(r.a); fl != nil && fl.streams != nil && fl.dec.keyed {
				r.client.ack = uint32(fl.dec.pRcv)
			}
			r.send(r.a, r.client.seg(packet.FlagACK, nil, nil))
		}
		if which&2 != 0 {
			if fl := r.flowOf(r.b); fl != nil && fl.streams != nil && fl.dec.keyed {
				r.server.ack = uint32(fl.dec.pRcv)
			}
			r.send(r.b, r.server.seg(packet.FlagACK, nil, nil))
		}
	}
}

// target picks a gateway; which side the packet comes from is in the
// packet itself.
func (r *fuzzRun) target(b byte) *gw {
	if b&1 == 0 {
		return r.a
	}
	return r.b
}

func (r *fuzzRun) flowOf(g *gw) *Flow {
	en, ok := g.table.Get(0, flowKeyOf(g))
	if !ok {
		return nil
	}
	return en.Value
}

// segment builds a well-formed segment (valid checksum) with fuzzed fields,
// its sequence numbers relative to what the receiving side expects.
func (r *fuzzRun) segment(in *fuzzInput) {
	tgt := in.byte()
	flags := in.byte()
	seqDelta, ackDelta := int16(in.u16()), int16(in.u16())
	win := in.u16()
	opts := in.bytes(int(in.byte()) % 41)
	pay := in.bytes(int(in.u16()) % 1600)
	g := r.target(tgt)
	fromLAN := tgt&2 == 0
	src, dst := clientAddr, serverAddr // A's LAN side, B's WAN side
	if g == r.a && !fromLAN || g == r.b && fromLAN {
		src, dst = serverAddr, clientAddr
	}
	var seq, ack uint32
	switch fl := r.flowOf(g); {
	case fl == nil || fl.streams == nil || fl.dec.opener == nil && fl.enc.sealer == nil:
		seq, ack = r.client.seq, r.client.ack
		if src == serverAddr {
			seq, ack = r.server.seq, r.server.ack
		}
	case fromLAN:
		seq, ack = uint32(fl.enc.pNxt), uint32(fl.dec.pRcv)
	default:
		seq, ack = uint32(fl.dec.cRcv), uint32(fl.enc.cNxt)
	}
	h := packet.Header{Src: src.Addr(), Dst: dst.Addr(), SrcPort: src.Port(), DstPort: dst.Port(),
		Seq: seq + uint32(int32(seqDelta)), Ack: ack + uint32(int32(ackDelta)), Flags: flags, Window: win, TTL: 64,
		Options: padOptions(opts), Payload: pay}
	if tgt&4 != 0 {
		h.V6 = true
		h.Src = netip.AddrFrom16(h.Src.As16())
		h.Dst = netip.AddrFrom16(h.Dst.As16())
	}
	r.send(g, packet.Build(make([]byte, h.Len()), &h))
}

func padOptions(o []byte) []byte {
	p := append([]byte(nil), o...)
	for len(p)%4 != 0 {
		p = append(p, packet.OptNOP)
	}
	return p
}

// Ways a segment in flight reaches the other gateway.
const (
	deliverAsIs = iota
	deliverTwice
	deliverDrop
	deliverFlip      // one byte flipped, checksum fixed (an attacker)
	deliverFlipNoFix // one byte flipped, checksum left (line noise)
	deliverTruncate
	deliverSplit // payload split in two segments at pos
	numDeliver
)

func (r *fuzzRun) deliver(dir, idx int, how byte, pos int) {
	q := r.wire[dir]
	if len(q) == 0 {
		return
	}
	idx %= len(q)
	pkt := q[idx]
	if how%numDeliver != deliverTwice {
		r.wire[dir] = append(q[:idx], q[idx+1:]...)
	}
	to := r.b
	if dir == 1 {
		to = r.a
	}
	switch how % numDeliver {
	case deliverAsIs, deliverTwice:
		r.send(to, pkt)
	case deliverDrop:
	case deliverFlip, deliverFlipNoFix:
		b := append([]byte(nil), pkt...)
		b[pos%len(b)] ^= byte(pos>>8) | 1
		if how%numDeliver == deliverFlip {
			if p, err := packet.Parse(b); err == nil {
				h := packet.HeaderFrom(&p)
				h.Options, h.Payload = p.Options(), p.Payload()
				b = packet.Build(make([]byte, h.Len()), &h)
			}
		}
		r.send(to, b)
	case deliverTruncate:
		r.send(to, append([]byte(nil), pkt[:pos%len(pkt)]...))
	case deliverSplit:
		p, err := packet.Parse(pkt)
		if err != nil || len(p.Payload()) < 2 {
			r.send(to, pkt)
			return
		}
		cut := 1 + pos%(len(p.Payload())-1)
		for i, part := range [][]byte{p.Payload()[:cut], p.Payload()[cut:]} {
			h := packet.HeaderFrom(&p)
			h.Options, h.Payload = p.Options(), part
			if i == 0 {
				h.Flags &^= packet.FlagFIN
			} else {
				h.Seq += uint32(cut)
			}
			r.send(to, packet.Build(make([]byte, h.Len()), &h))
		}
	}
}

// check states the memory model of budget.go: for each direction of each
// flow, what it holds (the Init messages aside, which are bounded on their
// own) is within what it reserved, and that within the direction's limit
// (half the per-flow limit; a lone frame being gathered may take up to a
// whole frame); the global budget in use is the sum of all reservations.
// (Each direction is bounded on its own: the decrypting side must never
// wait for the encrypting side's acknowledgments, or two gateways under
// duplex load would wait for each other.)
func (r *fuzzRun) check() {
	for _, g := range []*gw{r.a, r.b} {
		total, parked := 0, 0
		g.table.Range(0, func(en *flowtable.Entry[*Flow]) bool {
			fl := en.Value
			if fl.streams == nil {
				if fl.buffered() != 0 {
					r.t.Fatalf("flow %v %v without streams reserves %d bytes", fl.State, fl.Role, fl.buffered())
				}
				return true
			}
			initBytes := len(fl.dec.initBuf)
			if fl.enc.recs.len() > 0 && fl.enc.recs.first().init {
				initBytes += fl.enc.initLen
			}
			if initBytes > maxInitBytes {
				r.t.Fatalf("flow %v %v: %d bytes of Init messages", fl.State, fl.Role, initBytes)
			}
			const limit = fuzzFlowMax / 2
			if h, res := fl.heldOut(), fl.enc.reserved; h > res || res > limit || res < 0 {
				r.t.Fatalf("flow %v %v, LAN to WAN: holds %d bytes (ring %d, held %d), reserved %d, limit %d",
					fl.State, fl.Role, h, fl.enc.ring.len(), fl.enc.held.len(), res, limit)
			}
			if h, res := fl.heldIn(), fl.dec.reserved; h > res || res > max(limit, maxFrameLen) || res < 0 {
				r.t.Fatalf("flow %v %v, WAN to LAN: holds %d bytes (ring %d, partial %d, ooo %d), reserved %d, limit %d",
					fl.State, fl.Role, h, fl.dec.ring.len(), len(fl.dec.partial), fl.dec.ooo.bytes, res, limit)
			}
			total += fl.buffered()
			type ring struct {
				parked int32
				n      int
				pool   *[]byte
			}
			for _, rg := range []ring{{fl.enc.ring.parked, fl.enc.ring.len(), fl.enc.ring.pool}, {fl.dec.ring.parked, fl.dec.ring.len(), fl.dec.ring.pool}} {
				if rg.parked != 0 && (rg.n != 0 || rg.pool == nil || int(rg.parked) != len(*rg.pool)) {
					r.t.Fatalf("flow %v %v: a ring of %d bytes parked as %d", fl.State, fl.Role, rg.n, rg.parked)
				}
				parked += int(rg.parked)
			}
			return true
		})
		if used := g.table.BytesInUse(); used != int64(total) {
			r.t.Fatalf("global budget %d bytes in use, flows reserve %d", used, total)
		}
		if p := g.stats.ParkedBytes.Load(); p != int64(parked) || p > g.table.MaxBytesTotal()/ParkShare {
			r.t.Fatalf("parking allowance %d bytes in use, flows park %d, allowance %d", p, parked, g.table.MaxBytesTotal()/ParkShare)
		}
	}
}

// flowKeyOf is the key of the scripted connection at g.
func flowKeyOf(g *gw) flowtable.Key { return flowtable.Key{LAN: g.lanEnd(), WAN: g.wanEnd()} }

// fuzzSeeds are programs that reach the interesting states: traffic both
// ways, segments delivered late, twice, split, corrupted; raw fragments,
// truncated headers and IPv6 extension headers.
func fuzzSeeds() [][]byte {
	var seeds [][]byte
	prog := func(encrypted bool, steps ...[]byte) {
		p := []byte{0}
		if encrypted {
			p[0] = 1
		}
		for _, s := range steps {
			p = append(p, s...)
		}
		seeds = append(seeds, p)
	}
	u16 := func(v int) []byte { return binary.BigEndian.AppendUint16(nil, uint16(v)) }
	cat := func(parts ...[]byte) []byte {
		var b []byte
		for _, p := range parts {
			b = append(b, p...)
		}
		return b
	}
	send := func(n byte) []byte { return []byte{opClientSend, n} }
	reply := func(n byte) []byte { return []byte{opServerSend, n} }
	deliver := func(dir, idx, how byte, pos int) []byte { return cat([]byte{opDeliver, dir, idx, how}, u16(pos)) }
	acks := []byte{opHostACK, 3}

	prog(true, send(10), deliver(0, 0, deliverAsIs, 0), reply(20), deliver(1, 0, deliverAsIs, 0), acks)
	prog(true, send(90), send(90), deliver(0, 1, deliverAsIs, 0), deliver(0, 0, deliverAsIs, 0), acks, deliver(1, 0, deliverTwice, 0))
	prog(true, send(90), deliver(0, 0, deliverSplit, 700), deliver(0, 0, deliverSplit, 3), acks)
	prog(true, send(30), deliver(0, 0, deliverFlip, 70))
	prog(true, send(30), deliver(0, 0, deliverFlipNoFix, 70), deliver(0, 0, deliverAsIs, 0))
	prog(true, send(30), deliver(0, 0, deliverTruncate, 50), reply(5), deliver(1, 0, deliverTruncate, 41))
	prog(true, reply(255), reply(255), reply(255), reply(255), deliver(1, 3, deliverAsIs, 0), deliver(1, 2, deliverAsIs, 0), deliver(1, 1, deliverAsIs, 0))
	prog(true, []byte{opTick, 200}, send(4), []byte{opTick, 40}, deliver(0, 0, deliverAsIs, 0))
	// A FIN and an RST from the WAN at the expected positions.
	prog(true, cat([]byte{opSegment, 1, packet.FlagFIN | packet.FlagACK}, u16(0), u16(0), u16(1000), []byte{0}, u16(0)))
	prog(true, cat([]byte{opSegment, 1, packet.FlagRST}, u16(0), u16(0), u16(0), []byte{0}, u16(0)))
	// Data from the WAN that is not a frame, and a frame header claiming 64 KiB.
	prog(true, cat([]byte{opSegment, 1, packet.FlagACK}, u16(0), u16(0), u16(1000), []byte{0}, u16(4), []byte{0xff, 0xff, 0, 0}))
	// Bytes beyond a hole, then more.
	prog(true, cat([]byte{opSegment, 1, packet.FlagACK}, u16(3000), u16(0), u16(1000), []byte{0}, u16(1400), make([]byte, 1400)),
		cat([]byte{opSegment, 1, packet.FlagACK}, u16(6000), u16(0), u16(1000), []byte{0}, u16(1400), make([]byte, 1400)))
	// The handshake with odd packets: SYN with data, SYN-ACK twice, odd options.
	prog(false, cat([]byte{opSegment, 0, packet.FlagSYN}, u16(0), u16(0), u16(1000), []byte{4, 2, 4, 5, 0xb4}, u16(3), []byte("abc")))
	prog(false, cat([]byte{opSegment, 0, packet.FlagSYN}, u16(0), u16(0), u16(1000), []byte{8, 69, 2, 0x21, 0x22, 0x23, 0x24, 0x25, 0x26}, u16(0)),
		cat([]byte{opSegment, 1, packet.FlagSYN | packet.FlagACK}, u16(0), u16(1), u16(1000), []byte{3, 69, 3, 0x21}, u16(0)))
	prog(false, cat([]byte{opSegment, 4, packet.FlagSYN}, u16(0), u16(0), u16(1000), []byte{0}, u16(0)))
	// Raw: an IPv4 fragment, a truncated header, an IPv6 packet with an
	// extension header, a bad IHL, a TCP data offset past the end.
	frag := []byte{0x45, 0, 0, 40, 0, 1, 0x20, 0, 64, 6, 0, 0, 10, 0, 1, 2, 10, 0, 5, 2}
	frag = append(frag, make([]byte, 20)...)
	prog(true, cat([]byte{opRaw, 0}, u16(len(frag)), frag))
	prog(true, cat([]byte{opRaw, 1}, u16(30), frag[:30]))
	v6 := make([]byte, 40+8+20)
	v6[0], v6[6], v6[7] = 0x60, 0, 64 // next header 0: hop-by-hop
	binary.BigEndian.PutUint16(v6[4:], 28)
	v6[40] = 6
	prog(false, cat([]byte{opRaw, 0}, u16(len(v6)), v6))
	badIHL := append([]byte{0x4f}, frag[1:]...)
	prog(false, cat([]byte{opRaw, 1}, u16(len(badIHL)), badIHL))
	badOff := append([]byte(nil), frag...)
	badOff[6] = 0
	badOff[20+12] = 0xf0
	prog(true, cat([]byte{opRaw, 0}, u16(len(badOff)), badOff))
	return seeds
}
