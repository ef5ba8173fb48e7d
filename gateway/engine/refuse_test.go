package engine

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"tcpcrypt-gw/crypto/tcpcrypt"
	"tcpcrypt-gw/gateway/downgrade"
	"tcpcrypt-gw/gateway/packet"
)

// requirePort80 makes every flow to or from port 80 required.
func requirePort80(lan, wan netip.AddrPort) bool { return lan.Port() == 80 || wan.Port() == 80 }

// rsts checks that pkts are exactly RSTs, one to each of the named
// addresses in order, and returns them parsed.
func rsts(t *testing.T, pkts [][]byte, to ...netip.Addr) []packet.Packet {
	t.Helper()
	if len(pkts) != len(to) {
		t.Fatalf("%d packets, want %d RSTs", len(pkts), len(to))
	}
	var res []packet.Packet
	for i, b := range pkts {
		p, _ := mustParse(t, b)
		if p.Flags&packet.FlagRST == 0 || p.Dst != to[i] || len(p.Payload()) != 0 {
			t.Fatalf("packet %d: flags %#x to %v payload %d; want a RST to %v", i, p.Flags, p.Dst, len(p.Payload()), to[i])
		}
		res = append(res, p)
	}
	return res
}

// legacySYNACK runs a client SYN through g and answers it with a SYN-ACK
// without ENO (a legacy server, or an attacker who stripped it); it
// returns what g sent for the SYN-ACK.
func legacySYNACK(t *testing.T, g *gw, cl *host, now time.Time) [][]byte {
	t.Helper()
	sv := &host{addr: cl.peer, peer: cl.addr, seq: 9000}
	if _, o := mustParse(t, one(t, g.process(cl.seg(packet.FlagSYN, nil, synOpts(1460)), now))); o.ENO == nil {
		t.Fatal("the SYN went out without ENO")
	}
	cl.seq++
	sv.ack = cl.seq
	return g.process(sv.seg(packet.FlagSYN|packet.FlagACK, nil, synOpts(1460)), now)
}

func TestRequiredFlowWithoutENOIsReset(t *testing.T) {
	cfg := testConfig(t, lanA)
	cfg.RequireEncryption = requirePort80
	a := newGW(t, cfg)
	now := time.Unix(1, 0)
	cl := &host{addr: clientAddr, peer: serverAddr, seq: 1}
	got := rsts(t, legacySYNACK(t, a, cl, now), clientAddr.Addr(), serverAddr.Addr())
	// The client (SYN-SENT) gets a RST acknowledging its SYN, the server
	// (SYN-RECEIVED) one at the sequence its SYN-ACK acknowledged.
	if got[0].Flags&packet.FlagACK == 0 || got[0].Ack != 2 || got[1].Seq != 2 {
		t.Errorf("RST to client ack %d flags %#x, RST to server seq %d", got[0].Ack, got[0].Flags, got[1].Seq)
	}
	f := a.flow(t)
	if f.State != StateReset || f.Reason != "encryption required: peer did not answer ENO" {
		t.Fatalf("state %v reason %q", f.State, f.Reason)
	}
	if a.stats.RequiredResets.Load() != 1 || a.stats.FlowsPlain.Load() != 0 {
		t.Errorf("required resets %d, plain flows %d", a.stats.RequiredResets.Load(), a.stats.FlowsPlain.Load())
	}
	// Whatever the client still sends goes nowhere.
	cl.ack = 9001
	if out := a.process(cl.seg(packet.FlagACK|packet.FlagPSH, []byte("secret"), nil), now); len(out) != 0 {
		t.Fatalf("%d packets sent for data of a refused flow", len(out))
	}

	// Another port is not required: the same answer makes it plain.
	cl2 := &host{addr: clientAddr, peer: netip.AddrPortFrom(serverAddr.Addr(), 81), seq: 1}
	if out := legacySYNACK(t, a, cl2, now); len(out) != 1 || out[0][33]&packet.FlagRST != 0 {
		t.Fatalf("unrequired flow: %d packets", len(out))
	}
}

func TestRequiredFlowNeverFallsBack(t *testing.T) {
	cfg := testConfig(t, lanA)
	cfg.RequireEncryption = requirePort80
	cfg.SYNFallbackRetries = 1
	a := newGW(t, cfg)
	cl := &host{addr: clientAddr, peer: serverAddr, seq: 1}
	for i := range 5 {
		_, o := mustParse(t, one(t, a.process(cl.seg(packet.FlagSYN, nil, synOpts(1460)), time.Unix(int64(i), 0))))
		if o.ENO == nil {
			t.Fatalf("SYN %d of a required flow went without ENO", i)
		}
	}
	if f := a.flow(t); f.State != StateSYNSent || a.stats.SYNFallbacks.Load() != 0 {
		t.Fatalf("state %v, fallbacks %d", f.State, a.stats.SYNFallbacks.Load())
	}
}

func TestRequiredSYNThatCannotCarryENOIsReset(t *testing.T) {
	cfg := testConfig(t, lanA)
	cfg.RequireEncryption = requirePort80
	a := newGW(t, cfg)
	cl := &host{addr: clientAddr, peer: serverAddr, seq: 1}
	// SYN data cannot go with ENO (RFC 8547 §4.7).
	got := rsts(t, a.process(cl.seg(packet.FlagSYN, []byte("GET /"), synOpts(1460)), time.Unix(1, 0)), clientAddr.Addr())
	if got[0].Ack != 1+1+5 {
		t.Errorf("RST acknowledges %d, want the SYN and its data", got[0].Ack)
	}
	if f := a.flow(t); f.State != StateReset || !strings.HasPrefix(f.Reason, "encryption required: SYN carries data") {
		t.Fatalf("state %v reason %q", f.State, f.Reason)
	}
}

func TestRequiredInboundWithoutENOIsRefused(t *testing.T) {
	cfg := testConfig(t, lanB)
	cfg.RequireEncryption = requirePort80
	b := newGW(t, cfg)
	cl := &host{addr: clientAddr, peer: serverAddr, seq: 1}
	got := rsts(t, b.process(cl.seg(packet.FlagSYN, nil, synOpts(1460)), time.Unix(1, 0)), clientAddr.Addr())
	if got[0].Ack != 2 {
		t.Errorf("RST acknowledges %d, want 2", got[0].Ack)
	}
	if f := b.flow(t); f.State != StateReset || f.Reason != "encryption required: peer did not offer ENO" {
		t.Fatalf("state %v reason %q", f.State, f.Reason)
	}
}

func TestRequiredInboundUnconfirmedENOIsReset(t *testing.T) {
	c := newPair(t)
	c.b.e.Config().RequireEncryption = requirePort80
	syn := c.client.seg(packet.FlagSYN, nil, synOpts(1460))
	srvSYN := one(t, c.b.process(one(t, c.a.process(syn, c.now)), c.now))
	p, _ := mustParse(t, srvSYN)
	c.client.seq++
	c.server.ack = p.Seq + 1
	one(t, c.b.process(c.server.seg(packet.FlagSYN|packet.FlagACK, nil, synOpts(1460)), c.now))
	c.server.seq++
	c.client.ack = c.server.seq
	// The client's first non-SYN segment arrives without ENO (RFC 8547
	// §4.6: negotiation failed), carrying data that must not reach the server.
	rsts(t, c.b.process(c.client.seg(packet.FlagACK|packet.FlagPSH, []byte("plain"), nil), c.now), serverAddr.Addr(), clientAddr.Addr())
	if f := c.b.flow(t); f.State != StateReset || f.Reason != "encryption required: peer did not confirm ENO" {
		t.Fatalf("state %v reason %q", f.State, f.Reason)
	}
}

func TestDowngradeSuspected(t *testing.T) {
	for _, block := range []bool{false, true} {
		t.Run(fmt.Sprintf("block=%v", block), func(t *testing.T) {
			c := newPair(t)
			cfg := c.a.e.Config()
			cfg.Peers = downgrade.New(16, time.Hour)
			cfg.BlockDowngrade = func(netip.Addr) bool { return block }
			var warned []string
			cfg.Warn = func(msg string, args ...any) { warned = append(warned, fmt.Sprint(msg, args)) }

			// A connection to a peer never seen encrypted: plain, no alarm.
			other := &host{addr: clientAddr, peer: netip.MustParseAddrPort("10.0.7.9:80"), seq: 1}
			if out := legacySYNACK(t, c.a, other, c.now); len(out) != 1 {
				t.Fatalf("unknown legacy peer: %d packets", len(out))
			}
			c.handshake() // the server's address completes tcpcrypt
			if c.a.stats.DowngradesSuspected.Load() != 0 || len(warned) != 0 {
				t.Fatal("a downgrade before any")
			}

			cl := &host{addr: netip.AddrPortFrom(clientAddr.Addr(), 40001), peer: serverAddr, seq: 77}
			c.a.client = cl.addr
			out := legacySYNACK(t, c.a, cl, c.now.Add(time.Minute))
			f := c.a.flow(t)
			if !f.Downgrade || !strings.HasPrefix(f.Reason, "downgrade suspected: peer did not answer ENO") {
				t.Fatalf("downgrade %v reason %q", f.Downgrade, f.Reason)
			}
			if c.a.stats.DowngradesSuspected.Load() != 1 || len(warned) != 1 || !strings.Contains(warned[0], serverAddr.String()) {
				t.Fatalf("counter %d, warnings %q", c.a.stats.DowngradesSuspected.Load(), warned)
			}
			if !f.Snapshot().Downgrade {
				t.Error("the snapshot does not carry the downgrade")
			}
			if !block {
				if len(out) != 1 || f.State != StatePassthrough || c.a.stats.DowngradesBlocked.Load() != 0 {
					t.Fatalf("warn: %d packets, state %v", len(out), f.State)
				}
				return
			}
			rsts(t, out, cl.addr.Addr(), serverAddr.Addr())
			if f.State != StateReset || c.a.stats.DowngradesBlocked.Load() != 1 || !strings.HasSuffix(f.Reason, "(policy block)") {
				t.Fatalf("block: state %v, blocked %d, reason %q", f.State, c.a.stats.DowngradesBlocked.Load(), f.Reason)
			}
		})
	}
}

func TestDowngradeByForcedSYNFallback(t *testing.T) {
	c := newPair(t)
	cfg := c.a.e.Config()
	cfg.Peers = downgrade.New(16, time.Hour)
	cfg.SYNFallbackRetries = 2
	c.handshake()
	cl := &host{addr: netip.AddrPortFrom(clientAddr.Addr(), 40002), peer: serverAddr, seq: 5}
	c.a.client = cl.addr
	var last []byte
	for i := range 3 { // the ENO SYNs are dropped on the way: the host retransmits
		last = one(t, c.a.process(cl.seg(packet.FlagSYN, nil, synOpts(1460)), c.now.Add(time.Duration(i)*time.Second)))
	}
	if _, o := mustParse(t, last); o.ENO != nil {
		t.Fatal("no fallback under the warn policy")
	}
	if f := c.a.flow(t); !f.Downgrade || !strings.Contains(f.Reason, "syn_fallback: ") || c.a.stats.DowngradesSuspected.Load() != 1 {
		t.Fatalf("downgrade %v reason %q count %d", f.Downgrade, f.Reason, c.a.stats.DowngradesSuspected.Load())
	}
}

func TestRequiredInboundWithoutRoomForENOIsReset(t *testing.T) {
	c := newPair(t)
	c.b.e.Config().RequireEncryption = requirePort80
	srvSYN := one(t, c.b.process(one(t, c.a.process(c.client.seg(packet.FlagSYN, nil, synOpts(1460)), c.now)), c.now))
	p, _ := mustParse(t, srvSYN)
	c.client.seq++
	c.server.ack = p.Seq + 1
	// The LAN server's SYN-ACK fills the 40 option bytes: no room for our
	// ENO answer.
	full := append(synOpts(1460), 254, 20)
	full = append(full, make([]byte, 18)...)
	got := rsts(t, c.b.process(c.server.seg(packet.FlagSYN|packet.FlagACK, nil, full), c.now), serverAddr.Addr(), clientAddr.Addr())
	if got[0].Seq != c.client.seq || got[1].Flags&packet.FlagACK == 0 || got[1].Ack != c.client.seq {
		t.Errorf("RST to server seq %d, RST to client flags %#x ack %d; want both at %d", got[0].Seq, got[1].Flags, got[1].Ack, c.client.seq)
	}
	if f := c.b.flow(t); f.State != StateReset || f.Reason != "encryption required: no TCP option space for ENO" {
		t.Fatalf("state %v reason %q", f.State, f.Reason)
	}
}

// noKeys is a key source that has none (keyexchange.go startInit).
type noKeys struct{}

func (noKeys) Get(tcpcrypt.TEP) (*tcpcrypt.KeyPair, error) { return nil, errors.New("pool exhausted") }

// TestNoKeyPair: role A cannot have its key pair when the client
// acknowledges the SYN-ACK. A required flow resets both ends (counted); any
// other goes plain, its ACK without ENO so that the peer falls back too
// (RFC 8547 §4.6).
func TestNoKeyPair(t *testing.T) {
	for _, required := range []bool{false, true} {
		t.Run(fmt.Sprintf("required=%v", required), func(t *testing.T) {
			c := newPair(t)
			cfg := c.a.e.Config()
			cfg.Keys = noKeys{}
			if required {
				cfg.RequireEncryption = requirePort80
			}
			srvSYN := one(t, c.b.process(one(t, c.a.process(c.client.seg(packet.FlagSYN, nil, synOpts(1460)), c.now)), c.now))
			p, _ := mustParse(t, srvSYN)
			c.client.seq++
			c.server.ack = p.Seq + 1
			wanSYNACK := one(t, c.b.process(c.server.seg(packet.FlagSYN|packet.FlagACK, nil, synOpts(1460)), c.now))
			c.server.seq++
			p, _ = mustParse(t, one(t, c.a.process(wanSYNACK, c.now)))
			c.client.ack = p.Seq + 1
			out := c.a.process(c.client.seg(packet.FlagACK|packet.FlagPSH, []byte("GET /"), nil), c.now)
			f := c.a.flow(t)
			if !required {
				q, o := mustParse(t, one(t, out))
				if o.ENO != nil || string(q.Payload()) != "GET /" || f.State != StatePassthrough || f.Reason != "no key pair: pool exhausted" {
					t.Fatalf("ENO %x payload %q state %v reason %q", o.ENO, q.Payload(), f.State, f.Reason)
				}
				if c.a.stats.RequiredResets.Load() != 0 {
					t.Fatal("counted as a required reset")
				}
				return
			}
			got := rsts(t, out, serverAddr.Addr(), clientAddr.Addr())
			if got[0].Seq != c.client.seq || got[1].Seq != c.client.ack {
				t.Errorf("RST to server seq %d want %d, RST to client seq %d want %d", got[0].Seq, c.client.seq, got[1].Seq, c.client.ack)
			}
			if f.State != StateReset || f.Reason != "encryption required: no key pair: pool exhausted" || c.a.stats.RequiredResets.Load() != 1 {
				t.Fatalf("state %v reason %q required resets %d", f.State, f.Reason, c.a.stats.RequiredResets.Load())
			}
			if out := c.a.process(c.client.seg(packet.FlagACK|packet.FlagPSH, []byte("more"), nil), c.now); len(out) != 0 {
				t.Fatalf("%d packets sent for data of a refused flow", len(out))
			}
		})
	}
}
