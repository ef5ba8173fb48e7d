// Routing set-up of the impairment router, and its exact undoing.
//
// The flow of setUp:
//  1. Remove what a previous run that died without cleaning up left: every
//     rule at our priority that looks up our table, and every route in our
//     table. The table number is ours by configuration, so this touches
//     nothing else.
//  2. Create the TUN device with the MTU and bring it up.
//  3. rp_filter on the TUN in loose mode (the packets we write back carry
//     sources not routed via the TUN) and forwarding on it.
//  4. `default dev <tun> table <table>`, IPv4 and IPv6.
//  5. `iif <iface> [ipproto tcp] lookup <table>` at our priority, for each
//     interface and family. Packets we write back arrive with iif <tun>,
//     match no rule and follow the main table to their real interface.
//
// Everything added is recorded; tearDown removes exactly that, rules first
// so that traffic falls back to plain forwarding at once.

package main

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
	"golang.zx2c4.com/wireguard/tun"
)

type setupParams struct {
	tun      string
	mtu      int
	ifaces   []string
	table    int
	priority int
	tcpOnly  bool
	ipv6     bool
}

type routing struct {
	dev    tun.Device
	nl     *netlink.Handle
	rules  []*netlink.Rule
	routes []*netlink.Route
}

// rpFilterLoose is rp_filter mode 2: the source must be routable at all, not
// via the input interface (which, for the TUN, it never is).
const rpFilterLoose = "2"

func (p *setupParams) validate() error {
	if !validIfName(p.tun) {
		return fmt.Errorf("--tun %q is not a valid interface name", p.tun)
	}
	if p.mtu < 576 || p.mtu > 65535 {
		return fmt.Errorf("--mtu %d: want 576-65535", p.mtu)
	}
	if len(p.ifaces) == 0 || len(p.ifaces) > 64 {
		return fmt.Errorf("--iface: want 1-64 interfaces, have %d", len(p.ifaces))
	}
	for _, n := range p.ifaces {
		if !validIfName(n) || n == p.tun {
			return fmt.Errorf("--iface %q is not a valid interface name (or is the TUN)", n)
		}
	}
	if p.table <= 0 || p.table == unix.RT_TABLE_DEFAULT || p.table == unix.RT_TABLE_MAIN || p.table == unix.RT_TABLE_LOCAL {
		return fmt.Errorf("--table %d: want a positive table other than 253, 254, 255", p.table)
	}
	if p.priority < 1 || p.priority > 32765 {
		return fmt.Errorf("--priority %d: want 1-32765", p.priority)
	}
	return nil
}

func validIfName(s string) bool {
	return s != "" && len(s) < unix.IFNAMSIZ && s != "." && s != ".." && !strings.ContainsAny(s, "/: \t\n")
}

func (p *setupParams) families() []int {
	if p.ipv6 {
		return []int{netlink.FAMILY_V4, netlink.FAMILY_V6}
	}
	return []int{netlink.FAMILY_V4}
}

func setUp(p setupParams) (_ *routing, err error) {
	if err := p.validate(); err != nil {
		return nil, err
	}
	nl, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("netlink: %w", err)
	}
	r := &routing{nl: nl}
	defer func() {
		if err != nil {
			if cerr := r.tearDown(); cerr != nil {
				err = fmt.Errorf("%w (and undoing: %v)", err, cerr)
			}
		}
	}()
	for _, n := range p.ifaces {
		if _, err := nl.LinkByName(n); err != nil {
			return r, fmt.Errorf("interface %q: %w", n, err)
		}
	}

	// 1. Stale state of a crashed run.
	if err := removeStale(nl, p); err != nil {
		return r, fmt.Errorf("removing stale rules and routes: %w", err)
	}

	// 2. The TUN device.
	r.dev, err = tun.CreateTUN(p.tun, p.mtu)
	if err != nil {
		return r, fmt.Errorf("create TUN %q: %w", p.tun, err)
	}
	link, err := nl.LinkByName(p.tun)
	if err != nil {
		return r, fmt.Errorf("find TUN %q: %w", p.tun, err)
	}
	if err := nl.LinkSetUp(link); err != nil {
		return r, fmt.Errorf("set %q up: %w", p.tun, err)
	}

	// 3. Sysctls. Forwarding on the TUN forwards nothing new: only what the
	// kernel was already forwarding enters it.
	sysctls := [][2]string{
		{"net/ipv4/conf/" + p.tun + "/rp_filter", rpFilterLoose},
		{"net/ipv4/conf/" + p.tun + "/forwarding", "1"},
	}
	if p.ipv6 {
		sysctls = append(sysctls, [2]string{"net/ipv6/conf/" + p.tun + "/forwarding", "1"})
	}
	for _, kv := range sysctls {
		if err := os.WriteFile(filepath.Join("/proc/sys", kv[0]), []byte(kv[1]), 0); err != nil {
			return r, fmt.Errorf("sysctl %s=%s: %w", kv[0], kv[1], err)
		}
	}

	// 4. Default routes into the TUN.
	for _, fam := range p.families() {
		rt := &netlink.Route{LinkIndex: link.Attrs().Index, Table: p.table, Family: fam}
		if fam == netlink.FAMILY_V4 {
			rt.Dst = &net.IPNet{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)}
			rt.Scope = netlink.SCOPE_LINK
		} else {
			rt.Dst = &net.IPNet{IP: net.IPv6zero, Mask: net.CIDRMask(0, 128)}
		}
		if err := nl.RouteAdd(rt); err != nil {
			return r, fmt.Errorf("add route default dev %s table %d (%s): %w", p.tun, p.table, famName(fam), err)
		}
		r.routes = append(r.routes, rt)
	}

	// 5. Policy rules.
	for _, fam := range p.families() {
		for _, n := range p.ifaces {
			rl := netlink.NewRule()
			rl.Family = fam
			rl.Priority = p.priority
			rl.Table = p.table
			rl.IifName = n
			if p.tcpOnly {
				rl.IPProto = unix.IPPROTO_TCP
			}
			if err := nl.RuleAdd(rl); err != nil {
				return r, fmt.Errorf("add rule pref %d iif %s lookup %d (%s): %w", p.priority, n, p.table, famName(fam), err)
			}
			r.rules = append(r.rules, rl)
		}
	}
	return r, nil
}

// removeStale is step 1.
func removeStale(nl *netlink.Handle, p setupParams) error {
	var errs []error
	for _, fam := range p.families() {
		rules, err := nl.RuleListFiltered(fam, &netlink.Rule{Table: p.table, Priority: p.priority}, netlink.RT_FILTER_TABLE|netlink.RT_FILTER_PRIORITY)
		if err != nil {
			return err
		}
		for i := range rules {
			if err := nl.RuleDel(&rules[i]); err != nil && !isGone(err) {
				errs = append(errs, err)
			}
		}
		routes, err := nl.RouteListFiltered(fam, &netlink.Route{Table: p.table}, netlink.RT_FILTER_TABLE)
		if err != nil {
			return err
		}
		for i := range routes {
			if err := nl.RouteDel(&routes[i]); err != nil && !isGone(err) {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// tearDown removes what setUp added. It may be called once.
func (r *routing) tearDown() error {
	var errs []error
	for _, rl := range r.rules {
		if err := r.nl.RuleDel(rl); err != nil && !isGone(err) {
			errs = append(errs, fmt.Errorf("delete rule iif %s: %w", rl.IifName, err))
		}
	}
	for _, rt := range r.routes {
		if err := r.nl.RouteDel(rt); err != nil && !isGone(err) {
			errs = append(errs, fmt.Errorf("delete route (%s): %w", famName(rt.Family), err))
		}
	}
	r.rules, r.routes = nil, nil
	if r.dev != nil {
		if err := r.dev.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close TUN: %w", err))
		}
	}
	r.nl.Close()
	return errors.Join(errs...)
}

func isGone(err error) bool {
	return errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ESRCH) || errors.Is(err, unix.ENODEV)
}

func famName(fam int) string {
	if fam == netlink.FAMILY_V6 {
		return "IPv6"
	}
	return "IPv4"
}
