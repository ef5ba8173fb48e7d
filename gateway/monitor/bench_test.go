package monitor

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"

	"tcpcrypt-gw/gateway/packet"
)

// benchGW is a gateway A with n half-open flows (SYNs sent), as under a
// SYN flood: the largest tables the handlers walk.
func benchGW(b testing.TB, n int) *testGW {
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

// BenchmarkFlowsPage64k is the dashboard's poll (one page of 500 flows)
// against a table of 64k flows; the body is counted and discarded, as a
// socket would take it, so B/op is what the handler itself allocates
// (docs/monitoring.md states it). A deep page, by cursor, costs the same.
func BenchmarkFlowsPage64k(b *testing.B) {
	g := benchGW(b, 65536)
	h := Handler(g.src, "")
	for _, path := range []string{"/api/flows?limit=500", "/api/flows?limit=500&after=60000"} {
		b.Run(path[len("/api/flows?"):], func(b *testing.B) {
			var w discardWriter
			b.ReportAllocs()
			for b.Loop() {
				w.n = 0
				h.ServeHTTP(&w, httptest.NewRequest(http.MethodGet, path, nil))
			}
			if w.n < 500*200 {
				b.Fatalf("a page of %d bytes", w.n)
			}
			b.ReportMetric(float64(w.n), "body-bytes")
		})
	}
}

// discardWriter is an http.ResponseWriter that counts the body.
type discardWriter struct {
	hdr http.Header
	n   int
}

func (w *discardWriter) Header() http.Header {
	if w.hdr == nil {
		w.hdr = http.Header{}
	}
	return w.hdr
}
func (w *discardWriter) Write(p []byte) (int, error) { w.n += len(p); return len(p), nil }
func (w *discardWriter) WriteHeader(int)             {}

// TestExhaustFlowsPagesByCursor: with a table of 3,000 flows, pages of 128 by cursor (after=next) return every flow exactly
// once, in ID order, each page with the same total, and the last page
// with next 0; a filtered walk counts only its matches.
func TestExhaustFlowsPagesByCursor(t *testing.T) {
	const n = 3000
	g := benchGW(t, n)
	h := Handler(g.src, "")
	var ids []uint64
	after := uint64(0)
	for pages := 0; ; pages++ {
		if pages > n/128+1 {
			t.Fatalf("%d pages and still a next cursor", pages)
		}
		var l FlowListJSON
		getJSON(t, h, fmt.Sprintf("/api/flows?limit=128&after=%d", after), &l)
		if l.Total != n-len(ids) || l.After != after {
			t.Fatalf("page %d: total %d after %d, want %d after %d", pages, l.Total, l.After, n-len(ids), after)
		}
		for _, f := range l.Flows {
			if len(ids) > 0 && f.ID <= ids[len(ids)-1] {
				t.Fatalf("page %d: ID %d after %d", pages, f.ID, ids[len(ids)-1])
			}
			ids = append(ids, f.ID)
		}
		if l.Next == 0 {
			break
		}
		if l.Next != ids[len(ids)-1] || len(l.Flows) != 128 {
			t.Fatalf("page %d: next %d, last ID %d, %d flows", pages, l.Next, ids[len(ids)-1], len(l.Flows))
		}
		after = l.Next
	}
	if len(ids) != n {
		t.Fatalf("the walk saw %d flows of %d", len(ids), n)
	}
	var l FlowListJSON
	getJSON(t, h, "/api/flows?limit=10&host=10.0.1.2:1", &l) // ports 1, 10-19, 100-199, 1000-1999
	if l.Total != 1+10+100+1000 || len(l.Flows) != 10 || l.Next != l.Flows[9].ID {
		t.Fatalf("filtered: total %d, %d flows, next %d", l.Total, len(l.Flows), l.Next)
	}
}
