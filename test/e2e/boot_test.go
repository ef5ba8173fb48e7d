// Boot and hotplug: the gateway starts while its interfaces are not ready
// and keeps working while they come and go, as on a router at boot and
// after every ifup (docs/deploy.md, "Boot and hotplug").
//   - TestStartBeforeDAD: gateway B starts while the IPv6 addresses of its
//     LAN interface are tentative (duplicate address detection on); it
//     stays up, its session endpoint binds them once DAD is done, and
//     connections through it are encrypted.
//   - TestWANAppearsLater: gateway B starts without its WAN interface and
//     encrypts once the interface appears.
//   - TestInterfacesRecreated: gateway B's WAN interface, then its LAN
//     bridge, are deleted and re-created (new interface indexes) under the
//     running gateway; after each, connections are encrypted again with
//     every byte checked, and the session endpoint is back on the new LAN
//     interface's addresses.
package e2e

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"tcpcrypt-gw/gateway/lanapi"
	"tcpcrypt-gw/test/netns"
)

// gwBYAML is gateway B's configuration, as newEnv writes it.
func gwBYAML() string { return gatewayYAML([]string{"10.91.5.0/24", "fd91:5::/64"}, "") }

// ipAddrs is `ip -o addr show dev` inside ns.
func ipAddrs(t *testing.T, ns *netns.NS, dev string) string {
	t.Helper()
	out, err := ns.Run(context.Background(), "ip", "-o", "addr", "show", "dev", dev)
	if err != nil {
		t.Fatalf("ip addr show dev %s: %v: %s", dev, err, out)
	}
	return string(out)
}

var linkLocalRE = regexp.MustCompile(`inet6 (fe80::[0-9a-f:]+)/64`)

// linkLocal is dev's IPv6 link-local address inside ns, its zone the
// interface's index: the test process spans namespaces that all have a
// lan0, and Go's cache of zone names would mix them up.
func linkLocal(t *testing.T, ns *netns.NS, dev string) netip.Addr {
	t.Helper()
	out := ipAddrs(t, ns, dev)
	m := linkLocalRE.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("%s has no link-local address:\n%s", dev, out)
	}
	return netip.MustParseAddr(m[1]).WithZone(strings.SplitN(out, ":", 2)[0])
}

// endpointUp checks that the session endpoint answers at hostport from
// inside ns (a "no such connection" answer is an answer). A plain
// HTTP/1.0 request: a URL cannot carry a link-local zone unescaped.
func endpointUp(ns *netns.NS, hostport string) error {
	var reply []byte
	err := ns.Do(func() error {
		c, err := net.DialTimeout("tcp", hostport, 2*time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := fmt.Fprintf(c, "GET %s?local=10.91.5.9:1&remote=10.91.3.9:1 HTTP/1.0\r\n\r\n", lanapi.Path); err != nil {
			return err
		}
		reply, err = io.ReadAll(io.LimitReader(c, 4096))
		return err
	})
	if err == nil && !(strings.HasPrefix(string(reply), "HTTP/1.") && strings.Contains(string(reply), lanapi.NotFound)) {
		err = fmt.Errorf("unexpected answer %q", reply)
	}
	return err
}

// waitEndpoint waits (at most 20 s) until gateway B's session endpoint
// answers at every one of addrs, asked from gateway B's namespace.
func waitEndpoint(t *testing.T, e *env, addrs ...string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for _, a := range addrs {
		for err := endpointUp(e.topo.GwB, a); err != nil; err = endpointUp(e.topo.GwB, a) {
			if time.Now().After(deadline) {
				t.Fatalf("the session endpoint does not answer at %s: %v\n%s", a, err, ipAddrs(t, e.topo.GwB, netns.LANIf))
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}

// checkAlive fails the test if gateway B has exited.
func checkAlive(t *testing.T, e *env) {
	t.Helper()
	select {
	case <-e.gwB.Done():
		t.Fatalf("gateway B exited: %v", e.gwB.Wait())
	default:
	}
}

// encryptedTransfer sends 4 MiB each way between client and server:port
// (IPv4, and IPv6 on port+1), checking every byte and that both gateways
// encrypted both connections with the same session ID.
func encryptedTransfer(t *testing.T, e *env, port int, seed uint64) {
	t.Helper()
	for i, addr := range []netip.Addr{e.topo.ServerAddr4, e.topo.ServerAddr6} {
		p := port + i
		l := listen(t, e.topo.Server, net.JoinHostPort(addr.String(), fmt.Sprint(p)))
		transfer(t, l, e.topo.Client, net.JoinHostPort(addr.String(), fmt.Sprint(p)), 4<<20, 4<<20, seed+uint64(i))
		fa, fb := flowWithPort(e.flows(e.topo.GwA), p), flowWithPort(e.flows(e.topo.GwB), p)
		if fa == nil || fb == nil || !fa.Encrypted || !fb.Encrypted || fa.SessionID == "" || fa.SessionID != fb.SessionID {
			t.Fatalf("port %d: gateway A %+v\ngateway B %+v\nwant both encrypted, one session ID", p, fa, fb)
		}
	}
}

func TestStartBeforeDAD(t *testing.T) {
	e := newEnv(t, envOptions{})
	gwb := e.topo.GwB
	if err := e.gwB.Stop(); err != nil {
		t.Fatalf("stop gateway B: %v", err)
	}
	// As at boot: lan0 comes up with DAD on (3 probes, 1 s apart, after a
	// random delay of up to 1 s), its addresses tentative meanwhile, and
	// the gateway starts at once.
	for _, kv := range [][2]string{{"accept_dad", "1"}, {"dad_transmits", "3"}} {
		if err := gwb.Sysctl("net.ipv6.conf."+netns.LANIf+"."+kv[0], kv[1]); err != nil {
			t.Fatal(err)
		}
	}
	for _, args := range [][]string{{"link", "set", netns.LANIf, "down"}, {"link", "set", netns.LANIf, "up"},
		{"addr", "add", e.topo.GwBLANAddr6.String() + "/64", "dev", netns.LANIf}} {
		if out, err := gwb.Run(context.Background(), "ip", args...); err != nil {
			t.Fatalf("ip %v: %v: %s", args, err, out)
		}
	}
	if before := ipAddrs(t, gwb, netns.LANIf); !strings.Contains(before, "tentative") {
		t.Fatalf("no IPv6 address of lan0 is tentative; the test does not test DAD:\n%s", before)
	}
	e.gwB = e.startGateway(gwb, "gwb", gwBYAML())
	startedDuringDAD := strings.Contains(ipAddrs(t, gwb, netns.LANIf), "tentative")
	t.Logf("gateway B up; lan0 still tentative then: %v", startedDuringDAD)

	// Once DAD is done, the endpoint is on all three addresses.
	ll := linkLocal(t, gwb, netns.LANIf)
	waitEndpoint(t, e, net.JoinHostPort(e.topo.GwBLANAddr4.String(), "8474"),
		net.JoinHostPort(e.topo.GwBLANAddr6.String(), "8474"),
		net.JoinHostPort(ll.String(), "8474"))
	if strings.Contains(ipAddrs(t, gwb, netns.LANIf), "tentative") {
		t.Fatalf("the endpoint answered on a tentative address:\n%s", ipAddrs(t, gwb, netns.LANIf))
	}
	checkAlive(t, e)
	encryptedTransfer(t, e, 9700, 70)
	checkAlive(t, e)
}

func TestInterfacesRecreated(t *testing.T) {
	e := newEnv(t, envOptions{})
	gwb, topo := e.topo.GwB, e.topo
	encryptedTransfer(t, e, 9710, 71)
	ifindex := func(dev string) string {
		t.Helper()
		return strings.SplitN(ipAddrs(t, gwb, dev), ":", 2)[0]
	}

	// 1. The WAN link goes away (with its veth peer on the wan router) and
	// comes back as a new interface of the same name, configured again as
	// netifd would.
	oldWAN := ifindex(netns.WANIf)
	if err := gwb.Link("del", netns.WANIf); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	checkAlive(t, e)
	addWAN(t, e)
	if newWAN := ifindex(netns.WANIf); newWAN == oldWAN {
		t.Fatalf("wan0 kept its index %s", oldWAN)
	}
	encryptedTransfer(t, e, 9720, 72)
	checkAlive(t, e)

	// 2. The LAN bridge goes away and comes back (new index; its link-local
	// address may be the same one, on the new interface).
	waitEndpoint(t, e, net.JoinHostPort(linkLocal(t, gwb, netns.LANIf).String(), "8474"))
	oldLAN := ifindex(netns.LANIf)
	if err := gwb.Link("del", netns.LANIf); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	checkAlive(t, e)
	steps := []func() error{
		func() error { return gwb.Link("add", netns.LANIf, "type", "bridge") },
		func() error { return gwb.Link("set", "srv0", "master", netns.LANIf) },
		func() error { return gwb.Link("set", "cl2", "master", netns.LANIf) },
		func() error { return gwb.Link("set", netns.LANIf, "up") },
		func() error { return gwb.Addr(netns.LANIf, topo.GwBLANAddr4.String()+"/24") },
		func() error { return gwb.Addr(netns.LANIf, topo.GwBLANAddr6.String()+"/64") },
	}
	for _, s := range steps {
		if err := s(); err != nil {
			t.Fatalf("re-creating lan0: %v", err)
		}
	}
	if newLAN := ifindex(netns.LANIf); newLAN == oldLAN {
		t.Fatalf("lan0 kept its index %s", oldLAN)
	}
	// The link-local address appears once the bridge has carrier.
	deadline := time.Now().Add(10 * time.Second)
	for !linkLocalRE.MatchString(ipAddrs(t, gwb, netns.LANIf)) {
		if time.Now().After(deadline) {
			t.Fatalf("the new lan0 has no link-local address:\n%s", ipAddrs(t, gwb, netns.LANIf))
		}
		time.Sleep(100 * time.Millisecond)
	}
	waitEndpoint(t, e, net.JoinHostPort(topo.GwBLANAddr4.String(), "8474"),
		net.JoinHostPort(topo.GwBLANAddr6.String(), "8474"),
		net.JoinHostPort(linkLocal(t, gwb, netns.LANIf).String(), "8474"))
	encryptedTransfer(t, e, 9730, 73)
	checkAlive(t, e)
}

// addWAN creates gateway B's WAN link (with its veth peer on the wan
// router) and configures both ends as netifd would: addresses and routes.
func addWAN(t *testing.T, e *env) {
	t.Helper()
	gwb, wan, topo := e.topo.GwB, e.topo.Wan, e.topo
	steps := []func() error{
		func() error { return netns.Veth(wan, "gwb0", gwb, netns.WANIf) },
		func() error { return wan.Addr("gwb0", topo.WanGwBAddr4.String()+"/24") },
		func() error { return wan.Addr("gwb0", topo.WanGwBAddr6.String()+"/64") },
		func() error { return gwb.Addr(netns.WANIf, topo.GwBWANAddr4.String()+"/24") },
		func() error { return gwb.Addr(netns.WANIf, topo.GwBWANAddr6.String()+"/64") },
		func() error { return wan.Route(topo.GwBLANPrefixes[0].String(), topo.GwBWANAddr4.String()) },
		func() error { return wan.Route(topo.GwBLANPrefixes[1].String(), topo.GwBWANAddr6.String()) },
		func() error { return gwb.Route("default", topo.WanGwBAddr4.String()) },
		func() error { return gwb.Route("default", topo.WanGwBAddr6.String()) },
	}
	for _, s := range steps {
		if err := s(); err != nil {
			t.Fatalf("creating wan0: %v", err)
		}
	}
}

// TestWANAppearsLater: gateway B starts while its WAN interface does not
// exist (a PPPoE or USB WAN at boot), says so, and encrypts once it
// appears.
func TestWANAppearsLater(t *testing.T) {
	e := newEnv(t, envOptions{})
	if err := e.gwB.Stop(); err != nil {
		t.Fatalf("stop gateway B: %v", err)
	}
	if err := e.topo.GwB.Link("del", netns.WANIf); err != nil {
		t.Fatal(err)
	}
	e.gwB = e.startGateway(e.topo.GwB, "gwb2", gwBYAML())
	time.Sleep(300 * time.Millisecond)
	checkAlive(t, e)
	if b, _ := os.ReadFile(filepath.Join(e.logs, "gwb2.log")); !strings.Contains(string(b), `interface does not exist (yet); it is steered as soon as it appears" interface=wan0`) {
		t.Errorf("gateway B's log does not name the missing wan0:\n%s", b)
	}
	addWAN(t, e)
	encryptedTransfer(t, e, 9740, 74)
	checkAlive(t, e)
}
