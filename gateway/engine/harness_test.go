// The test harness: two engines back to back, gateway A in front of a
// client and gateway B in front of a server, with scripted TCP segments
// from the two hosts (engine_test.go and the other tests use it).

package engine

import (
	"bytes"
	"net/netip"
	"tcpcrypt-gw/crypto/tcpcrypt"
	"tcpcrypt-gw/eno"
	"tcpcrypt-gw/flowtable"
	"tcpcrypt-gw/gateway/packet"
	"testing"
	"time"
)

var (
	clientAddr = netip.MustParseAddrPort("10.0.1.2:40000")
	serverAddr = netip.MustParseAddrPort("10.0.5.2:80")
	lanA       = netip.MustParsePrefix("10.0.1.0/24")
	lanB       = netip.MustParsePrefix("10.0.5.0/24")
)

func testConfig(t testing.TB, lan netip.Prefix) *Config {
	keys := tcpcrypt.NewKeyPool([]tcpcrypt.TEP{tcpcrypt.TEPCurve25519, tcpcrypt.TEPP256}, time.Minute)
	t.Cleanup(keys.Close)
	return &Config{
		IsLAN:            lan.Contains,
		TEPs:             []tcpcrypt.TEP{tcpcrypt.TEPCurve25519, tcpcrypt.TEPP256},
		Ciphers:          []tcpcrypt.AEADID{tcpcrypt.AES128GCM, tcpcrypt.ChaCha20Poly1305},
		Keys:             keys,
		InitTimeout:      10 * time.Second,
		HandshakeTimeout: 30 * time.Second,
		IdleTimeout:      time.Hour,
		ClosingTimeout:   time.Minute,
		MaxBufferPerFlow: 1 << 20,
		ResumeNonceLen:   8,
	}
}

type gw struct {
	client netip.AddrPort // the client end of the scripted connection
	e      *Engine
	table  *flowtable.Table[*Flow]
	stats  *Stats
	out    Output
	lent   int // slices lent into out (processOffload with Output.Lend)
}

// at is the context of a packet at now, for calling the engine's internals
// (a new output batch: what they send is not looked at).
func (g *gw) at(now time.Time) *pkt {
	cfg := g.e.Config()
	return &pkt{Engine: g.e, cfg: cfg, dirLimit: dirLimit(cfg), now: now, out: new(Output)}
}

func newGW(t testing.TB, cfg *Config) *gw { return newGWFlows(t, cfg, 1024) }

// newGWFlows is newGW with room for maxFlows flows.
func newGWFlows(t testing.TB, cfg *Config, maxFlows int) *gw {
	tb := flowtable.New[*Flow](flowtable.Config{Shards: 1, MaxFlows: maxFlows, MaxBytesTotal: 64 << 20})
	st := new(Stats)
	return &gw{client: clientAddr, e: New(cfg, tb, 0, st), table: tb, stats: st, out: Output{Offset: 4}}
}

// process runs one packet through the engine and returns copies of what it sent.
func (g *gw) process(pkt []byte, now time.Time) [][]byte {
	lk := g.e.Lock(now, &g.out)
	lk.Process(append([]byte(nil), pkt...))
	lk.Unlock()
	return g.sent()
}

// sent returns copies of the packets in the output batch, and empties it.
func (g *gw) sent() [][]byte {
	var res [][]byte
	for _, b := range g.out.Packets() {
		res = append(res, append([]byte(nil), b[g.out.Offset:]...))
	}
	g.out.Reset()
	return res
}

func (g *gw) flow(t testing.TB) *Flow {
	t.Helper()
	en, ok := g.table.Get(0, flowtable.Key{LAN: g.lanEnd(), WAN: g.wanEnd()})
	if !ok {
		t.Fatal("no flow")
	}
	return en.Value
}

func (g *gw) lanEnd() netip.AddrPort {
	if g.e.Config().IsLAN(clientAddr.Addr()) {
		return g.client
	}
	return serverAddr
}

func (g *gw) wanEnd() netip.AddrPort {
	if g.e.Config().IsLAN(clientAddr.Addr()) {
		return serverAddr
	}
	return g.client
}

// host builds segments from one end.
type host struct {
	addr, peer netip.AddrPort
	seq, ack   uint32
	tsval      uint32
}

func (h *host) seg(flags uint8, payload []byte, opts []byte) []byte {
	if opts == nil {
		var ow packet.OptionWriter
		ow.Timestamp(h.tsval, 1)
		opts = append([]byte(nil), ow.Bytes()...)
	}
	hd := packet.Header{Src: h.addr.Addr(), Dst: h.peer.Addr(), SrcPort: h.addr.Port(), DstPort: h.peer.Port(),
		Seq: h.seq, Ack: h.ack, Flags: flags, Window: 5000, TTL: 64, Options: opts, Payload: payload}
	h.tsval++
	b := make([]byte, hd.Len())
	return packet.Build(b, &hd)
}

func synOpts(mss uint16) []byte {
	return []byte{packet.OptMSS, 4, byte(mss >> 8), byte(mss), packet.OptSACKPerm, 2, packet.OptTimestamp, 10, 0, 0, 0, 1, 0, 0, 0, 0, packet.OptNOP, packet.OptWScale, 3, 7}
}

func mustParse(t testing.TB, b []byte) (packet.Packet, packet.Options) {
	t.Helper()
	p, err := packet.Parse(b)
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	if !p.VerifyChecksum() {
		t.Fatalf("bad checksum on %x", b)
	}
	o, err := packet.ParseOptions(p.Options())
	if err != nil {
		t.Fatalf("options: %v", err)
	}
	return p, o
}

func one(t testing.TB, pkts [][]byte) []byte {
	t.Helper()
	if len(pkts) != 1 {
		t.Fatalf("want 1 packet, got %d", len(pkts))
	}
	return pkts[0]
}

// pair is the scripted connection client - A - B - server.
type pair struct {
	t              *testing.T
	a, b           *gw
	client, server *host
	now            time.Time
	// held, if set, is sent by the client right after its ACK of the
	// SYN-ACK, before the keys exist (handshake); initAck is what gateway
	// A sent after Init2.
	held    []byte
	initAck []byte
	// afterInit2, if set, is sent by the client just after Init2 reached
	// gateway A (handshake): its frame acknowledges Init2. Otherwise Tick
	// does, and ackByTick says so.
	afterInit2 []byte
	ackByTick  bool
}

func newPair(t *testing.T) *pair {
	return &pair{t: t, a: newGW(t, testConfig(t, lanA)), b: newGW(t, testConfig(t, lanB)),
		client: &host{addr: clientAddr, peer: serverAddr, seq: 1000}, server: &host{addr: serverAddr, peer: clientAddr, seq: 5000},
		now: time.Unix(1000, 0)}
}

// handshake runs SYN, SYN-ACK, ACK and the Init exchange.
func (c *pair) handshake() {
	t := c.t
	syn := c.client.seg(packet.FlagSYN, nil, synOpts(1460))
	wanSYN := one(t, c.a.process(syn, c.now))
	_, o := mustParse(t, wanSYN)
	if o.ENO == nil {
		t.Fatal("gateway A did not add ENO to the SYN")
	}
	offer, err := eno.ParseSYNOption(o.ENO)
	// The configured TEPs, in preference order; a resumption suboption
	// goes last.
	resuming := len(offer.TEPs) > 0 && offer.TEPs[len(offer.TEPs)-1].HasData
	teps := c.a.e.Config().TEPs
	if err != nil || len(offer.TEPs) != len(teps) || !resuming && offer.TEPs[0].TEP != byte(teps[0]) {
		t.Fatalf("offer %+v err %v", offer, err)
	}
	srvSYN := one(t, c.b.process(wanSYN, c.now))
	p, o := mustParse(t, srvSYN)
	if o.ENO != nil {
		t.Fatal("ENO reached the LAN server")
	}
	if o.MSS != 1460-tcpcrypt.FrameOverhead {
		t.Fatalf("SYN MSS to LAN server = %d, want clamped %d", o.MSS, 1460-tcpcrypt.FrameOverhead)
	}
	c.client.seq++
	c.server.ack = p.Seq + 1
	synack := c.server.seg(packet.FlagSYN|packet.FlagACK, nil, synOpts(1460))
	c.server.seq++
	wanSYNACK := one(t, c.b.process(synack, c.now))
	_, o = mustParse(t, wanSYNACK)
	ans, err := eno.ParseSYNOption(o.ENO)
	if err != nil || !ans.Passive() || len(ans.TEPs) != 1 {
		t.Fatalf("answer %+v err %v", ans, err)
	}
	cliSYNACK := one(t, c.a.process(wanSYNACK, c.now))
	p, o = mustParse(t, cliSYNACK)
	if o.ENO != nil || o.MSS != 1460-tcpcrypt.FrameOverhead {
		t.Fatalf("SYN-ACK to client: ENO %x MSS %d", o.ENO, o.MSS)
	}
	c.client.ack = p.Seq + 1
	ack := c.client.seg(packet.FlagACK, nil, nil)
	init1 := one(t, c.a.process(ack, c.now))
	if c.held != nil {
		if held := c.a.process(c.client.seg(packet.FlagACK|packet.FlagPSH, c.held, nil), c.now); len(held) != 0 {
			t.Fatalf("data before the keys: %d packets sent", len(held))
		}
	}
	p, o = mustParse(t, init1)
	if o.ENO == nil || len(o.ENO) != 2 || len(p.Payload()) == 0 {
		t.Fatalf("Init1 segment: ENO %x payload %d", o.ENO, len(p.Payload()))
	}
	if p.Seq != c.client.seq {
		t.Fatalf("Init1 seq %d want %d", p.Seq, c.client.seq)
	}
	outs := c.b.process(init1, c.now)
	var toServer, toWAN [][]byte
	for _, q := range outs {
		qp, _ := mustParse(t, q)
		if qp.Dst == serverAddr.Addr() {
			toServer = append(toServer, q)
		} else {
			toWAN = append(toWAN, q)
		}
	}
	if len(toServer) != 1 || len(toWAN) != 1 {
		t.Fatalf("B after Init1: %d to server, %d to WAN", len(toServer), len(toWAN))
	}
	sp, so := mustParse(t, toServer[0])
	if len(sp.Payload()) != 0 || so.ENO != nil || sp.Seq != c.client.seq || sp.Ack != c.server.seq {
		t.Fatalf("ACK to server: payload %d ENO %x seq %d ack %d", len(sp.Payload()), so.ENO, sp.Seq, sp.Ack)
	}
	init2 := toWAN[0]
	ip, _ := mustParse(t, init2)
	if ip.Ack != c.client.seq+uint32(len(p.Payload())) {
		t.Fatalf("Init2 acks %d, want end of Init1 %d", ip.Ack, c.client.seq+uint32(len(p.Payload())))
	}
	outs = c.a.process(init2, c.now)
	data := c.held
	if c.held == nil {
		// No data to carry the ACK of Init2: A waits for the LAN host's
		// next segment, or the next Tick sends it alone (gotInit2).
		if len(outs) != 0 {
			t.Fatalf("A after Init2, holding nothing: %d packets", len(outs))
		}
		if data = c.afterInit2; data != nil {
			outs = c.a.process(c.client.seg(packet.FlagACK|packet.FlagPSH, data, nil), c.now)
		} else {
			outs, c.ackByTick = c.a.tick(c.now), true
		}
	}
	if len(outs) != 1 {
		t.Fatalf("A after Init2: %d packets", len(outs))
	}
	ap, _ := mustParse(t, outs[0])
	if ap.Dst != serverAddr.Addr() || ap.Ack != c.server.seq+uint32(len(ip.Payload())) {
		t.Fatalf("A's ACK of Init2: dst %v ack %d", ap.Dst, ap.Ack)
	}
	want := 0 // a pure ACK, or the data's frame, which acknowledges Init2 too
	if data != nil {
		want = len(data) + tcpcrypt.FrameOverhead
		c.client.seq += uint32(len(data))
	}
	if len(ap.Payload()) != want {
		t.Fatalf("A's only packet after Init2 carries %d bytes, want %d", len(ap.Payload()), want)
	}
	c.initAck = outs[0]
	fa, fb := c.a.flow(t), c.b.flow(t)
	if fa.State != StateEncrypted || fb.State != StateEncrypted {
		t.Fatalf("states %v %v", fa.State, fb.State)
	}
	if !bytes.Equal(fa.sessionID, fb.sessionID) || len(fa.sessionID) != 33 {
		t.Fatalf("session IDs differ: %x %x", fa.sessionID, fb.sessionID)
	}
}
