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
