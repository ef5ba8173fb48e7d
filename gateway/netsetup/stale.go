// Clean-up after a crash, and a census of what is installed.
//
// A run killed with SIGKILL never reaches Setup.Close. Its TUN device goes
// away with its file descriptor (and the routes through it with the device),
// but the policy rules and the nftables table stay. The stale rules point to
// a table with no route left, so the kernel falls through to the main table
// and TCP is forwarded unencrypted; the stale table, though, keeps LAN TCP
// untracked, which breaks NAT for it until the gateway starts again and
// CleanStale removes what is ours:
//  1. rules with our priority and our table, IPv4 and IPv6;
//  2. every route in our table (nothing else may use it);
//  3. the nftables table inet tcpcrypt_gw;
//  4. a leftover link named like our TUN, if it is a TUN/TAP device (a
//     persistent one, or one held open by a stuck process).

package netsetup

import (
	"errors"
	"fmt"
	"net"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// maxStale bounds the objects removed per kind, in case something re-adds
// them while we delete.
const maxStale = 4096

// CleanStale removes what a previous run with the same Params left behind in
// the calling thread's network namespace. It is idempotent and does nothing
// when nothing is there.
func CleanStale(p Params) error {
	if err := checkTable(p.Table); err != nil {
		return err
	}
	if err := checkIfName(p.TUN); err != nil {
		return fmt.Errorf("netsetup: TUN name: %w", err)
	}
	h, err := openHandles()
	if err != nil {
		return err
	}
	defer h.close()
	return cleanStale(h, p)
}

// cleanStaleKeepRouting is cleanStale without steps 1 and 2 (Apply takes
// the rules and routes over instead, so the traffic stays fail-closed).
func cleanStaleKeepRouting(h *handles, p Params) error {
	return cleanStaleParts(h, p, false)
}

func cleanStale(h *handles, p Params) error {
	return cleanStaleParts(h, p, true)
}

// ruleExists reports whether a rule equal to r (family, iif, protocol,
// priority, table) is installed.
func ruleExists(h *handles, r *netlink.Rule) (bool, error) {
	rules, err := h.nl.RuleListFiltered(r.Family, &netlink.Rule{Priority: r.Priority, Table: r.Table}, netlink.RT_FILTER_PRIORITY|netlink.RT_FILTER_TABLE)
	if err != nil {
		return false, err
	}
	for _, x := range rules {
		if x.IifName == r.IifName && x.IPProto == r.IPProto {
			return true, nil
		}
	}
	return false, nil
}

// removeStrayRules deletes rules with our priority and table that are not
// in p.rules() (a crashed run's with other interfaces).
func removeStrayRules(h *handles, p Params) error {
	want := map[string]bool{}
	for _, r := range p.rules() {
		want[fmt.Sprint(r.Family, r.IifName, r.IPProto)] = true
	}
	var errs []error
	for _, fam := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		rules, err := ourRules(h.nl, fam, p)
		if err != nil {
			return err
		}
		for i := range rules[:min(len(rules), maxStale)] {
			if want[fmt.Sprint(fam, rules[i].IifName, rules[i].IPProto)] {
				continue
			}
			if err := h.nl.RuleDel(&rules[i]); err != nil && !isNotFound(err) {
				errs = append(errs, fmt.Errorf("delete stale rule %s: %w", describeRule(&rules[i]), err))
			}
		}
	}
	return errors.Join(errs...)
}

// removeStrayRoutes deletes routes of our table other than our TUN route
// and blackhole route.
func removeStrayRoutes(h *handles, p Params, tunIndex int) error {
	var errs []error
	for _, fam := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		routes, err := ourRoutes(h.nl, fam, p)
		if err != nil {
			return err
		}
		for i := range routes[:min(len(routes), maxStale)] {
			r := &routes[i]
			ours := (r.LinkIndex == tunIndex || r.Type == unix.RTN_BLACKHOLE) && (r.Dst == nil || isDefault(r.Dst))
			if ours && (fam == netlink.FAMILY_V4 || p.IPv6) {
				continue
			}
			if err := h.nl.RouteDel(r); err != nil && !isNotFound(err) {
				errs = append(errs, fmt.Errorf("delete stale route %v in table %d: %w", r.Dst, p.Table, err))
			}
		}
	}
	return errors.Join(errs...)
}

func isDefault(n *net.IPNet) bool {
	ones, _ := n.Mask.Size()
	return ones == 0
}

func cleanStaleParts(h *handles, p Params, routing bool) error {
	var errs []error
	if routing {
		// 1. Rules, both families: IPv6 rules exist even if p.IPv6 is now off.
		for _, fam := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
			rules, err := ourRules(h.nl, fam, p)
			if err != nil {
				errs = append(errs, fmt.Errorf("list %s rules: %w", familyName(fam), err))
				continue
			}
			if len(rules) > maxStale {
				rules = rules[:maxStale]
			}
			for i := range rules {
				if err := h.nl.RuleDel(&rules[i]); err != nil && !isNotFound(err) {
					errs = append(errs, fmt.Errorf("delete stale rule %s: %w", describeRule(&rules[i]), err))
				}
			}
		}
		// 2. Routes in our table.
		for _, fam := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
			routes, err := ourRoutes(h.nl, fam, p)
			if err != nil {
				errs = append(errs, fmt.Errorf("list %s routes of table %d: %w", familyName(fam), p.Table, err))
				continue
			}
			if len(routes) > maxStale {
				routes = routes[:maxStale]
			}
			for i := range routes {
				if err := h.nl.RouteDel(&routes[i]); err != nil && !isNotFound(err) {
					errs = append(errs, fmt.Errorf("delete stale route %v in table %d: %w", routes[i].Dst, p.Table, err))
				}
			}
		}
	}
	// 3. The nftables table.
	if err := deleteNFTable(int(h.ns)); err != nil {
		errs = append(errs, fmt.Errorf("delete stale nftables table inet %s: %w", NFTTable, err))
	}
	// 4. A leftover TUN link; never another kind of link of that name.
	if link, err := h.nl.LinkByName(p.TUN); err == nil {
		if link.Type() != "tuntap" {
			errs = append(errs, fmt.Errorf("interface %q exists and is a %s device, not a TUN device: choose another TUN name", p.TUN, link.Type()))
		} else if err := h.nl.LinkDel(link); err != nil && !isNotFound(err) {
			errs = append(errs, fmt.Errorf("delete stale TUN %q: %w", p.TUN, err))
		}
	} else if !isLinkNotFound(err) {
		errs = append(errs, fmt.Errorf("look up %q: %w", p.TUN, err))
	}
	return errors.Join(errs...)
}

// Installed reports what of ours is present in the calling thread's network
// namespace: rules with our priority and table, routes in our table (both
// families), and whether our nftables table exists.
func Installed(p Params) (rules, routes int, nft bool, err error) {
	h, err := openHandles()
	if err != nil {
		return 0, 0, false, err
	}
	defer h.close()
	for _, fam := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		rs, err := ourRules(h.nl, fam, p)
		if err != nil {
			return 0, 0, false, err
		}
		rt, err := ourRoutes(h.nl, fam, p)
		if err != nil {
			return 0, 0, false, err
		}
		rules += len(rs)
		routes += len(rt)
	}
	nft, err = nftTablePresent(int(h.ns))
	return rules, routes, nft, err
}

func ourRules(h *netlink.Handle, fam int, p Params) ([]netlink.Rule, error) {
	filter := &netlink.Rule{Priority: p.RulePriority, Table: p.Table}
	return h.RuleListFiltered(fam, filter, netlink.RT_FILTER_PRIORITY|netlink.RT_FILTER_TABLE)
}

func ourRoutes(h *netlink.Handle, fam int, p Params) ([]netlink.Route, error) {
	filter := &netlink.Route{Table: p.Table}
	return h.RouteListFiltered(fam, filter, netlink.RT_FILTER_TABLE)
}

func isLinkNotFound(err error) bool {
	var nf netlink.LinkNotFoundError
	return errors.As(err, &nf) || isNotFound(err)
}
