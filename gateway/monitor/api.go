// The JSON API: /api/stats (totals), /api/flows (the flow list, filtered
// and paginated) and /api/flows/{id} (one flow with its sequence
// bookkeeping). Each request takes one snapshot of the flow table.

package monitor

import (
	"encoding/hex"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"tcpcrypt-gw/flowtable"
	"tcpcrypt-gw/gateway/downgrade"
	"tcpcrypt-gw/gateway/engine"
)

// Limits of /api/flows.
const (
	DefaultLimit = 1000
	MaxLimit     = 10000
	// MaxOffset bounds offset=: a page costs 16 bytes per flow skipped, so
	// deep pages are asked for with the after= cursor instead.
	MaxOffset    = 65536
	maxHostQuery = 64 // longer than any address:port
)

// FlowJSON is one flow as the API shows it.
type FlowJSON struct {
	ID        uint64 `json:"id"`
	LAN       string `json:"lan"`
	WAN       string `json:"wan"`
	Direction string `json:"direction"`
	State     string `json:"state"`
	Encrypted bool   `json:"encrypted"`
	Reason    string `json:"reason,omitempty"`
	TEP       string `json:"tep,omitempty"`
	// PostQuantum: keyed by a post-quantum TEP (x25519mlkem768,
	// docs/pq-tep.md), directly or by resuming such a session.
	PostQuantum  bool   `json:"post_quantum"`
	Cipher       string `json:"cipher,omitempty"`
	SessionID    string `json:"session_id,omitempty"`
	Resumed      bool   `json:"resumed"`        // started from a cached secret, no Init messages
	PeerAppAware bool   `json:"peer_app_aware"` // the peer set TCP-ENO's application-aware bit (RFC 8547 §4.2)
	// DowngradeSuspected: a peer that completed tcpcrypt before answered
	// this flow without TCP-ENO.
	DowngradeSuspected bool      `json:"downgrade_suspected"`
	PlainBytesOut      uint64    `json:"plain_bytes_out"`
	PlainBytesIn       uint64    `json:"plain_bytes_in"`
	CipherBytesOut     uint64    `json:"cipher_bytes_out"`
	CipherBytesIn      uint64    `json:"cipher_bytes_in"`
	PacketsOut         uint64    `json:"packets_out"`
	PacketsIn          uint64    `json:"packets_in"`
	RekeysOut          uint64    `json:"rekeys_out"`
	RekeysIn           uint64    `json:"rekeys_in"`
	Started            time.Time `json:"started"`
	LastActive         time.Time `json:"last_active"`
	AgeSeconds         float64   `json:"age_seconds"`

	Seq *engine.SeqInfo `json:"seq,omitempty"` // only in /api/flows/{id}
}

// FlowListJSON is the body of /api/flows.
type FlowListJSON struct {
	Total  int    `json:"total"` // flows matching the filters, before pagination
	After  uint64 `json:"after"` // the cursor given (0: from the start)
	Offset int    `json:"offset"`
	Limit  int    `json:"limit"`
	// Next is the cursor of the next page (pass it as after=) when more
	// matching flows follow this page, else 0.
	Next  uint64     `json:"next"`
	Flows []FlowJSON `json:"flows"`
}

// StatsJSON is the body of /api/stats. Counters (…_total in /metrics) count
// since the start; the rest describe the flow table now.
type StatsJSON struct {
	Flows        int            `json:"flows"`
	FlowsMax     int            `json:"flows_max"`
	FlowsByState map[string]int `json:"flows_by_state"`
	// FlowsPostQuantumNow: encrypted flows in the table now keyed by a
	// post-quantum TEP (FlowJSON.PostQuantum).
	FlowsPostQuantumNow int `json:"flows_post_quantum_now"`

	FlowsEncrypted   uint64 `json:"flows_encrypted"`
	FlowsPostQuantum uint64 `json:"flows_post_quantum"` // of flows_encrypted, key exchanges with a post-quantum TEP
	FlowsPlain       uint64 `json:"flows_plain"`
	AuthFailures     uint64 `json:"auth_failures"`
	Truncations      uint64 `json:"truncations"`
	InitTimeouts     uint64 `json:"init_timeouts"`
	Malformed        uint64 `json:"malformed_packets"`
	TableFull        uint64 `json:"table_full"`
	BufferDrops      uint64 `json:"buffer_drops"`
	LANReordered     uint64 `json:"lan_reordered"`
	SYNFallbacks     uint64 `json:"syn_fallbacks"`
	BadChecksums     uint64 `json:"bad_checksums"`
	PassedUnparsable uint64 `json:"passed_unparsable"`
	UnknownResets    uint64 `json:"unknown_resets"`
	Resumptions      uint64 `json:"resumptions"`
	ResumeOffered    uint64 `json:"resume_offered"`
	ResumeMisses     uint64 `json:"resume_misses"`
	PacketsIn        uint64 `json:"packets_in"`
	PacketsOut       uint64 `json:"packets_out"`
	RekeysOut        uint64 `json:"rekeys_out"`
	RekeysIn         uint64 `json:"rekeys_in"`
	WriteErrors      uint64 `json:"tun_write_errors"` // packets the TUN device refused
	// Flows evicted to make room for new ones when the table was full,
	// by kind (engine.EvictHalfOpen, ...).
	EvictedHalfOpen    uint64 `json:"evicted_half_open"`
	EvictedIdlePlain   uint64 `json:"evicted_idle_plain"`
	EvictedHalfOpenLAN uint64 `json:"evicted_half_open_lan"`
	InboundFlows       int    `json:"inbound_flows"`     // flows opened from the WAN, now
	InboundFlowsMax    int    `json:"inbound_flows_max"` // their share of flows_max; the rest is kept for the LAN

	DowngradesSuspected uint64 `json:"downgrades_suspected"`
	DowngradesBlocked   uint64 `json:"downgrades_blocked"`
	RequiredResets      uint64 `json:"required_resets"`
	// RFC 8547 §9 failures (engine fallback.go, /api/paths).
	ENOFailuresType1    uint64 `json:"eno_failures_type1"`
	ENOFailuresType2    uint64 `json:"eno_failures_type2"`
	BrokenPathPlain     uint64 `json:"broken_path_plain"`
	SYNFallbacksRefused uint64 `json:"syn_fallbacks_refused"`
	// SYNFallbacksDeferred: fallbacks not made (yet) because the flow
	// table was full moments before (a SYN flood, engine fallback.go).
	SYNFallbacksDeferred uint64 `json:"syn_fallbacks_deferred"`

	BufferedBytes    int64 `json:"buffered_bytes"`
	BufferedBytesMax int64 `json:"buffered_bytes_max"`

	// Payload bytes of the flows in the table now; flows already expired
	// are not counted.
	LivePlainBytesOut  uint64 `json:"live_plain_bytes_out"`
	LivePlainBytesIn   uint64 `json:"live_plain_bytes_in"`
	LiveCipherBytesOut uint64 `json:"live_cipher_bytes_out"`
	LiveCipherBytesIn  uint64 `json:"live_cipher_bytes_in"`

	UptimeSeconds float64 `json:"uptime_seconds"`

	// Workers: per data-plane worker of a multi-queue TUN device; absent
	// with one queue.
	Workers []WorkerJSON `json:"workers,omitempty"`
}

// WorkerJSON is one data-plane worker's counters (gateway.WorkerStats).
type WorkerJSON struct {
	Queue   int    `json:"queue"`   // the TUN queue it reads and writes
	Packets uint64 `json:"packets"` // packets read from it (a super-packet counts once)
	Foreign uint64 `json:"foreign"` // of those, of another worker's flows
}

// stateNames are the engine's flow states, in order; the `state` filter
// and the flows-by-state gauges take exactly these.
var stateNames = func() []string {
	var names []string
	for s := engine.State(1); s != 0 && s.String() != "unknown"; s++ {
		names = append(names, s.String())
	}
	return names
}()

// flowRow is one flow as copied under its shard's lock: only copies, so
// that the lock is held briefly; formatting comes after.
type flowRow struct {
	id                  uint64
	created, lastActive time.Time
	info                engine.Info
}

func (r *flowRow) json(now time.Time) FlowJSON {
	in := &r.info
	return FlowJSON{
		ID: r.id, LAN: in.LAN.String(), WAN: in.WAN.String(), Direction: in.Role, State: in.State,
		Encrypted: in.Encrypted, Reason: in.Reason, TEP: in.TEP, PostQuantum: in.PostQuantum, Cipher: in.Cipher,
		SessionID: hex.EncodeToString(in.SessionID), Resumed: in.Resumed, PeerAppAware: in.PeerAppAware,
		DowngradeSuspected: in.Downgrade,
		PlainBytesOut:      in.Stats.PlainBytesOut, PlainBytesIn: in.Stats.PlainBytesIn,
		CipherBytesOut: in.Stats.CipherBytesOut, CipherBytesIn: in.Stats.CipherBytesIn,
		PacketsOut: in.Stats.PacketsOut, PacketsIn: in.Stats.PacketsIn,
		RekeysOut: in.Stats.RekeysOut, RekeysIn: in.Stats.RekeysIn,
		Started: r.created, LastActive: r.lastActive, AgeSeconds: now.Sub(r.created).Seconds(),
	}
}

// census is what the flow table holds now, counted in one pass without
// copying any flow (it runs for every /api/stats and /metrics request).
type census struct {
	byState             [maxState + 1]int // by engine.State; [0]: a state unknown to stateNames
	postQuantum         int               // encrypted flows keyed by a post-quantum TEP
	plainOut, plainIn   uint64
	cipherOut, cipherIn uint64
}

// maxState bounds the engine's State values (a uint8).
const maxState = 255

func (s *Source) census() *census {
	c := new(census)
	for i := 0; i < s.Shards; i++ {
		s.Table.LockShard(i)
		s.Table.Range(i, func(en *flowtable.Entry[*engine.Flow]) bool {
			f := en.Value
			if int(f.State) <= len(stateNames) {
				c.byState[f.State]++
			} else {
				c.byState[0]++
			}
			if f.PostQuantum() {
				c.postQuantum++
			}
			c.plainOut += f.Stats.PlainBytesOut
			c.plainIn += f.Stats.PlainBytesIn
			c.cipherOut += f.Stats.CipherBytesOut
			c.cipherIn += f.Stats.CipherBytesIn
			return true
		})
		s.Table.UnlockShard(i)
	}
	return c
}

// StatsNow reads the counters and takes a census of the flow table.
func (s *Source) StatsNow() StatsJSON {
	st := s.Stats
	c := s.census()
	res := StatsJSON{
		Flows: s.Table.Len(), FlowsMax: s.Table.MaxFlows(), FlowsByState: make(map[string]int, len(stateNames)),
		FlowsEncrypted: st.FlowsEncrypted.Load(), FlowsPostQuantum: st.FlowsPostQuantum.Load(), FlowsPostQuantumNow: c.postQuantum, FlowsPlain: st.FlowsPlain.Load(),
		AuthFailures: st.AuthFailures.Load(), Truncations: st.Truncations.Load(), InitTimeouts: st.InitTimeouts.Load(),
		Malformed: st.Malformed.Load(), TableFull: st.TableFull.Load(), BufferDrops: st.BufferDrops.Load(), LANReordered: st.LANReordered.Load(),
		SYNFallbacks: st.SYNFallbacks.Load(), BadChecksums: st.BadChecksum.Load(), PassedUnparsable: st.PassedUnparsable.Load(),
		UnknownResets: st.UnknownResets.Load(), Resumptions: st.Resumptions.Load(), ResumeOffered: st.ResumeOffered.Load(), ResumeMisses: st.ResumeMisses.Load(),
		PacketsIn: st.PacketsIn.Load(), PacketsOut: st.PacketsOut.Load(),
		RekeysOut: st.RekeysOut.Load(), RekeysIn: st.RekeysIn.Load(), WriteErrors: st.WriteErrors.Load(),
		EvictedHalfOpen: st.Evictions[engine.EvictHalfOpen].Load(), EvictedIdlePlain: st.Evictions[engine.EvictIdlePlain].Load(), EvictedHalfOpenLAN: st.Evictions[engine.EvictHalfOpenLAN].Load(),
		InboundFlows: s.Table.InboundLen(), InboundFlowsMax: s.Table.MaxInbound(),
		DowngradesSuspected: st.DowngradesSuspected.Load(), DowngradesBlocked: st.DowngradesBlocked.Load(),
		RequiredResets:   st.RequiredResets.Load(),
		ENOFailuresType1: st.ENOFailuresType1.Load(), ENOFailuresType2: st.ENOFailuresType2.Load(),
		BrokenPathPlain: st.BrokenPathPlain.Load(), SYNFallbacksRefused: st.SYNFallbacksRefused.Load(),
		SYNFallbacksDeferred: st.SYNFallbacksDeferred.Load(),
		BufferedBytes:        s.Table.BytesInUse(), BufferedBytesMax: s.Table.MaxBytesTotal(),
		LivePlainBytesOut: c.plainOut, LivePlainBytesIn: c.plainIn,
		LiveCipherBytesOut: c.cipherOut, LiveCipherBytesIn: c.cipherIn,
		UptimeSeconds: time.Since(s.Start).Seconds(),
	}
	if s.Workers != nil {
		res.Workers = s.Workers()
	}
	for i, name := range stateNames {
		res.FlowsByState[name] = c.byState[i+1]
	}
	return res
}

func (s *Source) serveStats(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, s.StatsNow())
}

// flowFilter is the parsed query of /api/flows.
type flowFilter struct {
	limit, offset int
	after         uint64 // only flows with a larger ID
	encrypted     string // "", "true" or "false"
	state, host   string
}

func parseFlowFilter(r *http.Request) (flowFilter, string) {
	q := r.URL.Query()
	f := flowFilter{limit: DefaultLimit}
	var err error
	if v := q.Get("limit"); v != "" {
		if f.limit, err = strconv.Atoi(v); err != nil || f.limit < 1 || f.limit > MaxLimit {
			return f, "limit must be an integer from 1 to " + strconv.Itoa(MaxLimit)
		}
	}
	if v := q.Get("offset"); v != "" {
		if f.offset, err = strconv.Atoi(v); err != nil || f.offset < 0 || f.offset > MaxOffset {
			return f, "offset must be an integer from 0 to " + strconv.Itoa(MaxOffset) + " (page with after= beyond that)"
		}
	}
	if v := q.Get("after"); v != "" {
		if f.after, err = strconv.ParseUint(v, 10, 64); err != nil {
			return f, "after must be a flow id (a non-negative integer)"
		}
	}
	f.encrypted = q.Get("encrypted")
	if f.encrypted != "" && f.encrypted != "true" && f.encrypted != "false" {
		return f, "encrypted must be true or false"
	}
	f.state = q.Get("state")
	if f.state != "" && !slices.Contains(stateNames, f.state) {
		return f, "state must be one of " + strings.Join(stateNames, ", ")
	}
	f.host = q.Get("host")
	if len(f.host) > maxHostQuery {
		return f, "host must be at most " + strconv.Itoa(maxHostQuery) + " characters"
	}
	return f, ""
}

func (s *Source) serveFlow(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseUint(r.PathValue("id"), 10, 64)
	if err != nil {
		httpError(w, http.StatusBadRequest, "flow id must be a non-negative integer")
		return
	}
	// A lookup by ID, not a snapshot of every flow.
	var row flowRow
	found := s.Table.Lookup(id, func(en *flowtable.Entry[*engine.Flow]) {
		row = flowRow{id: en.ID, created: en.Created, lastActive: en.LastActive, info: en.Value.Snapshot()}
	})
	if !found {
		httpError(w, http.StatusNotFound, "no such flow")
		return
	}
	f := row.json(time.Now())
	if row.info.Encrypted {
		f.Seq = &row.info.Seq
	}
	writeJSON(w, f)
}

// PathsJSON is the body of /api/paths: what the gateway remembers of the
// RFC 8547 §9 failures on the path to each peer (engine fallback.go).
type PathsJSON struct {
	Paths []downgrade.Path `json:"paths"`
}

func (s *Source) servePaths(w http.ResponseWriter, r *http.Request) {
	ps := s.Paths.Snapshot(time.Now())
	if ps == nil {
		ps = []downgrade.Path{}
	}
	writeJSON(w, PathsJSON{Paths: ps})
}
