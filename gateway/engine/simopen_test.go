package engine

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"tcpcrypt-gw/crypto/tcpcrypt"
	"tcpcrypt-gw/eno"
	"tcpcrypt-gw/gateway/downgrade"
	"tcpcrypt-gw/gateway/packet"
)

// Simultaneous open (RFC 9293 §3.5): the WAN peer's SYN crosses the LAN
// host's, or the other way round. RFC 8547 §4.3 gives the roles by the b
// bits of the two SYNs; the gateway's decision is in docs/conformance.md
// ("Simultaneous open") and syn.go (wanSYNCrossing, lanSYNCrossing).

// enoSYNOpts is synOpts with an ENO option offering Curve25519, with
// b = 1 when passive.
func enoSYNOpts(t *testing.T, passive bool) []byte {
	t.Helper()
	sub := eno.Suboption{TEP: byte(tcpcrypt.TEPCurve25519)}
	o := eno.Offer([]eno.Suboption{sub})
	if passive {
		o = eno.Answer(sub)
	}
	opt, err := eno.AppendSYNOption(nil, o)
	if err != nil {
		t.Fatal(err)
	}
	opts := append(synOpts(1460), opt...)
	for len(opts)%4 != 0 {
		opts = append(opts, packet.OptNOP)
	}
	return opts
}

// crossedAtA sends the client's SYN through gateway A, then the server's
// own SYN (opts) from the WAN, and returns what A sent for the latter.
func crossedAtA(t *testing.T, a *gw, cl, sv *host, opts []byte, now time.Time) [][]byte {
	t.Helper()
	if _, o := mustParse(t, one(t, a.process(cl.seg(packet.FlagSYN, nil, synOpts(1460)), now))); o.ENO == nil {
		t.Fatal("the client's SYN went out without ENO")
	}
	return a.process(sv.seg(packet.FlagSYN, nil, opts), now)
}

func TestSimultaneousOpenBothRoleAGoesPlain(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts func(*testing.T) []byte
		why  string
	}{
		{"b=0", func(t *testing.T) []byte { return enoSYNOpts(t, false) }, "simultaneous open: both ends play role A (b = 0)"},
		{"no ENO", func(*testing.T) []byte { return synOpts(1460) }, "simultaneous open: the peer's SYN has no ENO"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := newGW(t, testConfig(t, lanA))
			now := time.Unix(1, 0)
			cl := &host{addr: clientAddr, peer: serverAddr, seq: 100}
			sv := &host{addr: serverAddr, peer: clientAddr, seq: 9000}
			out := crossedAtA(t, a, cl, sv, tc.opts(t), now)
			// RFC 8547 §4.6 rules 1 and 3: encryption is disabled. The
			// flow is kept (role A), plain with the reason, and the
			// peer's SYN reaches the client without ENO.
			f := a.flow(t)
			if f.Role != RoleA || f.State != StatePassthrough || f.Reason != tc.why {
				t.Fatalf("flow role %v state %v reason %q", f.Role, f.State, f.Reason)
			}
			p, o := mustParse(t, one(t, out))
			if p.Dst != clientAddr.Addr() || p.Flags != packet.FlagSYN || p.Seq != 9000 || o.ENO != nil {
				t.Fatalf("to client: dst %v flags %#x seq %d ENO %x", p.Dst, p.Flags, p.Seq, o.ENO)
			}
			// The client answers with a SYN-ACK (simultaneous open), which
			// goes without ENO (§4.6's second exception), and its SYN's
			// retransmission too.
			cl.seq, cl.ack = 100, 9001
			p, o = mustParse(t, one(t, a.process(cl.seg(packet.FlagSYN|packet.FlagACK, nil, synOpts(1460)), now)))
			if p.Dst != serverAddr.Addr() || o.ENO != nil || p.Seq != 100 || p.Ack != 9001 {
				t.Fatalf("client's SYN-ACK: dst %v ENO %x seq %d ack %d", p.Dst, o.ENO, p.Seq, p.Ack)
			}
			if f2 := a.flow(t); f2 != f || f2.State != StatePassthrough {
				t.Fatalf("flow replaced or changed: state %v", f2.State)
			}
		})
	}
}

func TestSimultaneousOpenPeerAsRoleB(t *testing.T) {
	a := newGW(t, testConfig(t, lanA))
	now := time.Unix(1, 0)
	cl := &host{addr: clientAddr, peer: serverAddr, seq: 100}
	sv := &host{addr: serverAddr, peer: clientAddr, seq: 9000}
	// The peer set b = 1 (RFC 8547 §4.2): it plays B. Its SYN is dropped
	// as if lost; the client's SYN, which the peer has, gets its SYN-ACK.
	if out := crossedAtA(t, a, cl, sv, enoSYNOpts(t, true), now); len(out) != 0 {
		t.Fatalf("%d packets sent for the peer's SYN with b = 1", len(out))
	}
	f := a.flow(t)
	if f.Role != RoleA || f.State != StateSYNSent {
		t.Fatalf("flow role %v state %v (%s)", f.Role, f.State, f.Reason)
	}
	// Its SYN-ACK carries the same option (§4.6: "MUST NOT alter SYN-form
	// ENO options ... between the SYN and SYN-ACK segments of a
	// simultaneous open"); the negotiated TEP is the last valid one in B's
	// option (§4.5), and the client's ACK starts the key exchange.
	sv.ack = 101
	p, o := mustParse(t, one(t, a.process(sv.seg(packet.FlagSYN|packet.FlagACK, nil, enoSYNOpts(t, true)), now)))
	if p.Dst != clientAddr.Addr() || o.ENO != nil || f.State != StateACKPending || f.tep != tcpcrypt.TEPCurve25519 {
		t.Fatalf("SYN-ACK to client: ENO %x; flow %v TEP %v", o.ENO, f.State, f.tep)
	}
	cl.seq, cl.ack = 101, 9001
	p, o = mustParse(t, one(t, a.process(cl.seg(packet.FlagACK, nil, nil), now)))
	if o.ENO == nil || len(p.Payload()) == 0 || f.State != StateKeyExchange {
		t.Fatalf("client's ACK: ENO %x, %d bytes (Init1); flow %v (%s)", o.ENO, len(p.Payload()), f.State, f.Reason)
	}
}

func TestSimultaneousOpenRequiredIsReset(t *testing.T) {
	cfg := testConfig(t, lanA)
	cfg.RequireEncryption = requirePort80
	a := newGW(t, cfg)
	now := time.Unix(1, 0)
	cl := &host{addr: clientAddr, peer: serverAddr, seq: 100}
	sv := &host{addr: serverAddr, peer: clientAddr, seq: 9000}
	got := rsts(t, crossedAtA(t, a, cl, sv, enoSYNOpts(t, false), now), clientAddr.Addr(), serverAddr.Addr())
	// Each RST acknowledges the SYN of the end it goes to.
	if got[0].Ack != 101 || got[1].Ack != 9001 || got[1].Seq != 101 {
		t.Errorf("RST to client ack %d; RST to server seq %d ack %d", got[0].Ack, got[1].Seq, got[1].Ack)
	}
	f := a.flow(t)
	if f.State != StateReset || !strings.HasPrefix(f.Reason, "encryption required: simultaneous open") || a.stats.RequiredResets.Load() != 1 {
		t.Fatalf("state %v reason %q required resets %d", f.State, f.Reason, a.stats.RequiredResets.Load())
	}
}

// TestSimultaneousOpenLANSYNCrossing: gateway B has forwarded the peer's
// ENO SYN to its LAN host, whose own SYN to the peer crosses it. That SYN
// is dropped; the LAN host answers the peer's SYN with a SYN-ACK, which
// carries our answer (b = 1), and the key exchange runs with the gateway
// as B: encrypted.
func TestSimultaneousOpenLANSYNCrossing(t *testing.T) {
	c := newPair(t)
	srvSYN := one(t, c.b.process(one(t, c.a.process(c.client.seg(packet.FlagSYN, nil, synOpts(1460)), c.now)), c.now))
	p, _ := mustParse(t, srvSYN)
	c.client.seq++
	if out := c.b.process(c.server.seg(packet.FlagSYN, nil, synOpts(1460)), c.now); len(out) != 0 {
		t.Fatalf("%d packets sent for the LAN host's crossing SYN", len(out))
	}
	f := c.b.flow(t)
	if f.Role != RoleB || f.State != StateSYNReceived {
		t.Fatalf("flow role %v state %v (%s)", f.Role, f.State, f.Reason)
	}
	c.server.ack = p.Seq + 1
	wanSYNACK := one(t, c.b.process(c.server.seg(packet.FlagSYN|packet.FlagACK, nil, synOpts(1460)), c.now))
	c.server.seq++
	_, o := mustParse(t, wanSYNACK)
	ans, err := eno.ParseSYNOption(o.ENO)
	if err != nil || !ans.Passive() {
		t.Fatalf("SYN-ACK's answer %+v (%v)", ans, err)
	}
	if f.State != StateSYNACKSent {
		t.Fatalf("state %v", f.State)
	}
	// The rest is an ordinary handshake: Init1 from A, Init2 from B, both
	// encrypted with the same session ID.
	cp, _ := mustParse(t, one(t, c.a.process(wanSYNACK, c.now)))
	c.client.ack = cp.Seq + 1
	init1 := one(t, c.a.process(c.client.seg(packet.FlagACK, nil, nil), c.now))
	var init2 []byte
	for _, q := range c.b.process(init1, c.now) {
		if qp, _ := mustParse(t, q); qp.Dst == clientAddr.Addr() {
			init2 = q
		}
	}
	if init2 == nil {
		t.Fatal("no Init2 from gateway B")
	}
	c.a.process(init2, c.now)
	fa := c.a.flow(t)
	if fa.State != StateEncrypted || f.State != StateEncrypted || string(fa.sessionID) != string(f.sessionID) {
		t.Fatalf("states A %v B %v, session IDs %x %x", fa.State, f.State, fa.sessionID, f.sessionID)
	}
}

// TestSimultaneousOpenRememberedPeerFlagged: a crossing SYN with b = 0
// from a peer remembered as speaking tcpcrypt could be an attacker's (it
// needs only the flow's addresses and ports): flagged as a suspected
// downgrade, and reset under the block policy.
func TestSimultaneousOpenRememberedPeerFlagged(t *testing.T) {
	for _, block := range []bool{false, true} {
		cfg := testConfig(t, lanA)
		cfg.Peers = downgrade.New(16, time.Hour)
		cfg.BlockDowngrade = func(netip.Addr) bool { return block }
		a := newGW(t, cfg)
		now := time.Unix(100, 0)
		cfg.Peers.Remember(serverAddr.Addr(), now)
		cl := &host{addr: clientAddr, peer: serverAddr, seq: 100}
		sv := &host{addr: serverAddr, peer: clientAddr, seq: 9000}
		out := crossedAtA(t, a, cl, sv, enoSYNOpts(t, false), now)
		f := a.flow(t)
		if !f.Downgrade || !strings.HasPrefix(f.Reason, "downgrade suspected: simultaneous open") || a.stats.DowngradesSuspected.Load() != 1 {
			t.Fatalf("block=%v: downgrade %v reason %q", block, f.Downgrade, f.Reason)
		}
		if block {
			rsts(t, out, clientAddr.Addr(), serverAddr.Addr())
			if f.State != StateReset {
				t.Fatalf("block: state %v", f.State)
			}
		} else if len(out) != 1 || f.State != StatePassthrough {
			t.Fatalf("warn: %d packets, state %v", len(out), f.State)
		}
	}
}

// TestWANSYNWithPassiveBitIsPlain: a WAN SYN with b = 1 that opens a new
// inbound flow meets a passive LAN server, which is B too: the roles are
// incompatible (RFC 8547 §4.3, §4.6 rule 3) and the flow is plain; the SYN
// goes on to the server.
func TestWANSYNWithPassiveBitIsPlain(t *testing.T) {
	b := newGW(t, testConfig(t, lanB))
	cl := &host{addr: clientAddr, peer: serverAddr, seq: 100}
	p, _ := mustParse(t, one(t, b.process(cl.seg(packet.FlagSYN, nil, enoSYNOpts(t, true)), time.Unix(1, 0))))
	f := b.flow(t)
	if p.Dst != serverAddr.Addr() || f.Role != RoleB || f.State != StatePassthrough || f.Reason != "peer claims the passive role" {
		t.Fatalf("SYN to %v; flow role %v state %v reason %q", p.Dst, f.Role, f.State, f.Reason)
	}
}
