package monitor

import (
	"math"
	"net/http"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"tcpcrypt-gw/gateway/engine"
)

// scrape GETs /metrics and parses the text exposition format.
func scrape(t *testing.T, h http.Handler) map[string]*dto.MetricFamily {
	t.Helper()
	resp := get(t, h, http.MethodGet, "/metrics", "")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/metrics: %s", resp.Status)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("/metrics does not parse: %v", err)
	}
	return fams
}

// value is the value of the sample of family name whose labels include
// want (name=value pairs); it fails the test if there is none.
func value(t *testing.T, fams map[string]*dto.MetricFamily, name string, want ...string) float64 {
	t.Helper()
	f := fams[name]
	if f == nil {
		t.Fatalf("metric %s missing", name)
	}
next:
	for _, m := range f.Metric {
		for i := 0; i+1 < len(want); i += 2 {
			found := false
			for _, l := range m.Label {
				if l.GetName() == want[i] && l.GetValue() == want[i+1] {
					found = true
				}
			}
			if !found {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue()
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		case m.Untyped != nil:
			return m.Untyped.GetValue()
		}
	}
	t.Fatalf("metric %s%v missing", name, want)
	return 0
}

func TestMetricsMoveWithTraffic(t *testing.T) {
	c := newPair(t)
	h := Handler(c.a.src, "")
	before := scrape(t, h)
	for _, name := range []string{"tcpcrypt_gw_flows_encrypted_total", "tcpcrypt_gw_flows_plain_total", "tcpcrypt_gw_packets_in_total"} {
		if v := value(t, before, name); v != 0 {
			t.Fatalf("%s = %v before any traffic", name, v)
		}
	}
	if v := value(t, before, "tcpcrypt_gw_flows", "state", "encrypted"); v != 0 {
		t.Fatalf("flows{state=encrypted} = %v before any traffic", v)
	}
	client := netip.MustParseAddrPort("10.0.1.2:40000")
	c.connect(client, []byte("hello"))
	c.plain(netip.MustParseAddrPort("10.0.1.3:50000"))
	after := scrape(t, h)

	for name, want := range map[string]float64{
		"tcpcrypt_gw_flows_encrypted_total": 1,
		"tcpcrypt_gw_flows_plain_total":     1,
		"tcpcrypt_gw_packets_in_total":      float64(c.a.stats.PacketsIn.Load()),
		"tcpcrypt_gw_packets_out_total":     float64(c.a.stats.PacketsOut.Load()),
		"tcpcrypt_gw_flows_active":          2,
		"tcpcrypt_gw_flows_max":             1024,
		"tcpcrypt_gw_buffered_bytes":        float64(c.a.table.BytesInUse()),
		"tcpcrypt_gw_buffered_bytes_max":    64 << 20,
		"tcpcrypt_gw_auth_failures_total":   0,
	} {
		if got := value(t, after, name); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	if v := value(t, after, "tcpcrypt_gw_packets_in_total"); v < 4 {
		t.Errorf("packets_in_total = %v after a handshake and data", v)
	}
	for state, want := range map[string]float64{"encrypted": 1, "plain": 1, "syn-sent": 0, "reset": 0} {
		if got := value(t, after, "tcpcrypt_gw_flows", "state", state); got != want {
			t.Errorf("flows{state=%q} = %v, want %v", state, got, want)
		}
	}
	if n := len(after["tcpcrypt_gw_flows"].Metric); n != len(stateNames) {
		t.Errorf("flows has %d series, want one per state (%d)", n, len(stateNames))
	}
	hs := after["tcpcrypt_gw_handshake_duration_seconds"]
	if hs == nil || hs.GetType() != dto.MetricType_HISTOGRAM || hs.Metric[0].Histogram.GetSampleCount() != 1 {
		t.Fatalf("handshake histogram after one key exchange: %v", hs)
	}
	// Runtime and process collectors are there too.
	for _, name := range []string{"go_goroutines", "go_memstats_alloc_bytes", "process_start_time_seconds"} {
		if after[name] == nil {
			t.Errorf("%s missing", name)
		}
	}
	// No per-flow labels: no label value names an address.
	for name, f := range after {
		for _, m := range f.Metric {
			for _, l := range m.Label {
				if strings.Contains(l.GetValue(), "10.0.") {
					t.Errorf("%s has a per-flow label %s=%q", name, l.GetName(), l.GetValue())
				}
			}
		}
	}
}

// TestMetricsReadEachCounter gives every engine counter a different value
// and checks that each metric shows its own.
func TestMetricsReadEachCounter(t *testing.T) {
	g := newTestGW(t, lanA)
	st := g.stats
	counters := map[string]*atomic.Uint64{
		"tcpcrypt_gw_packets_in_total":                  &st.PacketsIn,
		"tcpcrypt_gw_packets_out_total":                 &st.PacketsOut,
		"tcpcrypt_gw_flows_encrypted_total":             &st.FlowsEncrypted,
		"tcpcrypt_gw_flows_post_quantum_total":          &st.FlowsPostQuantum,
		"tcpcrypt_gw_flows_plain_total":                 &st.FlowsPlain,
		"tcpcrypt_gw_auth_failures_total":               &st.AuthFailures,
		"tcpcrypt_gw_truncations_total":                 &st.Truncations,
		"tcpcrypt_gw_init_timeouts_total":               &st.InitTimeouts,
		"tcpcrypt_gw_syn_fallbacks_total":               &st.SYNFallbacks,
		"tcpcrypt_gw_bad_checksums_total":               &st.BadChecksum,
		"tcpcrypt_gw_malformed_packets_total":           &st.Malformed,
		"tcpcrypt_gw_passed_unparsable_packets_total":   &st.PassedUnparsable,
		"tcpcrypt_gw_table_full_total":                  &st.TableFull,
		"tcpcrypt_gw_buffer_drops_total":                &st.BufferDrops,
		"tcpcrypt_gw_lan_reordered_total":               &st.LANReordered,
		"tcpcrypt_gw_resumptions_total":                 &st.Resumptions,
		"tcpcrypt_gw_resume_offered_total":              &st.ResumeOffered,
		"tcpcrypt_gw_resume_misses_total":               &st.ResumeMisses,
		"tcpcrypt_gw_unknown_flow_resets_total":         &st.UnknownResets,
		"tcpcrypt_gw_downgrades_suspected_total":        &st.DowngradesSuspected,
		"tcpcrypt_gw_downgrades_blocked_total":          &st.DowngradesBlocked,
		"tcpcrypt_gw_required_resets_total":             &st.RequiredResets,
		"tcpcrypt_gw_eno_failures_type1_total":          &st.ENOFailuresType1,
		"tcpcrypt_gw_eno_failures_type2_total":          &st.ENOFailuresType2,
		"tcpcrypt_gw_broken_path_plain_total":           &st.BrokenPathPlain,
		"tcpcrypt_gw_syn_fallbacks_refused_total":       &st.SYNFallbacksRefused,
		"tcpcrypt_gw_syn_fallbacks_deferred_total":      &st.SYNFallbacksDeferred,
		"tcpcrypt_gw_flows_evicted_half_open_total":     &st.Evictions[engine.EvictHalfOpen],
		"tcpcrypt_gw_flows_evicted_idle_plain_total":    &st.Evictions[engine.EvictIdlePlain],
		"tcpcrypt_gw_flows_evicted_half_open_lan_total": &st.Evictions[engine.EvictHalfOpenLAN],
		"tcpcrypt_gw_tun_write_errors_total":            &st.WriteErrors,
	}
	want := map[string]float64{}
	n := uint64(100)
	for name, c := range counters {
		c.Add(n)
		want[name] = float64(n)
		n += 7
	}
	st.RekeysOut.Add(5)
	st.RekeysIn.Add(9)
	fams := scrape(t, Handler(g.src, ""))
	for name, v := range want {
		if got := value(t, fams, name); got != v {
			t.Errorf("%s = %v, want %v", name, got, v)
		}
		if fams[name].GetType() != dto.MetricType_COUNTER {
			t.Errorf("%s is a %v, want a counter", name, fams[name].GetType())
		}
	}
	if got := value(t, fams, "tcpcrypt_gw_rekeys_total", "direction", "out"); got != 5 {
		t.Errorf("rekeys_total{direction=out} = %v, want 5", got)
	}
	if got := value(t, fams, "tcpcrypt_gw_rekeys_total", "direction", "in"); got != 9 {
		t.Errorf("rekeys_total{direction=in} = %v, want 9", got)
	}
	// Every tcpcrypt_gw_ counter of the engine is covered above.
	for name, f := range fams {
		if strings.HasPrefix(name, metricPrefix) && f.GetType() == dto.MetricType_COUNTER &&
			want[name] == 0 && name != "tcpcrypt_gw_rekeys_total" {
			t.Errorf("counter %s not checked by this test", name)
		}
	}
}

func TestHandshakeHistogram(t *testing.T) {
	g := newTestGW(t, lanA)
	// one key exchange under 1 ms, two between 5 and 20 ms, four over 10 s
	g.stats.Handshakes[0].Add(1)
	g.stats.Handshakes[2].Add(2)
	g.stats.Handshakes[len(engine.HandshakeBuckets)].Add(4)
	fams := scrape(t, Handler(g.src, ""))
	h := fams["tcpcrypt_gw_handshake_duration_seconds"].Metric[0].Histogram
	if h.GetSampleCount() != 7 {
		t.Fatalf("count %d, want 7", h.GetSampleCount())
	}
	if !math.IsNaN(h.GetSampleSum()) {
		t.Errorf("sum %v: the engine keeps no sum, want NaN", h.GetSampleSum())
	}
	want := map[float64]uint64{0.001: 1, 0.005: 1, 0.02: 3, 0.1: 3, 0.5: 3, 2: 3, 10: 3, math.Inf(1): 7}
	if len(h.Bucket) != len(want) {
		t.Fatalf("%d buckets, want %d", len(h.Bucket), len(want))
	}
	for _, b := range h.Bucket {
		if w, ok := want[b.GetUpperBound()]; !ok || b.GetCumulativeCount() != w {
			t.Errorf("bucket le=%v: %d, want %d (known bound %v)", b.GetUpperBound(), b.GetCumulativeCount(), w, ok)
		}
	}
}
