package monitor

import (
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"

	"tcpcrypt-gw/gateway/packet"
)

func TestAuth(t *testing.T) {
	g := newTestGW(t, lanA)
	h := Handler(g.src, "s3cret-token")
	for _, path := range []string{"/healthz", "/api/stats", "/api/flows", "/metrics", "/"} {
		resp := get(t, h, http.MethodGet, path, "")
		wantError(t, resp, http.StatusUnauthorized, "no token "+path)
		if resp.Header.Get("WWW-Authenticate") == "" {
			t.Errorf("%s: 401 without WWW-Authenticate", path)
		}
		wantError(t, get(t, h, http.MethodGet, path, "wrong"), http.StatusUnauthorized, "wrong token "+path)
		wantError(t, get(t, h, http.MethodGet, path, "s3cret-tokenX"), http.StatusUnauthorized, "longer token "+path)
		if resp := get(t, h, http.MethodGet, path, "s3cret-token"); resp.StatusCode != http.StatusOK {
			t.Errorf("right token %s: %s", path, resp.Status)
		}
	}
	// The scheme name is case-insensitive.
	r := httptest.NewRequest(http.MethodGet, "/api/stats", nil)
	r.Header.Set("Authorization", "bearer s3cret-token")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != http.StatusOK {
		t.Errorf("lower-case scheme: %d", w.Code)
	}
	// Authentication comes before routing: unknown paths and wrong methods
	// tell nothing without the token.
	wantError(t, get(t, h, http.MethodGet, "/api/nope", ""), http.StatusUnauthorized, "unknown path without token")
	wantError(t, get(t, h, http.MethodPost, "/api/flows", ""), http.StatusUnauthorized, "POST without token")
}

// TestTokenCompareIsLengthBlind: the token check compares SHA-256 digests,
// of one length whatever the token sent, so subtle.ConstantTimeCompare
// never takes its early return on unequal lengths (which would time out
// the token's length); prefixes and extensions of the token fail.
func TestTokenCompareIsLengthBlind(t *testing.T) {
	g := newTestGW(t, lanA)
	a, ok := Handler(g.src, "s3cret-token").(*authenticator)
	if !ok {
		t.Fatal("a token-protected handler is not the authenticator")
	}
	if !a.matches("s3cret-token") {
		t.Fatal("the right token does not match")
	}
	for _, got := range []string{"", "s", "s3cret-toke", "s3cret-tokeN", "s3cret-token ", "s3cret-token\x00", strings.Repeat("s3cret-token", 400)} {
		if a.matches(got) {
			t.Errorf("%.20q matches", got)
		}
	}
}

func TestTokenQueryOnlyForThePage(t *testing.T) {
	g := newTestGW(t, lanA)
	h := Handler(g.src, "s3cret-token")
	cases := []struct {
		method, path string
		code         int
	}{
		{http.MethodGet, "/?token=s3cret-token", http.StatusOK},
		{http.MethodHead, "/?token=s3cret-token", http.StatusOK},
		{http.MethodGet, "/?token=wrong", http.StatusUnauthorized},
		{http.MethodGet, "/?token=", http.StatusUnauthorized},
		{http.MethodGet, "/?token=s3cret-token&token=s3cret-token", http.StatusUnauthorized},
		{http.MethodPost, "/?token=s3cret-token", http.StatusUnauthorized},
		{http.MethodGet, "/api/stats?token=s3cret-token", http.StatusUnauthorized},
		{http.MethodGet, "/api/flows?token=s3cret-token", http.StatusUnauthorized},
		{http.MethodGet, "/metrics?token=s3cret-token", http.StatusUnauthorized},
	}
	for _, c := range cases {
		resp := get(t, h, c.method, c.path, "")
		if resp.StatusCode != c.code {
			t.Errorf("%s %s: %d, want %d", c.method, c.path, resp.StatusCode, c.code)
		}
	}
	// A wrong header is not rescued by a right query parameter.
	resp := get(t, h, http.MethodGet, "/?token=s3cret-token", "wrong")
	wantError(t, resp, http.StatusUnauthorized, "wrong header, right query")
}

func TestNoTokenConfigured(t *testing.T) {
	g := newTestGW(t, lanA)
	h := Handler(g.src, "")
	for _, path := range []string{"/healthz", "/api/stats", "/api/flows", "/metrics", "/"} {
		if resp := get(t, h, http.MethodGet, path, ""); resp.StatusCode != http.StatusOK {
			t.Errorf("%s: %s", path, resp.Status)
		}
	}
}

func TestBadRequests(t *testing.T) {
	c := newPair(t)
	c.connect(netip.MustParseAddrPort("10.0.1.2:40000"), nil)
	h := Handler(c.a.src, "")
	for _, q := range []string{"limit=0", "limit=abc", "limit=10001", "limit=-5", "offset=-1", "offset=x", "offset=65537", "after=x", "after=-1",
		"encrypted=yes", "encrypted=1", "state=bogus", "state=ENCRYPTED", "host=" + strings.Repeat("1", 65)} {
		wantError(t, get(t, h, http.MethodGet, "/api/flows?"+q, ""), http.StatusBadRequest, q)
	}
	wantError(t, get(t, h, http.MethodGet, "/api/flows/abc", ""), http.StatusBadRequest, "flow id abc")
	wantError(t, get(t, h, http.MethodGet, "/api/flows/-1", ""), http.StatusBadRequest, "flow id -1")
	wantError(t, get(t, h, http.MethodGet, "/api/flows/999999", ""), http.StatusNotFound, "unknown flow")
	for _, p := range []string{"/api/nope", "/api/", "/api/flows/1/seq", "/nope", "/index.html", "/favicon.ico"} {
		wantError(t, get(t, h, http.MethodGet, p, ""), http.StatusNotFound, p)
	}
	for _, m := range []string{http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodPatch} {
		for _, p := range []string{"/", "/healthz", "/api/stats", "/api/flows", "/api/flows/1", "/metrics"} {
			resp := get(t, h, m, p, "")
			if allow := resp.Header.Get("Allow"); allow != "GET, HEAD" {
				t.Errorf("%s %s: Allow %q", m, p, allow)
			}
			wantError(t, resp, http.StatusMethodNotAllowed, m+" "+p)
		}
	}
}

func TestFlowsFiltersAndPagination(t *testing.T) {
	c := newPair(t)
	msg := []byte("hello through the gateways")
	c.connect(netip.MustParseAddrPort("10.0.1.2:40000"), msg)
	for i := range 3 {
		c.plain(netip.AddrPortFrom(netip.MustParseAddr("10.0.1.3"), uint16(50000+i)))
	}
	h := Handler(c.a.src, "")

	var all FlowListJSON
	getJSON(t, h, "/api/flows", &all)
	if all.Total != 4 || len(all.Flows) != 4 || all.Offset != 0 || all.Limit != DefaultLimit {
		t.Fatalf("all flows: total %d, %d flows, offset %d, limit %d", all.Total, len(all.Flows), all.Offset, all.Limit)
	}
	for i := 1; i < len(all.Flows); i++ {
		if all.Flows[i-1].ID >= all.Flows[i].ID {
			t.Fatalf("flows not sorted by ID: %d then %d", all.Flows[i-1].ID, all.Flows[i].ID)
		}
	}

	var enc FlowListJSON
	getJSON(t, h, "/api/flows?encrypted=true", &enc)
	if enc.Total != 1 || len(enc.Flows) != 1 {
		t.Fatalf("encrypted=true: %d flows", enc.Total)
	}
	fa := enc.Flows[0]
	if fa.LAN != "10.0.1.2:40000" || fa.WAN != serverAddr.String() || fa.Direction != "outbound" ||
		fa.State != "encrypted" || fa.TEP == "" || fa.Cipher == "" || len(fa.SessionID) != 66 || fa.Reason != "" {
		t.Fatalf("encrypted flow: %+v", fa)
	}
	if fa.PlainBytesOut != uint64(len(msg)) || fa.CipherBytesOut <= fa.PlainBytesOut || fa.PacketsOut == 0 {
		t.Fatalf("encrypted flow counters: %+v", fa)
	}
	if fa.Seq != nil {
		t.Fatal("the list shows sequence internals")
	}
	// Gateway B sees the same connection as inbound, with the same session ID.
	var fromB FlowListJSON
	getJSON(t, Handler(c.b.src, ""), "/api/flows", &fromB)
	if len(fromB.Flows) != 1 || fromB.Flows[0].Direction != "inbound" || fromB.Flows[0].SessionID != fa.SessionID ||
		fromB.Flows[0].PlainBytesIn != uint64(len(msg)) {
		t.Fatalf("gateway B flows: %+v (A's session %s)", fromB.Flows, fa.SessionID)
	}

	var plain FlowListJSON
	getJSON(t, h, "/api/flows?encrypted=false", &plain)
	if plain.Total != 3 {
		t.Fatalf("encrypted=false: %d flows", plain.Total)
	}
	for _, f := range plain.Flows {
		if f.Encrypted || f.State != "plain" || f.Reason != "bypass rule" || f.SessionID != "" || f.TEP != "" {
			t.Fatalf("plain flow: %+v", f)
		}
	}

	for q, want := range map[string]int{
		"state=encrypted":          1,
		"state=plain":              3,
		"state=syn-sent":           0,
		"host=:22":                 3,
		"host=10.0.1.3":            3,
		"host=10.0.1.2:40000":      1,
		"host=10.0.5.2":            4,
		"encrypted=false&host=:22": 3,
		"encrypted=true&host=:22":  0,
		"state=plain&host=:50001":  1,
	} {
		var l FlowListJSON
		getJSON(t, h, "/api/flows?"+q, &l)
		if l.Total != want || len(l.Flows) != want {
			t.Errorf("%s: total %d, %d flows; want %d", q, l.Total, len(l.Flows), want)
		}
	}

	// Pagination walks the same order as the full list.
	for _, pg := range []struct{ limit, offset, n int }{{2, 0, 2}, {2, 2, 2}, {2, 3, 1}, {3, 4, 0}, {1, 100, 0}} {
		var l FlowListJSON
		getJSON(t, h, fmt.Sprintf("/api/flows?limit=%d&offset=%d", pg.limit, pg.offset), &l)
		if l.Total != 4 || len(l.Flows) != pg.n || l.Limit != pg.limit || l.Offset != pg.offset {
			t.Errorf("limit %d offset %d: total %d, %d flows", pg.limit, pg.offset, l.Total, len(l.Flows))
			continue
		}
		for i, f := range l.Flows {
			if f.ID != all.Flows[pg.offset+i].ID {
				t.Errorf("limit %d offset %d: flow %d is ID %d, want %d", pg.limit, pg.offset, i, f.ID, all.Flows[pg.offset+i].ID)
			}
		}
	}

	// One flow by ID, with its sequence bookkeeping.
	var one FlowJSON
	getJSON(t, h, fmt.Sprintf("/api/flows/%d", fa.ID), &one)
	if one.ID != fa.ID || one.SessionID != fa.SessionID || one.Seq == nil {
		t.Fatalf("flow %d: %+v", fa.ID, one)
	}
	if one.Seq.EncPNxt != uint32(1+len(msg)) { // relative to the ISN: the SYN, then the data
		t.Errorf("flow %d: seq.EncPNxt %d, want %d", fa.ID, one.Seq.EncPNxt, 1+len(msg))
	}
	var p FlowJSON
	getJSON(t, h, fmt.Sprintf("/api/flows/%d", plain.Flows[0].ID), &p)
	if p.ID != plain.Flows[0].ID || p.Seq != nil || p.Encrypted || p.Reason != "bypass rule" {
		t.Fatalf("plain flow by ID: %+v", p)
	}
}

func TestStatsMove(t *testing.T) {
	c := newPair(t)
	h := Handler(c.a.src, "")
	var before StatsJSON
	getJSON(t, h, "/api/stats", &before)
	if before.Flows != 0 || before.FlowsEncrypted != 0 || before.PacketsIn != 0 || before.FlowsMax != 1024 ||
		len(before.FlowsByState) != len(stateNames) {
		t.Fatalf("fresh gateway: %+v", before)
	}
	msg := []byte("some bytes")
	c.connect(netip.MustParseAddrPort("10.0.1.2:40000"), msg)
	c.plain(netip.MustParseAddrPort("10.0.1.3:50000"))
	var after StatsJSON
	getJSON(t, h, "/api/stats", &after)
	if after.Flows != 2 || after.FlowsEncrypted != 1 || after.FlowsPlain != 1 ||
		after.FlowsByState["encrypted"] != 1 || after.FlowsByState["plain"] != 1 {
		t.Fatalf("after two flows: %+v", after)
	}
	if after.PacketsIn != c.a.stats.PacketsIn.Load() || after.PacketsIn == 0 || after.PacketsOut == 0 {
		t.Fatalf("packets in %d (engine %d), out %d", after.PacketsIn, c.a.stats.PacketsIn.Load(), after.PacketsOut)
	}
	if after.LivePlainBytesOut != uint64(len(msg)) || after.LiveCipherBytesOut <= after.LivePlainBytesOut {
		t.Fatalf("live bytes: plain out %d, cipher out %d", after.LivePlainBytesOut, after.LiveCipherBytesOut)
	}
	if after.UptimeSeconds < before.UptimeSeconds {
		t.Fatal("uptime went back")
	}
}

func TestDashboardPage(t *testing.T) {
	g := newTestGW(t, lanA)
	h := Handler(g.src, "")
	resp := get(t, h, http.MethodGet, "/", "")
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("GET /: %s %s", resp.Status, resp.Header.Get("Content-Type"))
	}
	page := string(body)
	for _, want := range []string{`id="flow-rows"`, `/api/flows`, `/api/stats`, `name="viewport"`, `max-width: 600px`, "icon-lock"} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if strings.Contains(page, "/*STYLE*/") || strings.Contains(page, "/*SCRIPT*/") {
		t.Error("assets not inlined")
	}
	// No external resource: nothing is loaded from another origin.
	for _, bad := range []string{` src=`, `rel="stylesheet"`, `@import`, `url(`, `//fonts.`, `https://`} {
		if strings.Contains(page, bad) {
			t.Errorf("page contains %q", bad)
		}
	}
	if rp := resp.Header.Get("Referrer-Policy"); rp != "no-referrer" {
		t.Errorf("Referrer-Policy %q", rp)
	}
	csp := resp.Header.Get("Content-Security-Policy")
	if !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "connect-src 'self'") {
		t.Errorf("CSP %q", csp)
	}
	// The inlined script and style are exactly what the CSP hashes allow.
	for _, tag := range []string{"script", "style"} {
		start := strings.Index(page, "<"+tag+">")
		end := strings.Index(page, "</"+tag+">")
		if start < 0 || end < start {
			t.Fatalf("no <%s>", tag)
		}
		if !strings.Contains(csp, tag+"-src "+sha256CSP(page[start+len(tag)+2:end])) {
			t.Errorf("CSP %q does not allow the inlined %s", csp, tag)
		}
	}
	if resp := get(t, h, http.MethodHead, "/", ""); resp.StatusCode != http.StatusOK {
		t.Errorf("HEAD /: %s", resp.Status)
	} else if b, _ := io.ReadAll(resp.Body); len(b) != 0 {
		t.Errorf("HEAD / has a %d-byte body", len(b))
	}
}

// sha256CSP is a CSP hash source (CSP Level 3 §2.3.1) for s.
func sha256CSP(s string) string {
	h := sha256.Sum256([]byte(s))
	return "'sha256-" + base64.StdEncoding.EncodeToString(h[:]) + "'"
}

// TestRequestsDuringTraffic reads every endpoint while the engine creates
// flows (run with -race: the handlers must take the shard locks).
func TestRequestsDuringTraffic(t *testing.T) {
	c := newPair(t)
	c.connect(netip.MustParseAddrPort("10.0.1.2:40000"), []byte("x"))
	h := Handler(c.a.src, "")
	const flows = 300
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range flows {
			cl := &host{addr: netip.AddrPortFrom(netip.MustParseAddr("10.0.1.9"), uint16(1000+i)), peer: serverAddr, seq: 1}
			c.a.process(cl.seg(packet.FlagSYN, nil, synOpts))
		}
	}()
	paths := []string{"/api/flows?limit=50", "/api/stats", "/metrics", "/api/flows/1", "/api/flows?state=syn-sent&host=10.0.1.9"}
	for i := 0; ; i++ {
		resp := get(t, h, http.MethodGet, paths[i%len(paths)], "")
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: %s", paths[i%len(paths)], resp.Status)
		}
		select {
		case <-done:
			var l FlowListJSON
			getJSON(t, h, "/api/flows?state=syn-sent", &l)
			if l.Total != flows {
				t.Fatalf("%d flows in syn-sent, want %d", l.Total, flows)
			}
			return
		default:
		}
		if i > 100000 {
			t.Fatal("the engine goroutine did not finish")
		}
	}
}
