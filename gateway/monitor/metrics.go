// /metrics: Prometheus metrics in the text exposition format, written by
// package promtext. Each scrape reads the engine's atomic counters and takes
// one census of the flow table, so the data plane does no work for metrics.
// There are no per-flow labels: the series count is fixed whatever the
// traffic.

package monitor

import (
	"math"
	"net/http"
	"time"

	"tcpcrypt-gw/gateway/engine"
	"tcpcrypt-gw/gateway/monitor/promtext"
)

const metricPrefix = "tcpcrypt_gw_"

// counterDef is one engine counter exported as a Prometheus counter.
type counterDef struct {
	name, help string
	read       func(*engine.Stats) uint64
}

func counter(name, help string, read func(*engine.Stats) uint64) counterDef {
	return counterDef{metricPrefix + name, help, read}
}

var counterDefs = []counterDef{
	counter("packets_in_total", "Packets read from the TUN device.", func(s *engine.Stats) uint64 { return s.PacketsIn.Load() }),
	counter("packets_out_total", "Packets written to the TUN device.", func(s *engine.Stats) uint64 { return s.PacketsOut.Load() }),
	counter("flows_encrypted_total", "Flows whose tcpcrypt key exchange completed.", func(s *engine.Stats) uint64 { return s.FlowsEncrypted.Load() }),
	counter("flows_post_quantum_total", "Flows whose key exchange completed with a post-quantum TEP (x25519mlkem768; also counted in flows_encrypted_total).", func(s *engine.Stats) uint64 { return s.FlowsPostQuantum.Load() }),
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
	counter("eno_failures_type1_total", "RFC 8547 §9 type-1 failures: SYN fallbacks answered without TCP-ENO where the SYNs with it went unanswered.", func(s *engine.Stats) uint64 { return s.ENOFailuresType1.Load() }),
	counter("eno_failures_type2_total", "RFC 8547 §9 type-2 failures: outbound connections that negotiated TCP-ENO and then died without progress (reset, stall, Init timeout, authentication failure).", func(s *engine.Stats) uint64 { return s.ENOFailuresType2.Load() }),
	counter("broken_path_plain_total", "Connections sent plain because encryption failed after the handshake on the path to their peer before (reason broken_path).", func(s *engine.Stats) uint64 { return s.BrokenPathPlain.Load() }),
	counter("syn_fallbacks_refused_total", "SYN fallbacks not made because the peer is in downgrade.no_syn_fallback.", func(s *engine.Stats) uint64 { return s.SYNFallbacksRefused.Load() }),
	counter("syn_fallbacks_deferred_total", "SYN fallbacks not made (yet) because the flow table was full within the last 10 s (a SYN flood: the gateway itself may have lost the SYN exchange).", func(s *engine.Stats) uint64 { return s.SYNFallbacksDeferred.Load() }),
	counter("required_resets_total", "Connections of require_encryption reset because they could not be encrypted.", func(s *engine.Stats) uint64 { return s.RequiredResets.Load() }),
	counter("tun_write_errors_total", "Packets the TUN device refused to take (each dropped; TCP retransmits).", func(s *engine.Stats) uint64 { return s.WriteErrors.Load() }),
	counter("lan_reordered_total", "LAN segments that arrived beyond a hole in their stream (reordered on the way) and waited for it.", func(s *engine.Stats) uint64 { return s.LANReordered.Load() }),
	counter("buffer_drops_total", "Segments dropped because a flow's or the global buffer budget was exhausted.", func(s *engine.Stats) uint64 { return s.BufferDrops.Load() }),
}

// gaugeDef is one gauge without labels, read from the Source at scrape time.
type gaugeDef struct {
	name, help string
	read       func(*Source) float64
}

var gaugeDefs = []gaugeDef{
	{metricPrefix + "flows_active", "Flows in the table now (all states).", func(s *Source) float64 { return float64(s.Table.Len()) }},
	{metricPrefix + "flows_max", "Most flows the table holds (flows.max).", func(s *Source) float64 { return float64(s.Table.MaxFlows()) }},
	{metricPrefix + "buffered_bytes", "Bytes held by all flows now (held plaintext, unacknowledged ciphertext, reassembly).", func(s *Source) float64 { return float64(s.Table.BytesInUse()) }},
	{metricPrefix + "broken_paths", "Peers whose path is marked broken now: encryption failed after the handshake, connections to them go plain (downgrade.broken_path_*).", func(s *Source) float64 { return float64(s.Paths.BrokenCount(time.Now())) }},
	{metricPrefix + "buffered_bytes_max", "Bytes all flows together may hold (flows.max_buffer_total).", func(s *Source) float64 { return float64(s.Table.MaxBytesTotal()) }},
}

// writeMetrics writes the gateway's families, then the Go runtime and
// process ones.
func (s *Source) writeMetrics(w *promtext.Writer) {
	st := s.Stats
	for _, d := range counterDefs {
		w.Family(d.name, promtext.Counter, d.help)
		w.Sample(d.name, float64(d.read(st)))
	}
	rekeys := metricPrefix + "rekeys_total"
	w.Family(rekeys, promtext.Counter, "Key updates (RFC 8548 §3.8), by direction: out = keys of LAN-to-WAN data, in = WAN-to-LAN.")
	w.Sample(rekeys, float64(st.RekeysOut.Load()), "direction", "out")
	w.Sample(rekeys, float64(st.RekeysIn.Load()), "direction", "in")

	// Every state is exported, zero or not, so that series do not come
	// and go with the traffic.
	census := s.census()
	flows := metricPrefix + "flows"
	w.Family(flows, promtext.Gauge, "Flows in the table now, by state.")
	for i, name := range stateNames {
		w.Sample(flows, float64(census.byState[i+1]), "state", name)
	}
	pq := metricPrefix + "flows_post_quantum"
	w.Family(pq, promtext.Gauge, "Encrypted flows in the table now keyed by a post-quantum TEP (x25519mlkem768), directly or resumed.")
	w.Sample(pq, float64(census.postQuantum))
	for _, d := range gaugeDefs {
		w.Family(d.name, promtext.Gauge, d.help)
		w.Sample(d.name, d.read(s))
	}

	bounds, cumulative, count := handshakeHistogram(st)
	w.Histogram(metricPrefix+"handshake_duration_seconds",
		"Time from the first SYN to the end of the key exchange, for completed key exchanges. "+
			"The engine keeps bucket counts only: _sum is NaN.",
		bounds, cumulative, count, math.NaN())

	promtext.WriteGo(w)
	promtext.WriteProcess(w)
}

// handshakeHistogram turns the engine's per-bucket counts into Prometheus's
// cumulative ones, with bounds in seconds. The last engine bucket (above the
// largest bound) is only in the total count, Prometheus's implicit +Inf.
func handshakeHistogram(st *engine.Stats) (bounds []float64, cumulative []uint64, count uint64) {
	bounds = make([]float64, len(engine.HandshakeBuckets))
	cumulative = make([]uint64, len(engine.HandshakeBuckets))
	for i, bound := range engine.HandshakeBuckets {
		count += st.Handshakes[i].Load()
		bounds[i] = bound.Seconds()
		cumulative[i] = count
	}
	count += st.Handshakes[len(engine.HandshakeBuckets)].Load()
	return bounds, cumulative, count
}

// newMetricsHandler serves the metrics of one Source (one per gateway, so
// that two gateways in one process, as in tests, do not mix).
func newMetricsHandler(src *Source) http.Handler {
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		var w promtext.Writer
		src.writeMetrics(&w)
		rw.Header().Set("Content-Type", promtext.ContentType)
		if r.Method != http.MethodHead {
			rw.Write(w.Bytes())
		}
	})
}
