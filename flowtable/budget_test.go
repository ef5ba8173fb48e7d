package flowtable

import (
	"sync"
	"testing"
)

func TestByteBudget(t *testing.T) {
	tb := New[int](Config{MaxBytesTotal: 1000})
	if !tb.Reserve(600) || !tb.Reserve(400) {
		t.Fatal("Reserve within budget refused")
	}
	if tb.BytesInUse() != 1000 {
		t.Fatalf("BytesInUse = %d, want 1000", tb.BytesInUse())
	}
	if tb.Reserve(1) {
		t.Fatal("Reserve beyond budget accepted")
	}
	if !tb.Reserve(0) {
		t.Fatal("Reserve(0) refused")
	}
	tb.Release(300)
	if tb.Reserve(301) {
		t.Fatal("Reserve(301) accepted with 300 free")
	}
	if !tb.Reserve(300) || tb.BytesInUse() != 1000 {
		t.Fatalf("Reserve(300) after release failed, in use %d", tb.BytesInUse())
	}
	// Malformed amounts change nothing.
	if tb.Reserve(-5) {
		t.Fatal("negative Reserve accepted")
	}
	tb.Release(-5)
	tb.Release(0)
	if tb.BytesInUse() != 1000 {
		t.Fatalf("BytesInUse = %d after no-op calls", tb.BytesInUse())
	}
	// Over-release clamps at zero rather than enlarging the budget.
	tb.Release(5000)
	if tb.BytesInUse() != 0 {
		t.Fatalf("BytesInUse = %d after over-release, want 0", tb.BytesInUse())
	}
	if tb.Reserve(1001) {
		t.Fatal("over-release enlarged the budget")
	}
	huge := int(^uint(0) >> 1)
	if tb.Reserve(huge) {
		t.Fatal("Reserve(maxint) accepted")
	}
}

func TestByteBudgetConcurrent(t *testing.T) {
	const limit, chunk, workers, rounds = 10_000, 7, 8, 5000
	tb := New[int](Config{MaxBytesTotal: limit})
	var wg sync.WaitGroup
	held := make([]int, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range rounds {
				if tb.Reserve(chunk) {
					held[w] += chunk
				}
				if u := tb.BytesInUse(); u > limit || u < 0 {
					t.Errorf("BytesInUse %d outside [0, %d]", u, limit)
					return
				}
				if i%3 == 0 && held[w] >= chunk {
					tb.Release(chunk)
					held[w] -= chunk
				}
			}
		}()
	}
	wg.Wait()
	total := 0
	for _, h := range held {
		total += h
	}
	if int64(total) != tb.BytesInUse() {
		t.Fatalf("workers hold %d bytes, BytesInUse %d", total, tb.BytesInUse())
	}
	if total > limit || total < limit-chunk*(workers+1) {
		// Every round reserves and only every third releases, so the budget
		// ends full but for the last release of each worker.
		t.Fatalf("held %d bytes, want close to the limit %d", total, limit)
	}
}
