// The flow table's admission and eviction policy: where a new flow finds
// its place, and which flow gives its place up when the table is full.
//
//  1. insert: a flow from the LAN may take the whole table, a flow from the
//     WAN only the inbound share (the LAN reserve stays free). A new SYN's
//     flow takes the place of the one its key had.
//  2. Full: evict, by kind in this order, the flow due soonest: half-open
//     flows from the WAN and closed flows, then idle plain flows, then the
//     LAN's own half-open flows (evictable). A flow from the WAN only ever
//     evicts another flow from the WAN. Encrypted flows and flows in the
//     key exchange are never evicted.
//  3. recycle: an evicted flow's memory is kept for the next new flows
//     (newFlow, newHandshake, newConnParams, newSYNRecord in syn.go, which
//     builds new flows), so that a SYN flood makes little garbage.
//  4. release: a flow that leaves the table (removed for a new one,
//     evicted, expired) gives its bytes back to the budget and its buffers
//     to their pools.

package engine

import (
	"tcpcrypt-gw/flowtable"
	"time"
)

// insert gives the new flow f its place under key, in place of old, the
// flow the table held for key (a new SYN for it), if not nil. It returns
// nil when the table has no room.
func (c *pkt) insert(key flowtable.Key, f *Flow, old *flowtable.Entry[*Flow]) *flowtable.Entry[*Flow] {
	if old != nil {
		old.Value.release(c.table, c.stats)
		c.table.Delete(c.shard, old)
	}
	inbound := f.Role == RoleB
	put := c.table.Insert
	if inbound {
		put = c.table.InsertInbound // within the inbound share: the LAN reserve stays free
	}
	entry, err := put(c.shard, key, f, c.now)
	for kind := EvictHalfOpen; err == flowtable.ErrFull && kind < NumEvictKinds; {
		// Under pressure, make room: first the half-open flows from the
		// WAN and closing flows, then idle plain ones, then the LAN's own
		// half-open ones, each time the one due soonest. A flow from the
		// WAN only ever evicts another flow from the WAN.
		v := c.table.Evict(c.shard, func(en *flowtable.Entry[*Flow]) bool {
			return (!inbound || en.Inbound) && en.Value.evictable(en, c.now) == kind
		})
		if v == nil {
			kind++
			continue
		}
		c.stats.Evictions[kind].Add(1)
		c.fullAt = c.now
		c.recycle(v)
		entry, err = put(c.shard, key, f, c.now)
	}
	if err != nil {
		c.fullAt = c.now
		c.stats.TableFull.Add(1)
		return nil
	}
	f.Stats.Started = c.now
	// A new flow has seen only its SYN: it is half-open, whatever state the
	// caller then gives it, until its next packet touches it by state. (The
	// state is not set yet here, so touch would give it idle_timeout and a
	// SYN flood would stay in the table for hours.)
	entry.Touch(c.now, c.now.Add(c.cfg.HandshakeTimeout))
	return entry
}

// recycle releases an evicted flow and keeps its memory for the next new
// flows (newFlow, newHandshake, newConnParams, newSYNRecord,
// Table.Recycle), so that a
// SYN flood, which evicts a flow for each new one, makes little garbage.
// Only a flow without streams is reused: no list of the engine (pending)
// can hold it.
func (e *Engine) recycle(v *flowtable.Entry[*Flow]) {
	f := v.Value
	f.release(e.table, e.stats)
	e.table.Recycle(e.shard, v)
	if f.streams != nil {
		return
	}
	e.spare.flow = f
	if f.handshake != nil {
		e.spare.handshake = f.handshake
	}
	if f.connParams != nil {
		e.spare.connParams = f.connParams
	}
	if f.syn != nil {
		e.spare.synRecord = f.syn
	}
}

// release returns the flow's buffered bytes to the global budget, and its
// parked buffers to the parking allowance (parkRing).
func (f *Flow) release(t *flowtable.Table[*Flow], st *Stats) {
	n := f.buffered()
	if n > 0 {
		t.Release(n)
	}
	if f.streams == nil {
		return
	}
	st.ParkedBytes.Add(-int64(f.parked()))
	f.enc.reserved, f.dec.reserved = 0, 0
	f.enc.ring.parked, f.dec.ring.parked = 0, 0
	f.enc.ring.free()
	f.enc.held.free()
	f.dec.ring.free()
	f.enc.recs.free()
	f.dec.recs.free()
	f.dec.partial = nil
	f.dec.ooo.clear()
	f.enc.ooo.clear()
}

// parked is the size of the buffers f's empty rings keep (parkRing).
func (f *Flow) parked() int { return int(f.enc.ring.parked + f.dec.ring.parked) }

// buffered is what f has reserved against the budget (budget.go).
func (f *Flow) buffered() int {
	if f.streams == nil {
		return 0
	}
	return f.enc.reserved + f.dec.reserved
}

// spares are the parts of an evicted flow kept for reuse (recycle).
type spares struct {
	flow       *Flow
	handshake  *handshake
	connParams *connParams
	synRecord  *synRecord
}

// Kinds of flows evicted under pressure (Stats.Evictions), in the order
// they are evicted.
const (
	EvictHalfOpen    = iota // opened from the WAN, three-way handshake not complete; or closed (RST seen or sent)
	EvictIdlePlain          // plain, established, no packet for evictIdleAfter
	EvictHalfOpenLAN        // opened from the LAN, three-way handshake not complete: a LAN host waits for it
	NumEvictKinds
	evictNever = NumEvictKinds
)

// evictIdleAfter: a plain flow this long without a packet may be evicted
// for a new one when the table is full. Its endpoints, if they ever send
// again, get a RST (resetUnknown) and reconnect.
const evictIdleAfter = time.Minute

// evictable says which kind of eviction victim the flow is, or evictNever.
// Encrypted flows and flows in the key exchange are never evicted: their
// keys cannot be rebuilt, and the LAN reserve, not eviction, keeps room
// for the LAN.
func (f *Flow) evictable(en *flowtable.Entry[*Flow], now time.Time) int {
	halfOpen := f.embryonic() || f.State == StatePassthrough && !f.established
	switch {
	case halfOpen && f.Role == RoleA:
		return EvictHalfOpenLAN
	case halfOpen || f.State == StateClosed || f.State == StateReset:
		return EvictHalfOpen
	case f.State == StatePassthrough && now.Sub(en.LastActive) >= evictIdleAfter:
		return EvictIdlePlain
	}
	return evictNever
}

// embryonic: a flow that has not completed its three-way handshake.
func (f *Flow) embryonic() bool {
	switch f.State {
	case StateSYNSent, StateSYNReceived, StateSYNACKSent, StateACKPending:
		return true
	}
	return false
}
