// The scheduler between the impairer and the wire: a bounded queue of
// packets ordered by due time.
//
//  1. Push copies an emitted packet into a slot (slots are recycled through a
//     free list, so a steady flow allocates nothing) and files it in a
//     min-heap by (due time, arrival order): packets due at the same time
//     leave in the order they came.
//  2. A full queue refuses the packet; the impairer counts it as QueueFull.
//  3. PopDue hands out the slot of the earliest packet once it is due; the
//     caller writes it and gives the slot back with Release.
//
// Slots leave Headroom bytes in front of the packet for the TUN device's
// virtio header. Queue is not safe for concurrent use.

package impair

import "time"

// Queue is a bounded scheduler of packets by due time.
type Queue struct {
	limit    int
	slotSize int
	headroom int
	heap     []queued
	free     [][]byte
	order    uint64
}

type queued struct {
	due   time.Time
	order uint64 // arrival order: ties of due time keep it
	slot  []byte // headroom + packet
}

// NewQueue returns a queue of at most limit packets of at most maxPacket
// bytes, each slot with headroom bytes in front of the packet.
func NewQueue(limit, maxPacket, headroom int) *Queue {
	limit = max(limit, 1)
	return &Queue{
		limit:    limit,
		slotSize: headroom + maxPacket,
		headroom: headroom,
		heap:     make([]queued, 0, limit),
	}
}

// Len is the number of packets queued.
func (q *Queue) Len() int { return len(q.heap) }

// Push copies pkt into the queue, due at due. It returns false, keeping
// nothing, when the queue is full or pkt is larger than maxPacket. Its
// signature makes q.Push usable as an EmitFunc.
func (q *Queue) Push(pkt []byte, due time.Time) bool {
	if len(q.heap) >= q.limit || q.headroom+len(pkt) > q.slotSize {
		return false
	}
	var slot []byte
	if n := len(q.free); n > 0 {
		slot = q.free[n-1]
		q.free = q.free[:n-1]
	} else {
		slot = make([]byte, q.slotSize)
	}
	slot = slot[:q.headroom+len(pkt)]
	copy(slot[q.headroom:], pkt)
	q.order++
	q.heap = append(q.heap, queued{due: due, order: q.order, slot: slot})
	q.up(len(q.heap) - 1)
	return true
}

// Next returns the due time of the earliest packet.
func (q *Queue) Next() (time.Time, bool) {
	if len(q.heap) == 0 {
		return time.Time{}, false
	}
	return q.heap[0].due, true
}

// PopDue removes the earliest packet if it is due at now and returns its
// slot: Headroom bytes, then the packet. The caller owns the slot until it
// passes it to Release.
func (q *Queue) PopDue(now time.Time) ([]byte, bool) {
	if len(q.heap) == 0 || q.heap[0].due.After(now) {
		return nil, false
	}
	slot := q.heap[0].slot
	last := len(q.heap) - 1
	q.heap[0] = q.heap[last]
	q.heap[last] = queued{}
	q.heap = q.heap[:last]
	if last > 0 {
		q.down(0)
	}
	return slot, true
}

// Headroom is the number of bytes in front of the packet in a slot.
func (q *Queue) Headroom() int { return q.headroom }

// Release gives a slot from PopDue back for reuse.
func (q *Queue) Release(slot []byte) {
	if cap(slot) == q.slotSize && len(q.free) < q.limit {
		q.free = append(q.free, slot[:cap(slot)])
	}
}

func (q *Queue) less(i, j int) bool {
	a, b := &q.heap[i], &q.heap[j]
	if a.due.Equal(b.due) {
		return a.order < b.order
	}
	return a.due.Before(b.due)
}

func (q *Queue) up(i int) {
	for i > 0 {
		p := (i - 1) / 2
		if !q.less(i, p) {
			return
		}
		q.heap[i], q.heap[p] = q.heap[p], q.heap[i]
		i = p
	}
}

func (q *Queue) down(i int) {
	n := len(q.heap)
	for {
		l := 2*i + 1
		if l >= n {
			return
		}
		c := l
		if r := l + 1; r < n && q.less(r, l) {
			c = r
		}
		if !q.less(c, i) {
			return
		}
		q.heap[i], q.heap[c] = q.heap[c], q.heap[i]
		i = c
	}
}
