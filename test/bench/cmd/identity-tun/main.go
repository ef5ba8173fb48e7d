// Command identity-tun is the "identity TUN forwarder" of the bench: the
// ceiling of any design that moves forwarded TCP through a TUN device.
//
// It sets up the network exactly as the gateway does (gateway/netsetup: the
// same TUN device, policy rules, routes, rp_filter and conntrack bypass),
// then only moves packets:
//  1. Read a batch from the TUN device (the wireguard tun package splits the
//     kernel's GSO super-packets into segments).
//  2. Write the same batch back unchanged (the tun package coalesces runs of
//     one flow into super-packets again, GRO).
//  3. On SIGTERM or SIGINT close the device, remove the set-up, print the
//     counters and exit.
//
// It prints "identity-tun: ready" on standard output once the routing is in
// place. Run it inside the router's namespace, as root:
//
//	identity-tun -lan lan0 -wan wan0 -prefixes 10.91.1.0/24,fd91:1::/64
package main

import (
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"tcpcrypt-gw/gateway/netsetup"

	"golang.zx2c4.com/wireguard/tun"
)

// offset is the headroom in front of each packet; Write needs at least the
// virtio-net header's 10 bytes there. The gateway uses the same.
const offset = 16

// maxPacket is the largest packet (or coalesced super-packet) a buffer holds.
const maxPacket = 65535

func main() {
	lan := flag.String("lan", "lan0", "LAN interfaces, comma-separated")
	wan := flag.String("wan", "wan0", "WAN interfaces, comma-separated")
	prefixes := flag.String("prefixes", "", "LAN prefixes (conntrack bypass), comma-separated")
	name := flag.String("tun", "tcpcrypt0", "TUN device name")
	mtu := flag.Int("mtu", 1500, "TUN MTU")
	table := flag.Int("table", 7463, "routing table")
	prio := flag.Int("prio", 7463, "policy rule priority")
	flag.Parse()
	if err := run(*lan, *wan, *prefixes, *name, *mtu, *table, *prio); err != nil {
		fmt.Fprintln(os.Stderr, "identity-tun:", err)
		os.Exit(1)
	}
}

func split(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func run(lan, wan, prefixes, name string, mtu, table, prio int) error {
	var pfx []netip.Prefix
	for _, s := range split(prefixes) {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return err
		}
		pfx = append(pfx, p)
	}
	setup, err := netsetup.Apply(netsetup.Params{
		TUN: name, MTU: mtu, LAN: split(lan), WAN: split(wan), LANPrefixes: pfx,
		Table: table, RulePriority: prio, ConntrackBypass: netsetup.BypassAuto, IPv6: true,
	})
	if err != nil {
		return err
	}
	defer setup.Close()
	dev := setup.Device
	go func() {
		// The tun package's netlink listener blocks once this fills up.
		for range dev.Events() {
		}
	}()
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-sigs
		dev.Close()
	}()
	fmt.Println("identity-tun: ready")

	bs := dev.BatchSize()
	bufs := make([][]byte, bs)
	out := make([][]byte, bs)
	sizes := make([]int, bs)
	for i := range bufs {
		bufs[i] = make([]byte, offset+maxPacket)
	}
	var reads, pktsIn, writes, bytes uint64
	defer func() {
		fmt.Printf("identity-tun: %d reads, %d packets read, %d bytes, %d write calls\n", reads, pktsIn, bytes, writes)
	}()
	for {
		// 1. A batch (one read(2) of up to a 64 KiB super-packet, split).
		n, err := dev.Read(bufs, sizes, offset)
		switch {
		case errors.Is(err, os.ErrClosed):
			return nil
		case errors.Is(err, tun.ErrTooManySegments):
			continue
		case err != nil:
			return fmt.Errorf("read: %w", err)
		}
		reads++
		pktsIn += uint64(n)
		// 2. Back out as it came; the slices keep their capacity, which
		// Write uses to coalesce.
		for i := 0; i < n; i++ {
			out[i] = bufs[i][:offset+sizes[i]]
			bytes += uint64(sizes[i])
		}
		writes++
		if _, err := dev.Write(out[:n], offset); err != nil {
			if errors.Is(err, os.ErrClosed) {
				return nil
			}
			// A packet the kernel refuses (for instance while routes
			// change) is dropped, like a router would.
			continue
		}
	}
}
