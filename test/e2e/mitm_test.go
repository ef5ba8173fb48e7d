// An active man in the middle on the wan: a relay that terminates tcpcrypt
// towards each gateway and forwards the plaintext between them. It is made
// of two tcpcrypt engines back to back (the project's own gateway: a
// kernel socket cannot put TCP-ENO into its SYNs, a rewriting engine can),
// in two namespaces the wan router sends the traffic through:
//
//	gwa --- wan --mx1-- m1 [tcpcrypt B towards gwa] --lan-- m2 [tcpcrypt A towards gwb] --mx2-- wan --- gwb
//
// Policy routes on the wan (iif gwa0 to gwb's LAN, iif gwb0 to gwa's NAT
// address) divert the packets; everything between m1 and m2 is plaintext.
// The connection works, both gateways say "encrypted", their session IDs
// differ, and the example programs, which compare them, fail; before the
// relay is in place they succeed.
package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"tcpcrypt-gw/test/netns"
)

// mitm diverts the wan traffic between the two gateways' IPv4 addresses
// through a tcpcrypt-terminating relay.
// It returns the relay's two halves.
func startMITM(t *testing.T, e *env) (m1, m2 *netns.NS) {
	t.Helper()
	var procs []*netns.Proc
	t.Cleanup(func() {
		for _, p := range procs {
			p.Stop()
		}
		if t.Failed() {
			for _, n := range []string{"m1.log", "m2.log"} {
				b, _ := os.ReadFile(filepath.Join(e.logs, n))
				t.Logf("---- %s\n%s", n, b)
			}
		}
		for _, n := range []*netns.NS{m1, m2} {
			if n != nil {
				if err := n.Close(); err != nil {
					t.Errorf("close %s: %v", n.Name, err)
				}
			}
		}
	})
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("relay set-up: %v", err)
		}
	}
	var err error
	m1, err = netns.New(nsPrefix)
	must(err)
	m2, err = netns.New(nsPrefix)
	must(err)
	w := e.topo.Wan
	must(netns.Veth(w, "mx1", m1, "wan0"))
	must(netns.Veth(m1, "lan0", m2, "lan0"))
	must(netns.Veth(m2, "wan0", w, "mx2"))
	for _, a := range []struct {
		ns       *netns.NS
		dev, pfx string
	}{
		{w, "mx1", "10.91.6.2/24"}, {m1, "wan0", "10.91.6.1/24"},
		{m1, "lan0", "10.91.7.1/24"}, {m2, "lan0", "10.91.7.2/24"},
		{m2, "wan0", "10.91.8.1/24"}, {w, "mx2", "10.91.8.2/24"},
	} {
		must(a.ns.Addr(a.dev, a.pfx))
	}
	for _, n := range []*netns.NS{m1, m2} {
		must(n.Sysctl("net.ipv4.ip_forward", "1"))
	}
	must(m1.Route("default", "10.91.6.2"))
	must(m1.Route("10.91.5.0/24", "10.91.7.2"))
	must(m2.Route("default", "10.91.8.2"))
	must(m2.Route("10.91.2.0/24", "10.91.7.1"))
	// The relay's gateways: m1 has the server's LAN behind it (role B
	// towards gwa), m2 the client's NAT address (role A towards gwb).
	procs = append(procs, e.startGateway(m1, "m1", gatewayYAML([]string{"10.91.5.0/24"}, "session_api:\n  listen: []\n")))
	procs = append(procs, e.startGateway(m2, "m2", gatewayYAML([]string{"10.91.2.0/24"}, "session_api:\n  listen: []\n")))

	// Divert on the wan. Packets come back from the relay on other
	// interfaces than their sources' routes: loose reverse-path filtering
	// for those (the kernel uses the larger of "all" and the interface's).
	ctx := context.Background()
	for _, args := range [][]string{
		{"sysctl", "-qw", "net.ipv4.conf.all.rp_filter=0"},
		{"sysctl", "-qw", "net.ipv4.conf.mx1.rp_filter=0"},
		{"sysctl", "-qw", "net.ipv4.conf.mx2.rp_filter=0"},
		{"sysctl", "-qw", "net.ipv4.conf.gwa0.rp_filter=1"},
		{"sysctl", "-qw", "net.ipv4.conf.gwb0.rp_filter=1"},
		{"ip", "route", "add", "10.91.5.0/24", "via", "10.91.6.1", "table", "7601"},
		{"ip", "route", "add", "10.91.2.0/24", "via", "10.91.8.1", "table", "7602"},
		{"ip", "rule", "add", "iif", "gwa0", "to", "10.91.5.0/24", "table", "7601", "priority", "7601"},
		{"ip", "rule", "add", "iif", "gwb0", "to", "10.91.2.0/24", "table", "7602", "priority", "7602"},
	} {
		if out, err := w.Run(ctx, args[0], args[1:]...); err != nil {
			t.Fatalf("relay set-up: %v: %s", err, out)
		}
	}
	return m1, m2
}

func TestMITMRelayDetected(t *testing.T) {
	e := newEnv(t, envOptions{})
	// Without the relay the example authenticates.
	out, cerr, sout, serr := runExamples(t, e, "shared secret", "shared secret", fmt.Sprintf("%s:7200", e.topo.ServerAddr4), ":7200")
	if cerr != nil || serr != nil || !strings.Contains(out, "authenticated: session ID") {
		t.Fatalf("without the relay: client (%v):\n%s\nserver (%v):\n%s", cerr, out, serr, sout)
	}

	m1, m2 := startMITM(t, e)
	// The connection works through the relay, byte for byte ...
	srv := fmt.Sprintf("%s:7201", e.topo.ServerAddr4)
	transfer(t, listen(t, e.topo.Server, "0.0.0.0:7201"), e.topo.Client, srv, 1<<20, 1<<20, 72)
	// ... both gateways say encrypted, and their session IDs differ.
	fa, fb := flowWithPort(e.flows(e.topo.GwA), 7201), flowWithPort(e.flows(e.topo.GwB), 7201)
	if fa == nil || fb == nil || !fa.Encrypted || !fb.Encrypted || fa.SessionID == "" || fb.SessionID == "" {
		t.Fatalf("through the relay: gateway A %+v\ngateway B %+v", fa, fb)
	}
	if fa.SessionID == fb.SessionID {
		t.Fatalf("equal session IDs through a terminating relay: %s", fa.SessionID)
	}
	// The relay really held the plaintext: each of its halves has the flow,
	// encrypted, with the session ID of the gateway it faces.
	r1, r2 := flowWithPort(e.flows(m1), 7201), flowWithPort(e.flows(m2), 7201)
	if r1 == nil || r2 == nil || r1.SessionID != fa.SessionID || r2.SessionID != fb.SessionID || r1.Direction != "inbound" || r2.Direction != "outbound" {
		t.Fatalf("the relay's halves: %+v\n%+v", r1, r2)
	}

	// The example programs compare the session IDs and fail, saying why.
	out, cerr, sout, serr = runExamples(t, e, "shared secret", "shared secret", fmt.Sprintf("%s:7202", e.topo.ServerAddr4), ":7202")
	if cerr == nil || serr == nil || !strings.Contains(out, "man in the middle") || !strings.Contains(sout, "man in the middle") {
		t.Fatalf("through the relay: client (%v):\n%s\nserver (%v):\n%s", cerr, out, serr, sout)
	}
	fa, fb = flowWithPort(e.flows(e.topo.GwA), 7202), flowWithPort(e.flows(e.topo.GwB), 7202)
	if fa == nil || fb == nil || !fa.Encrypted || !fb.Encrypted || fa.SessionID == fb.SessionID {
		t.Fatalf("the example's connection: gateway A %+v\ngateway B %+v", fa, fb)
	}
}
