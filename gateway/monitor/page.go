// One page of /api/flows, without copying the flow table: a dashboard
// polling a router with 64k flows must cost little (BenchmarkFlowsPage64k).
//
//  1. Select: each shard in turn, under its lock, is walked once. Each flow
//     that matches the filters and whose ID is above the cursor (after=) is
//     counted, and its ID kept if it is among the offset+limit smallest so
//     far (a max-heap of IDs, 16 bytes each). Nothing is copied and nothing
//     is formatted.
//  2. Copy: the IDs of the page, sorted, are looked up again, each shard's
//     under one lock, and only those flows are copied (Flow.Snapshot).
//  3. Format: the page is encoded as JSON, with the cursor of the next page.
//
// A flow that goes away between 1 and 2 is left out of the page; one that
// arrives meanwhile shows on a later page (IDs only grow). Memory per
// request: 16 bytes per flow selected (offset+limit, at most
// MaxOffset+MaxLimit), plus the page's rows and its JSON.

package monitor

import (
	"bufio"
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"time"

	"tcpcrypt-gw/flowtable"
	"tcpcrypt-gw/gateway/engine"
)

// pick is a flow selected for a page: its ID and its shard.
type pick struct {
	id    uint64
	shard int
}

// idHeap keeps the n smallest IDs offered, as a max-heap.
type idHeap struct {
	picks []pick
	n     int
}

func (h *idHeap) offer(p pick) {
	if len(h.picks) < h.n {
		h.picks = append(h.picks, p)
		for j := len(h.picks) - 1; j > 0; {
			parent := (j - 1) / 2
			if h.picks[parent].id >= h.picks[j].id {
				break
			}
			h.picks[j], h.picks[parent] = h.picks[parent], h.picks[j]
			j = parent
		}
		return
	}
	if p.id >= h.picks[0].id {
		return
	}
	h.picks[0] = p
	for j := 0; ; {
		big := j
		if l := 2*j + 1; l < len(h.picks) && h.picks[l].id > h.picks[big].id {
			big = l
		}
		if r := 2*j + 2; r < len(h.picks) && h.picks[r].id > h.picks[big].id {
			big = r
		}
		if big == j {
			return
		}
		h.picks[j], h.picks[big] = h.picks[big], h.picks[j]
		j = big
	}
}

// matchFlow applies the filters to a flow in the table, without copying
// it; scratch formats the endpoints for the host filter. The caller holds
// the flow's shard lock.
func (f *flowFilter) matchFlow(fl *engine.Flow, scratch []byte) bool {
	if f.encrypted != "" && fl.Encrypted() != (f.encrypted == "true") || f.state != "" && fl.State.String() != f.state {
		return false
	}
	if f.host == "" {
		return true
	}
	return bytes.Contains(fl.LAN.AppendTo(scratch[:0]), []byte(f.host)) ||
		bytes.Contains(fl.WAN.AppendTo(scratch[:0]), []byte(f.host))
}

// page selects and copies the flows of one page, sorted by ID, and counts
// the flows matching the filters.
func (s *Source) page(f *flowFilter) (rows []flowRow, total int, more bool) {
	h := idHeap{n: f.offset + f.limit}
	h.picks = make([]pick, 0, min(h.n, s.Table.Len()+1))
	var scratch [64]byte
	for i := 0; i < s.Shards; i++ {
		s.Table.LockShard(i)
		s.Table.Range(i, func(en *flowtable.Entry[*engine.Flow]) bool {
			if en.ID > f.after && f.matchFlow(en.Value, scratch[:]) {
				total++
				h.offer(pick{en.ID, i})
			}
			return true
		})
		s.Table.UnlockShard(i)
	}
	picks := h.picks
	slices.SortFunc(picks, func(a, b pick) int { return cmp.Compare(a.id, b.id) })
	picks = picks[min(f.offset, len(picks)):]
	rows = make([]flowRow, 0, len(picks))
	for i := 0; i < s.Shards; i++ {
		s.Table.LockShard(i)
		for _, p := range picks {
			if p.shard != i {
				continue
			}
			if en, ok := s.Table.GetByID(i, p.id); ok {
				rows = append(rows, flowRow{id: en.ID, created: en.Created, lastActive: en.LastActive, info: en.Value.Snapshot()})
			}
		}
		s.Table.UnlockShard(i)
	}
	slices.SortFunc(rows, func(a, b flowRow) int { return cmp.Compare(a.id, b.id) })
	return rows, total, total > f.offset+len(picks)
}

func (s *Source) serveFlows(w http.ResponseWriter, r *http.Request) {
	filter, problem := parseFlowFilter(r)
	if problem != "" {
		httpError(w, http.StatusBadRequest, problem)
		return
	}
	rows, total, more := s.page(&filter)
	var next uint64
	if more && len(rows) > 0 {
		next = rows[len(rows)-1].id
	}
	// FlowListJSON, streamed one flow at a time: the page is never
	// formatted whole in memory.
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	bw := bufio.NewWriterSize(w, 16<<10)
	fmt.Fprintf(bw, "{\"total\": %d, \"after\": %d, \"offset\": %d, \"limit\": %d, \"next\": %d, \"flows\": [",
		total, filter.after, filter.offset, filter.limit, next)
	enc := json.NewEncoder(bw)
	now := time.Now()
	for i := range rows {
		if i > 0 {
			bw.WriteByte(',')
		}
		enc.Encode(rows[i].json(now))
	}
	bw.WriteString("]}\n")
	bw.Flush()
}
