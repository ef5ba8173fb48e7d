// /metrics: Prometheus metrics. A custom collector reads the engine's
// atomic counters and takes one census of the flow table at scrape time, so
// the data plane does no work for metrics. There are no per-flow labels: the
// series count is fixed whatever the traffic.

package monitor

import (
	"math"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"tcpcrypt-gw/gateway/engine"
)

const metricPrefix = "tcpcrypt_gw_"

// counterDef is one engine counter exported as a Prometheus counter.
type counterDef struct {
	desc *prometheus.Desc
	read func(*engine.Stats) uint64
}

func counter(name, help string, read func(*engine.Stats) uint64) counterDef {
	return counterDef{prometheus.NewDesc(metricPrefix+name, help, nil, nil), read}
}

var counterDefs = []counterDef{
	counter("packets_in_total", "Packets read from the TUN device.", func(s *engine.Stats) uint64 { return s.PacketsIn.Load() }),
	counter("packets_out_total", "Packets written to the TUN device.", func(s *engine.Stats) uint64 { return s.PacketsOut.Load() }),
	counter("flows_encrypted_total", "Flows whose tcpcrypt key exchange completed.", func(s *engine.Stats) uint64 { return s.FlowsEncrypted.Load() }),
	counter("flows_plain_total", "Flows that went plain (peer without TCP-ENO, bypass rule, fallback).", func(s *engine.Stats) uint64 { return s.FlowsPlain.Load() }),
	counter("auth_failures_total", "Frames that failed authentication (the flow was reset).", func(s *engine.Stats) uint64 { return s.AuthFailures.Load() }),
	counter("truncations_total", "Encrypted flows closed by a TCP FIN without a FIN frame (reset).", func(s *engine.Stats) uint64 { return s.Truncations.Load() }),
	counter("init_timeouts_total", "Key exchanges (Init1/Init2) given up after tcpcrypt.init_timeout.", func(s *engine.Stats) uint64 { return s.InitTimeouts.Load() }),
	counter("syn_fallbacks_total", "SYNs sent without TCP-ENO after repeated retransmissions.", func(s *engine.Stats) uint64 { return s.SYNFallbacks.Load() }),
	counter("bad_checksums_total", "Segments of rewritten flows dropped for a bad TCP checksum.", func(s *engine.Stats) uint64 { return s.BadChecksum.Load() }),
	counter("malformed_packets_total", "Packets dropped as malformed (bad IP/TCP header or options).", func(s *engine.Stats) uint64 { return s.Malformed.Load() }),
	counter("passed_unparsable_packets_total", "Non-TCP packets, fragments and IPv6 packets with extension headers, passed unchanged.", func(s *engine.Stats) uint64 { return s.PassedUnparsable.Load() }),
	counter("unknown_flow_resets_total", "Mid-connection segments of flows the gateway had no state for, answered with RST.", func(s *engine.Stats) uint64 { return s.UnknownResets.Load() }),
	counter("resumptions_total", "Connections keyed from a cached session secret (RFC 8548 §3.5), without Init messages.", func(s *engine.Stats) uint64 { return s.Resumptions.Load() }),
	counter("resume_offered_total", "Outbound SYNs that offered session resumption.", func(s *engine.Stats) uint64 { return s.ResumeOffered.Load() }),
	counter("resume_misses_total", "Resumption offers the peer answered with a full key exchange.", func(s *engine.Stats) uint64 { return s.ResumeMisses.Load() }),
	counter("table_full_total", "SYNs dropped because the flow table was full and no flow could be evicted (the host retries).", func(s *engine.Stats) uint64 { return s.TableFull.Load() }),
	counter("flows_evicted_half_open_total", "Half-open flows from the WAN and closed flows evicted for a new flow (table full).", func(s *engine.Stats) uint64 { return s.Evictions[engine.EvictHalfOpen].Load() }),
	counter("flows_evicted_idle_plain_total", "Plain flows idle for a minute or more evicted for a new flow (table full).", func(s *engine.Stats) uint64 { return s.Evictions[engine.EvictIdlePlain].Load() }),
	counter("flows_evicted_half_open_lan_total", "Half-open flows from the LAN evicted for a new flow (table full).", func(s *engine.Stats) uint64 { return s.Evictions[engine.EvictHalfOpenLAN].Load() }),
	counter("downgrades_suspected_total", "Connections to a peer that completed tcpcrypt before, answered without TCP-ENO (a suspected downgrade attack).", func(s *engine.Stats) uint64 { return s.DowngradesSuspected.Load() }),
	counter("downgrades_blocked_total", "Suspected downgrades reset under the block policy (downgrade.block).", func(s *engine.Stats) uint64 { return s.DowngradesBlocked.Load() }),
	counter("required_resets_total", "Connections of require_encryption reset because they could not be encrypted.", func(s *engine.Stats) uint64 { return s.RequiredResets.Load() }),
	counter("buffer_drops_total", "Segments dropped because a flow's or the global buffer budget was exhausted.", func(s *engine.Stats) uint64 { return s.BufferDrops.Load() }),
}

var (
	rekeysDesc = prometheus.NewDesc(metricPrefix+"rekeys_total",
		"Key updates (RFC 8548 §3.8), by direction: out = keys of LAN-to-WAN data, in = WAN-to-LAN.", []string{"direction"}, nil)
	flowsDesc = prometheus.NewDesc(metricPrefix+"flows",
		"Flows in the table now, by state.", []string{"state"}, nil)
	flowsActiveDesc = prometheus.NewDesc(metricPrefix+"flows_active",
		"Flows in the table now (all states).", nil, nil)
	flowsMaxDesc = prometheus.NewDesc(metricPrefix+"flows_max",
		"Most flows the table holds (flows.max).", nil, nil)
	bufferedDesc = prometheus.NewDesc(metricPrefix+"buffered_bytes",
		"Bytes held by all flows now (held plaintext, unacknowledged ciphertext, reassembly).", nil, nil)
	bufferedMaxDesc = prometheus.NewDesc(metricPrefix+"buffered_bytes_max",
		"Bytes all flows together may hold (flows.max_buffer_total).", nil, nil)
	handshakeDesc = prometheus.NewDesc(metricPrefix+"handshake_duration_seconds",
		"Time from the first SYN to the end of the key exchange, for completed key exchanges. "+
			"The engine keeps bucket counts only: _sum is NaN.", nil, nil)
)

// collector is the gateway's prometheus.Collector.
type collector struct{ src *Source }

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range counterDefs {
		ch <- d.desc
	}
	for _, d := range []*prometheus.Desc{rekeysDesc, flowsDesc, flowsActiveDesc, flowsMaxDesc, bufferedDesc, bufferedMaxDesc, handshakeDesc} {
		ch <- d
	}
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	st := c.src.Stats
	for _, d := range counterDefs {
		ch <- prometheus.MustNewConstMetric(d.desc, prometheus.CounterValue, float64(d.read(st)))
	}
	ch <- prometheus.MustNewConstMetric(rekeysDesc, prometheus.CounterValue, float64(st.RekeysOut.Load()), "out")
	ch <- prometheus.MustNewConstMetric(rekeysDesc, prometheus.CounterValue, float64(st.RekeysIn.Load()), "in")

	// Every state is exported, zero or not, so that series do not come
	// and go with the traffic.
	census := c.src.census()
	for i, name := range stateNames {
		ch <- prometheus.MustNewConstMetric(flowsDesc, prometheus.GaugeValue, float64(census.byState[i+1]), name)
	}
	t := c.src.Table
	ch <- prometheus.MustNewConstMetric(flowsActiveDesc, prometheus.GaugeValue, float64(t.Len()))
	ch <- prometheus.MustNewConstMetric(flowsMaxDesc, prometheus.GaugeValue, float64(t.MaxFlows()))
	ch <- prometheus.MustNewConstMetric(bufferedDesc, prometheus.GaugeValue, float64(t.BytesInUse()))
	ch <- prometheus.MustNewConstMetric(bufferedMaxDesc, prometheus.GaugeValue, float64(t.MaxBytesTotal()))

	count, buckets := handshakeHistogram(st)
	ch <- prometheus.MustNewConstHistogram(handshakeDesc, count, math.NaN(), buckets)
}

// handshakeHistogram turns the engine's per-bucket counts into Prometheus's
// cumulative ones, with bounds in seconds. The last engine bucket (above the
// largest bound) is only in the total count, Prometheus's implicit +Inf.
func handshakeHistogram(st *engine.Stats) (count uint64, buckets map[float64]uint64) {
	buckets = make(map[float64]uint64, len(engine.HandshakeBuckets))
	for i, bound := range engine.HandshakeBuckets {
		count += st.Handshakes[i].Load()
		buckets[bound.Seconds()] = count
	}
	count += st.Handshakes[len(engine.HandshakeBuckets)].Load()
	return count, buckets
}

// newMetricsHandler serves the gateway's metrics and the Go runtime and
// process ones, from a registry of its own (not the global default one, so
// that two gateways in one process, as in tests, do not collide).
func newMetricsHandler(src *Source) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collector{src},
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}
