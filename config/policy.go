// Policy lookups on the hot path: is an address on the LAN side, and is a
// flow excluded from encryption. Both answer without allocating.
//
// BypassMatcher is built once per configuration (Config.Bypass):
//  1. Ports go into a 65536-bit bitmap: one load per port.
//  2. Prefixes and hosts become address intervals, sorted and merged per
//     family, searched by bisection: O(log n) for the bounded lists.

package config

import (
	"cmp"
	"encoding/binary"
	"net/netip"
	"slices"
)

// IsLAN reports whether a is inside one of lan_prefixes, that is, on the
// LAN side of a flow. IPv4-mapped IPv6 addresses count as IPv4.
func (c *Config) IsLAN(a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range c.LANPrefixes {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// BypassMatcher decides whether a flow passes through untouched. It is
// immutable and safe for concurrent use.
type BypassMatcher struct {
	ports *portSet // nil when no ports
	addrs addrSet
}

// portSet is a 65536-bit bitmap of ports: one load per lookup.
type portSet [65536 / 64]uint64

// newPortSet builds the set of ports in rs; nil when rs is empty.
func newPortSet(rs []PortRange) *portSet {
	if len(rs) == 0 {
		return nil
	}
	s := new(portSet)
	for _, r := range rs {
		for p := int(r.Lo); p <= int(r.Hi); p++ {
			s[p/64] |= 1 << (p % 64)
		}
	}
	return s
}

// either reports whether a or b is in s; a nil set holds nothing.
func (s *portSet) either(a, b uint16) bool {
	return s != nil && (s[a/64]&(1<<(a%64)) != 0 || s[b/64]&(1<<(b%64)) != 0)
}

// AppAwareMatcher says, per flow, whether the gateway sets TCP-ENO's
// application-aware bit and whether it requires it from the peer (RFC 8547
// §4.2). It is immutable and safe for concurrent use.
type AppAwareMatcher struct {
	set, mandatory *portSet
}

// AppAware builds the matcher for tcpcrypt.application_aware.
func (c *Config) AppAware() *AppAwareMatcher {
	a := &c.TCPCrypt.ApplicationAware
	return &AppAwareMatcher{set: newPortSet(append(slices.Clone(a.Ports), a.MandatoryPorts...)), mandatory: newPortSet(a.MandatoryPorts)}
}

// Match reports, for the flow between src and dst, whether to send a = 1
// and whether to require a = 1 from the peer. A nil matcher sets nothing.
func (m *AppAwareMatcher) Match(src, dst netip.AddrPort) (set, mandatory bool) {
	if m == nil {
		return false, false
	}
	return m.set.either(src.Port(), dst.Port()), m.mandatory.either(src.Port(), dst.Port())
}

// Bypass builds the matcher for the bypass section. Later changes to c do
// not affect it.
func (c *Config) Bypass() *BypassMatcher {
	b := &c.BypassRules
	m := &BypassMatcher{addrs: newAddrSet(b.Prefixes), ports: newPortSet(b.Ports)}
	for _, h := range b.Hosts {
		if h.IsValid() {
			m.addrs.add(netip.PrefixFrom(h.Unmap(), h.Unmap().BitLen()))
		}
	}
	m.addrs.finish()
	return m
}

// RequireEncryption builds the matcher for require_encryption: a flow
// matches when either end uses one of its ports or lies in one of its
// prefixes (the same rule as bypass).
func (c *Config) RequireEncryption() *BypassMatcher {
	r := &c.Require
	return &BypassMatcher{addrs: newAddrSet(r.Prefixes), ports: newPortSet(r.Ports)}
}

// RequirePostQuantum builds the matcher for
// require_encryption.post_quantum (the same rule as bypass).
func (c *Config) RequirePostQuantum() *BypassMatcher {
	r := &c.Require.PostQuantum
	return &BypassMatcher{addrs: newAddrSet(r.Prefixes), ports: newPortSet(r.Ports)}
}

// DowngradeBlock reports whether a suspected downgrade towards the peer a
// is blocked (a inside downgrade.block) rather than only flagged.
func (c *Config) DowngradeBlock() func(a netip.Addr) bool {
	s := newAddrSet(c.Downgrade.Block)
	return s.contains
}

// NoSYNFallback reports whether the SYN towards the peer a keeps its ENO
// through every retransmission (a inside downgrade.no_syn_fallback).
func (c *Config) NoSYNFallback() func(a netip.Addr) bool {
	s := newAddrSet(c.Downgrade.NoSYNFallback)
	return s.contains
}

// Match reports whether the flow between src and dst is bypassed: either
// port is a bypass port, or either address is a bypass host or inside a
// bypass prefix. A nil matcher matches nothing.
func (m *BypassMatcher) Match(src, dst netip.AddrPort) bool {
	if m == nil {
		return false
	}
	if m.ports.either(src.Port(), dst.Port()) {
		return true
	}
	return m.addrs.contains(src.Addr()) || m.addrs.contains(dst.Addr())
}

// addrSet is a set of addresses as sorted, disjoint, closed intervals per
// family. IPv4 addresses are kept as uint32, IPv6 as two uint64 halves.
type addrSet struct {
	v4 []span4
	v6 []span6
}

type span4 struct{ lo, hi uint32 }

type u128 struct{ hi, lo uint64 }

type span6 struct{ lo, hi u128 }

func (a u128) cmp(b u128) int {
	if c := cmp.Compare(a.hi, b.hi); c != 0 {
		return c
	}
	return cmp.Compare(a.lo, b.lo)
}

// next returns a+1; the caller never asks for the successor of the maximum.
func (a u128) next() u128 {
	if a.lo == ^uint64(0) {
		return u128{a.hi + 1, 0}
	}
	return u128{a.hi, a.lo + 1}
}

func addr6(a netip.Addr) u128 {
	b := a.As16()
	return u128{binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])}
}

func addr4(a netip.Addr) uint32 {
	b := a.As4()
	return binary.BigEndian.Uint32(b[:])
}

// newAddrSet builds a finished set of the valid prefixes in ps.
func newAddrSet(ps []netip.Prefix) addrSet {
	var s addrSet
	for _, p := range ps {
		s.add(p)
	}
	s.finish()
	return s
}

// add inserts a prefix; finish must be called before contains.
func (s *addrSet) add(p netip.Prefix) {
	if !p.IsValid() {
		return
	}
	if p.Addr().Is4In6() && p.Bits() >= 96 {
		p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
	}
	p = p.Masked()
	if p.Addr().Is4() {
		lo := addr4(p.Addr())
		host := uint32(0)
		if p.Bits() < 32 {
			host = ^uint32(0) >> p.Bits()
		}
		s.v4 = append(s.v4, span4{lo, lo | host})
		return
	}
	lo := addr6(p.Addr())
	var host u128
	switch b := p.Bits(); {
	case b == 0:
		host = u128{^uint64(0), ^uint64(0)}
	case b < 64:
		host = u128{^uint64(0) >> b, ^uint64(0)}
	case b < 128:
		host = u128{0, ^uint64(0) >> (b - 64)}
	}
	s.v6 = append(s.v6, span6{lo, u128{lo.hi | host.hi, lo.lo | host.lo}})
}

// finish sorts the intervals and merges overlapping and adjacent ones.
func (s *addrSet) finish() {
	slices.SortFunc(s.v4, func(a, b span4) int { return cmp.Compare(a.lo, b.lo) })
	out4 := s.v4[:0]
	for _, sp := range s.v4 {
		if n := len(out4); n > 0 && (out4[n-1].hi == ^uint32(0) || sp.lo <= out4[n-1].hi+1) {
			out4[n-1].hi = max(out4[n-1].hi, sp.hi)
			continue
		}
		out4 = append(out4, sp)
	}
	s.v4 = out4

	slices.SortFunc(s.v6, func(a, b span6) int { return a.lo.cmp(b.lo) })
	out6 := s.v6[:0]
	for _, sp := range s.v6 {
		if n := len(out6); n > 0 {
			last := &out6[n-1]
			if last.hi == (u128{^uint64(0), ^uint64(0)}) || sp.lo.cmp(last.hi.next()) <= 0 {
				if sp.hi.cmp(last.hi) > 0 {
					last.hi = sp.hi
				}
				continue
			}
		}
		out6 = append(out6, sp)
	}
	s.v6 = out6
}

// contains reports whether a lies in one of the intervals.
func (s *addrSet) contains(a netip.Addr) bool {
	a = a.Unmap()
	switch {
	case a.Is4():
		x := addr4(a)
		// Find the last interval starting at or before x.
		lo, hi := 0, len(s.v4)
		for lo < hi {
			mid := int(uint(lo+hi) >> 1)
			if s.v4[mid].lo <= x {
				lo = mid + 1
			} else {
				hi = mid
			}
		}
		return lo > 0 && x <= s.v4[lo-1].hi
	case a.Is6():
		x := addr6(a)
		lo, hi := 0, len(s.v6)
		for lo < hi {
			mid := int(uint(lo+hi) >> 1)
			if s.v6[mid].lo.cmp(x) <= 0 {
				lo = mid + 1
			} else {
				hi = mid
			}
		}
		return lo > 0 && x.cmp(s.v6[lo-1].hi) <= 0
	}
	return false
}
