// Package promtext writes metrics in the Prometheus text exposition format
// (version 0.0.4), the format every Prometheus-compatible scraper reads. It
// replaces github.com/prometheus/client_golang in the binary: that library
// links protobuf and its reflection (about 2.5 MB of a 13.6 MB mipsle
// binary, docs/deploy.md), which a router's flash cannot spare, while the
// gateway only needs to print a fixed set of numbers it already has.
//
// The flow of one scrape:
//  1. The caller opens each family with Family (name, type, help: the
//     # HELP and # TYPE lines), then writes its samples with Sample.
//  2. WriteGo and WriteProcess add the Go runtime and process families
//     under the names client_golang's collectors use (go_goroutines,
//     go_memstats_alloc_bytes, process_resident_memory_bytes, ...), so that
//     dashboards and alerts written for those keep working.
//  3. The caller sends the buffer with ContentType.
package promtext

import (
	"bytes"
	"math"
	"strconv"
	"strings"
)

// ContentType is the media type of the text exposition format.
const ContentType = "text/plain; version=0.0.4; charset=utf-8"

// Metric types, as written on # TYPE lines.
const (
	Counter   = "counter"
	Gauge     = "gauge"
	Histogram = "histogram"
	Summary   = "summary"
)

// Writer accumulates one exposition. The zero value is ready to use.
type Writer struct {
	buf bytes.Buffer
}

// Bytes is the exposition written so far.
func (w *Writer) Bytes() []byte { return w.buf.Bytes() }

// Family starts a metric family: its HELP and TYPE lines. The samples of
// the family must follow before the next Family (the format requires the
// samples of one family to be together).
func (w *Writer) Family(name, typ, help string) {
	w.buf.WriteString("# HELP ")
	w.buf.WriteString(name)
	w.buf.WriteByte(' ')
	helpEscaper.WriteString(&w.buf, help)
	w.buf.WriteString("\n# TYPE ")
	w.buf.WriteString(name)
	w.buf.WriteByte(' ')
	w.buf.WriteString(typ)
	w.buf.WriteByte('\n')
}

// Sample writes one sample line. labels are name, value pairs; values are
// escaped as the format requires (backslash, double quote, newline).
func (w *Writer) Sample(name string, v float64, labels ...string) {
	w.buf.WriteString(name)
	if len(labels) > 0 {
		w.buf.WriteByte('{')
		for i := 0; i+1 < len(labels); i += 2 {
			if i > 0 {
				w.buf.WriteByte(',')
			}
			w.buf.WriteString(labels[i])
			w.buf.WriteString(`="`)
			labelEscaper.WriteString(&w.buf, labels[i+1])
			w.buf.WriteByte('"')
		}
		w.buf.WriteByte('}')
	}
	w.buf.WriteByte(' ')
	w.buf.WriteString(FormatValue(v))
	w.buf.WriteByte('\n')
}

// Histogram writes a whole histogram family with cumulative bucket counts
// (bounds ascending, without +Inf: the total count is the +Inf bucket).
func (w *Writer) Histogram(name, help string, bounds []float64, cumulative []uint64, count uint64, sum float64) {
	w.Family(name, Histogram, help)
	for i, b := range bounds {
		w.Sample(name+"_bucket", float64(cumulative[i]), "le", FormatValue(b))
	}
	w.Sample(name+"_bucket", float64(count), "le", "+Inf")
	w.Sample(name+"_sum", sum)
	w.Sample(name+"_count", float64(count))
}

// FormatValue formats a sample value the way the format spells it: Go's
// shortest representation, with NaN, +Inf and -Inf.
func FormatValue(v float64) string {
	switch {
	case math.IsNaN(v):
		return "NaN"
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}

var (
	helpEscaper  = strings.NewReplacer(`\`, `\\`, "\n", `\n`)
	labelEscaper = strings.NewReplacer(`\`, `\\`, "\n", `\n`, `"`, `\"`)
)
