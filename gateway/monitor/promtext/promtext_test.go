package promtext

import (
	"bytes"
	"math"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

func parse(t *testing.T, w *Writer) map[string]*dto.MetricFamily {
	t.Helper()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(bytes.NewReader(w.Bytes()))
	if err != nil {
		t.Fatalf("output does not parse: %v\n%s", err, w.Bytes())
	}
	return fams
}

// TestEscapingRoundTrips writes help texts and label values with every
// character the format escapes and reads them back with Prometheus's own
// parser.
func TestEscapingRoundTrips(t *testing.T) {
	var w Writer
	help := "a \\ backslash\nand a newline"
	val := "quote \" backslash \\ newline \n end"
	w.Family("x_total", Counter, help)
	w.Sample("x_total", 3, "a", val, "b", "plain")
	w.Histogram("h_seconds", "h", []float64{0.001, 2}, []uint64{1, 3}, 5, math.NaN())
	w.Family("g", Gauge, "g")
	w.Sample("g", math.Inf(1))
	fams := parse(t, &w)

	x := fams["x_total"]
	if x.GetHelp() != help || x.GetType() != dto.MetricType_COUNTER || x.Metric[0].Counter.GetValue() != 3 {
		t.Fatalf("x_total: %v", x)
	}
	labels := map[string]string{}
	for _, l := range x.Metric[0].Label {
		labels[l.GetName()] = l.GetValue()
	}
	if labels["a"] != val || labels["b"] != "plain" {
		t.Errorf("labels %q", labels)
	}
	h := fams["h_seconds"].Metric[0].Histogram
	if fams["h_seconds"].GetType() != dto.MetricType_HISTOGRAM || h.GetSampleCount() != 5 || !math.IsNaN(h.GetSampleSum()) {
		t.Fatalf("histogram %v", h)
	}
	want := map[float64]uint64{0.001: 1, 2: 3, math.Inf(1): 5}
	if len(h.Bucket) != len(want) {
		t.Fatalf("buckets %v", h.Bucket)
	}
	for _, b := range h.Bucket {
		if want[b.GetUpperBound()] != b.GetCumulativeCount() {
			t.Errorf("bucket %v = %d", b.GetUpperBound(), b.GetCumulativeCount())
		}
	}
	if !math.IsInf(fams["g"].Metric[0].Gauge.GetValue(), 1) {
		t.Errorf("g = %v", fams["g"].Metric[0].Gauge.GetValue())
	}
}

// TestRuntimeFamiliesMatchClientGolang checks that every go_ and process_
// family written here has the name and type client_golang's GoCollector
// and ProcessCollector give it (the ones /metrics served before), so that
// dashboards and alerts built on those keep working, and that the values
// are this process's.
func TestRuntimeFamiliesMatchClientGolang(t *testing.T) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	theirs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	typeOf := map[string]dto.MetricType{}
	for _, f := range theirs {
		typeOf[f.GetName()] = f.GetType()
	}
	var w Writer
	WriteGo(&w)
	WriteProcess(&w)
	ours := parse(t, &w)
	for name, f := range ours {
		typ, ok := typeOf[name]
		if !ok {
			t.Errorf("%s: not a family of client_golang's collectors", name)
		} else if typ != f.GetType() {
			t.Errorf("%s: type %v, client_golang's is %v", name, f.GetType(), typ)
		}
	}
	for _, name := range []string{"go_goroutines", "go_threads", "go_info", "go_memstats_alloc_bytes", "go_memstats_heap_inuse_bytes",
		"go_memstats_sys_bytes", "go_gc_duration_seconds", "go_gc_gomemlimit_bytes", "go_gc_gogc_percent",
		"process_cpu_seconds_total", "process_resident_memory_bytes", "process_virtual_memory_bytes",
		"process_open_fds", "process_max_fds", "process_start_time_seconds"} {
		if ours[name] == nil {
			t.Errorf("%s missing", name)
		}
	}
	gauge := func(name string) float64 { return ours[name].Metric[0].Gauge.GetValue() }
	if v := gauge("process_resident_memory_bytes"); v < 1<<20 {
		t.Errorf("resident memory %v bytes", v)
	}
	if v := gauge("go_goroutines"); v < 1 {
		t.Errorf("go_goroutines %v", v)
	}
	// Tests start within hours of the process: the start time is now-ish,
	// in seconds since the epoch.
	if start := time.Unix(int64(gauge("process_start_time_seconds")), 0); time.Since(start) < 0 || time.Since(start) > 24*time.Hour {
		t.Errorf("process start time %v", start)
	}
	if v := gauge("process_open_fds"); v < 3 || v > gauge("process_max_fds") {
		t.Errorf("open fds %v, max %v", v, gauge("process_max_fds"))
	}
}

func TestParseStat(t *testing.T) {
	// A command name with spaces and a ')' inside: fields count from the
	// last ')'.
	line := "1234 (a) b (c) S 1 1234 1234 0 -1 4194560 500 0 0 0 250 50 0 0 20 0 7 0 9000 123456789 2048 18446744073709551615\n"
	st, err := parseStat([]byte(line))
	if err != nil {
		t.Fatal(err)
	}
	if st.utime != 250 || st.stime != 50 || st.starttime != 9000 || st.vsize != 123456789 || st.rss != 2048 {
		t.Fatalf("%+v", st)
	}
	for _, bad := range []string{"", "1 (x", "1 (x) S 1 2 3", "1 (x) S 1 1 1 0 -1 0 0 0 0 0 u 50 0 0 20 0 7 0 9000 1 2 3"} {
		if _, err := parseStat([]byte(bad)); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}
