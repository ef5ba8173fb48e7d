package monitor

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"tcpcrypt-gw/gateway/downgrade"
)

// TestPathsEndpoint: /api/paths lists what the memory of RFC 8547 §9
// failures holds, with the evidence; without a memory, an empty list.
func TestPathsEndpoint(t *testing.T) {
	g := newTestGW(t, lanA)
	get := func() (int, PathsJSON, string) {
		rec := httptest.NewRecorder()
		Handler(g.src, "").ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/api/paths", nil))
		var p PathsJSON
		json.Unmarshal(rec.Body.Bytes(), &p)
		return rec.Code, p, rec.Body.String()
	}
	if code, p, body := get(); code != 200 || p.Paths == nil || len(p.Paths) != 0 || !strings.Contains(body, `"paths": []`) {
		t.Fatalf("without a memory: %d %s", code, body)
	}
	g.src.Paths = downgrade.NewPaths(downgrade.PathConfig{Max: 4, TTL: time.Hour, Window: time.Minute, Threshold: 2})
	peer := netip.MustParseAddr("198.51.100.7")
	now := time.Now()
	g.src.Paths.Failure(peer, now, "the peer reset the connection")
	g.src.Paths.Failure(peer, now, "the LAN host reset the connection")
	code, p, body := get()
	if code != 200 || len(p.Paths) != 1 || p.Paths[0].Addr != peer || p.Paths[0].Failures != 2 || p.Paths[0].BrokenUntil.IsZero() ||
		!strings.Contains(body, `"failure_evidence": "the LAN host reset the connection"`) || strings.Contains(body, "last_fallback") {
		t.Fatalf("%d %s", code, body)
	}
	rec := httptest.NewRecorder()
	Handler(g.src, "").ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if !strings.Contains(rec.Body.String(), "\ntcpcrypt_gw_broken_paths 1\n") {
		t.Fatal("the broken path is not in /metrics")
	}
}
