package engine

import (
	"bytes"
	"io"
	"net"
	"testing"
	"time"

	"tcpcrypt-gw/crypto/endpoint"
	"tcpcrypt-gw/crypto/tcpcrypt"
	"tcpcrypt-gw/eno"
	"tcpcrypt-gw/gateway/packet"
)

// The hybrid TEP's Init messages (about 1.3 KB and 1.2 KB) span segments
// at a small MSS (RFC 8548 §3.3): these tests run its key exchange at an
// MSS of 536 with loss and reordering of the Init segments.

const smallMSS = 536

// pqPair is a pair whose gateways offer x25519mlkem768 first.
func pqPair(t *testing.T) *pair {
	c := newPair(t)
	for _, g := range []*gw{c.a, c.b} {
		cfg := g.e.Config()
		teps := []tcpcrypt.TEP{tcpcrypt.TEPX25519MLKEM768, tcpcrypt.TEPCurve25519}
		keys := tcpcrypt.NewKeyPool(teps, time.Minute)
		t.Cleanup(keys.Close)
		cfg.TEPs, cfg.Keys = teps, keys
	}
	return c
}

// synSmall runs SYN, SYN-ACK and the client's ACK at smallMSS and returns
// the segments gateway A sent with Init1.
func (c *pair) synSmall() [][]byte {
	t := c.t
	srvSYN := one(t, c.b.process(one(t, c.a.process(c.client.seg(packet.FlagSYN, nil, synOpts(smallMSS)), c.now)), c.now))
	p, _ := mustParse(t, srvSYN)
	c.client.seq++
	c.server.ack = p.Seq + 1
	synack := c.server.seg(packet.FlagSYN|packet.FlagACK, nil, synOpts(smallMSS))
	c.server.seq++
	cli := one(t, c.a.process(one(t, c.b.process(synack, c.now)), c.now))
	cp, _ := mustParse(t, cli)
	c.client.ack = cp.Seq + 1
	return c.a.process(c.client.seg(packet.FlagACK, nil, nil), c.now)
}

// initSegments checks that segs carry one Init message from seq start in
// order, each no larger than the MSS less the options, PSH on the last
// only, and returns the message.
func initSegments(t *testing.T, segs [][]byte, start uint32) []byte {
	t.Helper()
	var msg []byte
	for i, s := range segs {
		p, _ := mustParse(t, s)
		if p.Seq != start+uint32(len(msg)) {
			t.Fatalf("Init segment %d at %d, want %d", i, p.Seq, start+uint32(len(msg)))
		}
		if len(p.Payload())+len(p.Options()) > smallMSS || len(p.Payload()) == 0 {
			t.Fatalf("Init segment %d: %d bytes with %d of options, MSS %d", i, len(p.Payload()), len(p.Options()), smallMSS)
		}
		if psh := p.Flags&packet.FlagPSH != 0; psh != (i == len(segs)-1) {
			t.Fatalf("Init segment %d of %d: PSH %v", i, len(segs), psh)
		}
		msg = append(msg, p.Payload()...)
	}
	return msg
}

// toWANOnly returns the packets of pkts that go to the WAN (not to the
// LAN host lanHost).
func toWANOnly(t *testing.T, pkts [][]byte, lanHost *host) [][]byte {
	var res [][]byte
	for _, q := range pkts {
		if p, _ := mustParse(t, q); p.Dst != lanHost.addr.Addr() {
			res = append(res, q)
		}
	}
	return res
}

// finishData checks the keys of both gateways agree: equal session IDs,
// and a client segment reaches the server decrypted.
func (c *pair) finishData() {
	t := c.t
	fa, fb := c.a.flow(t), c.b.flow(t)
	if fa.State != StateEncrypted || fb.State != StateEncrypted || fa.tep != tcpcrypt.TEPX25519MLKEM768 {
		t.Fatalf("states %v %v, TEP %v", fa.State, fb.State, fa.tep)
	}
	if !bytes.Equal(fa.sessionID, fb.sessionID) || fa.sessionID[0] != byte(tcpcrypt.TEPX25519MLKEM768) {
		t.Fatalf("session IDs %x %x", fa.sessionID, fb.sessionID)
	}
	// The large keys (Pub_A 1220 bytes, the ML-KEM private key) go with
	// the handshake part once the keys exist.
	if fa.handshake != nil || fb.handshake != nil || fa.dec.initBuf != nil || fb.dec.initBuf != nil {
		t.Fatal("key exchange material kept after the keys exist")
	}
	msg := bytes.Repeat([]byte("q"), 100)
	wan := one(t, c.a.process(c.client.seg(packet.FlagACK|packet.FlagPSH, msg, nil), c.now))
	got := one(t, c.b.process(wan, c.now))
	if gp, _ := mustParse(t, got); !bytes.Equal(gp.Payload(), msg) {
		t.Fatalf("server got %q", gp.Payload())
	}
}

// TestInitSpansSegments: at an MSS of 536 the hybrid Init1 leaves gateway
// A as three segments and Init2 gateway B as three; each gateway
// acknowledges the part of the peer's Init it has as it arrives.
func TestInitSpansSegments(t *testing.T) {
	c := pqPair(t)
	init1 := c.synSmall()
	if len(init1) != 3 {
		t.Fatalf("Init1 in %d segments, want 3", len(init1))
	}
	m1 := initSegments(t, init1, c.client.seq)
	if n, _, err := tcpcrypt.InitMessageLen(tcpcrypt.Init1Magic, tcpcrypt.TEPX25519MLKEM768, m1); err != nil || n != len(m1) {
		t.Fatalf("Init1 of %d bytes: length %d, %v", len(m1), n, err)
	}
	var init2 [][]byte
	for i, s := range init1 {
		out := toWANOnly(t, c.b.process(s, c.now), c.server)
		p, _ := mustParse(t, s)
		if i < 2 {
			// the part so far is acknowledged, nothing else sent
			ap, _ := mustParse(t, one(t, out))
			if len(ap.Payload()) != 0 || ap.Ack != p.Seq+uint32(len(p.Payload())) {
				t.Fatalf("B after Init1 segment %d: %d bytes, ack %d want %d", i, len(ap.Payload()), ap.Ack, p.Seq+uint32(len(p.Payload())))
			}
			continue
		}
		init2 = out
	}
	if len(init2) != 3 {
		t.Fatalf("Init2 in %d segments, want 3", len(init2))
	}
	initSegments(t, init2, c.server.seq)
	for i, s := range init2 {
		out := c.a.process(s, c.now)
		if i < 2 && len(toWANOnly(t, out, c.client)) != 1 {
			t.Fatalf("A after Init2 segment %d: %d packets", i, len(out))
		}
	}
	c.finishData()
}

// TestInitSegmentLost: the middle segment of Init1 is lost, then that of
// Init2: the receiver acknowledges what it has in order (a duplicate ACK
// for the segment beyond the hole), and the sender's timer resends from
// the first unacknowledged byte, not the whole message.
func TestInitSegmentLost(t *testing.T) {
	c := pqPair(t)
	init1 := c.synSmall()
	if len(init1) != 3 {
		t.Fatalf("Init1 in %d segments, want 3", len(init1))
	}
	p0, _ := mustParse(t, init1[0])
	cut := p0.Seq + uint32(len(p0.Payload()))
	var acks [][]byte
	for _, i := range []int{0, 2} {
		acks = append(acks, toWANOnly(t, c.b.process(init1[i], c.now), c.server)...)
	}
	if len(acks) != 2 {
		t.Fatalf("B sent %d ACKs, want 2 (one duplicate)", len(acks))
	}
	for _, a := range acks {
		if ap, _ := mustParse(t, a); ap.Ack != cut {
			t.Fatalf("B acknowledged %d, want %d (the in-order part)", ap.Ack, cut)
		}
		if out := c.a.process(a, c.now); len(out) != 0 {
			t.Fatalf("A passed B's ACK of part of Init1 on: %d packets", len(out))
		}
	}
	again := c.a.tick(c.now.Add(time.Second))
	if len(again) != 2 {
		t.Fatalf("A resent %d segments, want the 2 not acknowledged", len(again))
	}
	if ap, _ := mustParse(t, again[0]); ap.Seq != cut {
		t.Fatalf("A resent from %d, want %d", ap.Seq, cut)
	}
	c.now = c.now.Add(time.Second)
	var init2 [][]byte
	for _, s := range again {
		init2 = toWANOnly(t, c.b.process(s, c.now), c.server)
	}
	if len(init2) != 3 {
		t.Fatalf("Init2 in %d segments, want 3", len(init2))
	}
	// Init2: the middle segment is lost.
	q0, _ := mustParse(t, init2[0])
	cut2 := q0.Seq + uint32(len(q0.Payload()))
	for _, i := range []int{0, 2} {
		for _, a := range toWANOnly(t, c.a.process(init2[i], c.now), c.client) {
			if ap, _ := mustParse(t, a); ap.Ack != cut2 {
				t.Fatalf("A acknowledged %d, want %d", ap.Ack, cut2)
			}
			c.b.process(a, c.now)
		}
	}
	if c.a.flow(t).State != StateKeyExchange {
		t.Fatal("A keyed without all of Init2")
	}
	again = c.b.tick(c.now.Add(time.Second))
	if len(again) != 2 {
		t.Fatalf("B resent %d segments, want 2", len(again))
	}
	if bp, _ := mustParse(t, again[0]); bp.Seq != cut2 {
		t.Fatalf("B resent from %d, want %d", bp.Seq, cut2)
	}
	c.now = c.now.Add(time.Second)
	for _, s := range again {
		c.a.process(s, c.now)
	}
	c.finishData()
}

// TestInitSegmentsReordered: Init1's segments arrive 1, 3, 2: the third is
// dropped beyond the hole, the second fills it, and the timer resends only
// the third.
func TestInitSegmentsReordered(t *testing.T) {
	c := pqPair(t)
	init1 := c.synSmall()
	if len(init1) != 3 {
		t.Fatalf("Init1 in %d segments, want 3", len(init1))
	}
	var last []byte
	for _, i := range []int{0, 2, 1} {
		out := toWANOnly(t, c.b.process(init1[i], c.now), c.server)
		last = one(t, out)
		c.a.process(last, c.now)
	}
	p1, _ := mustParse(t, init1[1])
	if lp, _ := mustParse(t, last); lp.Ack != p1.Seq+uint32(len(p1.Payload())) {
		t.Fatalf("B acknowledged %d after the hole filled, want %d", lp.Ack, p1.Seq+uint32(len(p1.Payload())))
	}
	again := one(t, c.a.tick(c.now.Add(time.Second)))
	ap, _ := mustParse(t, again)
	p2, _ := mustParse(t, init1[2])
	if ap.Seq != p2.Seq || !bytes.Equal(ap.Payload(), p2.Payload()) || ap.Flags&packet.FlagPSH == 0 {
		t.Fatalf("A resent %d bytes at %d, want the last segment at %d with PSH", len(ap.Payload()), ap.Seq, p2.Seq)
	}
	c.now = c.now.Add(time.Second)
	init2 := toWANOnly(t, c.b.process(again, c.now), c.server)
	for _, s := range init2 {
		c.a.process(s, c.now)
	}
	c.finishData()
}

// TestRFCOnlyGatewayGetsRFCTEP: a gateway that offers x25519mlkem768 first
// and one configured without it agree on curve25519 (RFC 8547 §4.3: B
// chooses from A's offer), in exactly the exchange of two RFC gateways:
// Init1 on the client's ACK, Init2 in answer, one packet from A after it
// (handshake checks each step).
func TestRFCOnlyGatewayGetsRFCTEP(t *testing.T) {
	c := newPair(t)
	cfg := c.a.e.Config()
	teps := []tcpcrypt.TEP{tcpcrypt.TEPX25519MLKEM768, tcpcrypt.TEPCurve25519, tcpcrypt.TEPP256}
	keys := tcpcrypt.NewKeyPool(teps, time.Minute)
	t.Cleanup(keys.Close)
	cfg.TEPs, cfg.Keys = teps, keys
	c.handshake()
	if fa, fb := c.a.flow(t), c.b.flow(t); fa.tep != tcpcrypt.TEPCurve25519 || fb.tep != tcpcrypt.TEPCurve25519 {
		t.Fatalf("TEPs %v %v, want curve25519", fa.tep, fb.tep)
	}
}

// TestNativeRFCHostGetsRFCTEP: a tcpcrypt host of its own (not a gateway)
// that knows only the RFC 8548 TEPs answers the gateway's offer, which has
// x25519mlkem768 first, with curve25519, and completes the key exchange
// with crypto/endpoint as B: Init1 on the client's ACK, Init2 in answer,
// the same session ID at both ends, data through.
func TestNativeRFCHostGetsRFCTEP(t *testing.T) {
	c := pqPair(t)
	syn := one(t, c.a.process(c.client.seg(packet.FlagSYN, nil, synOpts(1460)), c.now))
	sp, so := mustParse(t, syn)
	offer, err := eno.ParseSYNOption(so.ENO)
	if err != nil || len(offer.TEPs) != 2 || offer.TEPs[0].TEP != byte(tcpcrypt.TEPX25519MLKEM768) {
		t.Fatalf("offer %+v (%v)", offer, err)
	}
	chosen, ok := eno.Choose(offer, func(s eno.Suboption) bool {
		return !s.HasData && s.TEP >= byte(tcpcrypt.TEPP256) && s.TEP <= byte(tcpcrypt.TEPCurve448) // RFC 8548 §5
	})
	if !ok || chosen.TEP != byte(tcpcrypt.TEPCurve25519) {
		t.Fatalf("the native host chose %+v", chosen)
	}
	answer, err := eno.AppendSYNOption(nil, eno.Answer(chosen))
	if err != nil {
		t.Fatal(err)
	}
	opts := append(synOpts(1460), answer...)
	for len(opts)%4 != 0 {
		opts = append(opts, packet.OptEOL)
	}
	c.client.seq++
	c.server.ack = sp.Seq + 1
	synack := c.server.seg(packet.FlagSYN|packet.FlagACK, nil, opts)
	c.server.seq++
	cp, _ := mustParse(t, one(t, c.a.process(synack, c.now)))
	c.client.ack = cp.Seq + 1
	init1 := one(t, c.a.process(c.client.seg(packet.FlagACK, nil, nil), c.now))
	ip, _ := mustParse(t, init1)

	wan, native := net.Pipe()
	t.Cleanup(func() { wan.Close(); native.Close() })
	type hs struct {
		c   *endpoint.Conn
		err error
	}
	done := make(chan hs, 1)
	go func() {
		ep, err := endpoint.Handshake(native, endpoint.Config{Role: eno.RoleB, TEP: tcpcrypt.TEPCurve25519,
			Transcript: eno.Transcript(so.ENO, answer), Ciphers: []tcpcrypt.AEADID{tcpcrypt.AES128GCM}})
		done <- hs{ep, err}
	}()
	wan.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := wan.Write(ip.Payload()); err != nil {
		t.Fatal(err)
	}
	init2 := make([]byte, 8)
	if _, err := io.ReadFull(wan, init2); err != nil {
		t.Fatal(err)
	}
	n, _, err := tcpcrypt.InitMessageLen(tcpcrypt.Init2Magic, tcpcrypt.TEPCurve25519, init2)
	if err != nil {
		t.Fatal(err)
	}
	init2 = append(init2, make([]byte, n-8)...)
	if _, err := io.ReadFull(wan, init2[8:]); err != nil {
		t.Fatal(err)
	}
	r := <-done
	if r.err != nil {
		t.Fatalf("endpoint: %v", r.err)
	}
	c.server.ack = ip.Seq + uint32(len(ip.Payload()))
	if out := c.a.process(c.server.seg(packet.FlagACK|packet.FlagPSH, init2, nil), c.now); len(out) != 0 {
		t.Fatalf("A after Init2: %d packets (its ACK waits for the LAN host's data)", len(out))
	}
	c.server.seq += uint32(len(init2))
	fa := c.a.flow(t)
	if fa.State != StateEncrypted || fa.tep != tcpcrypt.TEPCurve25519 || !bytes.Equal(fa.sessionID, r.c.SessionID()) {
		t.Fatalf("A: %v %v session ID %x, the host's %x", fa.State, fa.tep, fa.sessionID, r.c.SessionID())
	}
	msg := []byte("to a native host")
	fp, _ := mustParse(t, one(t, c.a.process(c.client.seg(packet.FlagACK|packet.FlagPSH, msg, nil), c.now)))
	got := make(chan []byte, 1)
	go func() {
		b := make([]byte, 64)
		n, _ := r.c.Read(b)
		got <- b[:n]
	}()
	if _, err := wan.Write(fp.Payload()); err != nil {
		t.Fatal(err)
	}
	if g := <-got; !bytes.Equal(g, msg) {
		t.Fatalf("the native host read %q", g)
	}
}

// setTEPs makes g offer (as A) and prefer (as B) teps.
func (g *gw) setTEPs(t *testing.T, teps ...tcpcrypt.TEP) {
	keys := tcpcrypt.NewKeyPool(teps, time.Minute)
	t.Cleanup(keys.Close)
	cfg := g.e.Config()
	cfg.TEPs, cfg.Keys = teps, keys
}

// TestPostQuantumRequired: a flow to port 80 must be keyed by a
// post-quantum TEP. As A, when B chose curve25519, the gateway resets
// both ends on the client's ACK, before Init1 (RST to the client at the
// server's sequence, to the peer at the client's); as B, when A offered
// only curve25519, on A's first non-SYN segment (Init1 reaches nobody).
// With the hybrid TEP at both ends the flow is encrypted.
func TestPostQuantumRequired(t *testing.T) {
	t.Run("A", func(t *testing.T) {
		c := newPair(t)
		c.a.setTEPs(t, tcpcrypt.TEPX25519MLKEM768, tcpcrypt.TEPCurve25519)
		c.a.e.Config().RequirePostQuantum = requirePort80
		srvSYN := one(t, c.b.process(one(t, c.a.process(c.client.seg(packet.FlagSYN, nil, synOpts(1460)), c.now)), c.now))
		p, _ := mustParse(t, srvSYN)
		c.client.seq++
		c.server.ack = p.Seq + 1
		synack := c.server.seg(packet.FlagSYN|packet.FlagACK, nil, synOpts(1460))
		cp, _ := mustParse(t, one(t, c.a.process(one(t, c.b.process(synack, c.now)), c.now)))
		c.client.ack = cp.Seq + 1
		r := rsts(t, c.a.process(c.client.seg(packet.FlagACK, nil, nil), c.now), clientAddr.Addr(), serverAddr.Addr())
		if r[0].Seq != c.client.ack || r[1].Seq != c.client.seq {
			t.Fatalf("RSTs at %d and %d, want %d (client) and %d (peer)", r[0].Seq, r[1].Seq, c.client.ack, c.client.seq)
		}
		f := c.a.flow(t)
		if f.State != StateReset || f.Reason != "post-quantum required: negotiated curve25519" || c.a.stats.RequiredResets.Load() != 1 {
			t.Fatalf("flow %v %q, %d required resets", f.State, f.Reason, c.a.stats.RequiredResets.Load())
		}
	})
	t.Run("B", func(t *testing.T) {
		c := newPair(t)
		c.a.setTEPs(t, tcpcrypt.TEPCurve25519)
		c.b.setTEPs(t, tcpcrypt.TEPX25519MLKEM768, tcpcrypt.TEPCurve25519)
		c.b.e.Config().RequirePostQuantum = requirePort80
		srvSYN := one(t, c.b.process(one(t, c.a.process(c.client.seg(packet.FlagSYN, nil, synOpts(1460)), c.now)), c.now))
		p, _ := mustParse(t, srvSYN)
		c.client.seq++
		c.server.ack = p.Seq + 1
		synack := c.server.seg(packet.FlagSYN|packet.FlagACK, nil, synOpts(1460))
		c.server.seq++
		cp, _ := mustParse(t, one(t, c.a.process(one(t, c.b.process(synack, c.now)), c.now)))
		c.client.ack = cp.Seq + 1
		init1 := one(t, c.a.process(c.client.seg(packet.FlagACK, nil, nil), c.now))
		rsts(t, c.b.process(init1, c.now), serverAddr.Addr(), clientAddr.Addr())
		f := c.b.flow(t)
		if f.State != StateReset || f.Reason != "post-quantum required: negotiated curve25519" {
			t.Fatalf("flow %v %q", f.State, f.Reason)
		}
	})
	t.Run("hybrid", func(t *testing.T) {
		c := pqPair(t)
		c.a.e.Config().RequirePostQuantum = requirePort80
		c.b.e.Config().RequirePostQuantum = requirePort80
		init1 := c.synSmall()
		var init2 [][]byte
		for _, s := range init1 {
			init2 = toWANOnly(t, c.b.process(s, c.now), c.server)
		}
		for _, s := range init2 {
			c.a.process(s, c.now)
		}
		c.finishData()
	})
}

// TestPostQuantumRequiredSkipsClassicalResumption: a cached curve25519
// session with the peer is offered for resumption, except on a flow that
// must be post-quantum (its resumption would be reset): that flow offers
// the TEPs for a fresh key exchange, x25519mlkem768 first.
func TestPostQuantumRequiredSkipsClassicalResumption(t *testing.T) {
	for _, required := range []bool{false, true} {
		c := newPair(t)
		c.a.setTEPs(t, tcpcrypt.TEPX25519MLKEM768, tcpcrypt.TEPCurve25519)
		cfg := c.a.e.Config()
		cfg.Cache = endpoint.NewCache(16, time.Hour)
		ss := tcpcrypt.FullHandshakeSecret(tcpcrypt.TEPCurve25519, []byte{1}, []byte{2}, []byte{3}, make([]byte, 32), make([]byte, 32))
		cfg.Cache.Put(peerKey(serverAddr), endpoint.Entry{TEP: tcpcrypt.TEPCurve25519, AEAD: tcpcrypt.AES128GCM, Secret: ss, OriginalRole: eno.RoleA})
		if required {
			cfg.RequirePostQuantum = requirePort80
		}
		_, o := mustParse(t, one(t, c.a.process(c.client.seg(packet.FlagSYN, nil, synOpts(1460)), c.now)))
		offer, err := eno.ParseSYNOption(o.ENO)
		if err != nil || len(offer.TEPs) == 0 {
			t.Fatalf("offer %+v (%v)", offer, err)
		}
		resumes := offer.TEPs[len(offer.TEPs)-1].HasData
		if resumes == required || required && offer.TEPs[0].TEP != byte(tcpcrypt.TEPX25519MLKEM768) {
			t.Fatalf("required %v: offer %+v", required, offer)
		}
	}
}
