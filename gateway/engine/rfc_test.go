package engine

// Engine behaviour that RFC 8547 and RFC 8548 fix on the wire: the answer
// to a peer's rekey, SYN data and Fast Open, duplicate ENO options, fresh
// key exchange for a resumption the gateway cannot serve.

import (
	"bytes"
	"crypto/rand"
	"net/netip"
	"strings"
	"testing"
	"time"

	"tcpcrypt-gw/crypto/tcpcrypt"
	"tcpcrypt-gw/eno"
	"tcpcrypt-gw/gateway/packet"
)

// split separates packets to the LAN host lanHost from those to the WAN.
func split(t *testing.T, pkts [][]byte, lanHost netip.Addr) (toLAN, toWAN [][]byte) {
	t.Helper()
	for _, q := range pkts {
		qp, _ := mustParse(t, q)
		if qp.Dst == lanHost {
			toLAN = append(toLAN, q)
		} else {
			toWAN = append(toWAN, q)
		}
	}
	return toLAN, toWAN
}

// wanSYN builds a SYN from the client to the server with an MSS option, the
// given ENO option (padded) and payload, as a WAN peer would send it.
func wanSYN(c *pair, enoOpt, payload []byte) []byte {
	opts := append([]byte{packet.OptMSS, 4, 5, 0xb4}, enoOpt...)
	for len(opts)%4 != 0 {
		opts = append(opts, packet.OptEOL)
	}
	h := packet.Header{Src: c.client.addr.Addr(), Dst: serverAddr.Addr(), SrcPort: c.client.addr.Port(), DstPort: serverAddr.Port(),
		Seq: c.client.seq, Flags: packet.FlagSYN, Window: 5000, TTL: 64, Options: opts, Payload: payload}
	return packet.Build(make([]byte, h.Len()), &h)
}

// TestRekeyIsAnsweredAtOnce: a frame with rekey = 1 from the peer makes the
// gateway move its own generation and send, at once and although the LAN
// host has nothing to send, an empty frame with rekey = 1 (RFC 8548 §3.8).
// The gateway re-sends that frame itself until it is acknowledged.
func TestRekeyIsAnsweredAtOnce(t *testing.T) {
	c := newPair(t)
	c.handshake()
	fb := c.b.flow(t)
	c.b.table.LockShard(0)
	fb.enc.rekeyOut(c.now) // gateway B starts generation 1
	c.b.table.UnlockShard(0)

	reply := []byte("rekeyed reply")
	wan := one(t, c.b.process(c.server.seg(packet.FlagACK|packet.FlagPSH, reply, nil), c.now))
	wp, _ := mustParse(t, wan)
	if wp.Payload()[0] != tcpcrypt.ControlRekey {
		t.Fatalf("first frame of generation 1 has control %x", wp.Payload()[0])
	}
	c.server.seq += uint32(len(reply))

	toClient, toWAN := split(t, c.a.process(wan, c.now), c.client.addr.Addr())
	if len(toClient) != 1 || len(toWAN) != 1 {
		t.Fatalf("A after the rekey frame: %d to the client, %d to the WAN", len(toClient), len(toWAN))
	}
	cp, _ := mustParse(t, toClient[0])
	if !bytes.Equal(cp.Payload(), reply) {
		t.Fatalf("client got %q", cp.Payload())
	}
	ep, _ := mustParse(t, toWAN[0])
	if len(ep.Payload()) != tcpcrypt.FrameOverhead || ep.Payload()[0] != tcpcrypt.ControlRekey {
		t.Fatalf("answer: %d bytes, control %x; want an empty frame with rekey = 1", len(ep.Payload()), ep.Payload()[0])
	}
	fa := c.a.flow(t)
	if fa.enc.sealer.Generation() != 1 || fa.dec.opener.Generation() != 1 || fa.Stats.RekeysOut != 1 || fa.Stats.RekeysIn != 1 {
		t.Fatalf("A: local %d remote %d, out %d in %d", fa.enc.sealer.Generation(), fa.dec.opener.Generation(), fa.Stats.RekeysOut, fa.Stats.RekeysIn)
	}

	// Lost: the timer sends the same bytes again.
	again := one(t, c.a.tick(c.now.Add(time.Second)))
	gp, _ := mustParse(t, again)
	if !bytes.Equal(gp.Payload(), ep.Payload()) || gp.Seq != ep.Seq {
		t.Fatal("re-sent rekey frame differs")
	}

	// B opens it: generation 1 both ways, nothing goes to the server, and
	// B does not answer again (its local generation is already 1).
	outs := c.b.process(again, c.now)
	for _, q := range outs {
		qp, _ := mustParse(t, q)
		if len(qp.Payload()) != 0 {
			t.Fatalf("B sent %d payload bytes after the answer", len(qp.Payload()))
		}
	}
	if fb.dec.opener.Generation() != 1 {
		t.Fatalf("B's remote generation %d", fb.dec.opener.Generation())
	}
	// B's ACK covers it: no more re-sends.
	c.server.ack = c.client.seq
	ack := one(t, c.b.process(c.server.seg(packet.FlagACK, nil, nil), c.now))
	c.a.process(ack, c.now)
	if n := len(c.a.tick(c.now.Add(10 * time.Second))); n != 0 {
		t.Fatalf("tick re-sent %d packets after the ACK", n)
	}

	// Client data after the rekey goes under generation 1 with rekey = 0,
	// and reaches the server.
	msg := []byte("after the rekey")
	w2 := one(t, c.a.process(c.client.seg(packet.FlagACK|packet.FlagPSH, msg, nil), c.now))
	w2p, _ := mustParse(t, w2)
	if w2p.Payload()[0] != 0 {
		t.Fatalf("second frame of generation 1 has control %x", w2p.Payload()[0])
	}
	got := one(t, c.b.process(w2, c.now))
	gp2, _ := mustParse(t, got)
	if !bytes.Equal(gp2.Payload(), msg) {
		t.Fatalf("server got %q", gp2.Payload())
	}
}

// TestLANSYNDataOrCookieIsPlain: a LAN SYN with data or a Fast Open cookie
// leaves without ENO (RFC 8547 §4.7); an empty Fast Open option (a cookie
// request) is removed and ENO added, with the options packed.
func TestLANSYNDataOrCookieIsPlain(t *testing.T) {
	tfo := func(cookie ...byte) []byte {
		o := append(synOpts(1460), packet.OptNOP, packet.OptNOP, packet.OptFastOpen, byte(2+len(cookie)))
		o = append(o, cookie...)
		for len(o)%4 != 0 {
			o = append(o, packet.OptEOL)
		}
		return o
	}
	for _, c := range []struct {
		name    string
		data    []byte
		opts    []byte
		wantENO bool
	}{
		{"syn data", []byte("hello"), synOpts(1460), false},
		{"tfo cookie", nil, tfo(1, 2, 3, 4, 5, 6, 7, 8), false},
		{"tfo cookie request", nil, tfo(), true},
	} {
		p := newPair(t)
		out := one(t, p.a.process(p.client.seg(packet.FlagSYN, c.data, c.opts), p.now))
		op, o := mustParse(t, out)
		if (o.ENO != nil) != c.wantENO {
			t.Errorf("%s: ENO %x", c.name, o.ENO)
		}
		if c.wantENO && (o.FastOpen || len(op.Payload()) != 0) {
			t.Errorf("%s: a SYN+ENO carries Fast Open %v / %d data bytes", c.name, o.FastOpen, len(op.Payload()))
		}
		if !c.wantENO && (p.a.flow(t).State != StatePassthrough || !bytes.Equal(op.Payload(), c.data)) {
			t.Errorf("%s: not passed unchanged (state %v)", c.name, p.a.flow(t).State)
		}
		if c.wantENO && len(op.Options()) > 40 {
			t.Errorf("%s: options %d bytes", c.name, len(op.Options()))
		}
	}
}

// TestWANSYNDataIsDropped: a WAN SYN+ENO's data and Fast Open option never
// reach the LAN server (RFC 8547 §4.7: discarded, the ISN alone
// acknowledged), and ENO is still negotiated.
func TestWANSYNDataIsDropped(t *testing.T) {
	c := newPair(t)
	syn := one(t, c.a.process(c.client.seg(packet.FlagSYN, nil, synOpts(1460)), c.now))
	p, o := mustParse(t, syn)
	opts := append([]byte(nil), p.Options()...)
	opts = append(opts, packet.OptFastOpen, 6, 9, 9, 9, 9)
	for len(opts)%4 != 0 {
		opts = append(opts, packet.OptEOL)
	}
	if len(opts) > 40 {
		t.Fatalf("no room for the test's TFO option beside ENO %x", o.ENO)
	}
	h := packet.HeaderFrom(&p)
	h.Options, h.Payload = opts, []byte("early data")
	withData := packet.Build(make([]byte, h.Len()), &h)
	srv := one(t, c.b.process(withData, c.now))
	sp, so := mustParse(t, srv)
	if len(sp.Payload()) != 0 || so.FastOpen || so.ENO != nil {
		t.Fatalf("server SYN: %d data bytes, TFO %v, ENO %x", len(sp.Payload()), so.FastOpen, so.ENO)
	}
	if c.b.flow(t).State != StateSYNReceived {
		t.Fatalf("B state %v, want ENO negotiation to go on", c.b.flow(t).State)
	}
}

// TestDuplicateENOIsNoENO: more than one ENO option in a SYN is invalid
// (RFC 8547 §4.1): the flow is plain.
func TestDuplicateENOIsNoENO(t *testing.T) {
	c := newPair(t)
	syn := one(t, c.a.process(c.client.seg(packet.FlagSYN, nil, synOpts(1460)), c.now))
	p, _ := mustParse(t, syn)
	h := packet.HeaderFrom(&p)
	h.Options = []byte{packet.OptMSS, 4, 5, 0xb4, eno.OptionKind, 3, 0x23, eno.OptionKind, 3, 0x21, packet.OptEOL, packet.OptEOL}
	dup := packet.Build(make([]byte, h.Len()), &h)
	c.b.process(dup, c.now)
	if f := c.b.flow(t); f.State != StatePassthrough {
		t.Fatalf("B state %v (%s), want plain", f.State, f.Reason)
	}
}

// TestUnknownResumptionIsFreshExchange: a resumption suboption B cannot
// serve, or one with fewer than 9 data bytes, is an offer of a fresh key
// exchange with its TEP (RFC 8548 §3.2, §3.5); B answers that TEP with
// v = 0.
func TestUnknownResumptionIsFreshExchange(t *testing.T) {
	for _, data := range [][]byte{bytes.Repeat([]byte{7}, 17), {1, 2, 3}} {
		c := newPair(t)
		syn := one(t, c.a.process(c.client.seg(packet.FlagSYN, nil, synOpts(1460)), c.now))
		p, _ := mustParse(t, syn)
		opt, err := eno.AppendSYNOption(nil, eno.Offer([]eno.Suboption{{TEP: byte(tcpcrypt.TEPP256), Data: data, HasData: true}}))
		if err != nil {
			t.Fatal(err)
		}
		h := packet.HeaderFrom(&p)
		h.Options = append([]byte{packet.OptMSS, 4, 5, 0xb4}, opt...)
		for len(h.Options)%4 != 0 {
			h.Options = append(h.Options, packet.OptEOL)
		}
		c.b.process(packet.Build(make([]byte, h.Len()), &h), c.now)
		c.server.ack = c.client.seq + 1
		out := one(t, c.b.process(c.server.seg(packet.FlagSYN|packet.FlagACK, nil, synOpts(1460)), c.now))
		_, o := mustParse(t, out)
		ans, err := eno.ParseSYNOption(o.ENO)
		if err != nil || !ans.Passive() || len(ans.TEPs) != 1 || ans.TEPs[0].TEP != byte(tcpcrypt.TEPP256) || ans.TEPs[0].HasData {
			t.Fatalf("data %d bytes: answer %+v (%v)", len(data), ans, err)
		}
	}
}

// TestLargeFrameIsAcknowledgedAsItArrives: a peer's frame spread over
// several segments (RFC 8548 allows frames up to 64 KiB) is acknowledged
// segment by segment up to, not including, its last segment; the last
// segment is acknowledged only when the LAN host has acknowledged the
// frame's plaintext, and the plaintext is delivered whole.
func TestLargeFrameIsAcknowledgedAsItArrives(t *testing.T) {
	c := newPair(t)
	c.handshake()
	fb := c.b.flow(t)
	data := bytes.Repeat([]byte("0123456789"), 300)
	frame := fb.enc.sealer.SealFrame(nil, fb.enc.offNxt, 0, 0, data)
	start := uint32(fb.enc.cNxt)
	seg := func(from, to int) []byte {
		h := packet.Header{Src: serverAddr.Addr(), Dst: c.client.addr.Addr(), SrcPort: serverAddr.Port(), DstPort: c.client.addr.Port(),
			Seq: start + uint32(from), Ack: uint32(fb.dec.cAcked), Flags: packet.FlagACK, Window: 5000, TTL: 64, Payload: frame[from:to]}
		return packet.Build(make([]byte, h.Len()), &h)
	}
	for _, end := range []int{1400, 2800} {
		toClient, toWAN := split(t, c.a.process(seg(end-1400, end), c.now), c.client.addr.Addr())
		if len(toClient) != 0 || len(toWAN) != 1 {
			t.Fatalf("after %d bytes of the frame: %d to the client, %d to the WAN", end, len(toClient), len(toWAN))
		}
		if p, _ := mustParse(t, toWAN[0]); p.Ack != start+uint32(end) {
			t.Fatalf("ACK %d after %d bytes, want %d", p.Ack-start, end, end)
		}
	}
	toClient, toWAN := split(t, c.a.process(seg(2800, len(frame)), c.now), c.client.addr.Addr())
	if len(toWAN) != 0 {
		t.Fatalf("the frame's last segment was acknowledged before the LAN host had it")
	}
	var got []byte
	for _, q := range toClient {
		p, _ := mustParse(t, q)
		got = append(got, p.Payload()...)
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("client got %d bytes", len(got))
	}
	c.client.ack = c.server.seq + uint32(len(data))
	ack := one(t, c.a.process(c.client.seg(packet.FlagACK, nil, nil), c.now))
	if p, _ := mustParse(t, ack); p.Ack != start+uint32(len(frame)) {
		t.Fatalf("client's ACK maps to %d, want the frame's end %d", p.Ack-start, len(frame))
	}
}

// TestApplicationAware: on configured ports the gateway sends a = 1 in its
// offer and its answer, shows the peer's bit, and in mandatory mode leaves
// a flow plain when the peer does not set a = 1 (RFC 8547 §4.2).
func TestApplicationAware(t *testing.T) {
	for _, c := range []struct {
		name                  string
		aSet, aMand           bool // gateway A's policy
		bSet, bMand           bool // gateway B's policy
		wantEncrypted, wantAB bool // result; wantAB: both saw the other's a = 1
	}{
		{"off", false, false, false, false, true, false},
		{"both set", true, false, true, false, true, true},
		{"A mandatory, B sets", false, true, true, false, true, true},
		{"A mandatory, B does not", false, true, false, false, false, false},
		{"B mandatory, A does not", false, false, false, true, false, false},
		{"B mandatory, A sets", true, false, false, true, true, true},
	} {
		p := newPair(t)
		p.a.e.Config().AppAware = func(_, _ netip.AddrPort) (bool, bool) { return c.aSet || c.aMand, c.aMand }
		p.b.e.Config().AppAware = func(_, _ netip.AddrPort) (bool, bool) { return c.bSet || c.bMand, c.bMand }
		syn := one(t, p.a.process(p.client.seg(packet.FlagSYN, nil, synOpts(1460)), p.now))
		_, so := mustParse(t, syn)
		offer, err := eno.ParseSYNOption(so.ENO)
		if err != nil || offer.ApplicationAware() != (c.aSet || c.aMand) {
			t.Fatalf("%s: offer %+v (%v)", c.name, offer, err)
		}
		srv := one(t, p.b.process(syn, p.now))
		sp, _ := mustParse(t, srv)
		p.client.seq++
		p.server.ack = sp.Seq + 1
		synack := one(t, p.b.process(p.server.seg(packet.FlagSYN|packet.FlagACK, nil, synOpts(1460)), p.now))
		p.server.seq++
		cli := one(t, p.a.process(synack, p.now))
		cp, _ := mustParse(t, cli)
		p.client.ack = cp.Seq + 1
		ack := one(t, p.a.process(p.client.seg(packet.FlagACK, nil, nil), p.now))
		_, ao := mustParse(t, ack)
		fa, fb := p.a.flow(t), p.b.flow(t)
		if c.wantEncrypted != (ao.ENO != nil) || c.wantEncrypted != (fa.State == StateKeyExchange) {
			t.Fatalf("%s: A state %v (%s), ENO on the ACK %v", c.name, fa.State, fa.Reason, ao.ENO != nil)
		}
		if !c.wantEncrypted && fa.State != StatePassthrough && fb.State != StatePassthrough {
			t.Fatalf("%s: neither gateway went plain: A %v, B %v", c.name, fa.State, fb.State)
		}
		// B has seen only the SYNs: its snapshot reads the SYN record.
		if c.wantAB && (!fa.PeerAppAware || !fb.Snapshot().PeerAppAware) {
			t.Fatalf("%s: peer bits A %v B %v", c.name, fa.PeerAppAware, fb.Snapshot().PeerAppAware)
		}
	}
}

// TestLegacyENOOptionIsLeftAlone: a LAN host that sends the experimental
// ENO option (253 with ExID 0x454E) speaks a pre-RFC ENO: the gateway adds
// no option 69 beside it (RFC 8547 §11) and passes the flow.
func TestLegacyENOOptionIsLeftAlone(t *testing.T) {
	c := newPair(t)
	opts := append(synOpts(1460), packet.OptExp, 5, 0x45, 0x4e, 0x23, packet.OptEOL, packet.OptEOL, packet.OptEOL)
	out := one(t, c.a.process(c.client.seg(packet.FlagSYN, nil, opts), c.now))
	_, o := mustParse(t, out)
	if o.ENO != nil || !o.LegacyENO || c.a.flow(t).State != StatePassthrough {
		t.Fatalf("ENO %x, legacy option kept %v, state %v", o.ENO, o.LegacyENO, c.a.flow(t).State)
	}
}

// TestPlainSYNENODataIsDropped: a WAN SYN+ENO the gateway does not
// negotiate (here: no TEP in common) still loses its data before it reaches
// the LAN host (RFC 8547 §4.7: discarded even when ENO is disabled).
func TestPlainSYNENODataIsDropped(t *testing.T) {
	c := newPair(t)
	opt, err := eno.AppendSYNOption(nil, eno.Offer([]eno.Suboption{{TEP: 0x7e}}))
	if err != nil {
		t.Fatal(err)
	}
	out := one(t, c.b.process(wanSYN(c, opt, []byte("early data")), c.now))
	p, o := mustParse(t, out)
	if len(p.Payload()) != 0 || o.ENO != nil || c.b.flow(t).State != StatePassthrough {
		t.Fatalf("LAN server SYN: %d data bytes, ENO %x, state %v", len(p.Payload()), o.ENO, c.b.flow(t).State)
	}
}

// TestInit2CipherNotOfferedAborts: an Init2 whose sym_cipher our Init1 did
// not offer aborts the connection (RFC 8548 §3.3), even if the current
// configuration would accept it.
func TestInit2CipherNotOfferedAborts(t *testing.T) {
	c := newPair(t)
	syn := one(t, c.a.process(c.client.seg(packet.FlagSYN, nil, synOpts(1460)), c.now))
	srv := one(t, c.b.process(syn, c.now))
	sp, _ := mustParse(t, srv)
	c.client.seq++
	c.server.ack = sp.Seq + 1
	synack := one(t, c.b.process(c.server.seg(packet.FlagSYN|packet.FlagACK, nil, synOpts(1460)), c.now))
	c.server.seq++
	cp, _ := mustParse(t, one(t, c.a.process(synack, c.now)))
	c.client.ack = cp.Seq + 1
	one(t, c.a.process(c.client.seg(packet.FlagACK, nil, nil), c.now)) // Init1, offering AES-128-GCM and ChaCha20-Poly1305
	// A peer answers with AES-256-GCM, which A's configuration allows since
	// a reload after Init1 left.
	fa := c.a.flow(t)
	kp, err := tcpcrypt.GenerateKeyPair(fa.tep, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	m2 := tcpcrypt.Init2{Cipher: tcpcrypt.AES256GCM, PublicKey: kp.PublicKey()}
	c.a.e.Config().Ciphers = append(c.a.e.Config().Ciphers, tcpcrypt.AES256GCM)
	h := packet.Header{Src: serverAddr.Addr(), Dst: c.client.addr.Addr(), SrcPort: serverAddr.Port(), DstPort: c.client.addr.Port(),
		Seq: c.server.seq, Ack: uint32(fa.enc.cNxt), Flags: packet.FlagACK | packet.FlagPSH, Window: 5000, TTL: 64, Payload: m2.Append(nil)}
	outs := c.a.process(packet.Build(make([]byte, h.Len()), &h), c.now)
	if fa.State != StateReset || !strings.Contains(fa.Reason, "did not offer") {
		t.Fatalf("A state %v (%s) after an Init2 choosing an AEAD it did not offer", fa.State, fa.Reason)
	}
	rsts := 0
	for _, q := range outs {
		if p, _ := mustParse(t, q); p.Flags&packet.FlagRST != 0 {
			rsts++
		}
	}
	if rsts != 2 {
		t.Fatalf("%d resets, want one to each side", rsts)
	}
}

// TestBChoosesByItsOwnPreference: as B the gateway answers with the TEP it
// prefers among those A offered, whatever A's order ("host A does not
// influence TEP priority", RFC 8547 §4.5).
func TestBChoosesByItsOwnPreference(t *testing.T) {
	c := newPair(t) // B prefers curve25519, then p256
	opt, err := eno.AppendSYNOption(nil, eno.Offer([]eno.Suboption{{TEP: byte(tcpcrypt.TEPP256)}, {TEP: 0x7e}, {TEP: byte(tcpcrypt.TEPCurve25519)}}))
	if err != nil {
		t.Fatal(err)
	}
	c.b.process(wanSYN(c, opt, nil), c.now)
	c.server.ack = c.client.seq + 1
	_, o := mustParse(t, one(t, c.b.process(c.server.seg(packet.FlagSYN|packet.FlagACK, nil, synOpts(1460)), c.now)))
	ans, err := eno.ParseSYNOption(o.ENO)
	if err != nil || len(ans.TEPs) != 1 || ans.TEPs[0].TEP != byte(tcpcrypt.TEPCurve25519) {
		t.Fatalf("answer %+v (%v), want curve25519", ans, err)
	}
}

// TestRetransmittedPlainSYNENODataIsDropped: the retransmission of a WAN
// SYN+ENO with data that went plain loses its data like the first one.
func TestRetransmittedPlainSYNENODataIsDropped(t *testing.T) {
	c := newPair(t)
	opt, err := eno.AppendSYNOption(nil, eno.Offer([]eno.Suboption{{TEP: 0x7e}}))
	if err != nil {
		t.Fatal(err)
	}
	syn := wanSYN(c, opt, []byte("early data"))
	for i := range 2 {
		p, o := mustParse(t, one(t, c.b.process(syn, c.now)))
		if len(p.Payload()) != 0 || o.ENO != nil {
			t.Fatalf("SYN %d to the LAN server: %d data bytes, ENO %x", i+1, len(p.Payload()), o.ENO)
		}
	}
}

// TestLANServerSpeaksENO: a LAN server whose SYN-ACK carries an ENO option
// of its own (69, or the pre-RFC 253) gets no second one from the gateway
// (RFC 8547 §4.1, §11): the flow is plain.
func TestLANServerSpeaksENO(t *testing.T) {
	for _, own := range [][]byte{{eno.OptionKind, 4, 0x01, 0x23}, {packet.OptExp, 5, 0x45, 0x4e, 0x23}} {
		c := newPair(t)
		syn := one(t, c.a.process(c.client.seg(packet.FlagSYN, nil, synOpts(1460)), c.now))
		sp, _ := mustParse(t, one(t, c.b.process(syn, c.now)))
		c.server.ack = sp.Seq + 1
		opts := append([]byte{packet.OptMSS, 4, 5, 0xb4}, own...)
		for len(opts)%4 != 0 {
			opts = append(opts, packet.OptEOL)
		}
		_, o := mustParse(t, one(t, c.b.process(c.server.seg(packet.FlagSYN|packet.FlagACK, nil, opts), c.now)))
		if n := o.ENOCount + map[bool]int{true: 1}[o.LegacyENO]; n != 1 || c.b.flow(t).State != StatePassthrough {
			t.Fatalf("option %d: %d ENO options on the SYN-ACK, state %v", own[0], n, c.b.flow(t).State)
		}
	}
}
