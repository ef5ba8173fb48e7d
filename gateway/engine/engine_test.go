package engine

import (
	"bytes"
	"net/netip"
	"testing"
	"time"

	"tcpcrypt-gw/crypto/endpoint"
	"tcpcrypt-gw/crypto/tcpcrypt"
	"tcpcrypt-gw/eno"
	"tcpcrypt-gw/gateway/packet"
)

// The tests in this file run two engines back to back, gateway A in front of
// a client and gateway B in front of a server, with scripted TCP segments
// from the two hosts (harness_test.go). They check the engine's bookkeeping packet by packet;
// real TCP stacks are exercised by the end-to-end tests in test/e2e.

func TestHandshakeAndData(t *testing.T) {
	c := newPair(t)
	c.handshake()
	// client -> server data
	msg := []byte("GET / HTTP/1.0\r\n\r\n")
	d := c.client.seg(packet.FlagACK|packet.FlagPSH, msg, nil)
	wan := one(t, c.a.process(d, c.now))
	wp, _ := mustParse(t, wan)
	if len(wp.Payload()) != len(msg)+tcpcrypt.FrameOverhead || bytes.Contains(wp.Payload(), msg) {
		t.Fatalf("frame on the WAN: %d bytes, plaintext visible=%v", len(wp.Payload()), bytes.Contains(wp.Payload(), msg))
	}
	got := one(t, c.b.process(wan, c.now))
	gp, _ := mustParse(t, got)
	if !bytes.Equal(gp.Payload(), msg) || gp.Seq != c.client.seq {
		t.Fatalf("server got %q at %d, want %q at %d", gp.Payload(), gp.Seq, msg, c.client.seq)
	}
	c.client.seq += uint32(len(msg))
	// a retransmission by the client re-sends the same frame
	c.client.seq -= uint32(len(msg))
	again := one(t, c.a.process(c.client.seg(packet.FlagACK|packet.FlagPSH, msg, nil), c.now))
	ap, _ := mustParse(t, again)
	if !bytes.Equal(ap.Payload(), wp.Payload()) || ap.Seq != wp.Seq {
		t.Fatal("retransmitted frame differs from the first")
	}
	c.client.seq += uint32(len(msg))
	// server acknowledges and answers
	c.server.ack = c.client.seq
	reply := []byte("HTTP/1.0 200 OK\r\n\r\nhello")
	r := one(t, c.b.process(c.server.seg(packet.FlagACK|packet.FlagPSH, reply, nil), c.now))
	rp, _ := mustParse(t, r)
	if rp.Ack != wp.Seq+uint32(len(wp.Payload())) {
		t.Fatalf("server's ACK in C = %d, want end of frame %d", rp.Ack, wp.Seq+uint32(len(wp.Payload())))
	}
	cl := one(t, c.a.process(r, c.now))
	cp, _ := mustParse(t, cl)
	if !bytes.Equal(cp.Payload(), reply) || cp.Ack != c.client.seq || cp.Seq != c.server.seq {
		t.Fatalf("client got %q seq %d ack %d", cp.Payload(), cp.Seq, cp.Ack)
	}
}

func TestCorruptFrameResetsBothSides(t *testing.T) {
	c := newPair(t)
	c.handshake()
	msg := bytes.Repeat([]byte("x"), 100)
	wan := one(t, c.a.process(c.client.seg(packet.FlagACK|packet.FlagPSH, msg, nil), c.now))
	wp, _ := mustParse(t, wan)
	// flip one ciphertext byte and fix the TCP checksum, as an attacker would
	h := packet.HeaderFrom(&wp)
	h.Options = wp.Options()
	pay := append([]byte(nil), wp.Payload()...)
	pay[10] ^= 0x40
	h.Payload = pay
	forged := packet.Build(make([]byte, h.Len()), &h)
	outs := c.b.process(forged, c.now)
	var rstLAN, rstWAN bool
	for _, q := range outs {
		qp, _ := mustParse(t, q)
		if len(qp.Payload()) > 0 {
			t.Fatal("bytes of a forged frame reached a host")
		}
		if qp.Flags&packet.FlagRST != 0 {
			if qp.Dst == serverAddr.Addr() {
				rstLAN = true
			} else {
				rstWAN = true
			}
		}
	}
	if !rstLAN || !rstWAN {
		t.Fatalf("want RST both ways, got LAN %v WAN %v", rstLAN, rstWAN)
	}
	if c.b.stats.AuthFailures.Load() != 1 {
		t.Fatal("auth failure not counted")
	}
}

func TestBareFINIsTruncation(t *testing.T) {
	c := newPair(t)
	c.handshake()
	fin := c.client.seg(packet.FlagACK, nil, nil)
	p, _ := mustParse(t, fin)
	h := packet.HeaderFrom(&p)
	h.Options = p.Options()
	h.Flags |= packet.FlagFIN
	h.Seq = uint32(c.a.flow(t).enc.cNxt) // a forged FIN at the right C position
	forged := packet.Build(make([]byte, h.Len()), &h)
	outs := c.b.process(forged, c.now)
	for _, q := range outs {
		qp, _ := mustParse(t, q)
		if qp.Dst == serverAddr.Addr() && qp.Flags&packet.FlagFIN != 0 {
			t.Fatal("a bare FIN reached the LAN server as an end of stream")
		}
	}
	if c.b.stats.Truncations.Load() != 1 || c.b.flow(t).State != StateReset {
		t.Fatalf("truncation not detected: state %v", c.b.flow(t).State)
	}
}

func TestPeerWithoutENOIsPlain(t *testing.T) {
	a := newGW(t, testConfig(t, lanA))
	now := time.Unix(1, 0)
	cl := &host{addr: clientAddr, peer: serverAddr, seq: 1}
	sv := &host{addr: serverAddr, peer: clientAddr, seq: 9}
	syn := cl.seg(packet.FlagSYN, nil, synOpts(1460))
	one(t, a.process(syn, now))
	sv.ack = 2
	synack := sv.seg(packet.FlagSYN|packet.FlagACK, nil, synOpts(1460))
	got := one(t, a.process(synack, now))
	if !bytes.Equal(got, synack) {
		t.Fatal("SYN-ACK of a legacy server was changed")
	}
	if f := a.flow(t); f.State != StatePassthrough || f.Reason == "" {
		t.Fatalf("state %v reason %q", f.State, f.Reason)
	}
	cl.seq, cl.ack = 2, 10
	d := cl.seg(packet.FlagACK|packet.FlagPSH, []byte("plain"), nil)
	if got := one(t, a.process(d, now)); !bytes.Equal(got, d) {
		t.Fatal("plain data was changed")
	}
}

func TestInitRetransmittedByTimer(t *testing.T) {
	c := newPair(t)
	syn := c.client.seg(packet.FlagSYN, nil, synOpts(1460))
	wanSYN := one(t, c.a.process(syn, c.now))
	srvSYN := one(t, c.b.process(wanSYN, c.now))
	p, _ := mustParse(t, srvSYN)
	c.client.seq++
	c.server.ack = p.Seq + 1
	synack := c.server.seg(packet.FlagSYN|packet.FlagACK, nil, synOpts(1460))
	cli := one(t, c.a.process(one(t, c.b.process(synack, c.now)), c.now))
	cp, _ := mustParse(t, cli)
	c.client.ack = cp.Seq + 1
	init1 := one(t, c.a.process(c.client.seg(packet.FlagACK, nil, nil), c.now))
	// Init1 is lost; the timer sends it again, byte for byte.
	again := one(t, c.a.tick(c.now.Add(time.Second)))
	p1, _ := mustParse(t, init1)
	p2, _ := mustParse(t, again)
	if !bytes.Equal(p1.Payload(), p2.Payload()) || p1.Seq != p2.Seq {
		t.Fatal("retransmitted Init1 differs")
	}
}

// TestResumption: a second connection between the same two gateways starts
// from the cached secret: no Init bytes, a different session ID, equal at
// both ends; a gateway that lost its cache answers with a full handshake.
func TestResumption(t *testing.T) {
	cacheA, cacheB := endpoint.NewCache(16, time.Minute), endpoint.NewCache(16, time.Minute)
	mk := func(port uint16, cb *endpoint.Cache) *pair {
		c := newPair(t)
		c.a.e.Config().Cache = cacheA
		c.b.e.Config().Cache = cb
		c.client.addr = netip.AddrPortFrom(clientAddr.Addr(), port)
		c.server.peer = c.client.addr
		c.a.client, c.b.client = c.client.addr, c.client.addr
		return c
	}
	first := mk(40001, cacheB)
	first.handshake()
	sid1 := first.a.flow(t).sessionID
	if first.a.flow(t).Resumed {
		t.Fatal("first connection claims resumption")
	}

	second := mk(40002, cacheB)
	// share the engines' caches but use fresh flow tables
	syn := second.client.seg(packet.FlagSYN, nil, synOpts(1460))
	wanSYN := one(t, second.a.process(syn, second.now))
	_, o := mustParse(t, wanSYN)
	offer, _ := eno.ParseSYNOption(o.ENO)
	// RFC 8548 §3.5: the resumption suboption (last, so without a length
	// byte) is TEP|v=1, our half of resume[i], an 8-byte nonce; the
	// resumed TEP is not offered a second time.
	if len(offer.TEPs) == 0 || !offer.TEPs[len(offer.TEPs)-1].HasData || len(offer.TEPs[len(offer.TEPs)-1].Data) != 9+8 {
		t.Fatalf("second SYN does not offer resumption with an 8-byte nonce: %+v", offer)
	}
	for _, sub := range offer.TEPs[:len(offer.TEPs)-1] {
		if sub.TEP == offer.TEPs[len(offer.TEPs)-1].TEP {
			t.Fatalf("resumed TEP offered twice: %+v", offer)
		}
	}
	srvSYN := one(t, second.b.process(wanSYN, second.now))
	p, _ := mustParse(t, srvSYN)
	second.client.seq++
	second.server.ack = p.Seq + 1
	synack := second.server.seg(packet.FlagSYN|packet.FlagACK, nil, synOpts(1460))
	second.server.seq++
	wanSYNACK := one(t, second.b.process(synack, second.now))
	cli := one(t, second.a.process(wanSYNACK, second.now))
	cp, _ := mustParse(t, cli)
	second.client.ack = cp.Seq + 1
	ackOut := one(t, second.a.process(second.client.seg(packet.FlagACK, nil, nil), second.now))
	ap, ao := mustParse(t, ackOut)
	if len(ap.Payload()) != 0 || ao.ENO == nil {
		t.Fatalf("resumed ACK: %d payload bytes (want no Init), ENO %x", len(ap.Payload()), ao.ENO)
	}
	one(t, second.b.process(ackOut, second.now)) // the ACK reaches the server
	fa, fb := second.a.flow(t), second.b.flow(t)
	if !fa.Resumed || !fb.Resumed || fa.State != StateEncrypted || fb.State != StateEncrypted {
		t.Fatalf("resumed: A %v/%v B %v/%v", fa.Resumed, fa.State, fb.Resumed, fb.State)
	}
	if !bytes.Equal(fa.sessionID, fb.sessionID) || bytes.Equal(fa.sessionID, sid1) || fa.sessionID[0] != byte(fa.tep)|0x80 {
		t.Fatalf("session ids: A %x B %x first %x", fa.sessionID, fb.sessionID, sid1)
	}
	// data flows under the resumed keys, first frame at offset 0
	msg := []byte("resumed data")
	wan := one(t, second.a.process(second.client.seg(packet.FlagACK|packet.FlagPSH, msg, nil), second.now))
	got := one(t, second.b.process(wan, second.now))
	gp, _ := mustParse(t, got)
	if !bytes.Equal(gp.Payload(), msg) {
		t.Fatalf("server got %q", gp.Payload())
	}

	// gateway B restarted: empty cache -> full handshake, no failure
	third := mk(40003, endpoint.NewCache(16, time.Minute))
	third.handshake()
	if third.a.flow(t).Resumed || third.a.stats.ResumeMisses.Load() != 1 {
		t.Fatalf("after B lost its cache: resumed=%v misses=%d", third.a.flow(t).Resumed, third.a.stats.ResumeMisses.Load())
	}
}

// TestUnknownFlowIsReset: a mid-connection segment of a flow the gateway has
// no state for (after a restart) is answered with a RST, never passed: it
// could be ciphertext for a LAN host or plaintext of an encrypted flow.
func TestUnknownFlowIsReset(t *testing.T) {
	g := newGW(t, testConfig(t, lanB))
	wanHost := &host{addr: clientAddr, peer: serverAddr, seq: 7000, ack: 9000}
	outs := g.process(wanHost.seg(packet.FlagACK|packet.FlagPSH, []byte("ciphertext?"), nil), time.Unix(1, 0))
	p, _ := mustParse(t, one(t, outs))
	if p.Flags&packet.FlagRST == 0 || p.Dst != clientAddr.Addr() || p.Seq != 9000 || len(p.Payload()) != 0 {
		t.Fatalf("want a RST to the sender at its ACK number, got flags %x to %v seq %d", p.Flags, p.Dst, p.Seq)
	}
	if g.stats.UnknownResets.Load() != 1 {
		t.Fatal("not counted")
	}
	// a RST of an unknown flow is dropped, not answered
	if outs := g.process(wanHost.seg(packet.FlagRST, nil, nil), time.Unix(1, 0)); len(outs) != 0 {
		t.Fatalf("answered a RST with %d packets", len(outs))
	}
}

// TestResetAllAtShutdown: stopping the gateway resets both ends of every
// encrypted flow (a LAN host must not receive ciphertext once the kernel
// forwards the connection directly).
func TestResetAllAtShutdown(t *testing.T) {
	c := newPair(t)
	c.handshake()
	lk := c.a.e.Lock(c.now, &c.a.out)
	lk.ResetAll()
	lk.Unlock()
	var toClient, toWAN bool
	for _, b := range c.a.out.Packets() {
		p, _ := mustParse(t, b[c.a.out.Offset:])
		if p.Flags&packet.FlagRST != 0 {
			toClient = toClient || p.Dst == clientAddr.Addr()
			toWAN = toWAN || p.Dst == serverAddr.Addr()
		}
	}
	if !toClient || !toWAN || c.a.flow(t).State != StateReset {
		t.Fatalf("RST to client %v, to WAN %v, state %v", toClient, toWAN, c.a.flow(t).State)
	}
}

// TestResetAllSpillsItsOutput: a shutdown with many encrypted flows hands
// its output to Engine.Flush every SpillAt packets instead of holding two
// RSTs per flow at once, and still resets every flow.
func TestResetAllSpillsItsOutput(t *testing.T) {
	c := newPair(t)
	const flows = 300 // 600 RSTs: more than two spills
	for i := 0; i < flows; i++ {
		c.client = &host{addr: netip.AddrPortFrom(clientAddr.Addr(), uint16(20000+i)), peer: serverAddr, seq: 1000}
		c.server = &host{addr: serverAddr, peer: c.client.addr, seq: 5000}
		c.a.client, c.b.client = c.client.addr, c.client.addr
		c.handshake()
	}
	rsts, spills, most := 0, 0, 0
	count := func(o *Output) {
		most = max(most, o.N)
		for _, b := range o.Packets() {
			if p, _ := mustParse(t, b[o.Offset:]); p.Flags&packet.FlagRST != 0 {
				rsts++
			}
		}
		o.Reset()
	}
	c.a.e.Flush = func(o *Output) { spills++; count(o) }
	lk := c.a.e.Lock(c.now, &c.a.out)
	lk.ResetAll()
	lk.Unlock()
	count(&c.a.out)
	if rsts != 2*flows || spills < 2 || most > SpillAt {
		t.Fatalf("%d RSTs for %d flows, %d spills, at most %d packets held (SpillAt %d)", rsts, flows, spills, most, SpillAt)
	}
}

// TestLockedHoldsTheShard: a Locked holds its shard's lock from Lock to
// Unlock (another taker waits for it), and is dead after Unlock.
func TestLockedHoldsTheShard(t *testing.T) {
	g := newGW(t, testConfig(t, lanA))
	lk := g.e.Lock(time.Unix(1, 0), &g.out)
	taken := make(chan struct{})
	go func() {
		g.table.LockShard(0)
		close(taken)
		g.table.UnlockShard(0)
	}()
	select {
	case <-taken:
		t.Fatal("the shard lock was taken while a Locked held it")
	case <-time.After(50 * time.Millisecond):
	}
	lk.Unlock()
	<-taken
	defer func() {
		if recover() == nil {
			t.Fatal("a Locked processed a packet after Unlock")
		}
	}()
	lk.Process((&host{addr: clientAddr, peer: serverAddr, seq: 1}).seg(packet.FlagSYN, nil, synOpts(1460)))
}

// TestOneConfigurationPerBatch: a batch (one Locked) is processed with the
// configuration of its Lock, whatever a reload does meanwhile; the next
// batch takes the new one.
func TestOneConfigurationPerBatch(t *testing.T) {
	g := newGW(t, testConfig(t, lanA))
	bypass := *g.e.Config()
	bypass.Bypass = func(_, _ netip.AddrPort) bool { return true }
	now := time.Unix(1, 0)
	syn := func(port uint16) []byte {
		cl := &host{addr: netip.AddrPortFrom(clientAddr.Addr(), port), peer: serverAddr, seq: 1}
		return cl.seg(packet.FlagSYN, nil, synOpts(1460))
	}
	offersENO := func() bool {
		t.Helper()
		_, o := mustParse(t, g.out.Packets()[g.out.N-1][g.out.Offset:])
		return o.ENO != nil
	}
	lk := g.e.Lock(now, &g.out)
	lk.Process(syn(40001))
	g.e.SetConfig(&bypass) // a reload in the middle of the batch
	lk.Process(syn(40002))
	if !offersENO() {
		t.Fatal("a reload applied in the middle of a batch")
	}
	lk.Unlock()
	lk = g.e.Lock(now, &g.out)
	lk.Process(syn(40003))
	lk.Unlock()
	if offersENO() {
		t.Fatal("the next batch did not take the reloaded configuration")
	}
}
