// The memory model, one for both directions and enforced (FuzzProcess
// checks it after every step):
//
//  1. What a flow holds, by direction. Out (LAN to WAN): LAN plaintext held
//     until the keys exist or beyond a hole in the LAN host's stream, and
//     ciphertext sent and not yet acknowledged by the WAN peer (RFC 8548
//     §3.6: a retransmission re-sends the same bytes). In (WAN to LAN):
//     plaintext delivered and not yet acknowledged by the LAN host (it is
//     what a retransmission is answered from), a frame cut across
//     segments, and bytes beyond a hole. The Init messages
//     (ours until acknowledged, the peer's as it arrives) are protocol state
//     of bounded size, outside the model.
//  2. Limits. Each direction may hold half of flows.max_buffer_per_flow, so
//     one direction waiting for its peer's acknowledgments never starves
//     the other: two gateways under duplex load cannot wait for each other
//     (the two-way deadlock). One exception keeps any RFC 8548 frame
//     receivable: a direction holding nothing but a frame being gathered
//     may gather it whole (up to maxFrameLen). And every byte of every flow
//     counts against flows.max_buffer_total.
//  3. Reserve, then store: each byte is reserved against its direction's
//     limit and the global budget before it is kept, by the direction that
//     keeps it (encState.admit in encrypt.go, decState.admit in decrypt.go);
//     what could not be reserved is dropped (TCP retransmits it). After
//     each packet, returnUnheld returns what the flow no longer holds. So between
//     packets, for each direction, held <= reserved <= its limit, and the
//     global budget in use is the sum of all reservations.
//  4. Windows rather than drops: the window each side is given is capped to
//     what its direction can still reserve (room, winToWAN and winToLAN in
//     emit.go, where the segments that carry them are built), so a sender that keeps
//     to it is not dropped. When the global budget runs short the windows
//     shrink; RFC 9293 §3.8.6 discourages moving a window's right edge to
//     the left but requires senders to cope with it (MUST-34), and it is
//     better than dropping what the sender was allowed to send.

package engine

import (
	"tcpcrypt-gw/crypto/tcpcrypt"
)

// What a flow costs besides its buffers, in heap bytes with its share of
// the flow table, as measured by BenchmarkHalfOpenFlowMemory and
// BenchmarkIdleFlowMemory (active: the same flows before releaseIdle),
// rounded up.
// check-config prints the worst case of the configured limits from them.
const (
	HalfOpenFlowBytes = 640
	IdleFlowBytes     = 1600
	ActiveFlowBytes   = 3200
)

// maxFrameLen is the largest frame a peer may send: a 16-bit length field
// (RFC 8548 §4.2).
const maxFrameLen = 1<<16 - 1 + tcpcrypt.FrameHeaderLen

// dirLimit is what one direction of a flow may hold (point 2); Engine.Lock
// derives it once per batch (pkt.dirLimit).
func dirLimit(cfg *Config) int { return cfg.MaxBufferPerFlow / 2 }

// heldOut is what f's LAN-to-WAN direction holds now, our Init aside.
func (f *Flow) heldOut() int {
	en := &f.enc
	n := en.ring.len() + en.held.len() + en.ooo.bytes
	if en.recs.len() > 0 && en.recs.first().init {
		n -= en.initLen
	}
	return n
}

// heldIn is what f's WAN-to-LAN direction holds now.
func (f *Flow) heldIn() int {
	d := &f.dec
	return d.ring.len() + len(d.partial) + d.ooo.bytes
}

// returnUnheld returns to the budget what f no longer keeps, and drops the
// handshake state of an encrypted flow.
func (c *pkt) returnUnheld(f *Flow) {
	if f.State == StateEncrypted {
		f.handshake = nil // done with it (see Flow)
	}
	if f.streams == nil {
		return
	}
	for _, d := range [2]struct {
		reserved *int
		held     int
	}{{&f.enc.reserved, f.heldOut()}, {&f.dec.reserved, f.heldIn()}} {
		if d.held < *d.reserved {
			c.table.Release(*d.reserved - d.held)
			*d.reserved = d.held
		}
	}
	parkRing(c.Engine, &f.enc.ring)
	parkRing(c.Engine, &f.dec.ring)
}

// ParkShare: parked buffers take at most 1/ParkShare of the buffer budget
// (config.MemoryParkedShare counts them).
const ParkShare = 8

// parkRing decides, after a packet, about the buffer of a ring: a ring that
// has emptied keeps a buffer of at least parkMin (parked) while all parked
// buffers together stay within 1/ParkShare of flows.max_buffer_total;
// otherwise the buffer goes back to its pool. A busy flow whose ring
// empties between bursts (the LAN host acknowledges everything delivered)
// then refills the buffer it had, instead of growing a new one from the
// size of one burst up, each step a copy of what it holds (5 % of the
// decrypting gateway's time). Small buffers are cheap to grow again, and
// thousands of small flows must not hold them. A parked buffer holds no
// data, so it is not reserved against the budget, which it would shrink
// for flows that have data (a zero-window flow, never idle, could keep it
// for good): it has its own allowance. A flow going idle (releaseIdle) or
// away (release) gives its parked buffers back.
func parkRing[S space](e *Engine, r *byteRing[S]) {
	const parkMin = 64 << 10
	if r.parked > 0 && (r.len() > 0 || r.pool == nil || len(*r.pool) != int(r.parked)) {
		e.stats.ParkedBytes.Add(-int64(r.parked))
		r.parked = 0
	}
	if r.len() > 0 || r.pool == nil || r.parked > 0 {
		return
	}
	c := len(*r.pool)
	if c < parkMin {
		r.free()
		return
	}
	if limit := e.table.MaxBytesTotal() / ParkShare; e.stats.ParkedBytes.Add(int64(c)) <= limit {
		r.parked = int32(c)
		return
	}
	e.stats.ParkedBytes.Add(-int64(c))
	r.free()
}
