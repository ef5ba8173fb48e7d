// Bounded memory: every byte a flow keeps (held plaintext, unacknowledged
// ciphertext, delivered plaintext awaiting the LAN host's ACK, bytes beyond
// a hole, a frame cut across segments) is admitted against the flow's limit
// and the table's global budget before it is stored, and settled against
// what the flow really holds after each packet.

package engine

import "tcpcrypt-gw/gateway/packet"

// admit reserves n bytes for f; false means the bytes must not be kept.
func (e *Engine) admit(f *Flow, n int) bool {
	cfg := e.cfg.Load()
	if f.accounted+n > cfg.MaxBufferPerFlow || !e.table.Reserve(n) {
		return false
	}
	f.accounted += n
	return true
}

// held is what f really keeps now.
func (f *Flow) held() int {
	if f.streams == nil {
		return 0
	}
	return f.enc.ring.len() + f.enc.held.len() + f.dec.ring.len() + len(f.dec.partial) + len(f.dec.initBuf) + f.dec.ooo.bytes
}

// settle returns to the budget what f no longer keeps, and drops the
// handshake state of an encrypted flow.
func (e *Engine) settle(f *Flow) {
	if f.State == StateEncrypted {
		f.handshake = nil // done with it (see Flow)
	}
	h := f.held()
	if h < f.accounted {
		e.table.Release(f.accounted - h)
		f.accounted = h
	}
}

// oooSeg is a WAN segment that arrived beyond a hole.
type oooSeg struct {
	seq  uint32
	data []byte
	fin  bool
}

// oooQueue keeps out-of-order segments sorted by sequence number, and the
// sequence number of the last one that arrived (its island of data leads
// the SACK blocks).
type oooQueue struct {
	segs   []oooSeg
	bytes  int
	recent uint32
}

func (q *oooQueue) len() int       { return len(q.segs) }
func (q *oooQueue) first() *oooSeg { return &q.segs[0] }

func (q *oooQueue) pop() {
	q.bytes -= len(q.segs[0].data)
	copy(q.segs, q.segs[1:])
	q.segs[len(q.segs)-1] = oooSeg{}
	q.segs = q.segs[:len(q.segs)-1]
}

func (q *oooQueue) clear() {
	clear(q.segs)
	q.segs, q.bytes = q.segs[:0], 0
}

// insert keeps a copy of data at seq; an exact duplicate is dropped.
func (q *oooQueue) insert(seq uint32, data []byte, fin bool) {
	q.recent = seq
	i := 0
	for i < len(q.segs) && seqLT(q.segs[i].seq, seq) {
		i++
	}
	if i < len(q.segs) && q.segs[i].seq == seq && len(q.segs[i].data) >= len(data) {
		q.segs[i].fin = q.segs[i].fin || fin && len(q.segs[i].data) == len(data)
		return
	}
	s := oooSeg{seq: seq, data: append([]byte(nil), data...), fin: fin}
	q.segs = append(q.segs, oooSeg{})
	copy(q.segs[i+1:], q.segs[i:])
	q.segs[i] = s
	q.bytes += len(data)
}

// blocks appends up to n SACK ranges (merged islands) of the queue: first
// the island holding the segment that arrived last, then the others,
// highest first. RFC 2018 §4: "The first SACK block ... MUST specify the
// contiguous block of data containing the segment which triggered this
// ACK". A sender that hears of a lower island only after higher ones
// takes that for reordering (Linux raises its reordering metric and stops
// retransmitting fast), so the newest island must never wait behind the
// others.
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
