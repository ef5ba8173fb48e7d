package flowtable

import (
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"
)

// base is an arbitrary wall-clock origin for synthetic test times.
var base = time.Unix(1_700_000_000, 0)

func at(sec float64) time.Time { return base.Add(time.Duration(sec * float64(time.Second))) }

// randomKey returns a random key, IPv4 or IPv6 with equal probability.
func randomKey(rng *rand.Rand) Key {
	addr := func() netip.Addr {
		if rng.IntN(2) == 0 {
			var b [4]byte
			for i := range b {
				b[i] = byte(rng.Uint32())
			}
			return netip.AddrFrom4(b)
		}
		var b [16]byte
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return netip.AddrFrom16(b)
	}
	return Key{
		LAN: netip.AddrPortFrom(addr(), uint16(rng.Uint32())),
		WAN: netip.AddrPortFrom(addr(), uint16(rng.Uint32())),
	}
}

// uniqueKeys returns n distinct random keys.
func uniqueKeys(rng *rand.Rand, n int) []Key {
	seen := make(map[Key]bool, n)
	keys := make([]Key, 0, n)
	for len(keys) < n {
		k := randomKey(rng)
		if !seen[k] {
			seen[k] = true
			keys = append(keys, k)
		}
	}
	return keys
}

// mustInsert inserts k into its own shard, taking the lock.
func mustInsert[V any](t testing.TB, tb *Table[V], k Key, v V, now time.Time) *Entry[V] {
	t.Helper()
	i := tb.Shard(k)
	tb.LockShard(i)
	defer tb.UnlockShard(i)
	e, err := tb.Insert(i, k, v, now)
	if err != nil {
		t.Fatalf("Insert(%v): %v", k, err)
	}
	return e
}

// checkInvariants verifies every shard's indexes agree and its heap is
// ordered. It takes the locks.
func checkInvariants[V any](t testing.TB, tb *Table[V]) {
	t.Helper()
	total := 0
	for i, s := range tb.shards {
		tb.LockShard(i)
		if len(s.flows) != len(s.byID) || len(s.flows) != len(s.heap) {
			t.Fatalf("shard %d: %d flows, %d ids, %d heap", i, len(s.flows), len(s.byID), len(s.heap))
		}
		for j, slot := range s.heap {
			e := slot.e
			if int(e.heapIdx) != j || e.owner != s || slot.at != e.heapKey {
				t.Fatalf("shard %d: heap[%d] has heapIdx %d, owner ok %v, key %d/%d", i, j, e.heapIdx, e.owner == s, slot.at, e.heapKey)
			}
			if e.heapKey > s.tick(e.Deadline) {
				t.Fatalf("shard %d: heapKey %v after Deadline %v", i, e.heapKey, e.Deadline)
			}
			if j > 0 && s.heap[(j-1)/2].at > slot.at {
				t.Fatalf("shard %d: heap order broken at %d", i, j)
			}
			if s.flows[e.Key] != e || s.byID[e.ID] != e {
				t.Fatalf("shard %d: entry %d missing from an index", i, e.ID)
			}
			if tb.Shard(e.Key) != i {
				t.Fatalf("entry %v in shard %d, owner is %d", e.Key, i, tb.Shard(e.Key))
			}
		}
		total += len(s.flows)
		tb.UnlockShard(i)
	}
	if total != tb.Len() {
		t.Fatalf("Len() = %d, shards hold %d", tb.Len(), total)
	}
}
