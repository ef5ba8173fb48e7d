// The standard topology of the end-to-end tests and the demo:
//
//	client --lan0-- gwa --wan0-- wan (router) --wan0-- gwb --lan0-- server
//	                              |                          +----- client2
//	                              +-- legacy (a plain server, no gateway)
//
//	client   eth0  10.91.1.2/24 fd91:1::2/64       default via gwa
//	gwa      lan0  10.91.1.1/24 fd91:1::1/64
//	         wan0  10.91.2.1/24 fd91:2::1/64       default via wan; IPv4 masquerade on wan0
//	wan      gwa0  10.91.2.2/24 fd91:2::2/64       10.91.5.0/24, fd91:5::/64 via gwb
//	         gwb0  10.91.3.2/24 fd91:3::2/64       fd91:1::/64 via gwa (IPv4 of the LAN is NATed)
//	         leg0  10.91.4.1/24 fd91:4::1/64
//	gwb      wan0  10.91.3.1/24 fd91:3::1/64       default via wan; no NAT
//	         lan0  10.91.5.1/24 fd91:5::1/64       a bridge with ports srv0 (server) and cl2 (client2)
//	server   eth0  10.91.5.2/24 fd91:5::2/64       default via gwb
//	client2  eth0  10.91.5.3/24 fd91:5::3/64       default via gwb
//	legacy   eth0  10.91.4.2/24 fd91:4::2/64       default via wan
//
// The routers forward IPv4 and IPv6 and filter reverse paths strictly
// (rp_filter=1), as a careful router does; a gateway has to cope with that.
// Every namespace has IPv6 duplicate address detection off. With
// TopologyOptions.PortForward, gwa also forwards wan0 port WANPort to
// client's ClientPort (DNAT).
//
// NewTopology builds it in this order: namespaces, sysctls, links,
// addresses, routes, NAT. On any error it tears down what exists.

package netns

import (
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
)

// Interface names the gateways are configured with.
const (
	LANIf = "lan0"
	WANIf = "wan0"
)

// PortForward is a DNAT on gwa: TCP to gwa's WAN address port WANPort goes
// to client port ClientPort.
type PortForward struct {
	WANPort    uint16
	ClientPort uint16
}

// TopologyOptions adjusts the standard topology.
type TopologyOptions struct {
	PortForward *PortForward // nil: no port forward
}

// Topology is the standard topology: its namespaces and their addresses.
type Topology struct {
	Client, GwA, Wan, GwB, Server, Client2, Legacy *NS

	ClientAddr4, ClientAddr6   netip.Addr
	GwALANAddr4, GwALANAddr6   netip.Addr
	GwAWANAddr4, GwAWANAddr6   netip.Addr
	WanGwAAddr4, WanGwAAddr6   netip.Addr // wan's address towards gwa
	WanGwBAddr4, WanGwBAddr6   netip.Addr // wan's address towards gwb
	WanLegAddr4, WanLegAddr6   netip.Addr // wan's address towards legacy
	GwBWANAddr4, GwBWANAddr6   netip.Addr
	GwBLANAddr4, GwBLANAddr6   netip.Addr
	ServerAddr4, ServerAddr6   netip.Addr
	Client2Addr4, Client2Addr6 netip.Addr
	LegacyAddr4, LegacyAddr6   netip.Addr

	// The LAN prefixes behind each gateway (for their configuration).
	GwALANPrefixes, GwBLANPrefixes []netip.Prefix

	PortForward *PortForward
}

// NATTable is the nftables table (family ip) holding gwa's NAT.
const NATTable = "tcgw_topo_nat"

// NewTopology builds the standard topology with namespaces named
// prefix-<pid>-<n>.
func NewTopology(prefix string, opt TopologyOptions) (*Topology, error) {
	a := netip.MustParseAddr
	t := &Topology{
		ClientAddr4: a("10.91.1.2"), ClientAddr6: a("fd91:1::2"),
		GwALANAddr4: a("10.91.1.1"), GwALANAddr6: a("fd91:1::1"),
		GwAWANAddr4: a("10.91.2.1"), GwAWANAddr6: a("fd91:2::1"),
		WanGwAAddr4: a("10.91.2.2"), WanGwAAddr6: a("fd91:2::2"),
		WanGwBAddr4: a("10.91.3.2"), WanGwBAddr6: a("fd91:3::2"),
		WanLegAddr4: a("10.91.4.1"), WanLegAddr6: a("fd91:4::1"),
		GwBWANAddr4: a("10.91.3.1"), GwBWANAddr6: a("fd91:3::1"),
		GwBLANAddr4: a("10.91.5.1"), GwBLANAddr6: a("fd91:5::1"),
		ServerAddr4: a("10.91.5.2"), ServerAddr6: a("fd91:5::2"),
		Client2Addr4: a("10.91.5.3"), Client2Addr6: a("fd91:5::3"),
		LegacyAddr4: a("10.91.4.2"), LegacyAddr6: a("fd91:4::2"),
		GwALANPrefixes: []netip.Prefix{netip.MustParsePrefix("10.91.1.0/24"), netip.MustParsePrefix("fd91:1::/64")},
		GwBLANPrefixes: []netip.Prefix{netip.MustParsePrefix("10.91.5.0/24"), netip.MustParsePrefix("fd91:5::/64")},
		PortForward:    opt.PortForward,
	}
	if err := t.build(prefix); err != nil {
		if cerr := t.Close(); cerr != nil {
			err = fmt.Errorf("%w (and tearing down: %v)", err, cerr)
		}
		return nil, fmt.Errorf("netns: topology: %w", err)
	}
	return t, nil
}

// All lists the namespaces that exist, in build order.
func (t *Topology) All() []*NS {
	var out []*NS
	for _, n := range []*NS{t.Client, t.GwA, t.Wan, t.GwB, t.Server, t.Client2, t.Legacy} {
		if n != nil {
			out = append(out, n)
		}
	}
	return out
}

// Close deletes every namespace of the topology (and with them the links
// and processes inside). It is idempotent and works after a partial build.
func (t *Topology) Close() error {
	var errs []error
	for _, n := range t.All() {
		if err := n.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// step is one configuration action; build runs them in order.
type step func() error

func (t *Topology) build(prefix string) error {
	// 1. Namespaces.
	for _, p := range []**NS{&t.Client, &t.GwA, &t.Wan, &t.GwB, &t.Server, &t.Client2, &t.Legacy} {
		n, err := New(prefix)
		if err != nil {
			return err
		}
		*p = n
	}
	pfx := func(addr netip.Addr, bits int) string { return netip.PrefixFrom(addr, bits).String() }
	var steps []step
	add := func(s ...step) { steps = append(steps, s...) }

	// 2. Sysctls: routers forward and filter reverse paths strictly.
	for _, r := range []*NS{t.GwA, t.Wan, t.GwB} {
		add(sysctl(r, "net.ipv4.ip_forward", "1"),
			sysctl(r, "net.ipv6.conf.all.forwarding", "1"),
			sysctl(r, "net.ipv4.conf.all.rp_filter", "1"),
			sysctl(r, "net.ipv4.conf.default.rp_filter", "1"))
	}

	// br_netfilter (when the kernel has it) would pass frames bridged by
	// gwb's LAN bridge through the IP hooks with the port as iifname, which
	// hides "iifname lan0" from the gateway's conntrack bypass; a router's
	// LAN bridge does not want that either.
	for _, key := range []string{"bridge-nf-call-iptables", "bridge-nf-call-ip6tables", "bridge-nf-call-arptables"} {
		add(sysctlIfPresent(t.GwB, "net.bridge."+key, "0"))
	}

	// 3. Links.
	add(func() error { return Veth(t.Client, "eth0", t.GwA, LANIf) },
		func() error { return Veth(t.GwA, WANIf, t.Wan, "gwa0") },
		func() error { return Veth(t.Wan, "gwb0", t.GwB, WANIf) },
		func() error { return Veth(t.Wan, "leg0", t.Legacy, "eth0") },
		// gwb's LAN is a bridge so that two hosts share it.
		func() error { return t.GwB.Link("add", LANIf, "type", "bridge") },
		func() error { return Veth(t.GwB, "srv0", t.Server, "eth0") },
		func() error { return Veth(t.GwB, "cl2", t.Client2, "eth0") },
		func() error { return t.GwB.Link("set", "srv0", "master", LANIf) },
		func() error { return t.GwB.Link("set", "cl2", "master", LANIf) },
		func() error { return t.GwB.Link("set", LANIf, "up") })

	// 4. Addresses.
	type ifAddr struct {
		ns  *NS
		dev string
		a   netip.Addr
	}
	for _, x := range []ifAddr{
		{t.Client, "eth0", t.ClientAddr4}, {t.Client, "eth0", t.ClientAddr6},
		{t.GwA, LANIf, t.GwALANAddr4}, {t.GwA, LANIf, t.GwALANAddr6},
		{t.GwA, WANIf, t.GwAWANAddr4}, {t.GwA, WANIf, t.GwAWANAddr6},
		{t.Wan, "gwa0", t.WanGwAAddr4}, {t.Wan, "gwa0", t.WanGwAAddr6},
		{t.Wan, "gwb0", t.WanGwBAddr4}, {t.Wan, "gwb0", t.WanGwBAddr6},
		{t.Wan, "leg0", t.WanLegAddr4}, {t.Wan, "leg0", t.WanLegAddr6},
		{t.GwB, WANIf, t.GwBWANAddr4}, {t.GwB, WANIf, t.GwBWANAddr6},
		{t.GwB, LANIf, t.GwBLANAddr4}, {t.GwB, LANIf, t.GwBLANAddr6},
		{t.Server, "eth0", t.ServerAddr4}, {t.Server, "eth0", t.ServerAddr6},
		{t.Client2, "eth0", t.Client2Addr4}, {t.Client2, "eth0", t.Client2Addr6},
		{t.Legacy, "eth0", t.LegacyAddr4}, {t.Legacy, "eth0", t.LegacyAddr6},
	} {
		bits := 24
		if x.a.Is6() {
			bits = 64
		}
		add(func() error { return x.ns.Addr(x.dev, pfx(x.a, bits)) })
	}

	// 5. Routes.
	type route struct {
		ns  *NS
		dst string
		via netip.Addr
	}
	for _, r := range []route{
		{t.Client, "default", t.GwALANAddr4}, {t.Client, "default", t.GwALANAddr6},
		{t.GwA, "default", t.WanGwAAddr4}, {t.GwA, "default", t.WanGwAAddr6},
		{t.Wan, t.GwBLANPrefixes[0].String(), t.GwBWANAddr4}, {t.Wan, t.GwBLANPrefixes[1].String(), t.GwBWANAddr6},
		{t.Wan, t.GwALANPrefixes[1].String(), t.GwAWANAddr6}, // IPv4 of gwa's LAN is NATed
		{t.GwB, "default", t.WanGwBAddr4}, {t.GwB, "default", t.WanGwBAddr6},
		{t.Server, "default", t.GwBLANAddr4}, {t.Server, "default", t.GwBLANAddr6},
		{t.Client2, "default", t.GwBLANAddr4}, {t.Client2, "default", t.GwBLANAddr6},
		{t.Legacy, "default", t.WanLegAddr4}, {t.Legacy, "default", t.WanLegAddr6},
	} {
		add(func() error { return r.ns.Route(r.dst, r.via.String()) })
	}

	// 6. NAT on gwa.
	add(func() error {
		if out, err := t.GwA.RunStdin(t.natRules(), "nft", "-f", "-"); err != nil {
			return fmt.Errorf("gwa NAT: %w: %s", err, out)
		}
		return nil
	})

	for i, s := range steps {
		if i == failAtStep {
			return errInjected
		}
		if err := s(); err != nil {
			return err
		}
	}
	return nil
}

// failAtStep lets a test make build fail half-way (-1: never), to check
// that a partial topology is torn down.
var failAtStep = -1

var errInjected = errors.New("injected failure")

func sysctl(n *NS, key, val string) step {
	return func() error { return n.Sysctl(key, val) }
}

// sysctlIfPresent is sysctl for a key that only exists when a kernel
// feature is there; without the feature there is nothing to set.
func sysctlIfPresent(n *NS, key, val string) step {
	return func() error {
		err := n.Sysctl(key, val)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return err
	}
}

// natRules is gwa's NAT: masquerade on wan0 and the optional port forward.
func (t *Topology) natRules() string {
	dnat := ""
	if pf := t.PortForward; pf != nil {
		dnat = fmt.Sprintf("    iifname %q tcp dport %d dnat to %s:%d\n", WANIf, pf.WANPort, t.ClientAddr4, pf.ClientPort)
	}
	return fmt.Sprintf(`table ip %s {
  chain prerouting {
    type nat hook prerouting priority dstnat; policy accept;
%s  }
  chain postrouting {
    type nat hook postrouting priority srcnat; policy accept;
    oifname %q masquerade
  }
}
`, NATTable, dnat, WANIf)
}
