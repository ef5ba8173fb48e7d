package monitor

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"tcpcrypt-gw/crypto/tcpcrypt"
)

// setTEPs makes g offer (as A) and prefer (as B) teps, in this order.
func (g *testGW) setTEPs(t *testing.T, teps ...tcpcrypt.TEP) {
	keys := tcpcrypt.NewKeyPool(teps, time.Minute)
	t.Cleanup(keys.Close)
	cfg := g.e.Config()
	cfg.TEPs, cfg.Keys = teps, keys
}

// TestPostQuantumShown: a flow keyed by x25519mlkem768 and one keyed by
// curve25519 through the same gateway: /api/flows and /api/flows/{id}
// mark the first post_quantum only, /api/stats and /metrics count it.
func TestPostQuantumShown(t *testing.T) {
	c := newPair(t)
	c.a.setTEPs(t, tcpcrypt.TEPX25519MLKEM768, tcpcrypt.TEPCurve25519)
	c.b.setTEPs(t, tcpcrypt.TEPX25519MLKEM768, tcpcrypt.TEPCurve25519)
	c.connect(netip.MustParseAddrPort("10.0.1.2:40000"), []byte("post-quantum"))
	c.b.setTEPs(t, tcpcrypt.TEPCurve25519) // B no longer knows the hybrid TEP
	c.connect(netip.MustParseAddrPort("10.0.1.2:40001"), []byte("classical"))
	h := Handler(c.a.src, "")

	var list FlowListJSON
	getJSON(t, h, "/api/flows?encrypted=true", &list)
	if len(list.Flows) != 2 {
		t.Fatalf("%d encrypted flows, want 2", len(list.Flows))
	}
	for _, f := range list.Flows {
		pq := f.LAN == "10.0.1.2:40000"
		wantTEP := map[bool]string{true: "x25519mlkem768", false: "curve25519"}[pq]
		if f.PostQuantum != pq || f.TEP != wantTEP {
			t.Errorf("flow %s: tep %s post_quantum %v, want %s %v", f.LAN, f.TEP, f.PostQuantum, wantTEP, pq)
		}
		var one FlowJSON
		getJSON(t, h, fmt.Sprintf("/api/flows/%d", f.ID), &one)
		if one.PostQuantum != pq {
			t.Errorf("/api/flows/%d: post_quantum %v, want %v", f.ID, one.PostQuantum, pq)
		}
	}
	var st StatsJSON
	getJSON(t, h, "/api/stats", &st)
	if st.FlowsEncrypted != 2 || st.FlowsPostQuantum != 1 || st.FlowsPostQuantumNow != 1 {
		t.Errorf("stats: flows_encrypted %d flows_post_quantum %d flows_post_quantum_now %d, want 2 1 1", st.FlowsEncrypted, st.FlowsPostQuantum, st.FlowsPostQuantumNow)
	}
	fams := scrape(t, h)
	if got := value(t, fams, "tcpcrypt_gw_flows_post_quantum_total"); got != 1 {
		t.Errorf("flows_post_quantum_total = %v, want 1", got)
	}
	if got := value(t, fams, "tcpcrypt_gw_flows_post_quantum"); got != 1 {
		t.Errorf("flows_post_quantum = %v, want 1", got)
	}
}
