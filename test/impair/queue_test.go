package impair

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func TestQueueOrder(t *testing.T) {
	q := NewQueue(1000, 100, 4)
	r := rand.New(rand.NewPCG(1, 2))
	type item struct {
		due time.Duration
		id  int
	}
	var want []item
	for i := range 500 {
		d := time.Duration(r.IntN(20)) * time.Millisecond // many ties
		if !q.Push([]byte{byte(i), byte(i >> 8)}, t0.Add(d)) {
			t.Fatalf("push %d refused", i)
		}
		want = append(want, item{d, i})
	}
	slices.SortStableFunc(want, func(a, b item) int { return int(a.due - b.due) })
	if q.Len() != 500 {
		t.Fatalf("len %d", q.Len())
	}
	if _, ok := q.PopDue(t0.Add(-time.Millisecond)); ok {
		t.Fatalf("popped a packet before it was due")
	}
	next, _ := q.Next()
	if !next.Equal(t0.Add(want[0].due)) {
		t.Fatalf("next %v, want %v", next, t0.Add(want[0].due))
	}
	for i, w := range want {
		slot, ok := q.PopDue(t0.Add(w.due))
		if !ok {
			t.Fatalf("packet %d not due at its due time", i)
		}
		if len(slot) != 4+2 || int(slot[4])|int(slot[5])<<8 != w.id {
			t.Fatalf("position %d: got packet %d, want %d (due %v)", i, int(slot[4])|int(slot[5])<<8, w.id, w.due)
		}
		q.Release(slot)
	}
	if _, ok := q.Next(); ok || q.Len() != 0 {
		t.Fatalf("queue not empty")
	}
}

func TestQueueBounds(t *testing.T) {
	q := NewQueue(3, 10, 0)
	if q.Push(make([]byte, 11), t0) {
		t.Fatalf("oversized packet accepted")
	}
	for i := range 3 {
		if !q.Push([]byte{byte(i)}, t0) {
			t.Fatalf("push %d refused", i)
		}
	}
	if q.Push([]byte{9}, t0) {
		t.Fatalf("push beyond the limit accepted")
	}
	slot, _ := q.PopDue(t0)
	q.Release(slot)
	if !q.Push([]byte{7}, t0) {
		t.Fatalf("push after a pop refused")
	}
	allocs := testing.AllocsPerRun(100, func() {
		s, _ := q.PopDue(t0)
		q.Release(s)
		q.Push([]byte{1, 2, 3}, t0)
	})
	if allocs != 0 {
		t.Fatalf("%v allocations in steady state", allocs)
	}
}
