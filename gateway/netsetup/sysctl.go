// Step 3 of Apply: the per-interface sysctls of the TUN device, written
// through /proc/sys, which shows the network namespace of the calling thread.

package netsetup

import (
	"fmt"
	"net"
	"os"
	"path/filepath"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// tunAddr4 is the IPv4 address of the TUN device: 192.0.0.8, the "IPv4
// dummy address" of RFC 7600 §3, meant for interfaces that need an address
// but have none of their own. It exists so that loose rp_filter applies to
// the TUN (see rpFilterLoose). With scope link it is never chosen as the
// source of the router's own traffic; many devices may share it.
func tunAddr4() *netlink.Addr {
	return &netlink.Addr{
		IPNet: &net.IPNet{IP: net.IPv4(192, 0, 0, 8).To4(), Mask: net.CIDRMask(32, 32)},
		Scope: unix.RT_SCOPE_LINK,
	}
}

// rpFilterLoose is the rp_filter value of the TUN device. The packets the
// gateway writes back into the TUN carry sources that the kernel does not
// route via the TUN: outbound packets come from LAN hosts, inbound ones from
// remote hosts. The reverse-path lookup is made as if the packet arrived on
// its output interface, so when that interface is one of ours (LAN or WAN)
// our own rules route the source back into the TUN and even strict mode
// passes. Traffic from a steered interface to any other one (a DMZ, a VPN
// interface not listed as WAN) fails strict mode (1) and is dropped; loose
// mode (2) only asks that the source be routable at all, but the kernel
// applies it only to interfaces with an IPv4 address (fib_validate_source
// fails an address-less one in every mode but 0), hence tunAddr4. The
// kernel uses the larger of conf/all and conf/<dev>, so 2 also wins over a
// strict conf/all. (Such a third interface needs loose mode itself as well:
// the reverse path of the replies it receives is, by our rules, the TUN.
// That is the operator's choice; netsetup changes only the TUN.)
const rpFilterLoose = "2"

// setTUNSysctls sets rp_filter to loose mode on the TUN device and enables
// IPv4 forwarding on it: the kernel checks forwarding on the input interface
// (the TUN, for re-injected packets), and a router that enabled forwarding
// only per interface would otherwise drop every packet the gateway returns.
// Only traffic that the kernel already forwarded enters the TUN, so this
// forwards nothing new.
func setTUNSysctls(dev string) error {
	for _, kv := range [][2]string{
		{"net/ipv4/conf/" + dev + "/rp_filter", rpFilterLoose},
		{"net/ipv4/conf/" + dev + "/forwarding", "1"},
	} {
		if err := writeSysctl(kv[0], kv[1]); err != nil {
			return err
		}
	}
	return nil
}

func writeSysctl(key, val string) error {
	path := filepath.Join("/proc/sys", key)
	if err := os.WriteFile(path, []byte(val), 0); err != nil {
		return fmt.Errorf("sysctl %s=%s: %w", key, val, err)
	}
	return nil
}
