// The queue beyond a hole: segments that arrived after a gap in their
// stream wait here, in a direction of their own (from the WAN in C,
// from the LAN in P), until the gap is filled.

package engine

import "tcpcrypt-gw/gateway/packet"

// oooSeg is a segment that arrived beyond a hole (from the WAN in C, from
// the LAN in P).
type oooSeg[S space] struct {
	seq  seqNum[S]
	data []byte
	buf  *[]byte // the pooled buffer data lives in (oooPool)
	fin  bool
}

// oooPool backs the queued segments (2 KiB, a full-sized segment, to 1 MiB,
// islands merged from super-packets): a segment that arrives beyond a hole
// costs no allocation.
var oooPool = slicePool[byte]{minLen: 2048}

// newOOOSeg returns a segment of n bytes at seq, in a pooled buffer.
func newOOOSeg[S space](seq seqNum[S], n int) oooSeg[S] {
	b := oooPool.get(n)
	return oooSeg[S]{seq: seq, data: (*b)[:n], buf: b}
}

// free gives the segment's buffer back; the segment is empty after.
func (s *oooSeg[S]) free() {
	if s.buf != nil {
		oooPool.put(s.buf)
	}
	*s = oooSeg[S]{}
}

func (s *oooSeg[S]) end() seqNum[S] { return s.seq.add(len(s.data)) }

// oooQueue keeps out-of-order segments sorted by sequence number, and the
// sequence number of the last one that arrived (its island of data leads
// the SACK blocks).
type oooQueue[S space] struct {
	segs   []oooSeg[S]
	bytes  int
	recent seqNum[S]
}

// oooMaxIslands bounds the islands of a queue. Each lives in a pooled
// buffer of at least 2 KiB while the budget counts its bytes, so islands of
// a few bytes each could hold far more memory than was reserved; with the
// bound a queue holds at most 128 KiB beyond twice what it reserved. Real
// loss and reordering make a few islands per window.
const oooMaxIslands = 64

func (q *oooQueue[S]) len() int { return len(q.segs) }

// fits reports how many bytes of [seq, seq+n) the queue does not hold yet
// (what its direction must reserve before insert), and whether the queue
// has room for them (ok false: they must be dropped).
func (q *oooQueue[S]) fits(seq seqNum[S], n int) (fresh int, ok bool) {
	fresh = q.newBytes(seq, n)
	return fresh, fresh == 0 || q.room(seq, n)
}

// room reports whether [seq, seq+n) can be queued: it joins an island, or
// there is room for one more.
func (q *oooQueue[S]) room(seq seqNum[S], n int) bool {
	if len(q.segs) < oooMaxIslands {
		return true
	}
	end := seq.add(n)
	for i := range q.segs {
		if q.segs[i].seq.leq(end) && seq.leq(q.segs[i].end()) {
			return true
		}
	}
	return false
}

func (q *oooQueue[S]) first() *oooSeg[S] { return &q.segs[0] }

func (q *oooQueue[S]) pop() {
	q.bytes -= len(q.segs[0].data)
	q.segs[0].free()
	copy(q.segs, q.segs[1:])
	q.segs[len(q.segs)-1] = oooSeg[S]{}
	q.segs = q.segs[:len(q.segs)-1]
}

func (q *oooQueue[S]) clear() {
	for i := range q.segs {
		q.segs[i].free()
	}
	q.segs, q.bytes = q.segs[:0], 0
}

// newBytes counts the bytes of [seq, seq+n) that no queued segment holds
// (queued segments never overlap: insert merges them).
func (q *oooQueue[S]) newBytes(seq seqNum[S], n int) int {
	end := seq.add(n)
	for _, s := range q.segs {
		lo, hi := seq.max(s.seq), end.min(s.end())
		if lo.lt(hi) {
			n -= hi.since(lo)
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
func (q *oooQueue[S]) insert(seq seqNum[S], data []byte, fin bool) {
	q.recent = seq
	end := seq.add(len(data))
	i := 0
	for i < len(q.segs) && q.segs[i].end().lt(seq) {
		i++
	}
	j := i
	for j < len(q.segs) && q.segs[j].seq.leq(end) {
		j++
	}
	if i == j { // touches nothing: a segment of its own
		q.segs = append(q.segs, oooSeg[S]{})
		copy(q.segs[i+1:], q.segs[i:])
		q.segs[i] = newOOOSeg(seq, len(data))
		copy(q.segs[i].data, data)
		q.segs[i].fin = fin
		q.bytes += len(data)
		return
	}
	lo, hi := seq.min(q.segs[i].seq), end.max(q.segs[j-1].end())
	merged := newOOOSeg(lo, hi.since(lo))
	for k := i; k < j; k++ {
		s := &q.segs[k]
		copy(merged.data[s.seq.since(lo):], s.data)
		merged.fin = merged.fin || s.fin && s.end() == hi
		q.bytes -= len(s.data)
		s.free()
	}
	copy(merged.data[seq.since(lo):], data)
	merged.fin = merged.fin || fin && end == hi
	q.bytes += len(merged.data)
	q.segs[i] = merged
	q.segs = append(q.segs[:i+1], q.segs[j:]...)
	clear(q.segs[len(q.segs) : len(q.segs)+j-i-1])
}

func (q *oooQueue[S]) blocks(dst []packet.SACKBlock, n int) []packet.SACKBlock {
	start := len(dst)
	for i := 0; i < len(q.segs); {
		l := q.segs[i].seq
		r := q.segs[i].end()
		j := i + 1
		for j < len(q.segs) && q.segs[j].seq.leq(r) {
			r = r.max(q.segs[j].end())
			j++
		}
		dst = append(dst, packet.SACKBlock{Left: uint32(l), Right: uint32(r)})
		i = j
	}
	// highest first, then the recent island to the front
	b := dst[start:]
	for x, y := 0, len(b)-1; x < y; x, y = x+1, y-1 {
		b[x], b[y] = b[y], b[x]
	}
	for k := range b {
		if l, r := seqNum[S](b[k].Left), seqNum[S](b[k].Right); q.recent.geq(l) && q.recent.lt(r) {
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
