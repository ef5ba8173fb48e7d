package e2e

// Reordering on the LAN side (issue 10): a veth device queues each packet on
// the backlog of the CPU that sent it, so a LAN host that moves between
// CPUs can overtake its own super-packets on the way to gateway A. The
// gateway must wait for the hole to fill, as the receiving TCP would, and
// not drop what came early: before it did, each such overtaking cost the
// sender a retransmission timeout and a slow start.
//
// The test puts a host behind the client namespace, which routes it (NAT to
// the client's address) through tcpcrypt-impair:
//
//	lanhost --lh0/lh1-- client [tcpcrypt-impair: reorder] --eth0-- gwa ... gwb -- server
//
// and sends 32 MiB to the server with 3 % of the packets held back 1 ms.

import (
	"fmt"
	"testing"
	"time"

	"tcpcrypt-gw/test/impair"
	"tcpcrypt-gw/test/netns"
)

func TestLANReorderingNoTimeouts(t *testing.T) {
	e := newEnv(t, envOptions{})
	host := lanHostBehindClient(t, e)
	im := e.startImpairerIn(e.topo.Client, "impair-lan.log", "--iface", "lh1", "--tcp-only", "--ipv6=false",
		"--tun", "impairl0", "--seed", "11", "--reorder", "3", "--reorder-delay", "1ms")
	defer im.stop()
	// The impairer sets its TUN's rp_filter loose; a device without an
	// IPv4 address fails even the loose check (the kernel's last resort),
	// and the client has all.rp_filter off: off on the TUN too.
	if err := e.topo.Client.Sysctl("net.ipv4.conf.impairl0.rp_filter", "0"); err != nil {
		t.Fatalf("rp_filter: %v", err)
	}

	const size = 32 << 20
	addr := fmt.Sprintf("%s:9404", e.topo.ServerAddr4)
	l := listen(t, e.topo.Server, "0.0.0.0:9404")
	defer l.Close()
	before := rtos(t, host)
	start := time.Now()
	transfer(t, l, host, addr, size, 0, 86)
	took, timeouts := time.Since(start), rtos(t, host)-before

	if f := flowWithPort(e.flows(e.topo.GwA), 9404); f == nil || !f.Encrypted {
		t.Fatalf("not encrypted through the gateways: %+v", f)
	}
	reordered := im.stats()[impair.DefaultName].Counts[impair.Reordered]
	st := e.stats(e.topo.GwA)
	t.Logf("32 MiB in %v: the impairer reordered %d packets, gateway A queued %d segments beyond a LAN hole, %d buffer drops, the sender timed out %d times",
		took, reordered, st.LANReordered, st.BufferDrops, timeouts)
	// Plain TCP needs no timeout for reordering; allow a few for the
	// random scheduling of four processes on two cores.
	if timeouts > 3 {
		t.Errorf("the sender timed out %d times: segments that overtook others were lost at the gateway", timeouts)
	}
	if reordered == 0 || st.LANReordered == 0 {
		t.Fatalf("no reordering reached gateway A (impairer %d, gateway %d): the test proves nothing", reordered, st.LANReordered)
	}
}

// lanHostBehindClient adds a namespace routed through the client: its
// packets enter the client on lh1 (where an impairer can catch them) and
// leave on eth0 masqueraded to the client's address, so that gateway A
// sees them as the client's. It is removed when the test ends.
func lanHostBehindClient(t *testing.T, e *env) *netns.NS {
	t.Helper()
	host, err := netns.New(nsPrefix)
	if err != nil {
		t.Fatalf("namespace: %v", err)
	}
	t.Cleanup(func() {
		if err := host.Close(); err != nil {
			t.Errorf("close %s: %v", host.Name, err)
		}
	})
	c := e.topo.Client
	for _, err := range []error{
		netns.Veth(host, "lh0", c, "lh1"),
		host.Addr("lh0", "10.91.9.2/24"),
		c.Addr("lh1", "10.91.9.1/24"),
		host.Route("default", "10.91.9.1"),
		c.Sysctl("net.ipv4.ip_forward", "1"),
	} {
		if err != nil {
			t.Fatalf("lan host set-up: %v", err)
		}
	}
	// The impairer sends lh1's packets through its TUN and back: conntrack
	// must first see them there, where they leave by eth0 and get their
	// NAT, not on lh1 (a NEW packet bound for the TUN gets no NAT, and
	// conntrack keeps that decision).
	rules := `table ip lanhost {
	chain raw { type filter hook prerouting priority raw; iifname "lh1" notrack; }
	chain nat { type nat hook postrouting priority srcnat; oifname "eth0" ip saddr 10.91.9.0/24 masquerade; }
}`
	if out, err := c.RunStdin(rules, "nft", "-f", "-"); err != nil {
		t.Fatalf("nft: %v: %s", err, out)
	}
	return host
}
