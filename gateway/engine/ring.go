// The per-direction memories of a flow: a byteRing keeps a contiguous range
// of one sequence space (the ciphertext first sent, or the plaintext first
// delivered) until the other end acknowledges it, and a recRing keeps the
// frame boundaries that map that range between the plaintext (P) and the
// ciphertext (C) spaces. Both are FIFOs that compact in place, so a flow in
// steady state allocates nothing.

package engine

import "sync"

// byteRing holds the bytes of sequence range [seq, seq+len). Its buffer
// comes from bufPools and goes back there when the ring empties (after the
// packet, unless the flow parks it: parkRing): an idle flow holds no
// buffer, and a busy one reuses pooled buffers instead of allocating.
//
// The bytes are written in records (a frame, its plaintext, an Init) and
// read back a record or the rest of one at a time (slice), so the ring
// wraps around its buffer between records instead of moving what it holds
// to the front: every record stays contiguous, and no byte is copied again
// while the flow keeps up. Held bytes are at [head, head+lenA) and, once
// the ring has wrapped, the next ones at [0, lenB).
type byteRing[S space] struct {
	pool        *[]byte // the pooled buffer (len = cap); nil when none is held
	head        int32
	lenA, lenB  int32
	seq         seqNum[S]
	parked      int32 // the size of the buffer the empty ring keeps (budget.go, parkRing); 0: none
	tailWrapped bool  // the room tail returned last is at [lenB, head)
	pin         ringPin
}

// ringPin keeps the bytes a ring lent into an Output (Output.Lend) as they
// are until the Output is written and Reset: while out is set, the buffer
// offsets of ranges hold every lent byte, the ring writes no record there
// (room, usable), and a buffer it drops goes to out (Output.parked), not
// to the pool, so that no other flow gets it. Pinning is conservative:
// whatever was trimmed since stays pinned. Two ranges, because a batch
// may lend the end of the buffer and then, after the ring wrapped, its
// start: one hull of both would pin the room between them.
type ringPin struct {
	out    *Output // the batch the bytes are lent into; nil: none lent
	ranges [2]struct{ lo, hi int32 }
}

// lend adds b, bytes of the ring's buffer buf, to the last packet of out
// without copying them, and pins them.
func (p *ringPin) lend(out *Output, buf, b []byte) {
	if len(b) == 0 {
		return
	}
	lo := int32(len(buf) - cap(b)) // buf's len is its cap: b = buf[lo:...]
	hi := lo + int32(len(b))
	if p.out != out {
		p.out = out
		p.ranges[0].lo, p.ranges[0].hi = lo, hi
		p.ranges[1].lo, p.ranges[1].hi = 0, 0
		out.pins = append(out.pins, p)
	} else {
		k := &p.ranges[0]
		if lo < k.lo { // before the first range: the ring wrapped
			k = &p.ranges[1]
			if k.lo == k.hi {
				k.lo, k.hi = lo, hi
			}
		}
		k.lo, k.hi = min(k.lo, lo), max(k.hi, hi)
	}
	out.lend(b)
}

// drop hands the ring's dropped buffer to the pool, or to the Output it is
// lent into; the new buffer (or none) holds nothing lent.
func (p *ringPin) drop(b *[]byte) {
	if p.out != nil {
		p.out.parked = append(p.out.parked, b)
		p.out = nil
		return
	}
	bufPool.put(b)
}

// usable is where room that starts at offset s may end at most (e, or
// less), so that it reaches no lent byte; s when none is usable.
func (p *ringPin) usable(s, e int) int {
	if p.out == nil {
		return e
	}
	for _, k := range p.ranges {
		lo, hi := int(k.lo), int(k.hi)
		switch {
		case e <= lo || s >= hi:
		case s < lo:
			e = lo
		default:
			return s
		}
	}
	return e
}

// buf is the ring's buffer, nil when it holds none. (The ring keeps only
// the pool's pointer, and 32-bit positions: an idle flow has three rings.)
func (r *byteRing[S]) buf() []byte {
	if r.pool == nil {
		return nil
	}
	return *r.pool
}

func (r *byteRing[S]) len() int       { return int(r.lenA + r.lenB) }
func (r *byteRing[S]) end() seqNum[S] { return r.seq.add(r.len()) }
func (r *byteRing[S]) reset(s seqNum[S]) {
	r.free()
	r.seq = s
}

// free returns the buffer to its pool.
func (r *byteRing[S]) free() {
	if r.pool != nil {
		r.pin.drop(r.pool)
	}
	r.pool, r.head, r.lenA, r.lenB = nil, 0, 0, 0
}

// tail returns contiguous room for a record of n bytes after the held ones
// (len 0, cap >= n); commit makes the bytes written there part of the
// ring. expect is what the ring may soon hold (its direction's
// reservation, budget.go): a buffer the ring needs anew is that large at
// once, so that a burst after the ring emptied is not copied from buffer
// to buffer as it grows, and no buffer is much larger than what its flow
// has reserved.
func (r *byteRing[S]) tail(n, expect int) []byte { return r.room(n, expect, true) }

func (r *byteRing[S]) commit(n int) {
	if r.tailWrapped {
		r.lenB += int32(n)
	} else {
		r.lenA += int32(n)
	}
}

// append adds p as one record (expect: see tail).
func (r *byteRing[S]) append(p []byte, expect int) {
	t := r.tail(len(p), expect)
	r.commit(copy(t[:len(p)], p))
}

// appendStream adds p without wrapping: all the ring holds stays one
// contiguous run (the held plaintext, which is sliced whole).
func (r *byteRing[S]) appendStream(p []byte) {
	t := r.room(len(p), 0, false)
	r.commit(copy(t[:len(p)], p))
}

// room finds n contiguous free bytes after the held ones: at the end of
// the buffer, else (wrap) at its start before head, else in a buffer twice
// as large.
func (r *byteRing[S]) room(n, expect int, wrap bool) []byte {
	buf := r.buf()
	head, lenA, lenB := int(r.head), int(r.lenA), int(r.lenB)
	if lenB > 0 {
		if e := r.pin.usable(lenB, head); e-lenB >= n {
			r.tailWrapped = true
			return buf[lenB:lenB:e]
		}
	} else {
		end := head + lenA
		if e := r.pin.usable(end, len(buf)); e-end >= n {
			r.tailWrapped = false
			return buf[end:end:e]
		}
		if e := r.pin.usable(0, head); wrap && lenA > 0 && e >= n {
			r.tailWrapped = true
			return buf[0:0:e]
		}
	}
	// No room at either end means the ring is nearly full (less than 2n
	// free): grow, rather than move the held bytes to the front and soon
	// again. Room kept from lent bytes only (pinned) moves them to a
	// buffer of the same size.
	held := lenA + lenB
	size := max(2*len(buf), held+n, expect)
	if r.pin.out != nil && len(buf)-held >= 2*n {
		size = max(len(buf), expect)
	}
	p := bufPool.get(size)
	nb := *p
	copy(nb[copy(nb, buf[head:head+lenA]):], buf[:lenB])
	if r.pool != nil {
		r.pin.drop(r.pool)
	}
	r.pool, r.head, r.lenA, r.lenB = p, 0, int32(held), 0
	r.tailWrapped = false
	return nb[held:held:len(nb)]
}

// lend adds the bytes [from, to) (slice) to the last packet of out, pinned.
func (r *byteRing[S]) lend(out *Output, from, to seqNum[S]) {
	r.pin.lend(out, r.buf(), r.slice(from, to))
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
func (r *byteRing[S]) slice(from, to seqNum[S]) []byte {
	from, to = from.max(r.seq), to.min(r.end())
	if !from.lt(to) {
		return nil
	}
	o, k := from.since(r.seq), to.since(from)
	buf, head, lenA := r.buf(), int(r.head), int(r.lenA)
	if o < lenA {
		a := head + o
		return buf[a : a+min(k, lenA-o)]
	}
	a := o - lenA
	return buf[a : a+k]
}

// trim forgets the bytes before seq to.
func (r *byteRing[S]) trim(to seqNum[S]) int {
	if !to.gt(r.seq) {
		return 0
	}
	n := min(to.since(r.seq), r.len())
	r.seq = r.seq.add(n)
	if n32 := int32(n); n32 < r.lenA {
		r.head += n32
		r.lenA -= n32
	} else { // the first run is gone: the wrapped one (if any) follows
		k := n32 - r.lenA
		r.head, r.lenA, r.lenB = k, r.lenB-k, 0
	}
	if r.len() == 0 {
		r.head = 0 // the buffer stays until the packet is done (returnUnheld)
		if hi := r.pin.ranges[0].hi; r.pin.out != nil && int(hi) < len(r.buf()) {
			r.head = hi // the next record after the lent bytes, not over them
		}
	}
	return n
}

// frameRec maps one frame between the spaces: C bytes [cStart, cEnd) carry
// the P bytes [pStart, pEnd). fin: the frame has the FIN flag and the TCP
// FIN follows it (at cEnd in C, pEnd in P). init marks the pseudo-frame of
// our Init message in the encrypting direction, which has no P bytes.
type frameRec struct {
	cStart, cEnd   cSeq
	pStart, pEnd   pSeq
	fin, init, psh bool // psh: the segment that carries the frame has PSH (as the LAN host's did)
}

// cAfter and pAfter are the acknowledgment numbers that cover the frame.
func (r *frameRec) cAfter() cSeq { return r.cEnd.add(b2i(r.fin)) }
func (r *frameRec) pAfter() pSeq { return r.pEnd.add(b2i(r.fin)) }

// rekeyAnswer reports a frame the gateway sent of itself, carrying none of the LAN
// host's bytes: an empty frame that answers the peer's rekey.
func (r *frameRec) rekeyAnswer() bool { return !r.init && !r.fin && r.pStart == r.pEnd }

// recRing is a FIFO of frame records in a circular slice (its length a
// power of two); like byteRing, the slice comes from a pool and goes back
// when the ring empties.
type recRing struct {
	pool    *[]frameRec // the pooled slice (len = cap); nil when none is held
	head, n int32
}

func (q *recRing) len() int { return int(q.n) }
func (q *recRing) at(i int) *frameRec {
	recs := *q.pool
	return &recs[(int(q.head)+i)&(len(recs)-1)]
}
func (q *recRing) first() *frameRec { return &(*q.pool)[q.head] }
func (q *recRing) reset()           { q.free() }

func (q *recRing) pop() {
	q.head = (q.head + 1) & int32(len(*q.pool)-1)
	q.n--
	if q.n == 0 {
		q.free()
	}
}

func (q *recRing) push(r frameRec) {
	var recs []frameRec
	if q.pool != nil {
		recs = *q.pool
	}
	if int(q.n) == len(recs) {
		p := recPool.get(max(2*len(recs), recPool.minLen)) // a power of two: minLen is one
		nr := *p
		if q.n > 0 {
			copy(nr[copy(nr, recs[q.head:]):], recs[:q.head])
		}
		if q.pool != nil {
			recPool.put(q.pool)
		}
		q.pool, q.head, recs = p, 0, nr
	}
	recs[(int(q.head)+int(q.n))&(len(recs)-1)] = r
	q.n++
}

// free returns the slice to its pool.
func (q *recRing) free() {
	if q.pool != nil {
		recPool.put(q.pool)
	}
	q.pool, q.head, q.n = nil, 0, 0
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
