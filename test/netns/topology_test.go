package netns

import (
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

// TestTopology builds the standard topology without gateways and checks
// plain forwarding through it: IPv4 and IPv6 to the server and the legacy
// host, the NAT of gwa, and the port forward.
func TestTopology(t *testing.T) {
	requireRoot(t)
	const prefix = "tcgwtopotest"
	pf := &PortForward{WANPort: 8080, ClientPort: 9090}
	topo, err := NewTopology(prefix, TopologyOptions{PortForward: pf})
	if err != nil {
		t.Fatal(err)
	}
	closed := false
	t.Cleanup(func() {
		if !closed {
			topo.Close()
		}
	})
	if got := len(topo.All()); got != 7 {
		t.Fatalf("%d namespaces, want 7", got)
	}
	left, _ := Leftovers(prefix)
	if len(left) != 7 {
		t.Fatalf("Leftovers(%s) = %v, want the 7 namespaces", prefix, left)
	}

	t.Run("IPv4 to server is NATed", func(t *testing.T) {
		src := tcpCheck(t, topo.Server, topo.Client, topo.ServerAddr4, 0)
		if src != topo.GwAWANAddr4 {
			t.Errorf("server saw %v, want gwa's WAN address %v", src, topo.GwAWANAddr4)
		}
	})
	t.Run("IPv6 to server is routed", func(t *testing.T) {
		src := tcpCheck(t, topo.Server, topo.Client, topo.ServerAddr6, 0)
		if src != topo.ClientAddr6 {
			t.Errorf("server saw %v, want the client's address %v", src, topo.ClientAddr6)
		}
	})
	t.Run("legacy", func(t *testing.T) {
		if src := tcpCheck(t, topo.Legacy, topo.Client, topo.LegacyAddr4, 0); src != topo.GwAWANAddr4 {
			t.Errorf("legacy saw %v, want %v", src, topo.GwAWANAddr4)
		}
		if src := tcpCheck(t, topo.Legacy, topo.Client, topo.LegacyAddr6, 0); src != topo.ClientAddr6 {
			t.Errorf("legacy saw %v, want %v", src, topo.ClientAddr6)
		}
	})
	t.Run("IPv6 inbound to client", func(t *testing.T) {
		if src := tcpCheck(t, topo.Client, topo.Server, topo.ClientAddr6, 0); src != topo.ServerAddr6 {
			t.Errorf("client saw %v, want %v", src, topo.ServerAddr6)
		}
	})
	t.Run("port forward", func(t *testing.T) {
		listen := netip.AddrPortFrom(netip.IPv4Unspecified(), pf.ClientPort)
		dial := netip.AddrPortFrom(topo.GwAWANAddr4, pf.WANPort)
		if src := tcpCheckVia(t, topo.Client, listen, topo.Client2, dial); src != topo.Client2Addr4 {
			t.Errorf("client saw %v, want client2's address %v", src, topo.Client2Addr4)
		}
	})
	t.Run("routers filter reverse paths", func(t *testing.T) {
		for _, r := range []*NS{topo.GwA, topo.Wan, topo.GwB} {
			out, err := r.Run(t.Context(), "cat", "/proc/sys/net/ipv4/conf/all/rp_filter", "/proc/sys/net/ipv4/ip_forward")
			if err != nil || strings.Fields(string(out))[0] != "1" || strings.Fields(string(out))[1] != "1" {
				t.Errorf("%s: rp_filter, ip_forward = %q, %v", r.Name, out, err)
			}
		}
	})

	if err := topo.Close(); err != nil {
		t.Fatal(err)
	}
	closed = true
	if err := topo.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if left, _ := Leftovers(prefix); len(left) > 0 {
		t.Fatalf("Leftovers after Close: %v", left)
	}
}

// TestTopologyWithoutPortForward checks that the port forward is optional:
// without it, gwa's WAN port is not forwarded to the client.
func TestTopologyWithoutPortForward(t *testing.T) {
	requireRoot(t)
	const prefix = "tcgwtopotest2"
	topo, err := NewTopology(prefix, TopologyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := topo.Close(); err != nil {
			t.Error(err)
		}
		if left, _ := Leftovers(prefix); len(left) > 0 {
			t.Errorf("Leftovers after Close: %v", left)
		}
	}()
	out, err := topo.GwA.Run(t.Context(), "nft", "list", "table", "ip", NATTable)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), "masquerade") || strings.Contains(string(out), "dnat") {
		t.Errorf("gwa NAT table:\n%s", out)
	}
	if !slices.Contains(topo.GwALANPrefixes, netip.MustParsePrefix("10.91.1.0/24")) {
		t.Errorf("GwALANPrefixes = %v", topo.GwALANPrefixes)
	}
}

// TestTopologyPartialFailure checks that a build failing half-way leaves
// nothing behind.
func TestTopologyPartialFailure(t *testing.T) {
	requireRoot(t)
	if _, err := NewTopology("bad prefix", TopologyOptions{}); err == nil {
		t.Fatal("NewTopology accepted a prefix with a space")
	}
	const prefix = "tcgwtopotest3"
	failAtStep = 20 // after the links, among the addresses
	defer func() { failAtStep = -1 }()
	if _, err := NewTopology(prefix, TopologyOptions{}); !errors.Is(err, errInjected) {
		t.Fatalf("NewTopology = %v, want the injected failure", err)
	}
	if left, _ := Leftovers(prefix); len(left) > 0 {
		t.Fatalf("left behind: %v", left)
	}
}
