package flowtable

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// expireAll runs Expire on every shard until none reports more, checking
// that nothing expires before its deadline and passing each expired entry
// to fn.
func expireAll[V any](t testing.TB, tb *Table[V], now time.Time, fn func(*Entry[V])) int {
	t.Helper()
	n := 0
	for s := range tb.Shards() {
		tb.LockShard(s)
		// Each call re-keys or removes entries of the shard, each at most
		// once per deadline, so a correct table needs few calls.
		limit := 2*tb.ShardLen(s) + 10
		var early *Entry[V]
		for calls := 0; ; calls++ {
			more := tb.Expire(s, now, func(e *Entry[V]) {
				if e.Deadline.After(now) && early == nil {
					early = e
				}
				n++
				if fn != nil {
					fn(e)
				}
			})
			if early != nil {
				tb.UnlockShard(s)
				t.Fatalf("expired entry %d with deadline %v after now %v", early.ID, early.Deadline, now)
			}
			if !more {
				break
			}
			if calls > limit {
				tb.UnlockShard(s)
				t.Fatalf("Expire still reports more after %d calls", calls)
			}
		}
		tb.UnlockShard(s)
	}
	return n
}

func TestExpireOrderWithTouch(t *testing.T) {
	tb := New[int](Config{Shards: 1})
	keys := uniqueKeys(rand.New(rand.NewPCG(19, 20)), 5)
	es := make([]*Entry[int], len(keys))
	tb.LockShard(0)
	for i, k := range keys {
		var err error
		if es[i], err = tb.Insert(0, k, i, at(0)); err != nil {
			t.Fatal(err)
		}
		es[i].Touch(at(0), at(float64(10*(i+1)))) // deadlines 10,20,30,40,50
	}
	es[0].Touch(at(1), at(45)) // later: 10 -> 45
	es[4].Touch(at(1), at(5))  // earlier: 50 -> 5
	es[2].Touch(at(1), at(35)) // later: 30 -> 35
	es[2].Touch(at(2), at(15)) // then earlier than the first: 15
	if !es[0].LastActive.Equal(at(1)) || !es[2].LastActive.Equal(at(2)) {
		t.Fatal("Touch did not set LastActive")
	}
	tb.UnlockShard(0)
	checkInvariants(t, tb)

	// Expected order by final deadline: 4(5) 2(15) 1(20) 3(40) 0(45).
	var order []int
	record := func(e *Entry[int]) { order = append(order, e.Value) }
	steps := []struct {
		now  float64
		want []int
	}{
		{4.9, nil},
		{5, []int{4}},
		{10, []int{4}}, // entry 0's old deadline passes: not due any more
		{30, []int{4, 2, 1}},
		{44, []int{4, 2, 1, 3}},
		{1000, []int{4, 2, 1, 3, 0}},
	}
	for _, st := range steps {
		expireAll(t, tb, at(st.now), record)
		if !slices.Equal(order, st.want) {
			t.Fatalf("at %v: expired %v, want %v", st.now, order, st.want)
		}
		checkInvariants(t, tb)
	}
	if tb.Len() != 0 {
		t.Fatalf("Len = %d after everything expired", tb.Len())
	}
	if es[0].owner != nil || es[0].heapIdx != -1 {
		t.Fatal("expired entry still linked")
	}
	// Touching an expired entry is harmless and does not resurrect it.
	es[0].Touch(at(2000), at(3000))
	if tb.Len() != 0 {
		t.Fatal("Touch resurrected an entry")
	}
}

func TestExpireCallbackMayKeepOrDelete(t *testing.T) {
	tb := New[int](Config{Shards: 1})
	keys := uniqueKeys(rand.New(rand.NewPCG(21, 22)), 3)
	tb.LockShard(0)
	defer tb.UnlockShard(0)
	for i, k := range keys {
		e, err := tb.Insert(0, k, i, at(0))
		if err != nil {
			t.Fatal(err)
		}
		e.Touch(at(0), at(1))
	}
	calls := map[int]int{}
	tb.Expire(0, at(2), func(e *Entry[int]) {
		calls[e.Value]++
		switch e.Value {
		case 0: // keep: move to a closing timeout
			e.Touch(at(2), at(10))
		case 1: // the engine deletes it itself
			tb.Delete(0, e)
		}
	})
	if calls[0] != 1 || calls[1] != 1 || calls[2] != 1 {
		t.Fatalf("callback calls %v, want one each", calls)
	}
	if tb.Len() != 1 || tb.ShardLen(0) != 1 {
		t.Fatalf("Len %d, want 1 (the kept entry)", tb.Len())
	}
	if e, ok := tb.Get(0, keys[0]); !ok || !e.Deadline.Equal(at(10)) {
		t.Fatal("kept entry missing or deadline lost")
	}
	tb.Expire(0, at(9), func(*Entry[int]) { t.Fatal("expired before its new deadline") })
	tb.Expire(0, at(10), nil)
	if tb.Len() != 0 {
		t.Fatalf("Len %d after final expiry", tb.Len())
	}
}

func TestExpireBatchBoundsWork(t *testing.T) {
	const n, batch = 1000, 64
	tb := New[int](Config{Shards: 1, ExpireBatch: batch})
	for i, k := range uniqueKeys(rand.New(rand.NewPCG(23, 24)), n) {
		mustInsert(t, tb, k, i, at(0))
	}
	now := at(0).Add(DefaultInitialTimeout)
	tb.LockShard(0)
	defer tb.UnlockShard(0)
	calls := 0
	for tb.Expire(0, now, nil) {
		calls++
		if got, want := tb.Len(), n-calls*batch; got != want {
			t.Fatalf("after %d calls Len = %d, want %d", calls, got, want)
		}
	}
	if tb.Len() != 0 || calls != n/batch {
		t.Fatalf("Len %d after %d calls returning more", tb.Len(), calls)
	}
}

// Test100kExpire fills the table as a SYN flood would, shuffles deadlines
// with Touch, and walks the clock: every entry goes exactly when due.
func Test100kExpire(t *testing.T) {
	const n = 100_000
	tb := New[int](Config{Shards: 4, MaxFlows: n})
	rng := rand.New(rand.NewPCG(25, 26))
	keys := uniqueKeys(rng, n)
	deadline := make(map[Key]time.Time, n)
	for i, k := range keys {
		e := mustInsert(t, tb, k, i, at(0))
		d := at(rng.Float64() * 1000)
		e.Touch(at(0), d)
		if i%2 == 0 { // re-position half of them, earlier or later
			d = at(rng.Float64() * 1000)
			e.Touch(at(0), d)
		}
		deadline[k] = d
	}
	checkInvariants(t, tb)
	for step := 0; step <= 100; step++ {
		now := at(float64(step * 10))
		expireAll(t, tb, now, func(e *Entry[int]) {
			if !deadline[e.Key].Equal(e.Deadline) {
				t.Fatalf("entry %v: deadline %v, set %v", e.Key, e.Deadline, deadline[e.Key])
			}
			delete(deadline, e.Key)
		})
		for k, d := range deadline {
			if !d.After(now) {
				t.Fatalf("at %v: %v (deadline %v) still present", now, k, d)
			}
		}
		if tb.Len() != len(deadline) {
			t.Fatalf("at %v: Len %d, want %d", now, tb.Len(), len(deadline))
		}
	}
	if tb.Len() != 0 {
		t.Fatalf("%d entries left", tb.Len())
	}
	checkInvariants(t, tb)
}

// TestRandomOpsMatchModel drives random inserts, touches, deletes, evictions
// and expiries against a plain map, checking results and invariants.
func TestRandomOpsMatchModel(t *testing.T) {
	rng := rand.New(rand.NewPCG(27, 28))
	tb := New[int](Config{Shards: 1, MaxFlows: 200, ExpireBatch: 7})
	type flow struct {
		e        *Entry[int]
		deadline time.Time
	}
	model := map[Key]*flow{}
	pick := func() *flow {
		if len(model) == 0 {
			return nil
		}
		j := rng.IntN(len(model))
		for _, f := range model {
			if j == 0 {
				return f
			}
			j--
		}
		return nil
	}
	clock := 0.0
	tb.LockShard(0)
	defer tb.UnlockShard(0)
	for op := range 20000 {
		switch r := rng.IntN(10); {
		case r < 4: // insert
			k := randomKey(rng)
			e, err := tb.Insert(0, k, op, at(clock))
			switch {
			case len(model) >= 200:
				if err != ErrFull {
					t.Fatalf("op %d: insert into full table: %v", op, err)
				}
			case err != nil:
				t.Fatalf("op %d: insert: %v", op, err)
			default:
				d := at(clock + rng.Float64()*50)
				e.Touch(at(clock), d)
				model[k] = &flow{e, d}
			}
		case r < 7: // touch, earlier or later, possibly into the past
			if f := pick(); f != nil {
				f.deadline = at(clock + rng.Float64()*60 - 10)
				f.e.Touch(at(clock), f.deadline)
			}
		case r < 8: // delete
			if f := pick(); f != nil {
				tb.Delete(0, f.e)
				delete(model, f.e.Key)
			}
		case r < 9: // evict the earliest flow with an odd value
			odd := func(e *Entry[int]) bool { return e.Value%2 == 1 }
			var want *flow
			for _, f := range model {
				if odd(f.e) && (want == nil || f.deadline.Before(want.deadline)) {
					want = f
				}
			}
			got := tb.Evict(0, odd)
			if (got == nil) != (want == nil) {
				t.Fatalf("op %d: Evict = %v, model expects %v", op, got, want)
			}
			if got != nil {
				// Ties may pick either; the deadline must be the minimum.
				if !got.Deadline.Equal(want.deadline) || !odd(got) {
					t.Fatalf("op %d: evicted deadline %v, want %v", op, got.Deadline, want.deadline)
				}
				delete(model, got.Key)
			}
		default: // advance the clock and expire
			clock += rng.Float64() * 5
			now := at(clock)
			var last time.Time
			for calls, more := 0, true; more; calls++ {
				if calls > 2*len(model)+10 {
					t.Fatalf("op %d: Expire still reports more after %d calls", op, calls)
				}
				last = time.Time{}
				more = tb.Expire(0, now, func(e *Entry[int]) {
					f := model[e.Key]
					if f == nil || f.e != e {
						t.Fatalf("op %d: expired unknown entry", op)
					}
					if f.deadline.After(now) {
						t.Fatalf("op %d: expired early", op)
					}
					if f.deadline.Before(last) {
						t.Fatalf("op %d: expired out of order", op)
					}
					last = f.deadline
					delete(model, e.Key)
				})
			}
			for _, f := range model {
				if !f.deadline.After(now) {
					t.Fatalf("op %d: due entry not expired", op)
				}
			}
		}
		if tb.ShardLen(0) != len(model) || tb.Len() != len(model) {
			t.Fatalf("op %d: table holds %d, model %d", op, tb.ShardLen(0), len(model))
		}
		if op%500 == 0 {
			tb.UnlockShard(0)
			checkInvariants(t, tb)
			tb.LockShard(0)
		}
	}
}

func TestEvictOnePrefersEarliestAccepted(t *testing.T) {
	tb := New[string](Config{Shards: 1})
	keys := uniqueKeys(rand.New(rand.NewPCG(29, 30)), 6)
	tb.LockShard(0)
	defer tb.UnlockShard(0)
	// Established flows have the earliest deadlines; half-open ones are
	// the victims, and the earliest of those must go first.
	spec := []struct {
		state string
		dl    float64
	}{{"est", 1}, {"syn", 30}, {"est", 2}, {"syn", 10}, {"syn", 20}, {"est", 3}}
	for i, k := range keys {
		e, err := tb.Insert(0, k, spec[i].state, at(0))
		if err != nil {
			t.Fatal(err)
		}
		e.Touch(at(0), at(spec[i].dl))
	}
	// Extend a victim lazily: its heap position is stale but its real
	// deadline now comes last.
	e, _ := tb.Get(0, keys[3])
	e.Touch(at(0), at(40))
	halfOpen := func(e *Entry[string]) bool { return e.Value == "syn" }
	var got []float64
	for {
		v := tb.Evict(0, halfOpen)
		if v == nil {
			break
		}
		got = append(got, v.Deadline.Sub(base).Seconds())
	}
	if want := []float64{20, 30, 40}; !slices.Equal(got, want) {
		t.Fatalf("evicted deadlines %v, want %v", got, want)
	}
	if tb.Len() != 3 || tb.EvictOne(0, halfOpen) {
		t.Fatal("established flows were evicted")
	}
	if !tb.EvictOne(0, func(*Entry[string]) bool { return true }) || tb.Len() != 2 {
		t.Fatal("EvictOne with an accept-all predicate did not evict")
	}
	if tb.EvictOne(0, nil) {
		t.Fatal("EvictOne with nil predicate evicted")
	}
}

func TestEvictDoesNotAllocate(t *testing.T) {
	tb := New[int](Config{Shards: 1})
	rng := rand.New(rand.NewPCG(31, 32))
	for i, k := range uniqueKeys(rng, 5000) {
		e := mustInsert(t, tb, k, i, at(0))
		e.Touch(at(0), at(rng.Float64()*100))
	}
	tb.LockShard(0)
	defer tb.UnlockShard(0)
	never := func(*Entry[int]) bool { return false }
	if a := testing.AllocsPerRun(100, func() { tb.EvictOne(0, never) }); a != 0 {
		t.Errorf("EvictOne: %v allocs per call", a)
	}
	if tb.Len() != 5000 {
		t.Fatal("rejecting predicate evicted something")
	}
}
