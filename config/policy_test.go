package config

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"
)

func mustParse(t testing.TB, yaml string) *Config {
	t.Helper()
	c, err := Parse([]byte(yaml), "test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func ap(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

const bypassYAML = `
lan_prefixes: [10.0.0.0/8, 192.168.0.0/16, 2001:db8:100::/40, fc00::/7]
bypass:
  ports: [22, "6000-6010", 65535]
  prefixes: [192.0.2.0/24, 0.0.0.0/32, 2001:db8:aa::/48, 2001:db8:ff00::/40]
  hosts: [198.51.100.7, "2001:db8::7", 203.0.113.255, "::1"]
`

func TestBypassMatch(t *testing.T) {
	m := mustParse(t, bypassYAML).Bypass()
	cases := []struct {
		src, dst string
		want     bool
	}{
		{"10.0.0.5:40000", "93.184.216.34:443", false},
		{"10.0.0.5:40000", "93.184.216.34:22", true},   // dst port
		{"10.0.0.5:22", "93.184.216.34:443", true},     // src port
		{"10.0.0.5:5999", "93.184.216.34:443", false},  // just below the range
		{"10.0.0.5:6000", "93.184.216.34:443", true},   // range start
		{"10.0.0.5:40000", "93.184.216.34:6010", true}, // range end
		{"10.0.0.5:40000", "93.184.216.34:6011", false},
		{"10.0.0.5:40000", "93.184.216.34:65535", true},
		{"10.0.0.5:40000", "192.0.2.0:443", true},   // prefix start
		{"10.0.0.5:40000", "192.0.2.255:443", true}, // prefix end
		{"10.0.0.5:40000", "192.0.3.0:443", false},
		{"10.0.0.5:40000", "192.0.1.255:443", false},
		{"198.51.100.7:40000", "8.8.8.8:443", true}, // host at src
		{"10.0.0.5:40000", "198.51.100.8:443", false},
		{"10.0.0.5:40000", "203.0.113.255:443", true},
		{"10.0.0.5:40000", "0.0.0.0:443", true},
		{"10.0.0.5:40000", "0.0.0.1:443", false},
		{"[::ffff:198.51.100.7]:40000", "[::ffff:8.8.8.8]:443", true}, // IPv4-mapped
		{"[fd00::5]:40000", "[2001:db8::7]:443", true},
		{"[fd00::5]:40000", "[2001:db8::8]:443", false},
		{"[fd00::5]:40000", "[2001:db8:aa:ffff:ffff:ffff:ffff:ffff]:443", true},
		{"[fd00::5]:40000", "[2001:db8:ab::]:443", false},
		{"[fd00::5]:40000", "[2001:db8:ff00::1]:443", true},
		{"[fd00::5]:40000", "[2001:db8:ffff:ffff::1]:443", true},
		{"[fd00::5]:40000", "[2001:db9::]:443", false},
		{"[::1]:40000", "[2001:db9::]:443", true},
		{"[::2]:40000", "[2001:db9::]:443", false},
		{"[fd00::5]:40000", "[2001:db9::]:22", true},
	}
	for _, tc := range cases {
		if got := m.Match(ap(tc.src), ap(tc.dst)); got != tc.want {
			t.Errorf("Match(%s, %s) = %v, want %v", tc.src, tc.dst, got, tc.want)
		}
	}
	var nilMatcher *BypassMatcher
	if nilMatcher.Match(ap("1.2.3.4:22"), ap("1.2.3.4:22")) {
		t.Error("nil matcher matched")
	}
	empty := Default().Bypass()
	if empty.Match(ap("10.0.0.1:22"), ap("192.0.2.1:22")) {
		t.Error("empty bypass matched")
	}
}

// The matcher agrees with a plain linear scan over random prefixes, hosts
// and addresses concentrated near their edges.
func TestBypassMatchesLinearScan(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for round := 0; round < 20; round++ {
		var rules BypassRules
		for i := 0; i < 1+rng.IntN(40); i++ {
			rules.Prefixes = append(rules.Prefixes, randPrefix(rng))
		}
		for i := 0; i < rng.IntN(10); i++ {
			rules.Hosts = append(rules.Hosts, randPrefix(rng).Addr())
		}
		c := Default()
		c.BypassRules = rules
		m := c.Bypass()
		for i := 0; i < 2000; i++ {
			var a netip.Addr
			if i%2 == 0 {
				// Near an edge of a random rule.
				p := rules.Prefixes[rng.IntN(len(rules.Prefixes))]
				a = p.Addr()
				if rng.IntN(2) == 0 {
					a = lastAddr(p)
				}
				switch rng.IntN(3) {
				case 0:
					a = a.Next()
				case 1:
					a = a.Prev()
				}
			} else {
				a = randPrefix(rng).Addr()
			}
			if !a.IsValid() {
				continue
			}
			want := false
			for _, p := range rules.Prefixes {
				want = want || p.Contains(a)
			}
			for _, h := range rules.Hosts {
				want = want || h == a
			}
			if got := m.Match(netip.AddrPortFrom(a, 1000), netip.AddrPortFrom(a, 1000)); got != want {
				t.Fatalf("round %d: Match(%s) = %v, linear scan %v; rules %v", round, a, got, want, rules)
			}
		}
	}
}

func randPrefix(rng *rand.Rand) netip.Prefix {
	if rng.IntN(2) == 0 {
		var b [4]byte
		// Few distinct top bytes, so that prefixes overlap and nest.
		b[0] = byte(rng.IntN(4))
		for i := 1; i < 4; i++ {
			b[i] = byte(rng.UintN(256))
		}
		return netip.PrefixFrom(netip.AddrFrom4(b), rng.IntN(33)).Masked()
	}
	var b [16]byte
	b[0] = byte(rng.IntN(4))
	for i := 1; i < 16; i++ {
		b[i] = byte(rng.UintN(256))
	}
	return netip.PrefixFrom(netip.AddrFrom16(b), rng.IntN(129)).Masked()
}

func lastAddr(p netip.Prefix) netip.Addr {
	a := p.Addr()
	for {
		n := a.Next()
		if !n.IsValid() || !p.Contains(n) {
			return a
		}
		if p.Bits() < a.BitLen()-16 {
			// Jump: set the host bits directly instead of stepping.
			s := a.AsSlice()
			for bit := p.Bits(); bit < a.BitLen(); bit++ {
				s[bit/8] |= 0x80 >> (bit % 8)
			}
			a, _ = netip.AddrFromSlice(s)
			return a
		}
		a = n
	}
}

func TestIsLAN(t *testing.T) {
	c := mustParse(t, bypassYAML)
	cases := []struct {
		addr string
		want bool
	}{
		{"10.1.2.3", true},
		{"10.255.255.255", true},
		{"11.0.0.0", false},
		{"192.168.44.1", true},
		{"192.169.0.1", false},
		{"::ffff:10.1.2.3", true}, // IPv4-mapped counts as IPv4
		{"::ffff:11.1.2.3", false},
		{"2001:db8:100::1", true},
		{"2001:db8:1ff:ffff::1", true},
		{"2001:db8:200::1", false},
		{"fd12::1", true},
		{"fe80::1", false},
		{"::", false},
	}
	for _, tc := range cases {
		if got := c.IsLAN(netip.MustParseAddr(tc.addr)); got != tc.want {
			t.Errorf("IsLAN(%s) = %v, want %v", tc.addr, got, tc.want)
		}
	}
	if c.IsLAN(netip.Addr{}) {
		t.Error("IsLAN(zero Addr) = true")
	}
}

func TestPolicyNoAllocs(t *testing.T) {
	c := mustParse(t, bypassYAML)
	m := c.Bypass()
	src4, dst4 := ap("10.0.0.5:40000"), ap("93.184.216.34:443")
	src6, dst6 := ap("[fd00::5]:40000"), ap("[2001:db8:ff00::1]:443")
	var sink bool
	allocs := testing.AllocsPerRun(1000, func() {
		sink = m.Match(src4, dst4) || sink
		sink = m.Match(src6, dst6) || sink
		sink = c.IsLAN(src4.Addr()) || sink
		sink = c.IsLAN(dst6.Addr()) || sink
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per lookup", allocs)
	}
	if !sink {
		t.Fatal("no lookup matched")
	}
}

func BenchmarkBypassMatch(b *testing.B) {
	for _, n := range []int{4, 4096} {
		b.Run(fmt.Sprintf("prefixes=%d", n), func(b *testing.B) {
			c := Default()
			rng := rand.New(rand.NewPCG(3, 4))
			for len(c.BypassRules.Prefixes) < n {
				c.BypassRules.Prefixes = append(c.BypassRules.Prefixes, randPrefix(rng))
			}
			c.BypassRules.Ports = []PortRange{{22, 22}}
			m := c.Bypass()
			src, dst := ap("10.0.0.5:40000"), ap("[2001:db8:ff00::1]:443")
			b.ReportAllocs()
			for b.Loop() {
				m.Match(src, dst)
			}
		})
	}
}

func BenchmarkIsLAN(b *testing.B) {
	c := Default()
	a := netip.MustParseAddr("8.8.8.8") // not LAN: scans every prefix
	b.ReportAllocs()
	for b.Loop() {
		c.IsLAN(a)
	}
}

func TestAppAwareMatcher(t *testing.T) {
	c := Default()
	c.TCPCrypt.ApplicationAware = AppAware{Ports: []PortRange{{443, 443}}, MandatoryPorts: []PortRange{{8000, 8010}}}
	m := c.AppAware()
	ap := func(port uint16) netip.AddrPort { return netip.AddrPortFrom(netip.MustParseAddr("192.0.2.1"), port) }
	for _, x := range []struct {
		src, dst       uint16
		set, mandatory bool
	}{
		{40000, 443, true, false},
		{443, 40000, true, false},
		{40000, 8005, true, true}, // mandatory implies set
		{8010, 40000, true, true},
		{40000, 80, false, false},
		{40000, 8011, false, false},
	} {
		set, mand := m.Match(ap(x.src), ap(x.dst))
		if set != x.set || mand != x.mandatory {
			t.Errorf("%d -> %d: set %v mandatory %v, want %v %v", x.src, x.dst, set, mand, x.set, x.mandatory)
		}
	}
	if set, mand := Default().AppAware().Match(ap(1), ap(443)); set || mand {
		t.Error("the default configuration sets the application-aware bit (RFC 8547 §4.2: default 0)")
	}
	var nilM *AppAwareMatcher
	if set, _ := nilM.Match(ap(1), ap(2)); set {
		t.Error("nil matcher sets a")
	}
}

func TestRequireEncryptionAndDowngradeBlock(t *testing.T) {
	c, err := Parse([]byte("require_encryption:\n  ports: [5432]\n  prefixes: [203.0.113.0/24]\ndowngrade:\n  block: [198.51.100.0/24, 2001:db8::/32]\n"), "t.yaml")
	if err != nil {
		t.Fatal(err)
	}
	req := c.RequireEncryption()
	lan := netip.MustParseAddrPort("192.168.1.2:40000")
	for wan, want := range map[string]bool{"198.51.100.1:5432": true, "203.0.113.9:443": true, "198.51.100.1:443": false} {
		if got := req.Match(lan, netip.MustParseAddrPort(wan)); got != want {
			t.Errorf("require %s: %v, want %v", wan, got, want)
		}
	}
	block := c.DowngradeBlock()
	for a, want := range map[string]bool{"198.51.100.200": true, "2001:db8::1": true, "203.0.113.9": false, "::ffff:198.51.100.1": true} {
		if got := block(netip.MustParseAddr(a)); got != want {
			t.Errorf("block %s: %v, want %v", a, got, want)
		}
	}
	if Default().RequireEncryption().Match(lan, netip.MustParseAddrPort("198.51.100.1:5432")) || Default().DowngradeBlock()(netip.MustParseAddr("198.51.100.1")) {
		t.Error("the defaults require or block something")
	}
}
