package flowtable

import (
	"math/rand/v2"
	"testing"
)

// TestExhaustInboundKeepsLANReserve: inbound flows stop at MaxFlows -
// LANReserve, flows from the LAN still get the rest, the counts follow
// Delete, Expire and Evict, and an inbound slot freed is usable again.
func TestExhaustInboundKeepsLANReserve(t *testing.T) {
	const maxFlows, reserve = 64, 16
	tb := New[int](Config{Shards: 1, MaxFlows: maxFlows, LANReserve: reserve})
	if tb.MaxInbound() != maxFlows-reserve {
		t.Fatalf("MaxInbound %d, want %d", tb.MaxInbound(), maxFlows-reserve)
	}
	keys := uniqueKeys(rand.New(rand.NewPCG(1, 2)), maxFlows+2)
	var in []*Entry[int]
	for i := 0; ; i++ {
		e, err := tb.InsertInbound(0, keys[i], i, at(float64(i)))
		if err == ErrFull {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		in = append(in, e)
	}
	if len(in) != maxFlows-reserve || tb.InboundLen() != maxFlows-reserve {
		t.Fatalf("%d inbound flows inserted (InboundLen %d), want %d", len(in), tb.InboundLen(), maxFlows-reserve)
	}
	// The LAN still has its reserve, and not one entry more.
	for i := len(in); i < maxFlows; i++ {
		if _, err := tb.Insert(0, keys[i], i, at(0)); err != nil {
			t.Fatalf("LAN insert %d with inbound flows at their cap: %v", i, err)
		}
	}
	if _, err := tb.Insert(0, keys[maxFlows], 0, at(0)); err != ErrFull {
		t.Fatalf("insert into a full table: %v", err)
	}
	// Freed inbound slots, by each way out of the table, are inbound slots again.
	tb.Delete(0, in[0])
	if v := tb.Evict(0, func(e *Entry[int]) bool { return e.Inbound }); v == nil || !v.Inbound {
		t.Fatalf("Evict of an inbound flow: %+v", v)
	}
	if tb.InboundLen() != maxFlows-reserve-2 || tb.Len() != maxFlows-2 {
		t.Fatalf("after Delete and Evict: %d inbound, %d flows", tb.InboundLen(), tb.Len())
	}
	tb.Expire(0, at(float64(maxFlows)+DefaultInitialTimeout.Seconds()), nil)
	if tb.InboundLen() != 0 || tb.Len() != 0 {
		t.Fatalf("after expiring everything: %d inbound, %d flows", tb.InboundLen(), tb.Len())
	}
	if _, err := tb.InsertInbound(0, keys[0], 0, at(0)); err != nil {
		t.Fatalf("inbound insert into an empty table: %v", err)
	}
	checkInvariants(t, tb)
}

// TestExhaustDefaultLANReserve: without LANReserve, a quarter of the table
// is kept for the LAN.
func TestExhaustDefaultLANReserve(t *testing.T) {
	tb := New[int](Config{MaxFlows: 1 << 16})
	if got, want := tb.MaxInbound(), 3<<14; got != want {
		t.Fatalf("MaxInbound %d, want %d", got, want)
	}
	if tb := New[int](Config{MaxFlows: 1}); tb.MaxInbound() != 1 {
		t.Fatalf("a one-flow table keeps %d inbound slots, want 1", tb.MaxInbound())
	}
}

// TestEvictFreesTheShardsOwnInboundSlot: the inbound share is split
// between the shards, so the slot a flood-time eviction frees in one shard
// can only be taken by that shard: no other worker can take it first and
// drain the shard of the flows it needs as victims.
func TestEvictFreesTheShardsOwnInboundSlot(t *testing.T) {
	tb := New[int](Config{Shards: 3, MaxFlows: 40, LANReserve: 10})
	keys := keysPerShard(tb, rand.New(rand.NewPCG(3, 4)), 40)
	total := 0
	for i := range 3 {
		tb.LockShard(i)
		for _, k := range keys[i] {
			if _, err := tb.InsertInbound(i, k, 0, at(0)); err != nil {
				break
			}
			total++
		}
		tb.UnlockShard(i)
	}
	if total != 30 || tb.InboundLen() != 30 {
		t.Fatalf("%d inbound flows fit (InboundLen %d), want the share 30", total, tb.InboundLen())
	}
	tb.LockShard(0)
	if tb.Evict(0, func(*Entry[int]) bool { return true }) == nil {
		t.Fatal("nothing evicted")
	}
	tb.UnlockShard(0)
	tb.LockShard(1)
	if _, err := tb.InsertInbound(1, keys[1][len(keys[1])-1], 0, at(0)); err != ErrFull {
		t.Fatalf("shard 1 took shard 0's freed slot: %v", err)
	}
	tb.UnlockShard(1)
	tb.LockShard(0)
	if _, err := tb.InsertInbound(0, keys[0][len(keys[0])-1], 0, at(0)); err != nil {
		t.Fatalf("shard 0 could not reuse its slot: %v", err)
	}
	tb.UnlockShard(0)
	checkInvariants(t, tb)
}

// TestEvictSeesPastExtendedDeadlines: entries whose deadlines were pushed
// far ahead (their heap keys lag behind, see Touch) must not hide the
// victims behind them from Evict, however many there are.
func TestEvictSeesPastExtendedDeadlines(t *testing.T) {
	tb := New[int](Config{Shards: 1, MaxFlows: 4096})
	keys := uniqueKeys(rand.New(rand.NewPCG(5, 6)), 2*evictScanLimit+1)
	for i, k := range keys[:2*evictScanLimit] { // busy flows: not victims
		e, _ := tb.Insert(0, k, 0, at(0))
		e.Touch(at(1), at(7200+float64(i)))
	}
	victim, _ := tb.Insert(0, keys[2*evictScanLimit], 1, at(2))
	victim.Touch(at(2), at(30))
	if got := tb.Evict(0, func(e *Entry[int]) bool { return e.Value == 1 }); got != victim {
		t.Fatalf("Evict found %v, want the one victim behind %d busy flows", got, 2*evictScanLimit)
	}
	checkInvariants(t, tb)
}
