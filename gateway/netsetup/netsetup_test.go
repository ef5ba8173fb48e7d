package netsetup

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/google/nftables"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("CI=true but not root: network namespace tests cannot run")
	}
	t.Skip("needs root")
}

// inNewNS runs fn on the test goroutine's thread switched into a fresh,
// unnamed network namespace, which disappears when the test ends.
func inNewNS(t *testing.T, fn func()) {
	t.Helper()
	requireRoot(t)
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		t.Fatal(err)
	}
	ns, err := netns.New() // unshare: this thread is now inside
	if err != nil {
		orig.Close()
		t.Fatal(err)
	}
	defer func() {
		if err := netns.Set(orig); err != nil {
			// Leave the thread locked: it dies with the goroutine
			// instead of running other code in the wrong namespace.
			t.Errorf("restore namespace: %v", err)
		} else {
			runtime.UnlockOSThread()
		}
		orig.Close()
		ns.Close()
	}()
	fn()
}

// testParams uses two LAN interfaces, one WAN interface and a table above
// 255 (which netlink carries in a separate attribute).
func testParams() Params {
	return Params{
		TUN:             "tcgw0",
		MTU:             1400,
		LAN:             []string{"lan0", "lan1"},
		WAN:             []string{"wan0"},
		LANPrefixes:     []netip.Prefix{netip.MustParsePrefix("10.1.0.0/16"), netip.MustParsePrefix("10.2.3.0/24"), netip.MustParsePrefix("10.4.128.0/17"), netip.MustParsePrefix("fd00:1::/64")},
		Table:           4242,
		RulePriority:    1000,
		ConntrackBypass: BypassOn,
		IPv6:            true,
	}
}

// addDummies creates up interfaces of the given names (veth pairs: this
// kernel has no dummy driver; the peers are named <name>p).
func addDummies(t *testing.T, names ...string) {
	t.Helper()
	for _, n := range names {
		v := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: n}, PeerName: n + "p"}
		if err := netlink.LinkAdd(v); err != nil {
			t.Fatalf("veth %s: %v", n, err)
		}
		if err := netlink.LinkSetUp(v); err != nil {
			t.Fatal(err)
		}
	}
}

// unrelated is state that is not ours and must survive everything.
type unrelated struct {
	rule  *netlink.Rule  // our priority, another table
	rule2 *netlink.Rule  // our table, another priority
	route *netlink.Route // in another table
	main  *netlink.Route // in the main table
}

func addUnrelated(t *testing.T) unrelated {
	t.Helper()
	u := unrelated{rule: netlink.NewRule(), rule2: netlink.NewRule()}
	u.rule.Priority, u.rule.Table = 1000, 77
	u.rule.Src = &net.IPNet{IP: net.IPv4(10, 9, 9, 0).To4(), Mask: net.CIDRMask(24, 32)}
	u.rule2.Priority, u.rule2.Table = 1001, 4242
	u.rule2.Src = &net.IPNet{IP: net.IPv4(10, 9, 8, 0).To4(), Mask: net.CIDRMask(24, 32)}
	lan0, err := netlink.LinkByName("lan0")
	if err != nil {
		t.Fatal(err)
	}
	u.route = &netlink.Route{LinkIndex: lan0.Attrs().Index, Table: 77, Dst: &net.IPNet{IP: net.IPv4(10, 8, 0, 0).To4(), Mask: net.CIDRMask(16, 32)}}
	u.main = &netlink.Route{LinkIndex: lan0.Attrs().Index, Dst: &net.IPNet{IP: net.IPv4(10, 7, 0, 0).To4(), Mask: net.CIDRMask(16, 32)}}
	for _, r := range []*netlink.Rule{u.rule, u.rule2} {
		if err := netlink.RuleAdd(r); err != nil {
			t.Fatal(err)
		}
	}
	for _, r := range []*netlink.Route{u.route, u.main} {
		if err := netlink.RouteAdd(r); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := nft(t, "add table inet other_table"); err != nil {
		t.Fatalf("nft: %v: %s", err, out)
	}
	return u
}

func (u unrelated) check(t *testing.T) {
	t.Helper()
	rules, err := netlink.RuleList(netlink.FAMILY_V4)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []*netlink.Rule{u.rule, u.rule2} {
		if !slices.ContainsFunc(rules, func(r netlink.Rule) bool {
			return r.Priority == want.Priority && r.Table == want.Table && r.Src != nil && r.Src.String() == want.Src.String()
		}) {
			t.Errorf("unrelated rule %v is gone", want)
		}
	}
	for _, want := range []*netlink.Route{u.route, u.main} {
		table := want.Table
		if table == 0 {
			table = unix.RT_TABLE_MAIN
		}
		routes, err := netlink.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Table: table}, netlink.RT_FILTER_TABLE)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.ContainsFunc(routes, func(r netlink.Route) bool { return r.Dst != nil && r.Dst.String() == want.Dst.String() }) {
			t.Errorf("unrelated route %v (table %d) is gone", want.Dst, table)
		}
	}
	if out, err := nft(t, "list table inet other_table"); err != nil {
		t.Errorf("unrelated nftables table is gone: %v: %s", err, out)
	}
}

// nft runs the nft command in the calling thread's namespace.
func nft(t *testing.T, args string) ([]byte, error) {
	t.Helper()
	ns := fmt.Sprintf("--net=/proc/%d/task/%d/ns/net", os.Getpid(), unix.Gettid())
	return exec.Command("nsenter", append([]string{ns, "nft"}, strings.Fields(args)...)...).CombinedOutput()
}

func checkInstalled(t *testing.T, p Params, wantRules, wantRoutes int, wantNFT bool) {
	t.Helper()
	rules, routes, nftOK, err := Installed(p)
	if err != nil {
		t.Fatal(err)
	}
	if rules != wantRules || routes != wantRoutes || nftOK != wantNFT {
		t.Errorf("Installed = %d rules, %d routes, nft %v; want %d, %d, %v", rules, routes, nftOK, wantRules, wantRoutes, wantNFT)
	}
}

func linkExists(name string) bool {
	_, err := netlink.LinkByName(name)
	return err == nil
}

// TestApplyClose checks every object Apply creates, and that Close removes
// exactly those.
func TestApplyClose(t *testing.T) {
	inNewNS(t, func() {
		p := testParams()
		addDummies(t, "lan0", "lan1", "wan0")
		u := addUnrelated(t)
		s, err := Apply(p)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()

		// The TUN device.
		link, err := netlink.LinkByName(p.TUN)
		if err != nil {
			t.Fatal(err)
		}
		if link.Attrs().TxQLen != TUNTxQueueLen {
			t.Errorf("TUN queue length %d, want %d", link.Attrs().TxQLen, TUNTxQueueLen)
		}
		if link.Type() != "tuntap" || link.Attrs().MTU != p.MTU || link.Attrs().Flags&net.FlagUp == 0 || link.Attrs().Index != s.Index {
			t.Errorf("TUN: type %s, MTU %d, flags %v, index %d (Setup says %d)", link.Type(), link.Attrs().MTU, link.Attrs().Flags, link.Attrs().Index, s.Index)
		}
		if mtu, err := s.Device.MTU(); err != nil || mtu != p.MTU {
			t.Errorf("Device.MTU = %d, %v", mtu, err)
		}
		addrs, err := netlink.AddrList(link, netlink.FAMILY_V4)
		if err != nil || len(addrs) != 1 || addrs[0].IPNet.String() != "192.0.0.8/32" || addrs[0].Scope != unix.RT_SCOPE_LINK {
			t.Errorf("TUN IPv4 addresses %v, %v; want 192.0.0.8/32 scope link", addrs, err)
		}
		for key, want := range map[string]string{"rp_filter": "2", "forwarding": "1"} {
			b, err := os.ReadFile("/proc/sys/net/ipv4/conf/" + p.TUN + "/" + key)
			if err != nil || strings.TrimSpace(string(b)) != want {
				t.Errorf("%s on the TUN = %q, %v; want %s", key, b, err, want)
			}
		}

		// Routes: one default route per family in our table, via the TUN.
		for _, fam := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
			routes, err := netlink.RouteListFiltered(fam, &netlink.Route{Table: p.Table}, netlink.RT_FILTER_TABLE)
			if err != nil {
				t.Fatal(err)
			}
			if len(routes) != 2 {
				t.Fatalf("%s routes in table %d: %v, want the TUN route and the blackhole behind it", familyName(fam), p.Table, routes)
			}
			slices.SortFunc(routes, func(a, b netlink.Route) int { return a.Priority - b.Priority })
			if routes[1].Type != unix.RTN_BLACKHOLE {
				t.Errorf("%s: second route %v is not a blackhole", familyName(fam), routes[1])
			}
			r := routes[0]
			if ones, _ := r.Dst.Mask.Size(); (r.Dst != nil && ones != 0) || r.LinkIndex != s.Index {
				t.Errorf("%s route %v, want default dev %s", familyName(fam), r, p.TUN)
			}
		}

		// Rules: iif <each interface> ipproto tcp lookup <table>, both families.
		for _, fam := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
			all, err := netlink.RuleList(fam)
			if err != nil {
				t.Fatal(err)
			}
			var iifs []string
			for _, r := range all {
				if r.Priority != p.RulePriority || r.Table != p.Table {
					continue
				}
				if r.IPProto != ruleIPProtoTCP || r.Src != nil || r.Dst != nil {
					t.Errorf("%s rule %+v: want only iif and ipproto tcp", familyName(fam), r)
				}
				iifs = append(iifs, r.IifName)
			}
			slices.Sort(iifs)
			if !slices.Equal(iifs, []string{"lan0", "lan1", "wan0"}) {
				t.Errorf("%s rules for interfaces %v, want lan0 lan1 wan0", familyName(fam), iifs)
			}
		}

		// The nftables table, as nft itself reads it back.
		out, err := nft(t, "list table inet "+NFTTable)
		if err != nil {
			t.Fatalf("nft list: %v: %s", err, out)
		}
		want := []string{
			"type filter hook prerouting priority raw; policy accept;",
			`iifname "lan0" meta l4proto tcp notrack`,
			`iifname "lan1" meta l4proto tcp notrack`,
			`iifname "tcgw0" ip daddr 10.1.0.0/16 meta l4proto tcp notrack`,
			`iifname "tcgw0" ip daddr 10.2.3.0/24 meta l4proto tcp notrack`,
			`iifname "tcgw0" ip daddr 10.4.128.0/17 meta l4proto tcp notrack`,
			`iifname "tcgw0" ip6 daddr fd00:1::/64 meta l4proto tcp notrack`,
		}
		var got []string
		for _, line := range strings.Split(string(out), "\n") {
			line = strings.TrimSpace(line)
			if strings.HasPrefix(line, "type ") || strings.HasPrefix(line, "iifname") {
				got = append(got, line)
			}
		}
		if !slices.Equal(got, want) {
			t.Errorf("nftables table:\n%s\nwant lines:\n%s", out, strings.Join(want, "\n"))
		}
		if !s.ConntrackBypass {
			t.Error("Setup.ConntrackBypass is false")
		}
		checkInstalled(t, p, 6, 4, true)

		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Fatalf("second Close: %v", err)
		}
		checkInstalled(t, p, 0, 0, false)
		if linkExists(p.TUN) {
			t.Error("TUN still present after Close")
		}
		u.check(t)
	})
}

// TestCloseFromOtherNamespace checks that Close works through its own
// namespace handle, not the calling thread's namespace.
func TestCloseFromOtherNamespace(t *testing.T) {
	requireRoot(t)
	p := testParams()
	var s *Setup
	var target netns.NsHandle
	inNewNS(t, func() {
		addDummies(t, "lan0", "lan1", "wan0")
		var err error
		if s, err = Apply(p); err != nil {
			t.Fatal(err)
		}
		target, _ = netns.Get()
	})
	if s == nil {
		return
	}
	defer target.Close()
	if err := s.Close(); err != nil { // from the test's own namespace
		t.Fatal(err)
	}
	inNewNS(t, func() {
		if err := netns.Set(target); err != nil {
			t.Fatal(err)
		}
		checkInstalled(t, p, 0, 0, false)
		if linkExists(p.TUN) {
			t.Error("TUN still present")
		}
	})
}

// TestCrashRecovery simulates a run killed without Close: the TUN file
// descriptor closes (so the kernel deletes the device and its routes), the
// rules and the nftables table stay. The next Apply must succeed and leave
// exactly one set.
func TestCrashRecovery(t *testing.T) {
	inNewNS(t, func() {
		p := testParams()
		addDummies(t, "lan0", "lan1", "wan0")
		u := addUnrelated(t)
		s, err := Apply(p)
		if err != nil {
			t.Fatal(err)
		}
		// The crash: only the file descriptors go away.
		s.Device.Close()
		s.nl.Close()
		s.ns.Close()
		checkInstalled(t, p, 6, 2, true) // the blackhole routes stay: fail closed

		s2, err := Apply(p)
		if err != nil {
			t.Fatalf("Apply after a crash: %v", err)
		}
		checkInstalled(t, p, 6, 4, true)
		if err := s2.Close(); err != nil {
			t.Fatal(err)
		}
		checkInstalled(t, p, 0, 0, false)
		u.check(t)
	})
}

// TestCrashLeftoverTUN covers a crash that leaves a persistent TUN device of
// our name and a foreign route in our table.
func TestCrashLeftoverTUN(t *testing.T) {
	inNewNS(t, func() {
		p := testParams()
		addDummies(t, "lan0", "lan1", "wan0")
		tt := &netlink.Tuntap{LinkAttrs: netlink.LinkAttrs{Name: p.TUN}, Mode: netlink.TUNTAP_MODE_TUN}
		if err := netlink.LinkAdd(tt); err != nil {
			t.Fatal(err)
		}
		for _, f := range tt.Fds {
			f.Close() // persistent: the device stays
		}
		if !linkExists(p.TUN) {
			t.Fatal("persistent TUN not there; the test proves nothing")
		}
		lo, _ := netlink.LinkByName("lo")
		netlink.LinkSetUp(lo)
		stray := &netlink.Route{LinkIndex: lo.Attrs().Index, Table: p.Table, Dst: &net.IPNet{IP: net.IPv4(10, 6, 0, 0).To4(), Mask: net.CIDRMask(16, 32)}}
		if err := netlink.RouteAdd(stray); err != nil {
			t.Fatal(err)
		}
		checkInstalled(t, p, 0, 1, false)

		s, err := Apply(p)
		if err != nil {
			t.Fatalf("Apply over a leftover TUN: %v", err)
		}
		defer s.Close()
		checkInstalled(t, p, 6, 4, true)
		link, err := netlink.LinkByName(p.TUN)
		if err != nil || link.Attrs().Index != s.Index {
			t.Errorf("TUN %v index %d, want the new device %d", err, link.Attrs().Index, s.Index)
		}
	})
}

// TestCleanStaleNoop checks CleanStale on a namespace with nothing of ours.
func TestCleanStaleNoop(t *testing.T) {
	inNewNS(t, func() {
		p := testParams()
		addDummies(t, "lan0", "lan1", "wan0")
		u := addUnrelated(t)
		for i := 0; i < 2; i++ {
			if err := CleanStale(p); err != nil {
				t.Fatalf("CleanStale #%d: %v", i+1, err)
			}
		}
		checkInstalled(t, p, 0, 0, false)
		u.check(t)
		for _, n := range []string{"lan0", "lan1", "wan0"} {
			if !linkExists(n) {
				t.Errorf("%s is gone", n)
			}
		}
		if err := CleanStale(Params{TUN: "x", Table: 254}); err == nil {
			t.Error("CleanStale accepted the main table")
		}
	})
}

// TestBadParams checks that invalid parameters are refused with an error
// naming the problem, and that nothing is left behind.
func TestBadParams(t *testing.T) {
	inNewNS(t, func() {
		addDummies(t, "lan0", "lan1", "wan0", "dummy9")
		cases := []struct {
			name string
			mod  func(p *Params)
			want string
		}{
			{"main table", func(p *Params) { p.Table = 254 }, "reserved"},
			{"local table", func(p *Params) { p.Table = 255 }, "reserved"},
			{"table 0", func(p *Params) { p.Table = 0 }, "out of range"},
			{"priority 0", func(p *Params) { p.RulePriority = 0 }, "priority"},
			{"priority of main", func(p *Params) { p.RulePriority = 32766 }, "priority"},
			{"small MTU", func(p *Params) { p.MTU = 1000 }, "MTU"},
			{"huge MTU", func(p *Params) { p.MTU = 70000 }, "MTU"},
			{"long TUN name", func(p *Params) { p.TUN = "abcdefghijklmnop" }, "not a valid interface name"},
			{"TUN name with slash", func(p *Params) { p.TUN = "a/b" }, "not a valid interface name"},
			{"TUN name equals LAN", func(p *Params) { p.TUN = "lan0" }, "twice"},
			{"interface twice", func(p *Params) { p.WAN = []string{"lan1"} }, "twice"},
			{"no WAN", func(p *Params) { p.WAN = nil }, "at least one"},
			{"bypass mode", func(p *Params) { p.ConntrackBypass = "maybe" }, "conntrack bypass"},
			{"bypass without prefixes", func(p *Params) { p.LANPrefixes = nil }, "LAN prefixes"},
			{"invalid prefix", func(p *Params) { p.LANPrefixes = []netip.Prefix{{}} }, "invalid LAN prefix"},
			{"TUN name of another device", func(p *Params) { p.TUN = "dummy9" }, "not a TUN device"},
			{"too many queues", func(p *Params) { p.Queues = MaxQueues + 1 }, "TUN queues"},
			{"negative queues", func(p *Params) { p.Queues = -1 }, "TUN queues"},
		}
		for _, c := range cases {
			p := testParams()
			c.mod(&p)
			s, err := Apply(p)
			if err == nil {
				s.Close()
				t.Errorf("%s: Apply succeeded", c.name)
				continue
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("%s: error %q does not mention %q", c.name, err, c.want)
			}
			checkInstalled(t, testParams(), 0, 0, false)
			if linkExists("tcgw0") {
				t.Errorf("%s: TUN left behind", c.name)
			}
		}
		if !linkExists("dummy9") {
			t.Error("a device named like the TUN was deleted")
		}
	})
}

// TestApplyUndo makes step 4 fail half-way (IPv6 disabled on new devices,
// so the IPv6 route cannot use the TUN) and checks that the IPv4 route, the
// TUN and everything else are undone.
func TestApplyUndo(t *testing.T) {
	inNewNS(t, func() {
		p := testParams()
		addDummies(t, "lan0", "lan1", "wan0")
		if err := os.WriteFile("/proc/sys/net/ipv6/conf/default/disable_ipv6", []byte("1"), 0); err != nil {
			t.Fatal(err)
		}
		_, err := Apply(p)
		if err == nil {
			t.Fatal("Apply succeeded with IPv6 disabled on the TUN")
		}
		if !strings.Contains(err.Error(), "step 4") || !strings.Contains(err.Error(), "IPv6") {
			t.Errorf("error %q does not name step 4 and IPv6", err)
		}
		checkInstalled(t, p, 0, 0, false)
		if linkExists(p.TUN) {
			t.Error("TUN left behind")
		}
		// Without IPv6 the same namespace works.
		p.IPv6 = false
		s, err := Apply(p)
		if err != nil {
			t.Fatal(err)
		}
		checkInstalled(t, p, 3, 2, true)
		out, _ := nft(t, "list table inet "+NFTTable)
		if strings.Contains(string(out), "ip6 daddr") {
			t.Errorf("IPv6 prefix in the table with IPv6 off:\n%s", out)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		checkInstalled(t, p, 0, 0, false)
	})
}

// TestBypassOff checks that "off" installs no table.
func TestBypassOff(t *testing.T) {
	inNewNS(t, func() {
		p := testParams()
		p.ConntrackBypass = BypassOff
		p.LANPrefixes = nil
		addDummies(t, "lan0", "lan1", "wan0")
		s, err := Apply(p)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if s.ConntrackBypass {
			t.Error("Setup.ConntrackBypass true with bypass off")
		}
		checkInstalled(t, p, 6, 4, false)
		c, err := nftables.New()
		if err != nil {
			t.Fatal(err)
		}
		tables, err := c.ListTables()
		if err != nil || len(tables) != 0 {
			t.Errorf("nftables tables: %v, %v; want none", tables, err)
		}
	})
}

// TestInterfaceComesLater: Apply does not need its interfaces to exist
// (they are listed in Setup.Missing), and the rule of an interface that
// appears later, or is deleted and re-created with a new index, steers it
// with nothing re-applied: the kernel keeps `iif NAME` by name.
func TestInterfaceComesLater(t *testing.T) {
	inNewNS(t, func() {
		p := testParams()
		addDummies(t, "lan0", "lan1")
		s, err := Apply(p)
		if err != nil {
			t.Fatalf("Apply without wan0: %v", err)
		}
		defer s.Close()
		if !slices.Equal(s.Missing, []string{"wan0"}) {
			t.Errorf("Missing = %v, want [wan0]", s.Missing)
		}
		checkInstalled(t, p, 6, 4, true)
		// The wan0 rules (IPv4, IPv6) as `ip rule` shows them.
		wanRules := func() string {
			t.Helper()
			ns := fmt.Sprintf("--net=/proc/%d/task/%d/ns/net", os.Getpid(), unix.Gettid())
			var lines []string
			for _, fam := range []string{"-4", "-6"} {
				out, err := exec.Command("nsenter", ns, "ip", fam, "rule", "show", "pref", fmt.Sprint(p.RulePriority)).CombinedOutput()
				if err != nil {
					t.Fatalf("ip rule: %v: %s", err, out)
				}
				for _, l := range strings.Split(string(out), "\n") {
					if strings.Contains(l, "iif wan0") {
						lines = append(lines, strings.TrimSpace(l))
					}
				}
			}
			return strings.Join(lines, "\n")
		}
		check := func(when string, detached bool) {
			t.Helper()
			got := wanRules()
			if strings.Count(got, "iif wan0") != 2 || strings.Contains(got, "[detached]") != detached {
				t.Errorf("%s: wan0 rules %q, want 2 with detached %v", when, got, detached)
			}
		}
		check("before wan0 exists", true)
		addDummies(t, "wan0")
		check("wan0 created", false)
		first, _ := netlink.LinkByName("wan0")
		if err := netlink.LinkDel(first); err != nil {
			t.Fatal(err)
		}
		check("wan0 deleted", true)
		addDummies(t, "wan0")
		second, _ := netlink.LinkByName("wan0")
		if second.Attrs().Index == first.Attrs().Index {
			t.Fatalf("re-created wan0 has the same index %d", second.Attrs().Index)
		}
		check("wan0 re-created", false)
		checkInstalled(t, p, 6, 4, true)
	})
}
