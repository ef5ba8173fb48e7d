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
//     limit and the global budget before it is kept (admitOut, admitIn);
//     what could not be reserved is dropped (TCP retransmits it). After
//     each packet, settle returns what the flow no longer holds. So between
//     packets, for each direction, held <= reserved <= its limit, and the
//     global budget in use is the sum of all reservations.
//  4. Windows rather than drops: the window each side is given is capped to
//     what its direction can still reserve (room), so a sender that keeps
//     to it is not dropped. When the global budget runs short the windows
//     shrink; RFC 9293 §3.8.6 discourages moving a window's right edge to
//     the left but requires senders to cope with it (MUST-34), and it is
//     better than dropping what the sender was allowed to send.

package engine

import (
	"tcpcrypt-gw/crypto/tcpcrypt"
	"tcpcrypt-gw/gateway/packet"
)

// What a flow costs besides its buffers, in heap bytes with its share of
// the flow table, as measured by BenchmarkHalfOpenFlowMemory and
// BenchmarkIdleFlowMemory (active: the same flows before releaseIdle),
// rounded up.
// check-config prints the worst case of the configured limits from them.
const (
	HalfOpenFlowBytes = 600
	IdleFlowBytes     = 1600
	ActiveFlowBytes   = 3200
)

// maxFrameLen is the largest frame a peer may send: a 16-bit length field
// (RFC 8548 §4.2).
const maxFrameLen = 1<<16 - 1 + tcpcrypt.FrameHeaderLen

// dirLimit is what one direction of a flow may hold.
func dirLimit(cfg *Config) int { return cfg.MaxBufferPerFlow / 2 }

// admitOut reserves n bytes for f's LAN-to-WAN direction; false means the
// bytes must not be kept.
func (e *Engine) admitOut(f *Flow, n int) bool {
	return e.reserve(&f.enc.reserved, n, dirLimit(e.cfg.Load()))
}

// admitIn reserves n bytes for f's WAN-to-LAN direction; false means the
// bytes must not be kept.
func (e *Engine) admitIn(f *Flow, n int) bool {
	limit := dirLimit(e.cfg.Load())
	if d := &f.dec; d.ring.len() == 0 && d.ooo.bytes == 0 && len(d.partial)+n <= maxFrameLen {
		limit = max(limit, maxFrameLen) // a frame being gathered, and nothing else (see above)
	}
	return e.reserve(&f.dec.reserved, n, limit)
}

func (e *Engine) reserve(reserved *int, n, limit int) bool {
	if *reserved+n > limit || !e.table.Reserve(n) {
		return false
	}
	*reserved += n
	return true
}

// room is how many bytes a direction that has reserved `reserved` may hold
// in all, as far as its limit and the global budget allow now: the window
// its sender is given.
func (e *Engine) room(reserved int) int {
	free := e.table.MaxBytesTotal() - e.table.BytesInUse()
	return reserved + int(max(0, min(int64(dirLimit(e.cfg.Load())-reserved), free)))
}

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

// settle returns to the budget what f no longer keeps, and drops the
// handshake state of an encrypted flow.
func (e *Engine) settle(f *Flow) {
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
			e.table.Release(*d.reserved - d.held)
			*d.reserved = d.held
		}
	}
	e.parkRing(&f.enc.ring)
	e.parkRing(&f.dec.ring)
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
func (e *Engine) parkRing(r *byteRing) {
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

// enqueue keeps [seq, seq+len(data)) in q, a direction's queue beyond a
// hole, reserving with admit (admitIn or admitOut) only the bytes q does
// not hold yet. It reports false if the bytes were dropped (limits).
func (e *Engine) enqueue(f *Flow, q *oooQueue, admit func(*Engine, *Flow, int) bool, seq uint32, data []byte, fin bool) bool {
	if n := q.newBytes(seq, len(data)); n > 0 && (!q.room(seq, len(data)) || !admit(e, f, n)) {
		e.stats.BufferDrops.Add(1)
		return false
	}
	q.insert(seq, data, fin)
	return true
}

// oooSeg is a segment that arrived beyond a hole (from the WAN in C, from
// the LAN in P).
type oooSeg struct {
	seq  uint32
	data []byte
	buf  *[]byte // the pooled buffer data lives in (oooPool)
	fin  bool
}

// oooPool backs the queued segments (2 KiB, a full-sized segment, to 1 MiB,
// islands merged from super-packets): a segment that arrives beyond a hole
// costs no allocation.
var oooPool = slicePool[byte]{minLen: 2048}

// newOOOSeg returns a segment of n bytes at seq, in a pooled buffer.
func newOOOSeg(seq uint32, n int) oooSeg {
	b := oooPool.get(n)
	return oooSeg{seq: seq, data: (*b)[:n], buf: b}
}

// free gives the segment's buffer back; the segment is empty after.
func (s *oooSeg) free() {
	if s.buf != nil {
		oooPool.put(s.buf)
	}
	*s = oooSeg{}
}

func (s *oooSeg) end() uint32 { return s.seq + uint32(len(s.data)) }

// oooQueue keeps out-of-order segments sorted by sequence number, and the
// sequence number of the last one that arrived (its island of data leads
// the SACK blocks).
type oooQueue struct {
	segs   []oooSeg
	bytes  int
	recent uint32
}

// oooMaxIslands bounds the islands of a queue. Each lives in a pooled
// buffer of at least 2 KiB while the budget counts its bytes, so islands of
// a few bytes each could hold far more memory than was reserved; with the
// bound a queue holds at most 128 KiB beyond twice what it reserved. Real
// loss and reordering make a few islands per window.
const oooMaxIslands = 64

func (q *oooQueue) len() int { return len(q.segs) }

// room reports whether [seq, seq+n) can be queued: it joins an island, or
// there is room for one more.
func (q *oooQueue) room(seq uint32, n int) bool {
	if len(q.segs) < oooMaxIslands {
		return true
	}
	end := seq + uint32(n)
	for i := range q.segs {
		if seqLEQ(q.segs[i].seq, end) && seqLEQ(seq, q.segs[i].end()) {
			return true
		}
	}
	return false
}
func (q *oooQueue) first() *oooSeg { return &q.segs[0] }

func (q *oooQueue) pop() {
	q.bytes -= len(q.segs[0].data)
	q.segs[0].free()
	copy(q.segs, q.segs[1:])
	q.segs[len(q.segs)-1] = oooSeg{}
	q.segs = q.segs[:len(q.segs)-1]
}

func (q *oooQueue) clear() {
	for i := range q.segs {
		q.segs[i].free()
	}
	q.segs, q.bytes = q.segs[:0], 0
}

// newBytes counts the bytes of [seq, seq+n) that no queued segment holds
// (queued segments never overlap: insert merges them).
func (q *oooQueue) newBytes(seq uint32, n int) int {
	end := seq + uint32(n)
	for _, s := range q.segs {
		lo, hi := seqMax(seq, s.seq), seqMin(end, s.end())
		if seqLT(lo, hi) {
			n -= int(hi - lo)
		}
	}
	return n
}

// insert queues [seq, seq+len(data)), merged with every queued segment it
// overlaps or touches into one: a retransmission that covers queued bytes
// (a sender's super-packet spans several islands) is held once, so that
// bytes counts each byte once and the reservation (newBytes) matches it.
// A retransmission carries the same bytes (RFC 8548 §3.6), so which copy
// is kept does not matter.
func (q *oooQueue) insert(seq uint32, data []byte, fin bool) {
	q.recent = seq
	end := seq + uint32(len(data))
	i := 0
	for i < len(q.segs) && seqLT(q.segs[i].end(), seq) {
		i++
	}
	j := i
	for j < len(q.segs) && seqLEQ(q.segs[j].seq, end) {
		j++
	}
	if i == j { // touches nothing: a segment of its own
		q.segs = append(q.segs, oooSeg{})
		copy(q.segs[i+1:], q.segs[i:])
		q.segs[i] = newOOOSeg(seq, len(data))
		copy(q.segs[i].data, data)
		q.segs[i].fin = fin
		q.bytes += len(data)
		return
	}
	lo, hi := seqMin(seq, q.segs[i].seq), seqMax(end, q.segs[j-1].end())
	merged := newOOOSeg(lo, int(hi-lo))
	for k := i; k < j; k++ {
		s := &q.segs[k]
		copy(merged.data[s.seq-lo:], s.data)
		merged.fin = merged.fin || s.fin && s.end() == hi
		q.bytes -= len(s.data)
		s.free()
	}
	copy(merged.data[seq-lo:], data)
	merged.fin = merged.fin || fin && end == hi
	q.bytes += len(merged.data)
	q.segs[i] = merged
	q.segs = append(q.segs[:i+1], q.segs[j:]...)
	clear(q.segs[len(q.segs) : len(q.segs)+j-i-1])
}

func (q *oooQueue) blocks(dst []packet.SACKBlock, n int) []packet.SACKBlock {
	start := len(dst)
	for i := 0; i < len(q.segs); {
		l := q.segs[i].seq
		r := l + uint32(len(q.segs[i].data))
		j := i + 1
		for j < len(q.segs) && seqLEQ(q.segs[j].seq, r) {
			r = seqMax(r, q.segs[j].seq+uint32(len(q.segs[j].data)))
			j++
		}
		dst = append(dst, packet.SACKBlock{Left: l, Right: r})
		i = j
	}
	// highest first, then the recent island to the front
	b := dst[start:]
	for x, y := 0, len(b)-1; x < y; x, y = x+1, y-1 {
		b[x], b[y] = b[y], b[x]
	}
	for k := range b {
		if !seqLT(q.recent, b[k].Left) && seqLT(q.recent, b[k].Right) {
			rec := b[k]
			copy(b[1:k+1], b[:k])
			b[0] = rec
			break
		}
	}
	if len(b) > n {
		dst = dst[:start+n]
	}
	return dst
}
