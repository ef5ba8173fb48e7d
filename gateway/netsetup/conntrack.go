// Step 6 of Apply: the conntrack bypass.
//
// With policy routing into the TUN, every forwarded TCP packet passes the
// netfilter hooks twice: once from the LAN or WAN interface into the TUN, and
// once more when the gateway writes it back, from the TUN out. Connection
// tracking must see only one of those passes, or NAT breaks:
//   - Outbound, if conntrack sees the first pass (iif LAN -> oif TUN), it
//     confirms the connection with a null NAT binding (masquerade applies to
//     the WAN interface only), and the second pass (iif TUN -> oif WAN) finds
//     the confirmed entry and is never masqueraded.
//   - Inbound, the first pass (iif WAN -> oif TUN) is the one that must be
//     tracked (it undoes the masquerade or applies a port forward); the second
//     pass (iif TUN -> oif LAN) would carry the already translated tuple and
//     clash with the original entry.
//
// So the table below marks as untracked, before conntrack runs (priority raw,
// -300), TCP arriving on a LAN interface, and TCP arriving from the TUN for a
// LAN address. Conntrack and NAT then see the TUN->WAN pass outbound and the
// WAN->TUN pass inbound: both in the WAN sequence space, exactly what NAT and
// port forwards need. In nft syntax:
//
//	table inet tcpcrypt_gw {
//	  chain prerouting {
//	    type filter hook prerouting priority raw; policy accept;
//	    iifname "lan0" meta l4proto tcp notrack              # per LAN interface
//	    iifname "tun0" ip daddr 10.0.0.0/24 meta l4proto tcp notrack  # per LAN prefix
//	    iifname "tun0" ip6 daddr fd00::/64 meta l4proto tcp notrack
//	  }
//	}
//
// A forward-chain firewall that accepts only "ct state established" must also
// accept "ct state untracked" for these packets. Hairpin NAT (a LAN host
// reaching a port forward through the router's public address) does not work
// for TCP: TCP from the LAN is never tracked, so it is never translated.
//
// The rules are built with github.com/google/nftables (netlink, no nft
// binary); a prefix compares only the bytes it covers, as nft itself does.

package netsetup

import (
	"errors"
	"fmt"
	"net"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// NFTTable is the name of the gateway's nftables table (family inet).
const NFTTable = "tcpcrypt_gw"

const nftChain = "prerouting"

// installBypass installs the table when p asks for it and (for "auto")
// nftables is usable, and records that it did.
func (s *Setup) installBypass(p Params) error {
	if p.ConntrackBypass == BypassOff {
		return nil
	}
	if err := nftUsable(int(s.ns)); err != nil {
		if p.ConntrackBypass == BypassOn {
			return fmt.Errorf("nftables is not usable: %w", err)
		}
		return nil // auto: no nftables, so no NAT through nftables either
	}
	c, err := newNFT(int(s.ns))
	if err != nil {
		return err
	}
	addBypassTable(c, p)
	// One batch: the kernel applies it atomically or not at all.
	if err := c.Flush(); err != nil {
		return err
	}
	s.ConntrackBypass = true
	return nil
}

// addBypassTable queues the table, chain and rules described in the file
// comment on c.
func addBypassTable(c *nftables.Conn, p Params) {
	t := c.AddTable(&nftables.Table{Family: nftables.TableFamilyINet, Name: NFTTable})
	accept := nftables.ChainPolicyAccept
	ch := c.AddChain(&nftables.Chain{
		Name:     nftChain,
		Table:    t,
		Type:     nftables.ChainTypeFilter,
		Hooknum:  nftables.ChainHookPrerouting,
		Priority: nftables.ChainPriorityRaw,
		Policy:   &accept,
	})
	for _, lan := range p.LAN {
		c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: notrackTCP(matchIifname(lan))})
	}
	for _, pf := range p.bypassPrefixes() {
		match := append(matchIifname(p.TUN), matchDaddr(pf)...)
		c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: notrackTCP(match)})
	}
}

// bypassPrefixes are the LAN prefixes of the families being steered.
func (p *Params) bypassPrefixes() []nftPrefix {
	var out []nftPrefix
	for _, pf := range p.LANPrefixes {
		pf = pf.Masked()
		if pf.Addr().Is4() || p.IPv6 {
			out = append(out, nftPrefix{pf.Addr().AsSlice(), pf.Bits()})
		}
	}
	return out
}

// nftPrefix is an address prefix as the rules compare it.
type nftPrefix struct {
	addr []byte // 4 or 16 bytes, host bits zero
	bits int
}

// matchIifname is `iifname "<name>"`: the kernel compares the whole
// IFNAMSIZ buffer, zero-padded.
func matchIifname(name string) []expr.Any {
	b := make([]byte, unix.IFNAMSIZ)
	copy(b, name)
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: b},
	}
}

// matchDaddr is `ip daddr <prefix>` or `ip6 daddr <prefix>`: in an inet
// table the family must be checked before the network header is read.
func matchDaddr(pf nftPrefix) []expr.Any {
	proto, offset := byte(unix.NFPROTO_IPV4), uint32(16) // RFC 791 §3.1: destination at byte 16
	if len(pf.addr) == 16 {
		proto, offset = unix.NFPROTO_IPV6, 24 // RFC 8200 §3: destination at byte 24
	}
	e := []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{proto}},
	}
	if pf.bits == 0 {
		return e // /0: the whole family
	}
	// Like nft: a byte-aligned prefix compares its bytes only; any other
	// loads the whole address and masks it.
	n := len(pf.addr)
	if pf.bits%8 == 0 {
		n = pf.bits / 8
	}
	e = append(e, &expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: offset, Len: uint32(n)})
	if pf.bits%8 != 0 {
		mask := net.CIDRMask(pf.bits, 8*n)
		e = append(e, &expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: uint32(n), Mask: mask, Xor: make([]byte, n)})
	}
	return append(e, &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: append([]byte(nil), pf.addr[:n]...)})
}

// notrackTCP appends `meta l4proto tcp notrack` to match.
func notrackTCP(match []expr.Any) []expr.Any {
	return append(match,
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_TCP}},
		&expr.Notrack{},
	)
}

// nftUsable reports whether the nftables netlink subsystem answers in the
// namespace nsFD.
func nftUsable(nsFD int) error {
	c, err := newNFT(nsFD)
	if err != nil {
		return err
	}
	_, err = c.ListTablesOfFamily(nftables.TableFamilyINet)
	return err
}

// nftTablePresent reports whether our table exists in namespace nsFD; an
// unusable nftables has no table.
func nftTablePresent(nsFD int) (bool, error) {
	if nftUsable(nsFD) != nil {
		return false, nil
	}
	c, err := newNFT(nsFD)
	if err != nil {
		return false, err
	}
	tables, err := c.ListTablesOfFamily(nftables.TableFamilyINet)
	if err != nil {
		return false, err
	}
	for _, t := range tables {
		if t.Name == NFTTable {
			return true, nil
		}
	}
	return false, nil
}

// deleteNFTable deletes our table (with its chain and rules) from namespace
// nsFD; a table already gone is not an error.
func deleteNFTable(nsFD int) error {
	present, err := nftTablePresent(nsFD)
	if err != nil || !present {
		return err
	}
	c, err := newNFT(nsFD)
	if err != nil {
		return err
	}
	c.DelTable(&nftables.Table{Family: nftables.TableFamilyINet, Name: NFTTable})
	if err := c.Flush(); err != nil && !errors.Is(err, unix.ENOENT) {
		return err
	}
	return nil
}

// newNFT opens nftables in namespace nsFD. In the process's own namespace
// (the daemon's case) it does not switch namespaces, which would need
// CAP_SYS_ADMIN on top of CAP_NET_ADMIN.
func newNFT(nsFD int) (*nftables.Conn, error) {
	if isProcessNS(nsFD) {
		return nftables.New()
	}
	return nftables.New(nftables.WithNetNSFd(nsFD))
}
