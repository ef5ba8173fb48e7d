package engine

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"tcpcrypt-gw/gateway/downgrade"
	"tcpcrypt-gw/gateway/packet"
)

func testPaths() *downgrade.Paths {
	return downgrade.NewPaths(downgrade.PathConfig{Max: 16, TTL: time.Hour, Window: 10 * time.Minute, Threshold: 2})
}

// droppedENOSYNs sends the LAN host's SYN and its retransmissions, one a
// second, n in all, and returns the last one as the gateway sent it.
func droppedENOSYNs(t *testing.T, g *gw, cl *host, now time.Time, n int) packet.Options {
	t.Helper()
	var o packet.Options
	for i := range n {
		_, o = mustParse(t, one(t, g.process(cl.seg(packet.FlagSYN, nil, synOpts(1460)), now.Add(time.Duration(i)*time.Second))))
	}
	return o
}

// TestSYNFallbackToNewPeerFlagged: an attacker who drops every SYN with ENO
// towards a peer never seen gets the fallback, but the flow says so
// (syn_fallback), the counter moves, and the answered plain SYN is recorded
// per peer as the evidence of a type-1 failure (RFC 8547 §9).
func TestSYNFallbackToNewPeerFlagged(t *testing.T) {
	cfg := testConfig(t, lanA)
	cfg.SYNFallbackRetries = 2
	cfg.Peers = downgrade.New(16, time.Hour)
	cfg.Paths = testPaths()
	a := newGW(t, cfg)
	now := time.Unix(100, 0)
	cl := &host{addr: clientAddr, peer: serverAddr, seq: 10}
	if o := droppedENOSYNs(t, a, cl, now, 3); o.ENO != nil {
		t.Fatal("the third SYN kept ENO")
	}
	f := a.flow(t)
	if f.State != StatePassthrough || f.Downgrade || !strings.HasPrefix(f.Reason, "syn_fallback: SYN sent without ENO after 2 retransmissions") {
		t.Fatalf("state %v downgrade %v reason %q", f.State, f.Downgrade, f.Reason)
	}
	if a.stats.SYNFallbacks.Load() != 1 || a.stats.ENOFailuresType1.Load() != 0 {
		t.Fatalf("fallbacks %d type-1 %d before the answer", a.stats.SYNFallbacks.Load(), a.stats.ENOFailuresType1.Load())
	}
	cl.seq++
	sv := &host{addr: serverAddr, peer: clientAddr, seq: 9000, ack: cl.seq}
	if out := a.process(sv.seg(packet.FlagSYN|packet.FlagACK, nil, synOpts(1460)), now.Add(3*time.Second)); len(out) != 1 {
		t.Fatalf("SYN-ACK: %d packets", len(out))
	}
	if a.stats.ENOFailuresType1.Load() != 1 {
		t.Fatalf("type-1 failures %d", a.stats.ENOFailuresType1.Load())
	}
	ps := cfg.Paths.Snapshot(now.Add(4 * time.Second))
	if len(ps) != 1 || ps[0].Addr != serverAddr.Addr() || ps[0].SYNFallbacks != 1 || !strings.Contains(ps[0].FallbackProof, "2 SYNs with ENO unanswered over 3s") {
		t.Fatalf("paths %+v", ps)
	}
	// A retransmitted SYN-ACK is not a second failure.
	a.process(sv.seg(packet.FlagSYN|packet.FlagACK, nil, synOpts(1460)), now.Add(4*time.Second))
	if a.stats.ENOFailuresType1.Load() != 1 {
		t.Fatalf("type-1 failures %d after a retransmitted SYN-ACK", a.stats.ENOFailuresType1.Load())
	}
}

// TestNoSYNFallbackPolicy: downgrade.no_syn_fallback keeps ENO in every
// retransmission, without refusing anything.
func TestNoSYNFallbackPolicy(t *testing.T) {
	cfg := testConfig(t, lanA)
	cfg.SYNFallbackRetries = 2
	cfg.NoSYNFallback = func(a netip.Addr) bool { return a == serverAddr.Addr() }
	a := newGW(t, cfg)
	now := time.Unix(100, 0)
	cl := &host{addr: clientAddr, peer: serverAddr, seq: 10}
	if o := droppedENOSYNs(t, a, cl, now, 4); o.ENO == nil {
		t.Fatal("the SYN fell back under no_syn_fallback")
	}
	if f := a.flow(t); f.State != StateSYNSent || a.stats.SYNFallbacks.Load() != 0 || a.stats.SYNFallbacksRefused.Load() != 2 {
		t.Fatalf("state %v fallbacks %d refused %d", f.State, a.stats.SYNFallbacks.Load(), a.stats.SYNFallbacksRefused.Load())
	}
	// A legacy peer still gets its plain connection: not require_encryption.
	cl.seq++
	sv := &host{addr: serverAddr, peer: clientAddr, seq: 9000, ack: cl.seq}
	if out := a.process(sv.seg(packet.FlagSYN|packet.FlagACK, nil, synOpts(1460)), now.Add(4*time.Second)); len(out) != 1 || a.flow(t).State != StatePassthrough {
		t.Fatalf("legacy answer: %d packets, state %v", len(out), a.flow(t).State)
	}
}

// dieAfterHandshake runs a connection whose key exchange completes and
// whose first data frame is lost on the way (an attacker dropping
// ciphertext); then the LAN host gives up with a RST.
func (c *pair) dieAfterHandshake() {
	t := c.t
	c.handshake()
	if out := c.a.process(c.client.seg(packet.FlagACK|packet.FlagPSH, []byte("GET / HTTP/1.1\r\n\r\n"), nil), c.now); len(out) != 1 {
		t.Fatalf("data: %d packets", len(out))
	}
	c.client.seq += 18
	c.a.process(c.client.seg(packet.FlagRST|packet.FlagACK, nil, nil), c.now.Add(5*time.Second))
	c.client.seq += 1000 // the next connection's ISN
	c.server.seq += 1000
	c.now = c.now.Add(10 * time.Second)
}

// TestBrokenPathGoesPlainThenRecovers: two connections that die after the
// key exchange mark the path broken (RFC 8547 §9 type 2); the next goes
// plain with the reason, unless required or under the block policy; after
// the TTL encryption is tried again.
func TestBrokenPathGoesPlainThenRecovers(t *testing.T) {
	c := newPair(t)
	cfg := c.a.e.Config()
	cfg.Paths = testPaths()
	var warned []string
	cfg.Warn = func(msg string, args ...any) { warned = append(warned, msg) }
	c.dieAfterHandshake()
	if c.a.stats.ENOFailuresType2.Load() != 1 {
		t.Fatalf("type-2 failures %d", c.a.stats.ENOFailuresType2.Load())
	}
	if _, broken := cfg.Paths.Broken(serverAddr.Addr(), c.now); broken {
		t.Fatal("broken after one failure")
	}
	c.dieAfterHandshake()
	if c.a.stats.ENOFailuresType2.Load() != 2 || len(warned) != 1 {
		t.Fatalf("type-2 failures %d, warnings %q", c.a.stats.ENOFailuresType2.Load(), warned)
	}
	syn := func(at time.Time) packet.Options {
		_, o := mustParse(t, one(t, c.a.process(c.client.seg(packet.FlagSYN, nil, synOpts(1460)), at)))
		c.client.seq += 100
		return o
	}
	if o := syn(c.now); o.ENO != nil {
		t.Fatal("the SYN to a broken path kept ENO")
	}
	f := c.a.flow(t)
	if f.State != StatePassthrough || !strings.HasPrefix(f.Reason, "broken_path: encryption failed after the handshake on this path 2 times") ||
		!strings.Contains(f.Reason, "the LAN host reset the connection") || c.a.stats.BrokenPathPlain.Load() != 1 {
		t.Fatalf("state %v reason %q plain %d", f.State, f.Reason, c.a.stats.BrokenPathPlain.Load())
	}
	cfg.RequireEncryption = func(lan, wan netip.AddrPort) bool { return true }
	if o := syn(c.now); o.ENO == nil {
		t.Fatal("a required flow went plain on a broken path")
	}
	cfg.RequireEncryption = nil
	cfg.BlockDowngrade = func(netip.Addr) bool { return true }
	if o := syn(c.now); o.ENO == nil {
		t.Fatal("a peer under block went plain on a broken path")
	}
	cfg.BlockDowngrade = nil
	if o := syn(c.now.Add(time.Hour + time.Second)); o.ENO == nil {
		t.Fatal("the broken mark did not expire")
	}
}

// TestBrokenPathNeedsNoProgress: a connection that made progress, or one
// that closed before any data, is no failure of the path.
func TestBrokenPathNeedsNoProgress(t *testing.T) {
	c := newPair(t)
	cfg := c.a.e.Config()
	cfg.Paths = testPaths()
	c.handshake()
	c.a.process(c.client.seg(packet.FlagRST|packet.FlagACK, nil, nil), c.now.Add(5*time.Second))
	if n := c.a.stats.ENOFailuresType2.Load(); n != 0 {
		t.Fatalf("type-2 failures %d after a reset before any data", n)
	}
	// A request given up at once: the peer had no time to acknowledge it.
	c.client.seq += 1000
	c.server.seq += 1000
	c.handshake()
	c.a.process(c.client.seg(packet.FlagACK|packet.FlagPSH, []byte("request"), nil), c.now)
	c.client.seq += 7
	c.a.process(c.client.seg(packet.FlagRST|packet.FlagACK, nil, nil), c.now.Add(failAfter/2))
	if n := c.a.stats.ENOFailuresType2.Load(); n != 0 {
		t.Fatalf("type-2 failures %d after a request reset at once", n)
	}
	c.client.seq += 1000
	c.server.seq += 1000
	c.handshake()
	c.a.process(c.client.seg(packet.FlagACK|packet.FlagPSH, []byte("request"), nil), c.now) // lost
	c.client.seq += 7
	// The server's answer arrives: the peer's frames progress.
	for _, p := range c.b.process(c.server.seg(packet.FlagACK|packet.FlagPSH, []byte("reply"), nil), c.now) {
		c.a.process(p, c.now)
	}
	if c.a.flow(t).Stats.PlainBytesIn != 5 {
		t.Fatalf("the reply did not arrive: %+v", c.a.flow(t).Stats)
	}
	c.a.process(c.client.seg(packet.FlagRST|packet.FlagACK, nil, nil), c.now.Add(5*time.Second))
	if n := c.a.stats.ENOFailuresType2.Load(); n != 0 {
		t.Fatalf("type-2 failures %d after a connection that made progress", n)
	}
}

// TestStalledStartIsAFailure: the LAN host retransmits its first data
// stallAfter after the key exchange with nothing acknowledged: a type-2
// failure, counted once, the flow left as it is.
func TestStalledStartIsAFailure(t *testing.T) {
	c := newPair(t)
	cfg := c.a.e.Config()
	cfg.Paths = testPaths()
	c.handshake()
	data := c.client.seg(packet.FlagACK|packet.FlagPSH, []byte("hello"), nil)
	c.a.process(data, c.now)
	c.a.process(data, c.now.Add(time.Second))
	if n := c.a.stats.ENOFailuresType2.Load(); n != 0 {
		t.Fatalf("type-2 failures %d after 1s", n)
	}
	c.a.process(data, c.now.Add(stallAfter+time.Second))
	c.a.process(data, c.now.Add(stallAfter+2*time.Second))
	if n := c.a.stats.ENOFailuresType2.Load(); n != 1 || c.a.flow(t).State != StateEncrypted {
		t.Fatalf("type-2 failures %d, state %v", n, c.a.flow(t).State)
	}
	ps := cfg.Paths.Snapshot(c.now.Add(stallAfter + 2*time.Second))
	if len(ps) != 1 || !strings.HasPrefix(ps[0].FailureProof, "nothing acknowledged by the peer") {
		t.Fatalf("paths %+v", ps)
	}
}

// TestSlowENOAnswerIsNoEvidence: the SYN-ACK that comes after the fallback
// answers an ENO SYN that was only slow: no type-1 failure is recorded.
func TestSlowENOAnswerIsNoEvidence(t *testing.T) {
	cfg := testConfig(t, lanA)
	cfg.SYNFallbackRetries = 1
	cfg.Paths = testPaths()
	a := newGW(t, cfg)
	now := time.Unix(100, 0)
	cl := &host{addr: clientAddr, peer: serverAddr, seq: 10}
	droppedENOSYNs(t, a, cl, now, 2)
	cl.seq++
	sv := &host{addr: serverAddr, peer: clientAddr, seq: 9000, ack: cl.seq}
	a.process(sv.seg(packet.FlagSYN|packet.FlagACK, nil, append(synOpts(1460), packet.OptENO, 3, 0x21, packet.OptNOP)), now.Add(2*time.Second))
	if n := a.stats.ENOFailuresType1.Load(); n != 0 || len(cfg.Paths.Snapshot(now.Add(2*time.Second))) != 0 {
		t.Fatalf("type-1 failures %d after a slow ENO answer", n)
	}
}

// TestSYNFallbackWaitsWhileTableFull: during a SYN flood that keeps the
// flow table full, the gateway itself may lose a LAN host's SYN exchange,
// which says nothing about the path: the retransmissions keep ENO
// (counted as deferred); once the table has not been full for fullHold,
// the next one falls back as usual.
func TestSYNFallbackWaitsWhileTableFull(t *testing.T) {
	const max = 64
	g, cfg := floodGW(t, max)
	cfg.SYNFallbackRetries = 2
	now := time.Unix(1000, 0)
	for i := 0; i < 2*max; i++ {
		spoofedSYN(t, g, i, now, false)
	}
	if g.stats.Evictions[EvictHalfOpen].Load() == 0 {
		t.Fatal("the flood did not fill the table")
	}
	cl := &host{addr: netip.AddrPortFrom(serverAddr.Addr(), 30000), peer: netip.MustParseAddrPort("203.0.113.7:443"), seq: 77}
	if o := droppedENOSYNs(t, g, cl, now, 4); o.ENO == nil {
		t.Fatal("a SYN fell back while the table was full")
	}
	if n, d := g.stats.SYNFallbacks.Load(), g.stats.SYNFallbacksDeferred.Load(); n != 0 || d != 2 {
		t.Fatalf("fallbacks %d, deferred %d; want 0 and 2", n, d)
	}
	_, o := mustParse(t, one(t, g.process(cl.seg(packet.FlagSYN, nil, synOpts(1460)), now.Add(fullHold+3*time.Second))))
	if o.ENO != nil || g.stats.SYNFallbacks.Load() != 1 {
		t.Fatalf("after the flood: ENO %x, fallbacks %d; want the fallback", o.ENO, g.stats.SYNFallbacks.Load())
	}
}
