package engine

import (
	"net/netip"
	"testing"
	"time"

	"tcpcrypt-gw/flowtable"
	"tcpcrypt-gw/gateway/packet"
)

// tick runs the engine's timers at now and returns copies of what they sent.
func (g *gw) tick(now time.Time) [][]byte {
	lk := g.e.Lock(now, &g.out)
	lk.Tick()
	lk.Unlock()
	return g.sent()
}

// TestHalfOpenFlowsExpire: flows that saw only a SYN (outbound with our
// offer, inbound with an offer, inbound plain) expire after the handshake
// timeout, not the idle timeout. Found by the SYN flood end-to-end test: a
// new flow was touched before its state was set, so it got idle_timeout.
func TestHalfOpenFlowsExpire(t *testing.T) {
	cfg := testConfig(t, lanA)
	g := newGW(t, cfg)
	now := time.Unix(1000, 0)
	for i := 0; i < 10; i++ {
		cl := &host{addr: netip.AddrPortFrom(clientAddr.Addr(), uint16(20000+i)), peer: serverAddr, seq: 7}
		one(t, g.process(cl.seg(packet.FlagSYN, nil, synOpts(1460)), now))
	}
	// Inbound: A's LAN host is the server here.
	peer := netip.MustParseAddrPort("192.0.2.9:5555")
	withENO := &host{addr: peer, peer: clientAddr, seq: 9}
	wanSYN := withENO.seg(packet.FlagSYN, nil, append(synOpts(1460), packet.OptENO, 3, 0x21, packet.OptNOP))
	one(t, g.process(wanSYN, now))
	plain := &host{addr: netip.AddrPortFrom(peer.Addr(), 5556), peer: clientAddr, seq: 9}
	one(t, g.process(plain.seg(packet.FlagSYN, nil, synOpts(1460)), now))
	if n := g.table.Len(); n != 12 {
		t.Fatalf("%d flows after 12 SYNs", n)
	}
	states := map[State]int{}
	g.table.Range(0, func(en *flowtable.Entry[*Flow]) bool { states[en.Value.State]++; return true })
	if states[StateSYNSent] != 10 || states[StateSYNReceived] != 1 || states[StatePassthrough] != 1 {
		t.Fatalf("states %v", states)
	}
	g.tick(now.Add(cfg.HandshakeTimeout - time.Second))
	if n := g.table.Len(); n != 12 {
		t.Fatalf("%d flows before the handshake timeout, want 12", n)
	}
	g.tick(now.Add(cfg.HandshakeTimeout + time.Second))
	if n := g.table.Len(); n != 0 {
		t.Fatalf("%d half-open flows left after the handshake timeout (idle timeout %v)", n, cfg.IdleTimeout)
	}
}

// TestEstablishedFlowOutlivesHandshakeTimeout is the other side of
// TestHalfOpenFlowsExpire: an encrypted flow lives by the idle timeout.
func TestEstablishedFlowOutlivesHandshakeTimeout(t *testing.T) {
	c := newPair(t)
	c.handshake()
	later := c.now.Add(c.a.e.Config().HandshakeTimeout + time.Second)
	c.a.tick(later)
	c.b.tick(later)
	if c.a.table.Len() != 1 || c.b.table.Len() != 1 {
		t.Fatalf("an encrypted flow expired after the handshake timeout: A %d B %d flows", c.a.table.Len(), c.b.table.Len())
	}
}
