// The per-direction memories of a flow: a byteRing keeps a contiguous range
// of one sequence space (the ciphertext first sent, or the plaintext first
// delivered) until the other end acknowledges it, and a recRing keeps the
// frame boundaries that map that range between the plaintext (P) and the
// ciphertext (C) spaces. Both are FIFOs that compact in place, so a flow in
// steady state allocates nothing.

package engine

import "sync"

// Sequence-number arithmetic modulo 2^32 (RFC 9293 §3.4).
func seqLT(a, b uint32) bool  { return int32(a-b) < 0 }
func seqLEQ(a, b uint32) bool { return int32(a-b) <= 0 }
func seqGT(a, b uint32) bool  { return int32(a-b) > 0 }
func seqMax(a, b uint32) uint32 {
	if seqGT(a, b) {
		return a
	}
	return b
}

// byteRing holds the bytes of sequence range [seq, seq+len). Its buffer
// comes from bufPools and goes back there as soon as the ring is empty: an
// idle flow holds no buffer, and a busy one reuses pooled buffers instead
// of allocating.
//
// The bytes are written in records (a frame, its plaintext, an Init) and
// read back a record or the rest of one at a time (slice), so the ring
// wraps around its buffer between records instead of moving what it holds
// to the front: every record stays contiguous, and no byte is copied again
// while the flow keeps up. Held bytes are at [head, head+lenA) and, once
// the ring has wrapped, the next ones at [0, lenB).
type byteRing struct {
	buf         []byte // len(buf) = cap(buf)
	head        int
	lenA, lenB  int
	seq         uint32
	pool        *[]byte // the pooled buffer buf lives in; nil when none is held
	tailWrapped bool    // the room tail returned last is at [lenB, head)
}

func (r *byteRing) len() int    { return r.lenA + r.lenB }
func (r *byteRing) end() uint32 { return r.seq + uint32(r.len()) }
func (r *byteRing) reset(s uint32) {
	r.free()
	r.seq = s
}

// free returns the buffer to its pool.
func (r *byteRing) free() {
	if r.pool != nil {
		bufPool.put(r.pool)
	}
	r.buf, r.head, r.lenA, r.lenB, r.pool = nil, 0, 0, 0, nil
}

// tail returns contiguous room for a record of n bytes after the held ones
// (len 0, cap >= n); commit makes the bytes written there part of the
// ring. expect is what the ring may soon hold (its direction's
// reservation, budget.go): a buffer the ring needs anew is that large at
// once, so that a burst after the ring emptied is not copied from buffer
// to buffer as it grows, and no buffer is much larger than what its flow
// has reserved.
func (r *byteRing) tail(n, expect int) []byte { return r.room(n, expect, true) }

func (r *byteRing) commit(n int) {
	if r.tailWrapped {
		r.lenB += n
	} else {
		r.lenA += n
	}
}

// append adds p as one record (expect: see tail).
func (r *byteRing) append(p []byte, expect int) {
	t := r.tail(len(p), expect)
	r.commit(copy(t[:len(p)], p))
}

// appendStream adds p without wrapping: all the ring holds stays one
// contiguous run (the held plaintext, which is sliced whole).
func (r *byteRing) appendStream(p []byte) {
	t := r.room(len(p), 0, false)
	r.commit(copy(t[:len(p)], p))
}

// room finds n contiguous free bytes after the held ones: at the end of
// the buffer, else (wrap) at its start before head, else in a buffer twice
// as large.
func (r *byteRing) room(n, expect int, wrap bool) []byte {
	if r.lenB > 0 {
		if r.head-r.lenB >= n {
			r.tailWrapped = true
			return r.buf[r.lenB:r.lenB:r.head]
		}
	} else {
		end := r.head + r.lenA
		if len(r.buf)-end >= n {
			r.tailWrapped = false
			return r.buf[end:end:len(r.buf)]
		}
		if wrap && r.lenA > 0 && r.head >= n {
			r.tailWrapped = true
			return r.buf[0:0:r.head]
		}
	}
	// No room at either end means the ring is nearly full (less than 2n
	// free): grow, rather than move the held bytes to the front and soon
	// again.
	held := r.len()
	p := bufPool.get(max(2*len(r.buf), held+n, expect))
	nb := (*p)[:cap(*p)]
	copy(nb[copy(nb, r.buf[r.head:r.head+r.lenA]):], r.buf[:r.lenB])
	if r.pool != nil {
		bufPool.put(r.pool)
	}
	r.buf, r.pool, r.head, r.lenA, r.lenB = nb, p, 0, held, 0
	r.tailWrapped = false
	return r.buf[held:held:len(r.buf)]
}

// slicePool keeps slices by size class, minLen << 0, 1, ... poolClasses-1
// elements, as pointers so that Put and Get do not allocate.
type slicePool[T any] struct {
	minLen  int
	classes [poolClasses]sync.Pool
}

const poolClasses = 11

// bufPool backs the byte rings (4 KiB to 4 MiB: a direction of the default
// 4 MiB flow holds 2 MiB, and a ring that wraps needs room beyond what it
// holds), recPool the frame records (64 to 65,536 frames).
var (
	bufPool = slicePool[byte]{minLen: 4096}
	recPool = slicePool[frameRec]{minLen: 64}
)

// get returns a slice of at least n elements (len = cap), from the pool
// when one of its class is there.
func (p *slicePool[T]) get(n int) *[]T {
	c := p.class(n)
	if c >= poolClasses {
		s := make([]T, n)
		return &s
	}
	if s, ok := p.classes[c].Get().(*[]T); ok {
		return s
	}
	s := make([]T, p.minLen<<c)
	return &s
}

// put gives back a slice from get.
func (p *slicePool[T]) put(s *[]T) {
	c := p.class(cap(*s))
	if c < poolClasses && cap(*s) == p.minLen<<c {
		*s = (*s)[:cap(*s)]
		p.classes[c].Put(s)
	}
}

// class is the smallest class whose slices hold n elements.
func (p *slicePool[T]) class(n int) int {
	c := 0
	for p.minLen<<c < n {
		c++
	}
	return c
}

// slice returns the bytes of [from, to), clipped to what the ring holds.
// The range lies within one record (tail), so it is contiguous; were it to
// cross the wrap, only the part before it would be returned.
func (r *byteRing) slice(from, to uint32) []byte {
	if seqLT(from, r.seq) {
		from = r.seq
	}
	if seqGT(to, r.end()) {
		to = r.end()
	}
	if !seqLT(from, to) {
		return nil
	}
	o, k := int(from-r.seq), int(to-from)
	if o < r.lenA {
		a := r.head + o
		return r.buf[a : a+min(k, r.lenA-o)]
	}
	a := o - r.lenA
	return r.buf[a : a+k]
}

// trim forgets the bytes before seq to.
func (r *byteRing) trim(to uint32) int {
	if !seqGT(to, r.seq) {
		return 0
	}
	n := min(int(to-r.seq), r.len())
	r.seq += uint32(n)
	if n < r.lenA {
		r.head += n
		r.lenA -= n
	} else { // the first run is gone: the wrapped one (if any) follows
		k := n - r.lenA
		r.head, r.lenA, r.lenB = k, r.lenB-k, 0
	}
	if r.len() == 0 {
		r.free()
	}
	return n
}

// frameRec maps one frame between the spaces: C bytes [cStart, cEnd) carry
// the P bytes [pStart, pEnd). fin: the frame has the FIN flag and the TCP
// FIN follows it (at cEnd in C, pEnd in P). init marks the pseudo-frame of
// an Init message, which has no P bytes.
type frameRec struct {
	cStart, cEnd   uint32
	pStart, pEnd   uint32
	fin, init, psh bool // psh: the segment that carries the frame has PSH (as the LAN host's did)
}

// cAfter and pAfter are the acknowledgment numbers that cover the frame.
func (r *frameRec) cAfter() uint32 { return r.cEnd + b2u(r.fin) }
func (r *frameRec) pAfter() uint32 { return r.pEnd + b2u(r.fin) }

// own reports a frame the gateway sent of itself, carrying none of the LAN
// host's bytes: an empty frame that answers the peer's rekey.
func (r *frameRec) own() bool { return !r.init && !r.fin && r.pStart == r.pEnd }

func b2u(b bool) uint32 {
	if b {
		return 1
	}
	return 0
}

// recRing is a FIFO of frame records in a circular slice (its length a
// power of two); like byteRing, the slice comes from a pool and goes back
// when the ring empties.
type recRing struct {
	recs []frameRec
	head int
	n    int
	pool *[]frameRec
}

func (q *recRing) len() int           { return q.n }
func (q *recRing) at(i int) *frameRec { return &q.recs[(q.head+i)&(len(q.recs)-1)] }
func (q *recRing) first() *frameRec   { return &q.recs[q.head] }
func (q *recRing) reset()             { q.free() }

func (q *recRing) pop() {
	q.head = (q.head + 1) & (len(q.recs) - 1)
	q.n--
	if q.n == 0 {
		q.free()
	}
}

func (q *recRing) push(r frameRec) {
	if q.n == len(q.recs) {
		p := recPool.get(max(2*len(q.recs), recPool.minLen)) // a power of two: minLen is one
		nr := (*p)[:cap(*p)]
		if q.n > 0 {
			copy(nr[copy(nr, q.recs[q.head:]):], q.recs[:q.head])
		}
		if q.pool != nil {
			recPool.put(q.pool)
		}
		q.recs, q.pool, q.head = nr, p, 0
	}
	q.recs[(q.head+q.n)&(len(q.recs)-1)] = r
	q.n++
}

// free returns the slice to its pool.
func (q *recRing) free() {
	if q.pool != nil {
		recPool.put(q.pool)
	}
	q.recs, q.head, q.n, q.pool = nil, 0, 0, nil
}

// search returns the first index i in [0, len) for which pred is true,
// pred being false then true along the ring (binary search).
func (q *recRing) search(pred func(*frameRec) bool) int {
	lo, hi := 0, q.len()
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if !pred(q.at(m)) {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo
}

func seqMin(a, b uint32) uint32 {
	if seqLT(a, b) {
		return a
	}
	return b
}
