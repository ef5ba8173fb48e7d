package flowtable

import (
	"math"
	"math/rand/v2"
	"net/netip"
	"testing"
)

func TestHashDeterministicAndDistinguishes(t *testing.T) {
	k := Key{
		LAN: netip.MustParseAddrPort("192.168.1.10:40000"),
		WAN: netip.MustParseAddrPort("203.0.113.5:443"),
	}
	same := Key{
		LAN: netip.MustParseAddrPort("192.168.1.10:40000"),
		WAN: netip.MustParseAddrPort("203.0.113.5:443"),
	}
	if k.Hash() != same.Hash() {
		t.Fatal("equal keys hash differently")
	}
	variants := []Key{
		{LAN: netip.MustParseAddrPort("192.168.1.10:40001"), WAN: k.WAN},
		{LAN: k.LAN, WAN: netip.MustParseAddrPort("203.0.113.5:444")},
		{LAN: k.WAN, WAN: k.LAN}, // swapped endpoints are another flow
		{LAN: netip.MustParseAddrPort("[::ffff:192.168.1.10]:40000"), WAN: k.WAN},
		{LAN: k.LAN, WAN: netip.MustParseAddrPort("[::ffff:203.0.113.5]:443")},
		{LAN: netip.MustParseAddrPort("[2001:db8::1]:40000"), WAN: netip.MustParseAddrPort("[2001:db8::2]:443")},
		{},
	}
	seen := map[uint64]Key{k.Hash(): k}
	for _, v := range variants {
		h := v.Hash()
		if prev, dup := seen[h]; dup {
			t.Errorf("%v and %v hash alike: %#x", prev, v, h)
		}
		seen[h] = v
	}
}

// checkSpread asserts that keys spread over n shards with no shard above
// twice the average, and a chi-square statistic far from pathological.
func checkSpread(t *testing.T, name string, keys []Key, n int) {
	t.Helper()
	counts := make([]int, n)
	for _, k := range keys {
		s := ShardOf(k.Hash(), n)
		if s < 0 || s >= n {
			t.Fatalf("%s: ShardOf out of range: %d of %d", name, s, n)
		}
		counts[s]++
	}
	avg := float64(len(keys)) / float64(n)
	chi2 := 0.0
	for i, c := range counts {
		if float64(c) > 2*avg {
			t.Errorf("%s, %d shards: shard %d has %d keys, average %.1f", name, n, i, c, avg)
		}
		d := float64(c) - avg
		chi2 += d * d / avg
	}
	// Chi-square with n-1 degrees of freedom has mean n-1 and standard
	// deviation sqrt(2(n-1)); ten deviations above the mean never happens by
	// chance with a sound hash.
	df := float64(n - 1)
	if limit := df + 10*math.Sqrt(2*df); chi2 > limit {
		t.Errorf("%s, %d shards: chi-square %.1f above %.1f", name, n, chi2, limit)
	}
}

func TestHashSpreadAcrossShards(t *testing.T) {
	const nkeys = 64 << 10
	rng := rand.New(rand.NewPCG(1, 2))

	random := make([]Key, nkeys)
	for i := range random {
		random[i] = randomKey(rng)
	}
	// A SYN flood or a busy client: one LAN host, one server, every port.
	ports := make([]Key, nkeys)
	for i := range ports {
		ports[i] = Key{
			LAN: netip.AddrPortFrom(netip.MustParseAddr("10.0.0.2"), uint16(i)),
			WAN: netip.MustParseAddrPort("198.51.100.7:443"),
		}
	}
	// Many IPv6 hosts with consecutive addresses, fixed ports.
	hosts := make([]Key, nkeys)
	for i := range hosts {
		a := netip.MustParseAddr("2001:db8::").As16()
		a[14], a[15] = byte(i>>8), byte(i)
		hosts[i] = Key{
			LAN: netip.AddrPortFrom(netip.AddrFrom16(a), 50000),
			WAN: netip.MustParseAddrPort("[2001:db8:1::80]:80"),
		}
	}
	for _, n := range []int{2, 3, 8, 16, 64} {
		checkSpread(t, "random", random, n)
		checkSpread(t, "sequential ports", ports, n)
		checkSpread(t, "sequential IPv6 hosts", hosts, n)
	}
}

func TestShardOfSingleAndInvalid(t *testing.T) {
	for _, h := range []uint64{0, 1, math.MaxUint64} {
		if got := ShardOf(h, 1); got != 0 {
			t.Errorf("ShardOf(%#x, 1) = %d", h, got)
		}
		if got := ShardOf(h, 0); got != 0 {
			t.Errorf("ShardOf(%#x, 0) = %d", h, got)
		}
		if got := ShardOf(h, -3); got != 0 {
			t.Errorf("ShardOf(%#x, -3) = %d", h, got)
		}
	}
	if got := ShardOf(math.MaxUint64, 7); got != 6 {
		t.Errorf("ShardOf(max, 7) = %d, want 6", got)
	}
}

func TestHashAndShardDoNotAllocate(t *testing.T) {
	tb := New[int](Config{Shards: 8})
	k := randomKey(rand.New(rand.NewPCG(3, 4)))
	var sink uint64
	if a := testing.AllocsPerRun(1000, func() { sink += k.Hash() }); a != 0 {
		t.Errorf("Hash: %v allocs per call", a)
	}
	if a := testing.AllocsPerRun(1000, func() { sink += uint64(tb.Shard(k)) }); a != 0 {
		t.Errorf("Shard: %v allocs per call", a)
	}
	_ = sink
}
