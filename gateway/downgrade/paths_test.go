package downgrade

import (
	"fmt"
	"net/netip"
	"testing"
	"time"
)

func TestPathsThresholdWindowAndExpiry(t *testing.T) {
	p := NewPaths(PathConfig{Max: 4, TTL: time.Hour, Window: time.Minute, Threshold: 2})
	a := netip.MustParseAddr("192.0.2.1")
	t0 := time.Unix(1000, 0)
	if p.Failure(a, t0, "one") {
		t.Fatal("broken after one failure")
	}
	// The second failure outside the window starts a new window.
	if p.Failure(a, t0.Add(2*time.Minute), "two") {
		t.Fatal("failures two minutes apart counted together")
	}
	if !p.Failure(netip.MustParseAddr("::ffff:192.0.2.1"), t0.Add(2*time.Minute+time.Second), "three") {
		t.Fatal("not broken after two failures within the window (a mapped address is the same peer)")
	}
	r, ok := p.Broken(a, t0.Add(30*time.Minute))
	if !ok || r.Failures != 3 || r.RecentFails != 2 || r.FailureProof != "three" {
		t.Fatalf("record %+v %v", r, ok)
	}
	if _, ok := p.Broken(a, t0.Add(2*time.Minute+time.Second+time.Hour)); ok {
		t.Fatal("the broken mark did not expire")
	}
	if s := p.Snapshot(t0.Add(3 * time.Hour)); len(s) != 0 {
		t.Fatalf("expired records listed: %+v", s)
	}
	// After expiry the count starts again.
	if p.Failure(a, t0.Add(3*time.Hour), "again") {
		t.Fatal("an expired record still counted")
	}
}

func TestPathsBounded(t *testing.T) {
	p := NewPaths(PathConfig{Max: 3, TTL: time.Hour, Window: time.Minute, Threshold: 1})
	now := time.Unix(1000, 0)
	for i := range 10 {
		p.Fallback(netip.AddrFrom4([4]byte{192, 0, 2, byte(i)}), now, fmt.Sprint(i))
	}
	s := p.Snapshot(now)
	if len(s) != 3 || s[0].Addr != netip.MustParseAddr("192.0.2.9") || s[0].SYNFallbacks != 1 || s[0].FallbackProof != "9" {
		t.Fatalf("snapshot %+v", s)
	}
	var nilPaths *Paths
	nilPaths.Fallback(s[0].Addr, now, "")
	if nilPaths.Failure(s[0].Addr, now, "") || nilPaths.Snapshot(now) != nil {
		t.Fatal("a nil memory remembers")
	}
	if NewPaths(PathConfig{}) != nil {
		t.Fatal("a zero config makes a memory")
	}
}
