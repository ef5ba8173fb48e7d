// The queue beyond a hole: segments that arrived after a gap in their
// stream wait here, in a direction of their own (from the WAN in C,
// from the LAN in P), until the gap is filled.

package engine

import "tcpcrypt-gw/gateway/packet"

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
