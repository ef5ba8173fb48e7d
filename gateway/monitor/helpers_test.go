package monitor

// Test fixtures: two real engines back to back (gateway A in front of a
// client, gateway B in front of a server) and scripted TCP segments from the
// two hosts, so that the flow tables hold real encrypted and plain flows.

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
	"time"

	"tcpcrypt-gw/crypto/tcpcrypt"
	"tcpcrypt-gw/flowtable"
	"tcpcrypt-gw/gateway/engine"
	"tcpcrypt-gw/gateway/packet"
)

var (
	lanA       = netip.MustParsePrefix("10.0.1.0/24")
	lanB       = netip.MustParsePrefix("10.0.5.0/24")
	serverAddr = netip.MustParseAddrPort("10.0.5.2:80")
	bypassPort = uint16(22)
)

type testGW struct {
	e     *engine.Engine
	table *flowtable.Table[*engine.Flow]
	stats *engine.Stats
	out   engine.Output
	src   *Source
}

func newTestGW(t testing.TB, lan netip.Prefix) *testGW { return newGWWithTable(t, lan, 1024) }

// newTestGWSized is gateway A with room for n flows.
func newTestGWSized(t testing.TB, n int) *testGW { return newGWWithTable(t, lanA, n) }

func newGWWithTable(t testing.TB, lan netip.Prefix, maxFlows int) *testGW {
	keys := tcpcrypt.NewKeyPool([]tcpcrypt.TEP{tcpcrypt.TEPCurve25519}, time.Minute)
	t.Cleanup(keys.Close)
	cfg := &engine.Config{
		IsLAN:            lan.Contains,
		Bypass:           func(l, w netip.AddrPort) bool { return l.Port() == bypassPort || w.Port() == bypassPort },
		TEPs:             []tcpcrypt.TEP{tcpcrypt.TEPCurve25519},
		Ciphers:          []tcpcrypt.AEADID{tcpcrypt.AES128GCM},
		Keys:             keys,
		InitTimeout:      10 * time.Second,
		HandshakeTimeout: 30 * time.Second,
		IdleTimeout:      time.Hour,
		ClosingTimeout:   time.Minute,
		MaxBufferPerFlow: 1 << 20,
	}
	tb := flowtable.New[*engine.Flow](flowtable.Config{Shards: 1, MaxFlows: maxFlows, MaxBytesTotal: 64 << 20})
	st := new(engine.Stats)
	return &testGW{e: engine.New(cfg, tb, 0, st), table: tb, stats: st, out: engine.Output{Offset: 0},
		src: &Source{Table: tb, Shards: 1, Stats: st, Start: time.Now()}}
}

// process runs one packet through the engine and returns copies of what it sent.
func (g *testGW) process(pkt []byte) [][]byte {
	lk := g.e.Lock(time.Now(), &g.out)
	lk.Process(append([]byte(nil), pkt...))
	lk.Unlock()
	var res [][]byte
	for _, b := range g.out.Packets() {
		res = append(res, append([]byte(nil), b[g.out.Offset:]...))
	}
	g.out.Reset()
	return res
}

// host builds the segments of one end of a connection.
type host struct {
	addr, peer netip.AddrPort
	seq, ack   uint32
}

func (h *host) seg(flags uint8, payload, opts []byte) []byte {
	hd := packet.Header{Src: h.addr.Addr(), Dst: h.peer.Addr(), SrcPort: h.addr.Port(), DstPort: h.peer.Port(),
		Seq: h.seq, Ack: h.ack, Flags: flags, Window: 5000, TTL: 64, Options: opts, Payload: payload}
	return packet.Build(make([]byte, hd.Len()), &hd)
}

var synOpts = []byte{packet.OptMSS, 4, 0x05, 0xb4, packet.OptNOP, packet.OptNOP, packet.OptSACKPerm, 2}

func parse(t testing.TB, b []byte) packet.Packet {
	t.Helper()
	p, err := packet.Parse(b)
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	return p
}

func only(t testing.TB, pkts [][]byte) []byte {
	t.Helper()
	if len(pkts) != 1 {
		t.Fatalf("want 1 packet, got %d", len(pkts))
	}
	return pkts[0]
}

// pair is client - A - B - server.
type pair struct {
	t    *testing.T
	a, b *testGW
}

func newPair(t *testing.T) *pair {
	return &pair{t: t, a: newTestGW(t, lanA), b: newTestGW(t, lanB)}
}

// connect opens an encrypted connection from client to the server and
// sends msg over it; it returns the client end.
func (c *pair) connect(client netip.AddrPort, msg []byte) *host {
	t := c.t
	t.Helper()
	cl := &host{addr: client, peer: serverAddr, seq: 1000}
	sv := &host{addr: serverAddr, peer: client, seq: 7000}
	srvSYN := parse(t, only(t, c.b.process(only(t, c.a.process(cl.seg(packet.FlagSYN, nil, synOpts))))))
	cl.seq++
	sv.ack = srvSYN.Seq + 1
	synack := sv.seg(packet.FlagSYN|packet.FlagACK, nil, synOpts)
	sv.seq++
	cliSYNACK := parse(t, only(t, c.a.process(only(t, c.b.process(synack)))))
	cl.ack = cliSYNACK.Seq + 1
	init1 := only(t, c.a.process(cl.seg(packet.FlagACK, nil, nil)))
	var init2 []byte
	for _, q := range c.b.process(init1) {
		if parse(t, q).Dst != serverAddr.Addr() {
			init2 = q
		}
	}
	if init2 == nil {
		t.Fatal("gateway B sent no Init2")
	}
	c.a.process(init2)
	if len(msg) > 0 {
		got := parse(t, only(t, c.b.process(only(t, c.a.process(cl.seg(packet.FlagACK|packet.FlagPSH, msg, nil))))))
		if string(got.Payload()) != string(msg) {
			t.Fatalf("server got %q, want %q", got.Payload(), msg)
		}
		cl.seq += uint32(len(msg))
	}
	return cl
}

// plain opens a connection to the bypass port through gateway A only: the
// SYN and SYN-ACK pass unchanged.
func (c *pair) plain(client netip.AddrPort) {
	t := c.t
	t.Helper()
	server := netip.AddrPortFrom(serverAddr.Addr(), bypassPort)
	cl := &host{addr: client, peer: server, seq: 1}
	syn := cl.seg(packet.FlagSYN, nil, synOpts)
	if got := only(t, c.a.process(syn)); string(got) != string(syn) {
		t.Fatal("a bypassed SYN was changed")
	}
}

// get requests path from h with an optional bearer token.
func get(t testing.TB, h http.Handler, method, path, token string) *http.Response {
	t.Helper()
	r := httptest.NewRequest(method, path, nil)
	if token != "" {
		r.Header.Set("Authorization", "Bearer "+token)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w.Result()
}

// getJSON requests path, wants 200 and decodes the body into v.
func getJSON(t testing.TB, h http.Handler, path string, v any) {
	t.Helper()
	resp := get(t, h, http.MethodGet, path, "")
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s: %s", path, resp.Status, body)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("GET %s: Content-Type %q", path, ct)
	}
	if err := json.Unmarshal(body, v); err != nil {
		t.Fatalf("GET %s: %v in %s", path, err, body)
	}
}

// wantError checks an error response: the status and a JSON body with a
// non-empty error.
func wantError(t testing.TB, resp *http.Response, code int, what string) {
	t.Helper()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != code {
		t.Errorf("%s: status %d, want %d (%s)", what, resp.StatusCode, code, body)
		return
	}
	var e ErrorJSON
	if err := json.Unmarshal(body, &e); err != nil || e.Error == "" {
		t.Errorf("%s: body %q is not a JSON error (%v)", what, body, err)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("%s: Content-Type %q", what, ct)
	}
}
