package lanapi

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
	"time"

	"tcpcrypt-gw/flowtable"
	"tcpcrypt-gw/gateway/engine"
)

var (
	hostA = netip.MustParseAddrPort("192.168.1.7:40000")
	hostB = netip.MustParseAddrPort("192.168.1.8:40001")
	peer  = netip.MustParseAddrPort("203.0.113.5:443")
)

// newSource holds one flow of hostA and one of hostB (plain: a flow's keys
// exist only in the engine; the e2e tests check encrypted answers).
func newSource(t *testing.T) *Source {
	tb := flowtable.New[*engine.Flow](flowtable.Config{Shards: 4, MaxFlows: 16, MaxBytesTotal: 1 << 20})
	for _, f := range []*engine.Flow{
		{Role: engine.RoleA, State: engine.StatePassthrough, Reason: "downgrade suspected: peer did not answer ENO", Downgrade: true, LAN: hostA, WAN: peer},
		{Role: engine.RoleA, State: engine.StatePassthrough, Reason: "peer did not answer ENO", LAN: hostB, WAN: peer},
	} {
		k := flowtable.Key{LAN: f.LAN, WAN: f.WAN}
		i := tb.Shard(k)
		tb.LockShard(i)
		if _, err := tb.Insert(i, k, f, time.Now()); err != nil {
			t.Fatal(err)
		}
		tb.UnlockShard(i)
	}
	return &Source{Table: tb}
}

func get(t *testing.T, h http.Handler, method, from, query string) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest(method, "http://gw:8474"+query, nil)
	r.RemoteAddr = from
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func TestOwnConnection(t *testing.T) {
	h := Handler(newSource(t))
	// Any source port; the address must be the connection's own. An
	// IPv4-mapped source (a dual-stack listener) counts as IPv4.
	for _, from := range []string{"192.168.1.7:55555", "[::ffff:192.168.1.7]:55555"} {
		w := get(t, h, "GET", from, "/session?local=192.168.1.7:40000&remote=203.0.113.5:443")
		if w.Code != 200 {
			t.Fatalf("from %s: %d %s", from, w.Code, w.Body)
		}
		var s Session
		if err := json.Unmarshal(w.Body.Bytes(), &s); err != nil {
			t.Fatal(err)
		}
		if s.Local != hostA.String() || s.Remote != peer.String() || s.State != "plain" || s.Encrypted || s.SessionID != "" ||
			!s.DowngradeSuspected || s.Reason == "" {
			t.Fatalf("answer %+v", s)
		}
	}
}

func TestOtherHostGetsTheUnknownAnswer(t *testing.T) {
	h := Handler(newSource(t))
	unknown := get(t, h, "GET", "192.168.1.7:1", "/session?local=192.168.1.7:40999&remote=203.0.113.5:443")
	other := get(t, h, "GET", "192.168.1.7:1", "/session?local=192.168.1.8:40001&remote=203.0.113.5:443")
	if unknown.Code != http.StatusNotFound || other.Code != unknown.Code || other.Body.String() != unknown.Body.String() {
		t.Fatalf("unknown: %d %q; another host's: %d %q", unknown.Code, unknown.Body, other.Code, other.Body)
	}
	for k, v := range unknown.Header() {
		if other.Header().Get(k) != v[0] {
			t.Errorf("header %s differs: %q vs %q", k, v, other.Header().Get(k))
		}
	}
	// hostB itself does get its answer.
	if w := get(t, h, "GET", "192.168.1.8:2", "/session?local=192.168.1.8:40001&remote=203.0.113.5:443"); w.Code != 200 {
		t.Fatalf("hostB about its own connection: %d", w.Code)
	}
}

func TestBadRequests(t *testing.T) {
	h := Handler(newSource(t))
	for _, c := range []struct {
		method, query string
		code          int
	}{
		{"GET", "/session?local=192.168.1.7&remote=203.0.113.5:443", 400},
		{"GET", "/session?local=192.168.1.7:40000&remote=", 400},
		{"GET", "/session?local=192.168.1.7:0&remote=203.0.113.5:443", 400},
		{"GET", "/session", 400},
		{"POST", "/session?local=192.168.1.7:40000&remote=203.0.113.5:443", 405},
		{"GET", "/api/flows", 404},
	} {
		w := get(t, h, c.method, "192.168.1.7:1", c.query)
		var e Error
		if w.Code != c.code || json.Unmarshal(w.Body.Bytes(), &e) != nil || e.Error == "" {
			t.Errorf("%s %s: %d %q, want %d with a JSON error", c.method, c.query, w.Code, w.Body, c.code)
		}
	}
}
