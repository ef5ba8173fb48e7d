/* Expiry and eviction.
 *
 * Every entry has a Deadline chosen by the engine (handshake, idle or
 * closing timeout). Each shard keeps its entries in a binary min-heap keyed
 * by heapKey, a lower bound of the Deadline, so that finding what is due
 * costs O(1) and removing it O(log n), whatever the table size: a SYN flood
 * of 100,000 half-open flows does not turn every tick into a full scan.
 * Heap keys are int64 nanoseconds since the table's creation (monotonic when
 * the times come from time.Now), stored in the heap array beside the entry
 * pointer, so sifting compares integers without touching the entries.
 *
 * Most packets push a flow's deadline later, and moving the entry down the
 * heap on every packet would cost O(log n) on the hot path. So:
 *
 *  1. Touch with a later deadline only stores it (heapKey stays behind).
 *  2. Touch with an earlier deadline (e.g. idle -> closing timeout) lowers
 *     heapKey and sifts the entry up at once, so it cannot expire late.
 *  3. Expire looks at the heap top while its heapKey <= now. If the entry's
 *     Deadline moved later, it re-keys the entry and sifts it down (the
 *     deferred work of step 1, paid once per timeout rather than per
 *     packet); otherwise the entry is due and is removed.
 *
 * Each Expire call examines at most Config.ExpireBatch heap tops and reports
 * whether due entries remain, so a mass expiry is spread over several calls
 * instead of stalling a worker.
 *
 * EvictOne walks the heap best-first (smallest heapKey first, using a small
 * frontier of heap indices) for at most evictScanLimit entries, and removes
 * the one with the earliest Deadline that the engine's predicate accepts.
 * First it re-keys the top of the heap while the entry there is stale
 * (the deferred work of step 1 again, paid once per extended deadline; at
 * most Config.ExpireBatch entries per call):
 * otherwise entries whose deadlines moved far ahead, e.g. the LAN's
 * connections in the middle of a SYN flood, would stay at the top with
 * their first keys and hide the flood's half-open flows from the scan.
 */

package flowtable

import "time"

// evictScanLimit bounds the entries one EvictOne call examines, so that
// eviction under a flood costs a fixed amount of work per new flow.
const evictScanLimit = 256

// heapSlot is one position of a shard's deadline heap.
type heapSlot[V any] struct {
	at int64 // == e.heapKey
	e  *Entry[V]
}

// tick converts a time to a heap key: nanoseconds since s.epoch. Sub uses
// the monotonic clock when both times carry it and saturates rather than
// wraps, so the order of times is kept.
func (s *shard[V]) tick(t time.Time) int64 {
	return int64(t.Sub(s.epoch))
}

// Touch records activity at now and sets the flow's expiry deadline. The
// caller holds the shard's lock. Extending the deadline is O(1); bringing it
// earlier is O(log n).
func (e *Entry[V]) Touch(now time.Time, deadline time.Time) {
	e.LastActive = now
	e.Deadline = deadline
	if s := e.owner; s != nil {
		if at := s.tick(deadline); at < e.heapKey {
			e.heapKey = at
			s.heap[e.heapIdx].at = at
			s.heapUp(int(e.heapIdx))
		}
	}
}

// Expire removes from shard i the entries whose Deadline <= now, in order of
// Deadline, calling onExpire(e) (if not nil) just before each removal. The
// caller holds shard i's lock. onExpire may Touch e with a deadline after
// now to keep it, Delete it itself, or Insert/Delete other entries of the
// shard. Expire examines at most Config.ExpireBatch entries and returns true
// if due entries remain, in which case the caller should call it again soon.
func (t *Table[V]) Expire(i int, now time.Time, onExpire func(*Entry[V])) (more bool) {
	s := t.shardAt(i)
	if s == nil {
		return false
	}
	nowAt := s.tick(now)
	for n := 0; len(s.heap) > 0 && s.heap[0].at <= nowAt; n++ {
		if n == t.expireBatch {
			return true
		}
		e := s.heap[0].e
		if at := s.tick(e.Deadline); at > e.heapKey {
			// The deadline was extended since this entry was placed.
			e.heapKey = at
			s.heap[0].at = at
			s.heapDown(0)
			continue
		}
		if onExpire != nil {
			onExpire(e)
			if e.owner != s {
				continue // the callback deleted it
			}
			if s.tick(e.Deadline) > nowAt {
				continue // the callback extended it; re-keyed when next on top
			}
		}
		t.unlink(s, e)
	}
	return false
}

// EvictOne removes from shard i the entry with the earliest Deadline among
// those victim accepts, looking at no more than evictScanLimit entries in
// deadline order. The caller holds shard i's lock; victim must not modify
// the table. It reports whether an entry was removed. Use Evict to learn
// which one (e.g. to Release its buffers).
func (t *Table[V]) EvictOne(i int, victim func(*Entry[V]) bool) bool {
	return t.Evict(i, victim) != nil
}

// Evict is EvictOne returning the removed entry, or nil if none was.
func (t *Table[V]) Evict(i int, victim func(*Entry[V]) bool) *Entry[V] {
	s := t.shardAt(i)
	if s == nil || len(s.heap) == 0 || victim == nil {
		return nil
	}
	for n := 0; n < t.expireBatch; n++ {
		e := s.heap[0].e
		at := s.tick(e.Deadline)
		if at <= e.heapKey {
			break
		}
		e.heapKey = at
		s.heap[0].at = at
		s.heapDown(0)
	}
	var best *Entry[V]
	var bestAt int64
	s.evictFrontier = append(s.evictFrontier[:0], 0)
	for examined := 0; len(s.evictFrontier) > 0 && examined < evictScanLimit; examined++ {
		j := s.frontierPop()
		slot := s.heap[j]
		if best != nil && slot.at >= bestAt {
			// Everything left has Deadline >= heapKey >= best's.
			break
		}
		if victim(slot.e) {
			if at := s.tick(slot.e.Deadline); best == nil || at < bestAt {
				best, bestAt = slot.e, at
			}
		}
		if c := 2*j + 1; c < len(s.heap) {
			s.frontierPush(c)
		}
		if c := 2*j + 2; c < len(s.heap) {
			s.frontierPush(c)
		}
	}
	if best != nil {
		t.unlink(s, best)
	}
	return best
}

// The deadline heap. heap[j]'s children are heap[2j+1] and heap[2j+2]; each
// entry's heapIdx is its position.

func (s *shard[V]) heapSwap(a, b int) {
	h := s.heap
	h[a], h[b] = h[b], h[a]
	h[a].e.heapIdx = int32(a)
	h[b].e.heapIdx = int32(b)
}

func (s *shard[V]) heapPush(e *Entry[V]) {
	e.heapIdx = int32(len(s.heap))
	s.heap = append(s.heap, heapSlot[V]{at: e.heapKey, e: e})
	s.heapUp(int(e.heapIdx))
}

func (s *shard[V]) heapUp(j int) {
	h := s.heap
	for j > 0 {
		parent := (j - 1) / 2
		if h[j].at >= h[parent].at {
			return
		}
		s.heapSwap(j, parent)
		j = parent
	}
}

func (s *shard[V]) heapDown(j int) {
	h := s.heap
	n := len(h)
	for {
		smallest := j
		if l := 2*j + 1; l < n && h[l].at < h[smallest].at {
			smallest = l
		}
		if r := 2*j + 2; r < n && h[r].at < h[smallest].at {
			smallest = r
		}
		if smallest == j {
			return
		}
		s.heapSwap(j, smallest)
		j = smallest
	}
}

// heapRemove takes out the entry at position j, keeping the heap ordered.
func (s *shard[V]) heapRemove(j int) {
	last := len(s.heap) - 1
	if j != last {
		s.heapSwap(j, last)
	}
	s.heap[last] = heapSlot[V]{} // let the GC have the entry
	s.heap = s.heap[:last]
	if j != last {
		s.heapDown(j)
		s.heapUp(j)
	}
	// Give memory back after a flood: shrink when three quarters unused.
	if c := cap(s.heap); c > 1024 && len(s.heap) < c/4 {
		s.heap = append(make([]heapSlot[V], 0, c/2), s.heap...)
	}
}

// The frontier is a min-heap of deadline-heap positions ordered by their
// keys, used only by Evict for a best-first walk of the deadline heap, which
// does not change during the walk.

func (s *shard[V]) frontierLess(a, b int) bool {
	return s.heap[s.evictFrontier[a]].at < s.heap[s.evictFrontier[b]].at
}

func (s *shard[V]) frontierPush(pos int) {
	f := append(s.evictFrontier, pos)
	s.evictFrontier = f
	for j := len(f) - 1; j > 0; {
		parent := (j - 1) / 2
		if !s.frontierLess(j, parent) {
			break
		}
		f[j], f[parent] = f[parent], f[j]
		j = parent
	}
}

func (s *shard[V]) frontierPop() int {
	f := s.evictFrontier
	top := f[0]
	last := len(f) - 1
	f[0] = f[last]
	f = f[:last]
	s.evictFrontier = f
	for j := 0; ; {
		smallest := j
		if l := 2*j + 1; l < len(f) && s.frontierLess(l, smallest) {
			smallest = l
		}
		if r := 2*j + 2; r < len(f) && s.frontierLess(r, smallest) {
			smallest = r
		}
		if smallest == j {
			break
		}
		f[j], f[smallest] = f[smallest], f[j]
		j = smallest
	}
	return top
}
