// Firewall coexistence: the gateways under a ruleset shaped like OpenWrt's
// firewall4 (the structure of firewall4's templates/ruleset.uc: table inet
// fw4, zone chains reached by jumps, policy drop on input and forward,
// `ct state invalid drop`, masquerade in srcnat for the wan zone, MSS
// clamping `tcp flags syn tcp option maxseg size set rt mtu` in
// mangle_forward, port forwards as dnat with `ct status dnat accept`),
// written with the test topology's interface names.
//
// The TUN device is listed in the lan zone, as docs/deploy.md tells an
// OpenWrt user to do: steered TCP crosses the forward hook twice (LAN or
// WAN interface -> TUN, TUN -> the other interface), and fw4 drops a
// forward into a device of no zone.
//
// With TCPCRYPT_E2E_FIREWALL=fw4 in the environment every end-to-end test
// runs with it (newEnv loads it into both gateways); `make test` runs the
// suite a second time so. TestFirewall4 runs a representative set with it
// in every plain `go test` run too.
package e2e

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"tcpcrypt-gw/test/netns"
)

// withFirewall4 is set while TestFirewall4 runs its cases (the e2e tests
// do not run in parallel).
var withFirewall4 = os.Getenv("TCPCRYPT_E2E_FIREWALL") == "fw4"

// fw4Zone is what the ruleset of one gateway needs to know.
type fw4Zone struct {
	masq bool // masquerade IPv4 leaving on the wan zone (gwa, the NAT router)
	// portForward, when not empty, is a dnat rule of the wan zone
	// (`config redirect` in /etc/config/firewall).
	portForward string
	// allowToLAN lists LAN prefixes the wan zone may open connections to
	// (a `config rule` with src wan, dest lan, proto tcp).
	allowToLAN []string
	// tunOutsideZones leaves the TUN device out of the lan zone (a
	// misconfiguration TestFirewall4NeedsTUNInZone shows).
	tunOutsideZones bool
}

// firewall4Ruleset is the fw4 ruleset for one gateway.
func firewall4Ruleset(z fw4Zone) string {
	lanDevs := fmt.Sprintf(`{ %q, %q }`, netns.LANIf, tunName)
	if z.tunOutsideZones {
		lanDevs = fmt.Sprintf("%q", netns.LANIf)
	}
	srcnat := ""
	if z.masq {
		srcnat = `meta nfproto ipv4 masquerade comment "!fw4: Masquerade IPv4 wan traffic"`
	}
	allow := ""
	for _, p := range z.allowToLAN {
		fam := "ip"
		if strings.Contains(p, ":") {
			fam = "ip6"
		}
		allow += fmt.Sprintf("\t\tmeta l4proto tcp %s daddr %s counter jump accept_to_lan comment \"!fw4: Allow-Servers\"\n", fam, p)
	}
	dnat, dnatAccept := "", ""
	if z.portForward != "" {
		dnat = "\t\t" + z.portForward + " comment \"!fw4: Forward\"\n"
		dnatAccept = "\t\tct status dnat accept comment \"!fw4: Accept port forwards\"\n"
	}
	return fmt.Sprintf(`
table inet fw4 {
	chain input {
		type filter hook input priority filter; policy drop;
		iifname "lo" accept comment "!fw4: Accept traffic from loopback"
		ct state invalid drop comment "!fw4: Drop flows with invalid conntrack state"
		ct state vmap { established : accept, related : accept } comment "!fw4: Handle inbound flows"
		tcp flags syn / fin,syn,rst,ack jump syn_flood comment "!fw4: Rate limit TCP syn packets"
		iifname %[1]s jump input_lan comment "!fw4: Handle lan IPv4/IPv6 input traffic"
		iifname %[2]q jump input_wan comment "!fw4: Handle wan IPv4/IPv6 input traffic"
	}
	chain forward {
		type filter hook forward priority filter; policy drop;
		ct state invalid drop comment "!fw4: Drop flows with invalid conntrack state"
		ct state vmap { established : accept, related : accept } comment "!fw4: Handle forwarded flows"
		iifname %[1]s jump forward_lan comment "!fw4: Handle lan IPv4/IPv6 forward traffic"
		iifname %[2]q jump forward_wan comment "!fw4: Handle wan IPv4/IPv6 forward traffic"
		jump handle_reject
	}
	chain output {
		type filter hook output priority filter; policy accept;
		oifname "lo" accept comment "!fw4: Accept traffic towards loopback"
		ct state vmap { established : accept, related : accept } comment "!fw4: Handle outbound flows"
		oifname %[1]s jump output_lan comment "!fw4: Handle lan IPv4/IPv6 output traffic"
		oifname %[2]q jump output_wan comment "!fw4: Handle wan IPv4/IPv6 output traffic"
	}
	chain prerouting {
		type filter hook prerouting priority filter; policy accept;
	}
	chain handle_reject {
		meta l4proto tcp reject with tcp reset comment "!fw4: Reject TCP traffic"
		reject comment "!fw4: Reject any other traffic"
	}
	chain syn_flood {
		limit rate 25/second burst 50 packets return comment "!fw4: Accept SYN packets below rate-limit"
		drop comment "!fw4: Drop excess packets"
	}
	chain input_lan {
		jump accept_from_lan
	}
	chain output_lan {
		jump accept_to_lan
	}
	chain forward_lan {
		jump accept_to_wan comment "!fw4: Accept lan to wan forwarding"
		jump accept_to_lan
	}
	chain accept_from_lan {
		iifname %[1]s counter accept comment "!fw4: accept lan IPv4/IPv6 traffic"
	}
	chain accept_to_lan {
		oifname %[1]s counter accept comment "!fw4: accept lan IPv4/IPv6 traffic"
	}
	chain input_wan {
		meta nfproto ipv4 udp dport 68 counter accept comment "!fw4: Allow-DHCP-Renew"
		icmp type echo-request counter accept comment "!fw4: Allow-Ping"
		meta nfproto ipv6 icmpv6 type { destination-unreachable, time-exceeded, echo-request, echo-reply, nd-router-solicit, nd-router-advert } limit rate 1000/second counter accept comment "!fw4: Allow-ICMPv6-Input"
		meta nfproto ipv6 icmpv6 type . icmpv6 code { packet-too-big . 0, parameter-problem . 0, nd-neighbor-solicit . 0, nd-neighbor-advert . 0, parameter-problem . 1 } limit rate 1000/second counter accept comment "!fw4: Allow-ICMPv6-Input"
		jump reject_from_wan
	}
	chain output_wan {
		jump accept_to_wan
	}
	chain forward_wan {
		meta nfproto ipv6 icmpv6 type { destination-unreachable, time-exceeded, echo-request, echo-reply } limit rate 1000/second counter accept comment "!fw4: Allow-ICMPv6-Forward"
		meta nfproto ipv6 icmpv6 type . icmpv6 code { packet-too-big . 0, parameter-problem . 0, parameter-problem . 1 } limit rate 1000/second counter accept comment "!fw4: Allow-ICMPv6-Forward"
%[3]s%[4]s		jump reject_to_lan
	}
	chain accept_to_wan {
		meta nfproto ipv4 oifname %[2]q ct state invalid counter drop comment "!fw4: Prevent NAT leakage"
		oifname %[2]q counter accept comment "!fw4: accept wan IPv4/IPv6 traffic"
	}
	chain reject_from_wan {
		iifname %[2]q counter jump handle_reject comment "!fw4: reject wan IPv4/IPv6 traffic"
	}
	chain reject_to_lan {
		oifname %[1]s counter jump handle_reject comment "!fw4: reject lan IPv4/IPv6 traffic"
	}
	chain dstnat {
		type nat hook prerouting priority dstnat; policy accept;
		iifname %[2]q jump dstnat_wan comment "!fw4: Handle wan IPv4/IPv6 dstnat traffic"
	}
	chain dstnat_wan {
%[5]s	}
	chain srcnat {
		type nat hook postrouting priority srcnat; policy accept;
		oifname %[2]q jump srcnat_wan comment "!fw4: Handle wan IPv4/IPv6 srcnat traffic"
	}
	chain srcnat_wan {
		%[6]s
	}
	chain raw_prerouting {
		type filter hook prerouting priority raw; policy accept;
	}
	chain raw_output {
		type filter hook output priority raw; policy accept;
	}
	chain mangle_prerouting {
		type filter hook prerouting priority mangle; policy accept;
	}
	chain mangle_postrouting {
		type filter hook postrouting priority mangle; policy accept;
	}
	chain mangle_input {
		type filter hook input priority mangle; policy accept;
	}
	chain mangle_output {
		type route hook output priority mangle; policy accept;
	}
	chain mangle_forward {
		type filter hook forward priority mangle; policy accept;
		iifname %[2]q tcp flags syn tcp option maxseg size set rt mtu comment "!fw4: Zone wan IPv4/IPv6 ingress MTU fixing"
		oifname %[2]q tcp flags syn tcp option maxseg size set rt mtu comment "!fw4: Zone wan IPv4/IPv6 egress MTU fixing"
	}
}
`, lanDevs, netns.WANIf, allow, dnatAccept, dnat, srcnat)
}

// tunName is the TUN device of gatewayYAML.
const tunName = "tcgw0"

// loadFirewall4 replaces the topology's own NAT in gateway A by fw4's and
// loads fw4 into both gateways. It runs before the gateways start, as
// the firewall does on a router that boots.
func loadFirewall4(t *testing.T, topo *netns.Topology) {
	loadFirewall4Zones(t, topo, false)
}

func loadFirewall4Zones(t *testing.T, topo *netns.Topology, tunOutsideZones bool) {
	t.Helper()
	if out, err := topo.GwA.Run(t.Context(), "nft", "delete", "table", "ip", netns.NATTable); err != nil {
		t.Fatalf("remove the topology's NAT: %v: %s", err, out)
	}
	a := fw4Zone{masq: true, tunOutsideZones: tunOutsideZones}
	if pf := topo.PortForward; pf != nil {
		a.portForward = fmt.Sprintf("meta nfproto ipv4 tcp dport %d counter dnat ip to %s:%d", pf.WANPort, topo.ClientAddr4, pf.ClientPort)
	}
	// Gateway B routes its LAN without NAT, so the WAN side reaches its
	// hosts by a traffic rule, as a server network on OpenWrt would.
	b := fw4Zone{allowToLAN: []string{"10.91.5.0/24", "fd91:5::/64"}, tunOutsideZones: tunOutsideZones}
	// The IPv6 LAN of gateway A is routed too (only IPv4 is NATed).
	a.allowToLAN = []string{"fd91:1::/64"}
	for _, g := range []struct {
		ns *netns.NS
		z  fw4Zone
	}{{topo.GwA, a}, {topo.GwB, b}} {
		if out, err := g.ns.RunStdin(firewall4Ruleset(g.z), "nft", "-f", "-"); err != nil {
			t.Fatalf("load fw4 ruleset in %s: %v: %s", g.ns.Name, err, out)
		}
	}
}

// TestFirewall4 runs representative end-to-end cases with the fw4-shaped
// ruleset in both gateways: an encrypted transfer checked byte for byte
// (with HTTP), a legacy server (plain), an inbound connection through the
// port forward, resumption, and IPv6. Each case is the existing test,
// unchanged, in a topology where newEnv loaded fw4.
func TestFirewall4(t *testing.T) {
	if withFirewall4 {
		t.Skip("TCPCRYPT_E2E_FIREWALL=fw4: every test already runs with fw4")
	}
	withFirewall4 = true
	t.Cleanup(func() { withFirewall4 = false })
	for _, c := range []struct {
		name string
		run  func(*testing.T)
	}{
		{"Encrypted", TestEncryptedThroughBothGateways},
		{"LegacyPlain", TestLegacyServerIsPlain},
		{"PortForward", TestInboundThroughPortForward},
		{"Resumption", TestResumption},
		{"IPv6", TestIPv6},
		{"ConnectionSemantics", TestConnectionSemantics},
	} {
		t.Run(c.name, c.run)
	}
}

// TestFirewall4Loaded checks that the fw4 ruleset really is in force when
// the cases above run: its counters moved for forwarded traffic, and a
// connection from the WAN to gateway A's LAN that no rule allows is
// refused.
func TestFirewall4Loaded(t *testing.T) {
	saved := withFirewall4
	withFirewall4 = true
	t.Cleanup(func() { withFirewall4 = saved })
	e := newEnv(t, envOptions{})
	l := listen(t, e.topo.Server, "0.0.0.0:9100")
	transfer(t, l, e.topo.Client, fmt.Sprintf("%s:9100", e.topo.ServerAddr4), 1<<20, 1<<20, 7)
	out, err := e.topo.GwA.Run(t.Context(), "nft", "list", "chain", "inet", "fw4", "accept_to_wan")
	if err != nil {
		t.Fatalf("nft list: %v: %s", err, out)
	}
	if !strings.Contains(string(out), "oifname \"wan0\" counter packets") || strings.Contains(string(out), "oifname \"wan0\" counter packets 0 ") {
		t.Errorf("fw4's accept_to_wan counted no packets:\n%s", out)
	}
	out, err = e.topo.GwA.Run(t.Context(), "nft", "list", "chain", "inet", "fw4", "srcnat_wan")
	if err != nil || !strings.Contains(string(out), "masquerade") {
		t.Fatalf("fw4 srcnat_wan: %v\n%s", err, out)
	}
	// The topology's own NAT table is gone: fw4 did the masquerading.
	if _, err := e.topo.GwA.Run(t.Context(), "nft", "list", "table", "ip", netns.NATTable); err == nil {
		t.Error("the topology's NAT table is still there")
	}
	// Client2 behind gateway B may not open a connection to gateway A's
	// IPv4 LAN: fw4 rejects it (only the port forward is allowed).
	probe := listen(t, e.topo.Client, "0.0.0.0:9101")
	probe.Close()
	if c, err := dial(e.topo.Client2, fmt.Sprintf("%s:9101", e.topo.GwAWANAddr4)); err == nil {
		c.Close()
		t.Error("a connection to gateway A's WAN address on a port without a forward was accepted")
	}
}

// TestFirewall4NeedsTUNInZone is the negative control of the set-up
// docs/deploy.md asks for: with the TUN device in no zone, fw4's forward
// chain rejects the first forward of every steered connection (LAN -> TUN),
// so connections fail instead of passing unencrypted. It also shows that
// the cases above really ran under fw4's forward policy.
func TestFirewall4NeedsTUNInZone(t *testing.T) {
	topo := newBareTopology(t)
	e := &env{t: t, topo: topo, logs: t.TempDir()}
	t.Cleanup(func() { // before the topology goes (cleanups run last first)
		for _, p := range []*netns.Proc{e.gwA, e.gwB} {
			if p != nil {
				p.Stop()
			}
		}
	})
	loadFirewall4Zones(t, topo, true)
	e.gwA = e.startGateway(topo.GwA, "gwa", gatewayYAML([]string{"10.91.1.0/24", "fd91:1::/64"}, ""))
	e.gwB = e.startGateway(topo.GwB, "gwb", gatewayYAML([]string{"10.91.5.0/24", "fd91:5::/64"}, ""))
	l := listen(t, topo.Server, "0.0.0.0:9102")
	defer l.Close()
	c, err := dial(topo.Client, fmt.Sprintf("%s:9102", topo.ServerAddr4))
	if err == nil {
		c.Close()
		t.Fatal("with the TUN device in no zone a steered connection was still opened")
	}
	if !strings.Contains(err.Error(), "refused") {
		t.Errorf("dial: %v, want fw4's TCP reset (connection refused)", err)
	}
}
