package e2e

import (
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"tcpcrypt-gw/test/netns"
)

// TestSimultaneousOpen: the client (behind gateway A) and the server
// (behind gateway B) connect to each other at once, each from a fixed port
// to the other's (RFC 9293 §3.5), over IPv6 (gateway A NATs only IPv4).
// The impairer delays A-to-B packets by 300 ms so that the SYNs cross for
// sure: each gateway has sent its LAN host's SYN (with ENO, b = 0) when the
// other's arrives. Both SYNs have b = 0, so TCP-ENO fails (RFC 8547 §4.3:
// "if both sides use the default b = 0 ... TCP-ENO will fail and fall back
// to unencrypted TCP"; §4.6 rule 3): the connection works, plain, and each
// gateway keeps its outbound flow with the reason (engine wanSYNCrossing).
// Before, the crossing SYN replaced each flow by an inbound one.
func TestSimultaneousOpen(t *testing.T) {
	e := newEnv(t, envOptions{impair: []string{"--delay", "a2b=300ms"}})
	cAddr := netip.AddrPortFrom(e.topo.ClientAddr6, 9411)
	sAddr := netip.AddrPortFrom(e.topo.ServerAddr6, 9412)
	type dialed struct {
		c   net.Conn
		err error
	}
	dialFrom := func(ns *netns.NS, local, remote netip.AddrPort, res chan<- dialed) {
		var c net.Conn
		err := ns.Do(func() (err error) {
			d := net.Dialer{LocalAddr: net.TCPAddrFromAddrPort(local), Timeout: 20 * time.Second}
			c, err = d.Dial("tcp", remote.String())
			return
		})
		res <- dialed{c, err}
	}
	cres, sres := make(chan dialed, 1), make(chan dialed, 1)
	go dialFrom(e.topo.Client, cAddr, sAddr, cres)
	time.Sleep(100 * time.Millisecond) // the client's SYN is on its 300 ms way to gateway B
	go dialFrom(e.topo.Server, sAddr, cAddr, sres)
	cd, sd := <-cres, <-sres
	for _, d := range []dialed{cd, sd} {
		if d.c != nil {
			defer d.c.Close()
		}
	}
	if cd.err != nil || sd.err != nil {
		t.Fatalf("simultaneous open: client %v, server %v", cd.err, sd.err)
	}
	// Both directions carry data exactly.
	for _, p := range []struct {
		from, to net.Conn
		msg      string
	}{{cd.c, sd.c, "from the client"}, {sd.c, cd.c, "from the server"}} {
		if _, err := p.from.Write([]byte(p.msg)); err != nil {
			t.Fatalf("write %s: %v", p.msg, err)
		}
		buf := make([]byte, len(p.msg))
		p.to.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.ReadFull(p.to, buf); err != nil || string(buf) != p.msg {
			t.Fatalf("read %q: %q, %v", p.msg, buf, err)
		}
	}
	for _, g := range []struct {
		name string
		ns   *netns.NS
		port int
	}{{"A", e.topo.GwA, 9412}, {"B", e.topo.GwB, 9411}} {
		f := flowWithPort(e.flows(g.ns), g.port)
		if f == nil {
			t.Fatalf("gateway %s: no flow", g.name)
		}
		t.Logf("gateway %s: %s %s: %s", g.name, f.Direction, f.State, f.Reason)
		if f.Direction != "outbound" || f.Encrypted || f.State != "plain" || !strings.Contains(f.Reason, "simultaneous open: both ends play role A") {
			t.Errorf("gateway %s flow: %s %s encrypted=%v reason %q; want the outbound flow plain, reason naming the simultaneous open", g.name, f.Direction, f.State, f.Encrypted, f.Reason)
		}
	}
}
