package engine

import (
	"bytes"
	"testing"

	"tcpcrypt-gw/gateway/packet"
)

// marked rebuilds segment b with the IP TOS byte tos and the TCP flags
// extra added, as a host or a router on the path would have set them.
func marked(t *testing.T, b []byte, tos, extra uint8) []byte {
	t.Helper()
	p, _ := mustParse(t, b)
	h := packet.HeaderFrom(&p)
	h.Options = p.Options()
	h.Payload = p.Payload()
	h.TOS = tos
	h.Flags |= extra
	return packet.Build(make([]byte, h.Len()), &h)
}

// TestECNMarksTravelWithData: the IP TOS byte (DSCP and ECN field) and the
// ECE/CWR flags of a segment go with its data through both gateways (RFC
// 3168 §5, §6.1): ECT(0) and CWR from the client reach the server, CE
// set on the WAN and ECE from the server reach the client.
func TestECNMarksTravelWithData(t *testing.T) {
	c := newPair(t)
	c.handshake()

	const ect0, ce = 0x02, 0x03
	const dscpAF11 = 10 << 2
	msg := []byte("data after a congestion window reduction")
	d := marked(t, c.client.seg(packet.FlagACK|packet.FlagPSH, msg, nil), dscpAF11|ect0, packet.FlagCWR)
	wan := one(t, c.a.process(d, c.now))
	wp, _ := mustParse(t, wan)
	if wp.TOS != dscpAF11|ect0 || wp.Flags&packet.FlagCWR == 0 || wp.Flags&packet.FlagECE != 0 {
		t.Fatalf("frame on the WAN: TOS %#x flags %#x, want TOS %#x with CWR", wp.TOS, wp.Flags, dscpAF11|ect0)
	}
	// A router on the WAN marks the frame CE.
	got := one(t, c.b.process(marked(t, wan, dscpAF11|ce, 0), c.now))
	gp, _ := mustParse(t, got)
	if !bytes.Equal(gp.Payload(), msg) || gp.TOS != dscpAF11|ce || gp.Flags&packet.FlagCWR == 0 {
		t.Fatalf("at the server: %q TOS %#x flags %#x, want CE and CWR", gp.Payload(), gp.TOS, gp.Flags)
	}
	c.client.seq += uint32(len(msg))

	// The server echoes the CE with ECE on its answer (RFC 3168 §6.1.3).
	c.server.ack = c.client.seq
	reply := []byte("answer with ECE")
	r := one(t, c.b.process(marked(t, c.server.seg(packet.FlagACK|packet.FlagPSH, reply, nil), ect0, packet.FlagECE), c.now))
	rp, _ := mustParse(t, r)
	if rp.TOS != ect0 || rp.Flags&packet.FlagECE == 0 || rp.Flags&packet.FlagCWR != 0 {
		t.Fatalf("answer on the WAN: TOS %#x flags %#x, want ECT(0) with ECE", rp.TOS, rp.Flags)
	}
	cl := one(t, c.a.process(r, c.now))
	cp, _ := mustParse(t, cl)
	if !bytes.Equal(cp.Payload(), reply) || cp.TOS != ect0 || cp.Flags&packet.FlagECE == 0 {
		t.Fatalf("at the client: %q TOS %#x flags %#x, want ECT(0) with ECE", cp.Payload(), cp.TOS, cp.Flags)
	}

	// Unmarked data stays unmarked: nothing of the earlier marks sticks.
	c.client.ack = cp.Seq + uint32(len(reply))
	plain := []byte("unmarked")
	w2 := one(t, c.a.process(c.client.seg(packet.FlagACK|packet.FlagPSH, plain, nil), c.now))
	p2, _ := mustParse(t, w2)
	if p2.TOS != 0 || p2.Flags&(packet.FlagECE|packet.FlagCWR) != 0 {
		t.Fatalf("unmarked data left with TOS %#x flags %#x", p2.TOS, p2.Flags)
	}
}

// TestCEOnACutFrame: a frame cut across two WAN segments, the first one
// marked CE. Nothing reaches the server for the first (and nothing the
// gateway sends for it is ECN-capable); the plaintext the second one
// completes carries the CE mark, so that the server echoes it.
func TestCEOnACutFrame(t *testing.T) {
	c := newPair(t)
	c.handshake()
	const ect0, ce = 0x02, 0x03
	msg := bytes.Repeat([]byte("cut in two "), 20)
	wan := one(t, c.a.process(marked(t, c.client.seg(packet.FlagACK|packet.FlagPSH, msg, nil), ect0, 0), c.now))
	wp, _ := mustParse(t, wan)
	pay := wp.Payload()
	half := len(pay) / 2
	part := func(seq uint32, data []byte, tos uint8) []byte {
		h := packet.HeaderFrom(&wp)
		h.Options = wp.Options()
		h.Seq, h.Payload, h.TOS = seq, data, tos
		return packet.Build(make([]byte, h.Len()), &h)
	}
	for _, q := range c.b.process(part(wp.Seq, pay[:half], ce), c.now) {
		qp, _ := mustParse(t, q)
		if len(qp.Payload()) > 0 || qp.TOS&0x03 != 0 {
			t.Fatalf("for the first half: %d bytes with TOS %#x", len(qp.Payload()), qp.TOS)
		}
	}
	got := one(t, c.b.process(part(wp.Seq+uint32(half), pay[half:], ect0), c.now))
	gp, _ := mustParse(t, got)
	if !bytes.Equal(gp.Payload(), msg) || gp.TOS != ce {
		t.Fatalf("at the server: %d bytes with TOS %#x, want the message with CE", len(gp.Payload()), gp.TOS)
	}
	// The mark is spent: the next frame arrives ECT(0) as sent.
	c.client.seq += uint32(len(msg))
	next := one(t, c.a.process(marked(t, c.client.seg(packet.FlagACK|packet.FlagPSH, []byte("next"), nil), ect0, 0), c.now))
	np, _ := mustParse(t, one(t, c.b.process(next, c.now)))
	if np.TOS != ect0 {
		t.Fatalf("next segment TOS %#x, want ECT(0)", np.TOS)
	}
}
