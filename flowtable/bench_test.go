package flowtable

import (
	"math/rand/v2"
	"strconv"
	"testing"
	"time"
)

func BenchmarkHash(b *testing.B) {
	keys := uniqueKeys(rand.New(rand.NewPCG(40, 41)), 1024)
	var sink uint64
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		sink += keys[i&1023].Hash()
	}
	_ = sink
}

// BenchmarkGet looks up random keys in a small table (cache-resident) and
// in a 100k-flow one (bounded by memory latency).
func BenchmarkGet(b *testing.B) {
	for _, n := range []int{1000, 100_000} {
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			tb := New[int](Config{Shards: 1, MaxFlows: n})
			keys := uniqueKeys(rand.New(rand.NewPCG(42, 43)), n)
			for i, k := range keys {
				mustInsert(b, tb, k, i, at(0))
			}
			tb.LockShard(0)
			defer tb.UnlockShard(0)
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				if _, ok := tb.Get(0, keys[i%n]); !ok {
					b.Fatal("missing key")
				}
			}
		})
	}
}

func BenchmarkTouchExtend(b *testing.B) {
	const n = 100_000
	tb := New[int](Config{Shards: 1, MaxFlows: n})
	keys := uniqueKeys(rand.New(rand.NewPCG(44, 45)), n)
	es := make([]*Entry[int], n)
	for i, k := range keys {
		es[i] = mustInsert(b, tb, k, i, at(0))
	}
	tb.LockShard(0)
	defer tb.UnlockShard(0)
	now := at(0)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		now = now.Add(time.Microsecond)
		es[i%n].Touch(now, now.Add(time.Minute))
	}
}

func BenchmarkInsertDelete(b *testing.B) {
	const n = 100_000
	tb := New[int](Config{Shards: 1, MaxFlows: n + 1})
	rng := rand.New(rand.NewPCG(46, 47))
	keys := uniqueKeys(rng, n+1024)
	// A table already holding n flows, as under load.
	for i, k := range keys[:n] {
		e := mustInsert(b, tb, k, i, at(0))
		e.Touch(at(0), at(rng.Float64()*100))
	}
	extra := keys[n:]
	tb.LockShard(0)
	defer tb.UnlockShard(0)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		e, err := tb.Insert(0, extra[i&1023], i, at(50))
		if err != nil {
			b.Fatal(err)
		}
		tb.Delete(0, e)
	}
}

// BenchmarkExpire100k measures expiring a shard of 100,000 flows whose
// deadlines were each extended once (the lazy re-keying path) and then
// passed: the cost of clearing a SYN flood.
func BenchmarkExpire100k(b *testing.B) {
	const n = 100_000
	rng := rand.New(rand.NewPCG(48, 49))
	keys := uniqueKeys(rng, n)
	for b.Loop() {
		b.StopTimer()
		tb := New[int](Config{Shards: 1, MaxFlows: n})
		for i, k := range keys {
			e := mustInsert(b, tb, k, i, at(0))
			e.Touch(at(0), at(rng.Float64()*100))
			e.Touch(at(1), at(100+rng.Float64()*100))
		}
		tb.LockShard(0)
		b.StartTimer()
		for tb.Expire(0, at(200), nil) {
		}
		b.StopTimer()
		if tb.Len() != 0 {
			b.Fatalf("%d left", tb.Len())
		}
		tb.UnlockShard(0)
		b.StartTimer()
	}
}
