// Package netsetup prepares the operating system for the gateway: it creates
// the TUN device and steers forwarded TCP into it with policy routing, and it
// removes exactly that again on exit (or, after a crash, on the next start).
//
// The flow of Apply:
//  1. CleanStale removes whatever a previous run killed with SIGKILL left
//     behind (rules, routes, the nftables table, a leftover TUN link).
//  2. The TUN device is created with the configured MTU, brought up, and
//     given the IPv4 dummy address (see tunAddr4).
//  3. rp_filter on the TUN is set to loose mode (and IPv4 forwarding on),
//     because the packets the gateway writes back carry sources that are
//     not routed via the TUN (see rpFilterLoose).
//  4. Routing table p.Table gets a default route to the TUN, IPv4 and IPv6.
//  5. Rules at p.RulePriority send TCP arriving on each LAN and WAN interface
//     to that table: `iif <iface> ipproto tcp lookup <table>`, IPv4 and IPv6.
//     Packets the gateway writes back arrive with `iif <tun>`, match none of
//     the rules and follow the main table, so there is no loop. Packets for
//     the router itself are delivered by the local table (rule 0) first.
//  6. The conntrack bypass (nftables table inet tcpcrypt_gw) makes NAT see
//     each connection once, on the WAN side of the gateway (conntrack.go).
//
// Every object added is recorded in the Setup; on an error Apply removes what
// it added so far, and Close removes exactly the recorded objects.
//
// Interfaces that come and go: nothing here depends on a LAN or WAN
// interface's index, so an interface missing at Apply (a PPPoE or USB WAN,
// a bridge created later) or deleted and re-created with a new index while
// the gateway runs needs nothing re-applied. The kernel keeps a rule's
// `iif NAME` by name: added for a missing interface it stays "detached"
// and attaches when an interface of that name registers, and detaches and
// re-attaches the same way on deletion and re-creation (fib_rules.c,
// attach_rules/detach_rules; TestInterfaceComesLater). The nftables rules
// match `iifname` as a string, and the routes and sysctls are the TUN's
// own. Apply lists the missing interfaces in Setup.Missing for the log.
//
// All work happens in the network namespace of the calling OS thread at the
// time of Apply: a caller that has switched namespaces must hold
// runtime.LockOSThread. Close may be called from any thread; it works through
// a handle on the namespace taken by Apply.
package netsetup

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/cpu"
	"golang.org/x/sys/unix"
	"golang.zx2c4.com/wireguard/tun"
)

// Params says what to set up. The configuration package fills it; Apply
// validates it and does not invent defaults (except ConntrackBypass "").
type Params struct {
	TUN          string         // name of the TUN device to create
	MTU          int            // MTU of the TUN device
	LAN, WAN     []string       // interfaces whose forwarded TCP enters the TUN
	LANPrefixes  []netip.Prefix // the LAN side's addresses (for the conntrack bypass)
	Table        int            // routing table holding the default route to the TUN
	RulePriority int            // priority of the policy rules
	// ConntrackBypass is "auto" (install when nftables is usable, skip
	// otherwise; "" means the same), "on" (fail when impossible) or "off".
	ConntrackBypass string
	IPv6            bool // also steer IPv6 TCP
	// Queues is the number of queues of the TUN device (queues.go):
	// 0 or 1 for one, more for IFF_MULTI_QUEUE, at most MaxQueues.
	Queues int
}

// Conntrack bypass modes.
const (
	BypassAuto = "auto"
	BypassOn   = "on"
	BypassOff  = "off"
)

// Limits of the parameters.
const (
	minMTU       = 576  // RFC 791 minimum datagram every IPv4 host accepts
	minMTUIPv6   = 1280 // RFC 8200 §5
	maxMTU       = 65535
	maxRulePrio  = 32765 // 32766 is the main table's rule, 32767 the default table's
	maxIfaces    = 64    // bounds the rules installed
	maxLANPrefix = 256   // bounds the nftables rules installed

	addrGenModeNone = 1 // IN6_ADDR_GEN_MODE_NONE (linux/if_link.h)
)

// TUNTxQueueLen is the queue length of the TUN device (packets the kernel
// holds for the gateway to read).
const TUNTxQueueLen = 1000

// Setup records what Apply added, so that Close removes exactly that.
type Setup struct {
	Device tun.Device // the TUN device (its first queue); Close closes it
	// Queues are the TUN device's further queues (Params.Queues > 1), in
	// order; Close closes them.
	Queues []*os.File
	Name   string // the TUN device's name
	Index  int    // the TUN device's interface index
	// ConntrackBypass is true when the nftables table was installed.
	ConntrackBypass bool
	// Missing lists the LAN and WAN interfaces that did not exist at
	// Apply; they are steered once they appear.
	Missing []string

	mu     sync.Mutex
	closed bool
	ns     netns.NsHandle  // the namespace Apply worked in
	nl     *netlink.Handle // netlink sockets in that namespace
	rules  []*netlink.Rule
	routes []*netlink.Route
}

// Apply sets up the TUN device, routing and the conntrack bypass as described
// in the package comment. On error nothing of what it added remains.
func Apply(p Params) (*Setup, error) {
	if err := p.validate(); err != nil {
		return nil, err
	}
	h, err := openHandles()
	if err != nil {
		return nil, err
	}
	// 1. Remove what a crashed run left, except its routing: its rules and
	// blackhole routes keep the steered traffic dropped (fail closed) until
	// steps 4 and 5 take them over; removing them first would let the
	// kernel forward encrypted connections around the gateway meanwhile.
	if err := cleanStaleKeepRouting(h, p); err != nil {
		h.close()
		return nil, fmt.Errorf("netsetup: step 1 (clean stale state): %w", err)
	}
	s := &Setup{Name: p.TUN, ns: h.ns, nl: h.nl, Missing: p.missingInterfaces(h.nl)}
	fail := func(step string, err error) (*Setup, error) {
		if cerr := s.Close(); cerr != nil {
			err = fmt.Errorf("%w (and undoing failed: %v)", err, cerr)
		}
		return nil, fmt.Errorf("netsetup: %s: %w", step, err)
	}

	// 2. The TUN device: created on the calling thread, so in its namespace.
	dev, queues, err := createTUN(p.TUN, p.MTU, p.Queues)
	if err != nil {
		return fail(fmt.Sprintf("step 2 (create TUN %q, MTU %d, %d queues)", p.TUN, p.MTU, max(1, p.Queues)), err)
	}
	s.Device, s.Queues = dev, queues
	link, err := h.nl.LinkByName(p.TUN)
	if err != nil {
		return fail(fmt.Sprintf("step 2 (find TUN %q)", p.TUN), err)
	}
	s.Index = link.Attrs().Index
	if link.Attrs().MTU != p.MTU {
		if err := h.nl.LinkSetMTU(link, p.MTU); err != nil {
			return fail(fmt.Sprintf("step 2 (set MTU %d on %q)", p.MTU, p.TUN), err)
		}
	}
	// A queue of TUNTxQueueLen packets in front of the gateway (the TUN
	// device's own default is 500): a burst, a SYN flood for one, then
	// costs fewer dropped packets of other connections, whose TCP repairs
	// a lost SYN only by a timeout of a second. A queued GSO super-packet
	// counts as one.
	if link.Attrs().TxQLen < TUNTxQueueLen {
		if err := h.nl.LinkSetTxQLen(link, TUNTxQueueLen); err != nil {
			return fail(fmt.Sprintf("step 2 (queue length %d on %q)", TUNTxQueueLen, p.TUN), err)
		}
	}
	// No IPv6 link-local address: the TUN needs none for forwarding, and
	// without one the kernel sends no MLD or router solicitations into it.
	if err := h.nl.LinkSetIP6AddrGenMode(link, addrGenModeNone); err != nil && !errors.Is(err, unix.EAFNOSUPPORT) {
		return fail(fmt.Sprintf("step 2 (IPv6 address generation off on %q)", p.TUN), err)
	}
	if err := h.nl.LinkSetUp(link); err != nil {
		return fail(fmt.Sprintf("step 2 (set %q up)", p.TUN), err)
	}
	if err := h.nl.AddrAdd(link, tunAddr4()); err != nil {
		return fail(fmt.Sprintf("step 2 (address %v on %q)", tunAddr4().IPNet, p.TUN), err)
	}

	// 3. Sysctls of the TUN device.
	if err := setTUNSysctls(p.TUN); err != nil {
		return fail("step 3 (sysctls of "+p.TUN+")", err)
	}

	// 4. Default routes into the TUN in our table (replacing a crashed
	// run's), then anything else left in the table goes.
	for _, r := range p.routes(s.Index) {
		if err := h.nl.RouteReplace(r); err != nil {
			return fail(fmt.Sprintf("step 4 (add route %s)", describeRoute(r, p.TUN)), err)
		}
		s.routes = append(s.routes, r)
	}
	if err := removeStrayRoutes(h, p, s.Index); err != nil {
		return fail("step 4 (remove stale routes)", err)
	}

	// 5. Policy rules steering TCP from the LAN and WAN interfaces; a
	// crashed run's identical rule is taken over, any other of ours goes.
	for _, r := range p.rules() {
		exists, err := ruleExists(h, r)
		if err != nil {
			return fail(fmt.Sprintf("step 5 (list rules for %s)", describeRule(r)), err)
		}
		if !exists {
			if err := h.nl.RuleAdd(r); err != nil {
				return fail(fmt.Sprintf("step 5 (add rule %s)", describeRule(r)), err)
			}
		}
		s.rules = append(s.rules, r)
	}
	if err := removeStrayRules(h, p); err != nil {
		return fail("step 5 (remove stale rules)", err)
	}

	// 6. Conntrack bypass.
	if err := s.installBypass(p); err != nil {
		return fail("step 6 (conntrack bypass, nftables table inet "+NFTTable+")", err)
	}
	return s, nil
}

// Close removes exactly what Apply added: the rules first (so forwarded TCP
// falls back to the main table at once), then the routes and the nftables
// table, and closes the TUN device, which deletes it. Objects already gone
// are not an error; a second Close does nothing.
func (s *Setup) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	var errs []error
	for _, r := range s.rules {
		if err := s.nl.RuleDel(r); err != nil && !isNotFound(err) {
			errs = append(errs, fmt.Errorf("delete rule %s: %w", describeRule(r), err))
		}
	}
	for _, r := range s.routes {
		if err := s.nl.RouteDel(r); err != nil && !isNotFound(err) {
			errs = append(errs, fmt.Errorf("delete route %s: %w", describeRoute(r, s.Name), err))
		}
	}
	if s.ConntrackBypass {
		if err := deleteNFTable(int(s.ns)); err != nil {
			errs = append(errs, fmt.Errorf("delete nftables table inet %s: %w", NFTTable, err))
		}
	}
	if err := s.CloseTUN(); err != nil {
		errs = append(errs, err)
	}
	s.nl.Close()
	s.ns.Close()
	if len(errs) > 0 {
		return fmt.Errorf("netsetup: close: %w", errors.Join(errs...))
	}
	return nil
}

// CloseTUN closes the TUN device's queues (the device goes with the last):
// the dataplane's reads end with os.ErrClosed. Closing twice is no error.
func (s *Setup) CloseTUN() error {
	var errs []error
	if s.Device != nil {
		if err := s.Device.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close TUN %q: %w", s.Name, err))
		}
	}
	for i, f := range s.Queues {
		if err := f.Close(); err != nil && !errors.Is(err, os.ErrClosed) {
			errs = append(errs, fmt.Errorf("close TUN %q queue %d: %w", s.Name, i+1, err))
		}
	}
	return errors.Join(errs...)
}

// validate checks the parameters that need no system call.
func (p *Params) validate() error {
	if err := checkIfName(p.TUN); err != nil {
		return fmt.Errorf("netsetup: TUN name: %w", err)
	}
	min := minMTU
	if p.IPv6 {
		min = minMTUIPv6
	}
	if p.MTU < min || p.MTU > maxMTU {
		return fmt.Errorf("netsetup: MTU %d out of range [%d, %d]", p.MTU, min, maxMTU)
	}
	if len(p.LAN) == 0 || len(p.WAN) == 0 {
		return fmt.Errorf("netsetup: need at least one LAN and one WAN interface (have LAN %q, WAN %q)", p.LAN, p.WAN)
	}
	if len(p.LAN)+len(p.WAN) > maxIfaces {
		return fmt.Errorf("netsetup: too many interfaces (%d, at most %d)", len(p.LAN)+len(p.WAN), maxIfaces)
	}
	seen := map[string]bool{p.TUN: true}
	for _, name := range p.ifaces() {
		if err := checkIfName(name); err != nil {
			return fmt.Errorf("netsetup: interface name: %w", err)
		}
		if seen[name] {
			return fmt.Errorf("netsetup: interface %q listed twice (or equal to the TUN name)", name)
		}
		seen[name] = true
	}
	if p.Queues < 0 || p.Queues > MaxQueues {
		return fmt.Errorf("netsetup: %d TUN queues out of range [0, %d]", p.Queues, MaxQueues)
	}
	if err := checkTable(p.Table); err != nil {
		return err
	}
	if p.RulePriority < 1 || p.RulePriority > maxRulePrio {
		return fmt.Errorf("netsetup: rule priority %d out of range [1, %d] (0 is the local table's rule)", p.RulePriority, maxRulePrio)
	}
	switch p.ConntrackBypass {
	case "", BypassAuto, BypassOn, BypassOff:
	default:
		return fmt.Errorf("netsetup: conntrack bypass %q: want %q, %q or %q", p.ConntrackBypass, BypassAuto, BypassOn, BypassOff)
	}
	if len(p.LANPrefixes) > maxLANPrefix {
		return fmt.Errorf("netsetup: too many LAN prefixes (%d, at most %d)", len(p.LANPrefixes), maxLANPrefix)
	}
	for _, pf := range p.LANPrefixes {
		if !pf.IsValid() {
			return fmt.Errorf("netsetup: invalid LAN prefix %v", pf)
		}
	}
	if p.ConntrackBypass != BypassOff && len(p.bypassPrefixes()) == 0 {
		return fmt.Errorf("netsetup: the conntrack bypass needs the LAN prefixes (none given for the enabled address families)")
	}
	return nil
}

// checkTable refuses the kernel's reserved tables: 0 (unspecified), 253
// (default), 254 (main) and 255 (local).
func checkTable(t int) error {
	switch {
	case t <= 0 || int64(t) > 0xFFFFFFFF:
		return fmt.Errorf("netsetup: routing table %d out of range [1, 4294967295]", t)
	case t == unix.RT_TABLE_DEFAULT || t == unix.RT_TABLE_MAIN || t == unix.RT_TABLE_LOCAL:
		return fmt.Errorf("netsetup: routing table %d is reserved by the kernel (253 default, 254 main, 255 local)", t)
	}
	return nil
}

// checkIfName applies the kernel's rules for interface names (dev_valid_name).
func checkIfName(name string) error {
	if name == "" || len(name) >= unix.IFNAMSIZ || name == "." || name == ".." || strings.ContainsAny(name, "/: \t\n") {
		return fmt.Errorf("%q is not a valid interface name (1-%d characters, no '/', ':' or spaces)", name, unix.IFNAMSIZ-1)
	}
	return nil
}

// missingInterfaces lists the LAN and WAN interfaces that do not exist
// (yet): the caller reports them, since a typing error would otherwise
// silently steer nothing. Everything Apply installs names them, so they
// are steered as soon as they appear (see "Interfaces that come and go").
func (p *Params) missingInterfaces(h *netlink.Handle) []string {
	var missing []string
	for _, name := range p.ifaces() {
		if _, err := h.LinkByName(name); err != nil {
			missing = append(missing, name)
		}
	}
	return missing
}

func (p *Params) ifaces() []string {
	return append(append([]string(nil), p.LAN...), p.WAN...)
}

func (p *Params) families() []int {
	if p.IPv6 {
		return []int{netlink.FAMILY_V4, netlink.FAMILY_V6}
	}
	return []int{netlink.FAMILY_V4}
}

// routes are step 4: `default dev <tun> table <table>` per family.
func (p *Params) routes(tunIndex int) []*netlink.Route {
	var rs []*netlink.Route
	for _, fam := range p.families() {
		r := &netlink.Route{LinkIndex: tunIndex, Table: p.Table, Family: fam}
		if fam == netlink.FAMILY_V4 {
			r.Dst = &net.IPNet{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)}
			r.Scope = netlink.SCOPE_LINK
		} else {
			r.Dst = &net.IPNet{IP: net.IPv6zero, Mask: net.CIDRMask(0, 128)}
		}
		rs = append(rs, r)
		// Behind it, a blackhole default route: if the gateway dies, its
		// TUN route goes with it, and without this the stale rules would
		// let the kernel forward encrypted connections' packets directly,
		// putting ciphertext in front of LAN hosts. Fail closed until the
		// gateway is back (or removed properly).
		rs = append(rs, &netlink.Route{Table: p.Table, Family: fam, Dst: r.Dst, Type: unix.RTN_BLACKHOLE, Priority: blackholeMetric})
	}
	return rs
}

// blackholeMetric puts the blackhole route behind the TUN route (metric 0).
const blackholeMetric = 1 << 30

// rules are step 5: `iif <iface> ipproto tcp lookup <table>` per interface
// and family.
func (p *Params) rules() []*netlink.Rule {
	var rs []*netlink.Rule
	for _, fam := range p.families() {
		for _, name := range p.ifaces() {
			r := netlink.NewRule()
			r.Family = fam
			r.Priority = p.RulePriority
			r.Table = p.Table
			r.IifName = name
			r.IPProto = ruleIPProtoTCP
			rs = append(rs, r)
		}
	}
	return rs
}

// ruleIPProtoTCP is the value for netlink.Rule.IPProto that puts TCP on
// the wire. The kernel's FRA_IP_PROTO is one byte (NLA_U8) and it reads the
// attribute's first byte, but vishvananda/netlink (v1.3.1) writes the field
// as a 4-byte integer in the host's byte order and reads it back the same
// way: on a big-endian router (MIPS ath79, for one) plain IPPROTO_TCP would
// put 0 in that byte, and a rule for protocol 0 steers every protocol into
// the TUN. TCP shifted into the first byte is the same 6 on the wire on
// either byte order, and is what RuleList reports back.
var ruleIPProtoTCP = func() int {
	if cpu.IsBigEndian {
		return unix.IPPROTO_TCP << 24
	}
	return unix.IPPROTO_TCP
}()

func familyName(fam int) string {
	if fam == netlink.FAMILY_V6 {
		return "IPv6"
	}
	return "IPv4"
}

func describeRule(r *netlink.Rule) string {
	return fmt.Sprintf("%q (%s)", fmt.Sprintf("pref %d iif %s ipproto tcp lookup %d", r.Priority, r.IifName, r.Table), familyName(r.Family))
}

func describeRoute(r *netlink.Route, dev string) string {
	return fmt.Sprintf("%q (%s)", fmt.Sprintf("default dev %s table %d", dev, r.Table), familyName(r.Family))
}

// isNotFound reports the errors netlink returns for an object already gone.
func isNotFound(err error) bool {
	return errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ESRCH) || errors.Is(err, unix.ENODEV)
}

// handles are the netlink sockets of the calling thread's namespace.
type handles struct {
	ns netns.NsHandle
	nl *netlink.Handle
}

func openHandles() (*handles, error) {
	ns, err := netns.Get()
	if err != nil {
		return nil, fmt.Errorf("netsetup: current network namespace: %w", err)
	}
	var nl *netlink.Handle
	if isProcessNS(int(ns)) {
		nl, err = netlink.NewHandle(unix.NETLINK_ROUTE) // no setns: CAP_NET_ADMIN is enough
	} else {
		nl, err = netlink.NewHandleAt(ns, unix.NETLINK_ROUTE)
	}
	if err != nil {
		ns.Close()
		return nil, fmt.Errorf("netsetup: netlink: %w", err)
	}
	return &handles{ns: ns, nl: nl}, nil
}

func (h *handles) close() {
	h.nl.Close()
	h.ns.Close()
}

// isProcessNS reports whether the namespace fd is the one the process
// itself lives in; sockets opened there need no namespace switch. The
// netlink sockets stay bound to it, so Close works from any thread.
func isProcessNS(fd int) bool {
	var a, b unix.Stat_t
	if unix.Fstat(fd, &a) != nil || unix.Stat("/proc/self/ns/net", &b) != nil {
		return false
	}
	return a.Dev == b.Dev && a.Ino == b.Ino
}
