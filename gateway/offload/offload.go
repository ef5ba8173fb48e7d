// Package offload finds flow offloading that would let steered TCP bypass
// the gateway. An offloaded flow skips netfilter and routing after its
// first packets (Linux Documentation/networking/nf_flowtable.rst): its
// packets would no longer go through the TUN device, so ciphertext could
// reach a LAN host or plaintext leave on the WAN. The gateway refuses to
// start, and stops, while Check finds any.
//
// Why refuse rather than exempt the steered flows: an nftables verdict ends
// only its own chain, so no rule in the gateway's table can keep another
// table's `flow add` from running, and the statement looks at nothing the
// gateway could set (it needs only an established, confirmed conntrack
// entry without a helper). Changing the other table (OpenWrt's fw4) would
// be undone by its next reload.
//
// The flow of Check:
//  1. OpenWrt's UCI firewall file: `option flow_offloading` or
//     `flow_offloading_hw` true in a `config defaults` section (fw4 and fw3
//     both read them) is a finding, whatever nftables holds now: the next
//     firewall restart would install the offload.
//  2. nftables, every table of family ip, ip6 or inet with a base chain on
//     the forward hook (the only hook a `flow add` may sit on): every rule
//     of every chain of such a table (regular chains are reached by jumps
//     and verdict maps from the base chains) that holds a flow offload
//     statement and does not exclude TCP by a protocol match before it
//     (meta l4proto, ip protocol, or a set lookup on either) is a finding.
//     The check is conservative: interface or address matches are not
//     evaluated, so a rule that might match steered TCP counts.
package offload

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// Finding is one place that enables flow offloading, with what to change.
type Finding struct {
	Where string // the file and option, or the nftables table, chain and rule
	Fix   string // what the operator changes
}

func (f Finding) String() string { return f.Where + ": " + f.Fix }

// Error lists the findings; Check's callers refuse to run with it.
type Error struct{ Findings []Finding }

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("flow offloading would let steered TCP bypass the gateway (ciphertext to LAN hosts, plaintext to the WAN); turn it off:")
	for _, f := range e.Findings {
		b.WriteString("\n  ")
		b.WriteString(f.String())
	}
	return b.String()
}

// Check looks at the UCI firewall file at uciPath (a missing file is not an
// error: not OpenWrt) and at the nftables ruleset of the calling thread's
// network namespace. It returns an *Error when there is any finding.
func Check(uciPath string) error {
	var found []Finding
	if uciPath != "" {
		b, err := os.ReadFile(uciPath)
		switch {
		case err == nil:
			found = append(found, FromUCI(uciPath, string(b))...)
		case !errors.Is(err, os.ErrNotExist):
			return fmt.Errorf("offload: %w", err)
		}
	}
	c, err := nftables.New()
	if err != nil {
		return fmt.Errorf("offload: nftables: %w", err)
	}
	nft, err := FromRuleset(c)
	if err != nil && !nftUnavailable(err) {
		return fmt.Errorf("offload: reading the nftables ruleset: %w", err)
	}
	found = append(found, nft...)
	if len(found) > 0 {
		return &Error{Findings: found}
	}
	return nil
}

// nftUnavailable reports the errors of a kernel without nf_tables: then
// there is no nftables flow offloading either (an iptables firewall's
// offloading, fw3's FLOWOFFLOAD, is found through the UCI file). nfnetlink
// answers a request for a subsystem that is not there with EINVAL
// (nfnetlink_rcv_msg); a kernel without nfnetlink refuses the socket.
// Any other error (EPERM: no CAP_NET_ADMIN) is not taken as "no
// offloading": Check fails with it.
func nftUnavailable(err error) bool {
	return errors.Is(err, unix.EPROTONOSUPPORT) || errors.Is(err, unix.EAFNOSUPPORT) ||
		errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EINVAL)
}

// Ruleset is the part of *nftables.Conn that FromRuleset reads, so that
// tests can hand it rulesets the running kernel cannot hold.
type Ruleset interface {
	ListTables() ([]*nftables.Table, error)
	ListChains() ([]*nftables.Chain, error)
	GetRules(*nftables.Table, *nftables.Chain) ([]*nftables.Rule, error)
	GetSets(*nftables.Table) ([]*nftables.Set, error)
	GetSetElements(*nftables.Set) ([]nftables.SetElement, error)
}

// FromRuleset is step 2 of Check.
func FromRuleset(rs Ruleset) ([]Finding, error) {
	chains, err := rs.ListChains()
	if err != nil {
		return nil, err
	}
	// Tables with a forward base chain, by family and name.
	type key struct {
		family nftables.TableFamily
		name   string
	}
	forward := map[key]bool{}
	for _, ch := range chains {
		if ch.Hooknum != nil && *ch.Hooknum == *nftables.ChainHookForward && ch.Table != nil && isIPFamily(ch.Table.Family) {
			forward[key{ch.Table.Family, ch.Table.Name}] = true
		}
	}
	var found []Finding
	sets := map[key][]*nftables.Set{}
	for _, ch := range chains {
		k := key{ch.Table.Family, ch.Table.Name}
		if !forward[k] {
			continue
		}
		rules, err := rs.GetRules(ch.Table, ch)
		if err != nil {
			return nil, fmt.Errorf("table %s %s chain %s: %w", familyName(ch.Table.Family), ch.Table.Name, ch.Name, err)
		}
		for _, r := range rules {
			fo := flowOffload(r)
			if fo == nil {
				continue
			}
			if _, ok := sets[k]; !ok {
				sets[k], _ = rs.GetSets(ch.Table) // unreadable sets: lookups count as matching
			}
			if excludesTCP(r.Exprs, sets[k], rs) {
				continue
			}
			found = append(found, Finding{
				Where: fmt.Sprintf("nftables table %s %s, chain %s, rule handle %d (flow add @%s)",
					familyName(ch.Table.Family), ch.Table.Name, ch.Name, r.Handle, fo.Name),
				Fix: "remove this flow offload rule; on OpenWrt: uci set firewall.@defaults[0].flow_offloading='0'; " +
					"uci set firewall.@defaults[0].flow_offloading_hw='0'; uci commit firewall; service firewall restart",
			})
		}
	}
	return found, nil
}

func isIPFamily(f nftables.TableFamily) bool {
	return f == nftables.TableFamilyINet || f == nftables.TableFamilyIPv4 || f == nftables.TableFamilyIPv6
}

func familyName(f nftables.TableFamily) string {
	switch f {
	case nftables.TableFamilyINet:
		return "inet"
	case nftables.TableFamilyIPv4:
		return "ip"
	case nftables.TableFamilyIPv6:
		return "ip6"
	}
	return fmt.Sprintf("family-%d", f)
}

func flowOffload(r *nftables.Rule) *expr.FlowOffload {
	for _, e := range r.Exprs {
		if fo, ok := e.(*expr.FlowOffload); ok {
			return fo
		}
	}
	return nil
}

// excludesTCP reports whether the expressions before the flow offload
// statement stop every TCP packet: a comparison or set lookup on the layer
// 4 protocol that TCP (6) cannot pass. Registers are followed so that only
// a comparison of a register loaded with the protocol counts.
func excludesTCP(exprs []expr.Any, sets []*nftables.Set, rs Ruleset) bool {
	proto := map[uint32]bool{} // registers holding the layer 4 protocol
	for _, e := range exprs {
		switch e := e.(type) {
		case *expr.FlowOffload:
			return false
		case *expr.Meta:
			if e.SourceRegister {
				continue // meta set: loads nothing
			}
			proto[e.Register] = e.Key == expr.MetaKeyL4PROTO
		case *expr.Payload:
			// ip protocol (RFC 791: byte 9) or ip6 nexthdr (RFC 8200: byte 6),
			// one byte of the network header.
			proto[e.DestRegister] = e.Base == expr.PayloadBaseNetworkHeader && e.Len == 1 && (e.Offset == 9 || e.Offset == 6)
		case *expr.Cmp:
			if !proto[e.Register] || len(e.Data) != 1 {
				continue
			}
			if e.Op == expr.CmpOpEq && e.Data[0] != unix.IPPROTO_TCP || e.Op == expr.CmpOpNeq && e.Data[0] == unix.IPPROTO_TCP {
				return true
			}
		case *expr.Lookup:
			if !proto[e.SourceRegister] || e.IsDestRegSet {
				continue
			}
			has, known := setHasTCP(e, sets, rs)
			if known && has == e.Invert {
				return true
			}
		}
	}
	return false
}

// setHasTCP reports whether the set a lookup uses holds protocol 6; known
// is false when the set or its elements cannot be read.
func setHasTCP(l *expr.Lookup, sets []*nftables.Set, rs Ruleset) (has, known bool) {
	i := slices.IndexFunc(sets, func(s *nftables.Set) bool { return s.Name == l.SetName })
	if i < 0 || sets[i].Interval {
		return false, false // intervals: ranges are not evaluated here
	}
	elems, err := rs.GetSetElements(sets[i])
	if err != nil {
		return false, false
	}
	for _, el := range elems {
		if len(el.Key) == 1 && el.Key[0] == unix.IPPROTO_TCP {
			return true, true
		}
	}
	return false, true
}
