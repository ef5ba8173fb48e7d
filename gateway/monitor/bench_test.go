package monitor

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"

	"tcpcrypt-gw/gateway/packet"
)

// benchGW is a gateway A with n half-open flows (SYNs sent), as under a
// SYN flood: the largest tables the handlers walk.
func benchGW(b *testing.B, n int) *testGW {
	g := newTestGWSized(b, n)
	for i := range n {
		cl := &host{addr: netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, 1, byte(2 + i>>16)}), uint16(i)), peer: serverAddr, seq: 1}
		g.process(cl.seg(packet.FlagSYN, nil, synOpts))
	}
	if g.table.Len() != n {
		b.Fatalf("%d flows, want %d", g.table.Len(), n)
	}
	return g
}

func BenchmarkStats64k(b *testing.B) {
	g := benchGW(b, 65536)
	h := Handler(g.src, "")
	b.ResetTimer()
	for b.Loop() {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/api/stats", nil))
	}
}

func BenchmarkMetrics64k(b *testing.B) {
	g := benchGW(b, 65536)
	h := Handler(g.src, "")
	b.ResetTimer()
	for b.Loop() {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	}
}

func BenchmarkFlowsPage64k(b *testing.B) {
	g := benchGW(b, 65536)
	h := Handler(g.src, "")
	b.ResetTimer()
	for b.Loop() {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/api/flows?limit=500", nil))
	}
}
