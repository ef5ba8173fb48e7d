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
type byteRing struct {
	buf  []byte
	head int
	seq  uint32
	pool *[]byte // the pooled buffer buf lives in; nil when none is held
}

func (r *byteRing) len() int    { return len(r.buf) - r.head }
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
	r.buf, r.head, r.pool = nil, 0, nil
}

// tail returns room for n more bytes at the end (len 0, cap >= n); commit
// makes them part of the ring.
func (r *byteRing) tail(n int) []byte {
	if cap(r.buf)-len(r.buf) < n && r.head > 0 {
		k := copy(r.buf, r.buf[r.head:])
		r.buf, r.head = r.buf[:k], 0
	}
	if cap(r.buf)-len(r.buf) < n {
		p := bufPool.get(max(2*cap(r.buf), len(r.buf)+n))
		nb := (*p)[:len(r.buf)]
		copy(nb, r.buf)
		if r.pool != nil {
			bufPool.put(r.pool)
		}
		r.buf, r.pool = nb, p
	}
	return r.buf[len(r.buf):len(r.buf):cap(r.buf)]
}

func (r *byteRing) commit(n int) { r.buf = r.buf[:len(r.buf)+n] }

func (r *byteRing) append(p []byte) {
	t := r.tail(len(p))
	r.commit(copy(t[:len(p)], p))
}

// slicePool keeps slices by size class, minLen << 0, 1, ... poolClasses-1
// elements, as pointers so that Put and Get do not allocate.
type slicePool[T any] struct {
	minLen  int
	classes [poolClasses]sync.Pool
}

const poolClasses = 10

// bufPool backs the byte rings (4 KiB to 2 MiB), recPool the frame records
// (64 to 32,768 frames).
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
	a := r.head + int(from-r.seq)
	return r.buf[a : a+int(to-from)]
}

// trim forgets the bytes before seq to.
func (r *byteRing) trim(to uint32) int {
	if !seqGT(to, r.seq) {
		return 0
	}
	n := min(int(to-r.seq), r.len())
	r.head += n
	r.seq += uint32(n)
	if r.head == len(r.buf) {
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

// recRing is a FIFO of frame records; like byteRing, its slice comes from
// a pool and goes back when the ring empties.
type recRing struct {
	recs []frameRec
	head int
	pool *[]frameRec
}

func (q *recRing) len() int           { return len(q.recs) - q.head }
func (q *recRing) at(i int) *frameRec { return &q.recs[q.head+i] }
func (q *recRing) first() *frameRec   { return &q.recs[q.head] }
func (q *recRing) reset()             { q.free() }
func (q *recRing) pop()               { q.head++; q.compact() }

func (q *recRing) push(r frameRec) {
	if len(q.recs) == cap(q.recs) && q.head > 0 {
		k := copy(q.recs, q.recs[q.head:])
		q.recs, q.head = q.recs[:k], 0
	}
	if len(q.recs) == cap(q.recs) {
		p := recPool.get(max(2*cap(q.recs), 1))
		nr := (*p)[:len(q.recs)]
		copy(nr, q.recs)
		if q.pool != nil {
			recPool.put(q.pool)
		}
		q.recs, q.pool = nr, p
	}
	q.recs = append(q.recs, r)
}

func (q *recRing) compact() {
	if q.head == len(q.recs) {
		q.free()
	}
}

// free returns the slice to its pool.
func (q *recRing) free() {
	if q.pool != nil {
		recPool.put(q.pool)
	}
	q.recs, q.head, q.pool = nil, 0, nil
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
