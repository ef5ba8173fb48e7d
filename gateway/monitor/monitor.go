// Package monitor serves the gateway's read-only HTTP API: per-flow state
// and statistics, and totals.
//
// The flow of a request:
//  1. Authentication: a bearer token is required when one is configured
//     (always, when the listener is not on loopback).
//  2. Snapshot: each shard of the flow table is locked in turn, just long
//     enough to copy its flows' Info (no secret is copied).
//  3. Filter, sort by flow ID, paginate, encode as JSON.
package monitor

import (
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"tcpcrypt-gw/flowtable"
	"tcpcrypt-gw/gateway/engine"
)

// Source is what the API reads.
type Source struct {
	Table  *flowtable.Table[*engine.Flow]
	Shards int
	Stats  *engine.Stats
	Start  time.Time
}

// FlowJSON is one flow as the API shows it.
type FlowJSON struct {
	ID             uint64    `json:"id"`
	LAN            string    `json:"lan"`
	WAN            string    `json:"wan"`
	Direction      string    `json:"direction"`
	State          string    `json:"state"`
	Encrypted      bool      `json:"encrypted"`
	Reason         string    `json:"reason,omitempty"`
	TEP            string    `json:"tep,omitempty"`
	Cipher         string    `json:"cipher,omitempty"`
	SessionID      string    `json:"session_id,omitempty"`
	PlainBytesOut  uint64    `json:"plain_bytes_out"`
	PlainBytesIn   uint64    `json:"plain_bytes_in"`
	CipherBytesOut uint64    `json:"cipher_bytes_out"`
	CipherBytesIn  uint64    `json:"cipher_bytes_in"`
	PacketsOut     uint64    `json:"packets_out"`
	PacketsIn      uint64    `json:"packets_in"`
	RekeysOut      uint64    `json:"rekeys_out"`
	RekeysIn       uint64    `json:"rekeys_in"`
	Started        time.Time `json:"started"`
	LastActive     time.Time `json:"last_active"`
	AgeSeconds     float64   `json:"age_seconds"`

	Seq *engine.SeqInfo `json:"seq,omitempty"` // only in /api/flows/{id}
}

// Snapshot copies every flow.
func (s *Source) Snapshot() []FlowJSON { return s.snapshot(false) }

func (s *Source) snapshot(withSeq bool) []FlowJSON {
	var res []FlowJSON
	now := time.Now()
	for i := 0; i < s.Shards; i++ {
		s.Table.LockShard(i)
		s.Table.Range(i, func(en *flowtable.Entry[*engine.Flow]) bool {
			in := en.Value.Snapshot()
			res = append(res, FlowJSON{
				ID: en.ID, LAN: in.LAN.String(), WAN: in.WAN.String(), Direction: in.Role, State: in.State,
				Encrypted: in.Encrypted, Reason: in.Reason, TEP: in.TEP, Cipher: in.Cipher,
				SessionID:     hex.EncodeToString(in.SessionID),
				PlainBytesOut: in.Stats.PlainBytesOut, PlainBytesIn: in.Stats.PlainBytesIn,
				CipherBytesOut: in.Stats.CipherBytesOut, CipherBytesIn: in.Stats.CipherBytesIn,
				PacketsOut: in.Stats.PacketsOut, PacketsIn: in.Stats.PacketsIn,
				RekeysOut: in.Stats.RekeysOut, RekeysIn: in.Stats.RekeysIn,
				Started: en.Created, LastActive: en.LastActive, AgeSeconds: now.Sub(en.Created).Seconds(),
			})
			if withSeq && in.Encrypted {
				res[len(res)-1].Seq = &in.Seq
			}
			return true
		})
		s.Table.UnlockShard(i)
	}
	slices.SortFunc(res, func(a, b FlowJSON) int {
		switch {
		case a.ID < b.ID:
			return -1
		case a.ID > b.ID:
			return 1
		}
		return 0
	})
	return res
}

// Handler returns the API. token, if not empty, is required as a bearer token.
func Handler(src *Source, token string) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /api/stats", func(w http.ResponseWriter, r *http.Request) {
		st := src.Stats
		writeJSON(w, map[string]any{
			"flows":             src.Table.Len(),
			"flows_encrypted":   st.FlowsEncrypted.Load(),
			"flows_plain":       st.FlowsPlain.Load(),
			"auth_failures":     st.AuthFailures.Load(),
			"truncations":       st.Truncations.Load(),
			"init_timeouts":     st.InitTimeouts.Load(),
			"malformed_packets": st.Malformed.Load(),
			"table_full":        st.TableFull.Load(),
			"buffer_drops":      st.BufferDrops.Load(),
			"syn_fallbacks":     st.SYNFallbacks.Load(),
			"bad_checksums":     st.BadChecksum.Load(),
			"packets_in":        st.PacketsIn.Load(),
			"packets_out":       st.PacketsOut.Load(),
			"buffered_bytes":    src.Table.BytesInUse(),
			"uptime_seconds":    time.Since(src.Start).Seconds(),
		})
	})
	mux.HandleFunc("GET /api/flows", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		limit, offset := 1000, 0
		var err error
		if v := q.Get("limit"); v != "" {
			if limit, err = strconv.Atoi(v); err != nil || limit < 1 || limit > 10000 {
				httpError(w, http.StatusBadRequest, "limit must be an integer from 1 to 10000")
				return
			}
		}
		if v := q.Get("offset"); v != "" {
			if offset, err = strconv.Atoi(v); err != nil || offset < 0 {
				httpError(w, http.StatusBadRequest, "offset must be a non-negative integer")
				return
			}
		}
		enc := q.Get("encrypted")
		if enc != "" && enc != "true" && enc != "false" {
			httpError(w, http.StatusBadRequest, "encrypted must be true or false")
			return
		}
		state, host := q.Get("state"), q.Get("host")
		all := src.Snapshot()
		flows := all[:0]
		for _, f := range all {
			if enc != "" && strconv.FormatBool(f.Encrypted) != enc || state != "" && f.State != state ||
				host != "" && !strings.Contains(f.LAN, host) && !strings.Contains(f.WAN, host) {
				continue
			}
			flows = append(flows, f)
		}
		total := len(flows)
		flows = flows[min(offset, total):min(offset+limit, total)]
		writeJSON(w, map[string]any{"total": total, "offset": offset, "flows": flows})
	})
	mux.HandleFunc("GET /api/flows/{id}", func(w http.ResponseWriter, r *http.Request) {
		id, err := strconv.ParseUint(r.PathValue("id"), 10, 64)
		if err != nil {
			httpError(w, http.StatusBadRequest, "flow id must be a number")
			return
		}
		for _, f := range src.snapshot(true) {
			if f.ID == id {
				writeJSON(w, f)
				return
			}
		}
		httpError(w, http.StatusNotFound, "no such flow")
	})
	if token == "" {
		return mux
	}
	want := []byte("Bearer " + token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), want) != 1 {
			httpError(w, http.StatusUnauthorized, "missing or wrong bearer token")
			return
		}
		mux.ServeHTTP(w, r)
	})
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

func httpError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(map[string]string{"error": msg})
}
