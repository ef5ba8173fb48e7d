package flowtable

import (
	"errors"
	"math/rand/v2"
	"sync"
	"testing"
	"time"
)

func TestInsertGetDelete(t *testing.T) {
	tb := New[string](Config{Shards: 4, MaxFlows: 100})
	rng := rand.New(rand.NewPCG(5, 6))
	keys := uniqueKeys(rng, 50)
	now := at(0)
	entries := make([]*Entry[string], len(keys))
	for i, k := range keys {
		entries[i] = mustInsert(t, tb, k, k.String(), now)
		if entries[i].Key != k || entries[i].Value != k.String() {
			t.Fatalf("entry %d has key %v value %q", i, entries[i].Key, entries[i].Value)
		}
		if !entries[i].Created.Equal(now) || !entries[i].LastActive.Equal(now) {
			t.Fatalf("entry %d: Created %v LastActive %v, want %v", i, entries[i].Created, entries[i].LastActive, now)
		}
		if want := now.Add(DefaultInitialTimeout); !entries[i].Deadline.Equal(want) {
			t.Fatalf("entry %d: Deadline %v, want %v", i, entries[i].Deadline, want)
		}
	}
	if tb.Len() != len(keys) {
		t.Fatalf("Len = %d, want %d", tb.Len(), len(keys))
	}
	checkInvariants(t, tb)

	for i, k := range keys {
		s := tb.Shard(k)
		tb.LockShard(s)
		e, ok := tb.Get(s, k)
		if !ok || e != entries[i] {
			t.Fatalf("Get(%v) = %p, %v; want %p", k, e, ok, entries[i])
		}
		// Another shard never answers for k.
		if _, ok := tb.Get((s+1)%tb.Shards(), k); ok {
			t.Fatalf("Get found %v in a shard that does not own it", k)
		}
		// A second insert of the same key is refused.
		if _, err := tb.Insert(s, k, "dup", now); !errors.Is(err, ErrExists) {
			t.Fatalf("duplicate Insert: err = %v, want ErrExists", err)
		}
		tb.UnlockShard(s)
	}

	// Delete every other entry; deleting twice changes nothing.
	for i := 0; i < len(keys); i += 2 {
		s := tb.Shard(keys[i])
		tb.LockShard(s)
		tb.Delete(s, entries[i])
		tb.Delete(s, entries[i])
		tb.UnlockShard(s)
	}
	if want := len(keys) / 2; tb.Len() != want {
		t.Fatalf("Len after deletes = %d, want %d", tb.Len(), want)
	}
	for i, k := range keys {
		s := tb.Shard(k)
		tb.LockShard(s)
		_, ok := tb.Get(s, k)
		tb.UnlockShard(s)
		if ok != (i%2 == 1) {
			t.Fatalf("key %d present = %v after deleting even keys", i, ok)
		}
	}
	checkInvariants(t, tb)

	// A deleted key can be inserted again, with a new ID.
	e := mustInsert(t, tb, keys[0], "again", now)
	if e == entries[0] || e.ID <= entries[len(entries)-1].ID {
		t.Fatalf("re-inserted entry reused old entry or ID %d", e.ID)
	}
}

func TestMisroutedAndOutOfRange(t *testing.T) {
	tb := New[int](Config{Shards: 4})
	k := randomKey(rand.New(rand.NewPCG(7, 8)))
	own := tb.Shard(k)
	other := (own + 1) % 4
	tb.LockShard(other)
	if _, err := tb.Insert(other, k, 1, at(0)); !errors.Is(err, ErrWrongShard) {
		t.Errorf("Insert into wrong shard: err = %v", err)
	}
	tb.UnlockShard(other)
	for _, bad := range []int{-1, 4, 1 << 30} {
		if _, err := tb.Insert(bad, k, 1, at(0)); !errors.Is(err, ErrWrongShard) {
			t.Errorf("Insert(shard %d): err = %v", bad, err)
		}
		if _, ok := tb.Get(bad, k); ok {
			t.Errorf("Get(shard %d) found something", bad)
		}
		tb.Delete(bad, &Entry[int]{})
		tb.Range(bad, func(*Entry[int]) bool { t.Error("Range on bad shard called fn"); return true })
		if tb.Expire(bad, at(1e6), nil) {
			t.Errorf("Expire(shard %d) reported more", bad)
		}
		if tb.EvictOne(bad, func(*Entry[int]) bool { return true }) {
			t.Errorf("EvictOne(shard %d) evicted", bad)
		}
		if tb.ShardLen(bad) != 0 {
			t.Errorf("ShardLen(%d) != 0", bad)
		}
	}
	// An entry deleted through the wrong shard index stays.
	e := mustInsert(t, tb, k, 1, at(0))
	tb.LockShard(other)
	tb.Delete(other, e)
	tb.UnlockShard(other)
	tb.Delete(own, nil)
	if tb.Len() != 1 {
		t.Fatalf("Len = %d after bogus deletes, want 1", tb.Len())
	}
}

func TestConfigDefaults(t *testing.T) {
	tb := New[int](Config{Shards: -1, MaxFlows: -5, MaxBytesTotal: -1})
	if tb.Shards() < 1 || tb.MaxFlows() != DefaultMaxFlows || tb.MaxBytesTotal() != DefaultMaxBytesTotal {
		t.Fatalf("defaults: shards %d maxflows %d maxbytes %d", tb.Shards(), tb.MaxFlows(), tb.MaxBytesTotal())
	}
	if big := New[int](Config{Shards: MaxShards * 4}); big.Shards() != MaxShards {
		t.Fatalf("Shards not capped: %d", big.Shards())
	}
}

// keysPerShard returns n distinct keys owned by each shard of tb.
func keysPerShard[V any](tb *Table[V], rng *rand.Rand, n int) [][]Key {
	out := make([][]Key, tb.Shards())
	seen := map[Key]bool{}
	for done := 0; done < tb.Shards(); {
		k := randomKey(rng)
		s := tb.Shard(k)
		if seen[k] || len(out[s]) == n {
			continue
		}
		seen[k] = true
		out[s] = append(out[s], k)
		if len(out[s]) == n {
			done++
		}
	}
	return out
}

// TestCapIsGlobal has one goroutine per shard insert more than the table
// holds, concurrently: exactly MaxFlows inserts may succeed in total.
func TestCapIsGlobal(t *testing.T) {
	const shards, perShard, maxFlows = 4, 600, 1000
	tb := New[int](Config{Shards: shards, MaxFlows: maxFlows})
	keys := keysPerShard(tb, rand.New(rand.NewPCG(9, 10)), perShard)

	var wg sync.WaitGroup
	ok := make([]int, shards)
	full := make([]int, shards)
	ids := make([][]uint64, shards)
	for s := range shards {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, k := range keys[s] {
				tb.LockShard(s)
				e, err := tb.Insert(s, k, s, at(0))
				tb.UnlockShard(s)
				switch {
				case err == nil:
					ok[s]++
					ids[s] = append(ids[s], e.ID)
				case errors.Is(err, ErrFull):
					full[s]++
				default:
					t.Errorf("shard %d: Insert: %v", s, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	totalOK, totalFull := 0, 0
	for s := range shards {
		totalOK += ok[s]
		totalFull += full[s]
	}
	if totalOK != maxFlows || totalFull != shards*perShard-maxFlows {
		t.Fatalf("%d inserts succeeded and %d were refused; want %d and %d",
			totalOK, totalFull, maxFlows, shards*perShard-maxFlows)
	}
	if tb.Len() != maxFlows {
		t.Fatalf("Len = %d, want %d", tb.Len(), maxFlows)
	}
	checkInvariants(t, tb)

	// IDs are unique across shards and increase within each inserter.
	seen := map[uint64]bool{}
	for s := range shards {
		for j, id := range ids[s] {
			if seen[id] {
				t.Fatalf("ID %d assigned twice", id)
			}
			seen[id] = true
			if j > 0 && id <= ids[s][j-1] {
				t.Fatalf("shard %d: ID %d after %d", s, id, ids[s][j-1])
			}
		}
	}

	// Room frees up on delete, in any shard.
	victimShard := 0
	for ok[victimShard] == 0 {
		victimShard++
	}
	tb.LockShard(victimShard)
	tb.Range(victimShard, func(e *Entry[int]) bool { tb.Delete(victimShard, e); return false })
	tb.UnlockShard(victimShard)
	lastShard := (victimShard + 1) % shards
	k := keysPerShard(tb, rand.New(rand.NewPCG(11, 12)), 1)[lastShard][0]
	tb.LockShard(lastShard)
	_, err := tb.Insert(lastShard, k, 0, at(0))
	tb.UnlockShard(lastShard)
	if err != nil {
		t.Fatalf("Insert after a delete freed room: %v", err)
	}
	if tb.Len() != maxFlows {
		t.Fatalf("Len = %d, want %d", tb.Len(), maxFlows)
	}
}

func TestLookupByID(t *testing.T) {
	tb := New[int](Config{Shards: 3})
	keys := uniqueKeys(rand.New(rand.NewPCG(13, 14)), 300)
	byID := map[uint64]Key{}
	var last uint64
	for i, k := range keys {
		e := mustInsert(t, tb, k, i, at(0))
		if e.ID <= last {
			t.Fatalf("ID %d not above previous %d", e.ID, last)
		}
		last = e.ID
		byID[e.ID] = k
	}
	for id, k := range byID {
		var got Key
		if !tb.Lookup(id, func(e *Entry[int]) { got = e.Key }) || got != k {
			t.Fatalf("Lookup(%d) = %v, want %v", id, got, k)
		}
	}
	if tb.Lookup(last+1, func(*Entry[int]) { t.Error("fn called for unknown ID") }) {
		t.Fatal("Lookup found an ID never assigned")
	}
	// After delete the ID is gone.
	var id uint64
	for id = range byID {
		break
	}
	var e *Entry[int]
	tb.Lookup(id, func(x *Entry[int]) { e = x })
	s := tb.Shard(e.Key)
	tb.LockShard(s)
	tb.Delete(s, e)
	tb.UnlockShard(s)
	if tb.Lookup(id, func(*Entry[int]) {}) {
		t.Fatal("Lookup found a deleted entry")
	}
}

func TestRangeVisitsEachEntryOnce(t *testing.T) {
	tb := New[int](Config{Shards: 4})
	keys := uniqueKeys(rand.New(rand.NewPCG(15, 16)), 500)
	for i, k := range keys {
		mustInsert(t, tb, k, i, at(0))
	}
	visits := map[Key]int{}
	for s := range tb.Shards() {
		tb.LockShard(s)
		n := 0
		tb.Range(s, func(e *Entry[int]) bool {
			visits[e.Key]++
			n++
			if tb.Shard(e.Key) != s {
				t.Errorf("Range(%d) yielded a key of shard %d", s, tb.Shard(e.Key))
			}
			return true
		})
		if n != tb.ShardLen(s) {
			t.Errorf("Range(%d) visited %d, ShardLen %d", s, n, tb.ShardLen(s))
		}
		tb.UnlockShard(s)
	}
	if len(visits) != len(keys) {
		t.Fatalf("Range visited %d keys, want %d", len(visits), len(keys))
	}
	for k, n := range visits {
		if n != 1 {
			t.Fatalf("%v visited %d times", k, n)
		}
	}
	// Stopping early visits exactly one.
	s := tb.Shard(keys[0])
	tb.LockShard(s)
	n := 0
	tb.Range(s, func(*Entry[int]) bool { n++; return false })
	tb.UnlockShard(s)
	if n != 1 {
		t.Fatalf("Range kept going after false: %d calls", n)
	}
}

func TestGetAndTouchDoNotAllocate(t *testing.T) {
	tb := New[int](Config{Shards: 2})
	keys := uniqueKeys(rand.New(rand.NewPCG(17, 18)), 1000)
	for i, k := range keys {
		mustInsert(t, tb, k, i, at(0))
	}
	k := keys[500]
	s := tb.Shard(k)
	tb.LockShard(s)
	defer tb.UnlockShard(s)
	var e *Entry[int]
	if a := testing.AllocsPerRun(1000, func() { e, _ = tb.Get(s, k) }); a != 0 {
		t.Errorf("Get: %v allocs per call", a)
	}
	if e == nil || e.Key != k {
		t.Fatal("Get did not find the key")
	}
	now := at(0)
	if a := testing.AllocsPerRun(1000, func() {
		now = now.Add(time.Millisecond)
		e.Touch(now, now.Add(time.Minute))
	}); a != 0 {
		t.Errorf("Touch: %v allocs per call", a)
	}
}
