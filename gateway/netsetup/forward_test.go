package netsetup

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/tun"

	"tcpcrypt-gw/test/netns"
)

// reflector is the smallest gateway: it writes every packet it reads from
// the TUN straight back. With it, traffic takes exactly the path the real
// gateway's traffic takes, and the kernel's side (policy routing, rp_filter,
// conntrack and NAT) is tested on its own.
type reflector struct {
	dev     tun.Device
	packets atomic.Int64
	wg      sync.WaitGroup
}

const reflectorHeadroom = 16 // room for the virtio-net header

func startReflector(dev tun.Device) *reflector {
	r := &reflector{dev: dev}
	r.wg.Add(2)
	go func() {
		defer r.wg.Done()
		for range dev.Events() {
		}
	}()
	go func() {
		defer r.wg.Done()
		n := dev.BatchSize()
		bufs := make([][]byte, n)
		out := make([][]byte, n)
		sizes := make([]int, n)
		for i := range bufs {
			bufs[i] = make([]byte, reflectorHeadroom+65536)
		}
		for {
			k, err := dev.Read(bufs, sizes, reflectorHeadroom)
			if err != nil {
				return // closed
			}
			for i := 0; i < k; i++ {
				out[i] = bufs[i][:reflectorHeadroom+sizes[i]]
			}
			r.packets.Add(int64(k))
			if _, err := dev.Write(out[:k], reflectorHeadroom); err != nil {
				return
			}
		}
	}()
	return r
}

// applyIn runs Apply for gateway g of the topology and starts a reflector.
func applyIn(t *testing.T, ns *netns.NS, p Params) (*Setup, *reflector) {
	t.Helper()
	var s *Setup
	if err := ns.Do(func() (err error) { s, err = Apply(p); return }); err != nil {
		t.Fatalf("Apply in %s: %v", ns.Name, err)
	}
	r := startReflector(s.Device)
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close in %s: %v", ns.Name, err)
		}
		r.wg.Wait()
	})
	return s, r
}

func gatewayParams(lan []netip.Prefix, bypass string) Params {
	return Params{
		TUN: "tcgw0", MTU: 1500,
		LAN: []string{netns.LANIf}, WAN: []string{netns.WANIf},
		LANPrefixes: lan, Table: 4243, RulePriority: 1100,
		ConntrackBypass: bypass, IPv6: true,
	}
}

// echo listens in srv, dials dst from cli, checks an echoed message and
// returns the source address the server saw.
func echo(srv *netns.NS, listen string, cli *netns.NS, dst string) (netip.Addr, error) {
	var l net.Listener
	if err := srv.Do(func() (err error) { l, err = net.Listen("tcp", listen); return }); err != nil {
		return netip.Addr{}, err
	}
	defer l.Close()
	seen := make(chan netip.Addr, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			close(seen)
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(20 * time.Second))
		io.Copy(c, c)
		seen <- netip.MustParseAddrPort(c.RemoteAddr().String()).Addr().Unmap()
	}()
	msg := bytes.Repeat([]byte("through the TUN and back "), 20000) // many segments, both ways
	var got []byte
	err := cli.Do(func() error {
		c, err := net.DialTimeout("tcp", dst, 3*time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(20 * time.Second))
		go func() {
			c.Write(msg)
			c.(*net.TCPConn).CloseWrite()
		}()
		got, err = io.ReadAll(c)
		return err
	})
	if err != nil {
		return netip.Addr{}, err
	}
	if !bytes.Equal(got, msg) {
		return netip.Addr{}, fmt.Errorf("echoed %d bytes of %d, or different ones", len(got), len(msg))
	}
	src, ok := <-seen
	if !ok {
		return netip.Addr{}, fmt.Errorf("accept failed")
	}
	return src, nil
}

// TestForwardThroughTUN runs the standard topology with netsetup and a
// reflector on both gateways: TCP must flow through both TUN devices with
// NAT and the port forward working, under strict rp_filter on the routers.
func TestForwardThroughTUN(t *testing.T) {
	requireRoot(t)
	topo, err := netns.NewTopology("tcgwnsetup", netns.TopologyOptions{PortForward: &netns.PortForward{WANPort: 8080, ClientPort: 9090}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { topo.Close() })
	_, ra := applyIn(t, topo.GwA, gatewayParams(topo.GwALANPrefixes, BypassOn))
	_, rb := applyIn(t, topo.GwB, gatewayParams(topo.GwBLANPrefixes, BypassAuto))

	cases := []struct {
		name       string
		srv        *netns.NS
		listen     string
		cli        *netns.NS
		dst        string
		wantSrc    netip.Addr
		viaA, viaB bool
	}{
		{"IPv4 client to server, NATed", topo.Server, ":9000", topo.Client, fmt.Sprintf("%s:9000", topo.ServerAddr4), topo.GwAWANAddr4, true, true},
		{"IPv6 client to server", topo.Server, "[::]:9001", topo.Client, fmt.Sprintf("[%s]:9001", topo.ServerAddr6), topo.ClientAddr6, true, true},
		{"IPv4 client to legacy", topo.Legacy, ":9002", topo.Client, fmt.Sprintf("%s:9002", topo.LegacyAddr4), topo.GwAWANAddr4, true, false},
		{"IPv6 server to client", topo.Client, "[::]:9003", topo.Server, fmt.Sprintf("[%s]:9003", topo.ClientAddr6), topo.ServerAddr6, true, true},
		{"port forward client2 to client", topo.Client, ":9090", topo.Client2, fmt.Sprintf("%s:8080", topo.GwAWANAddr4), topo.Client2Addr4, true, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a0, b0 := ra.packets.Load(), rb.packets.Load()
			src, err := echo(c.srv, c.listen, c.cli, c.dst)
			if err != nil {
				t.Fatal(err)
			}
			if src != c.wantSrc {
				t.Errorf("server saw %v, want %v", src, c.wantSrc)
			}
			// 500 KB each way is hundreds of segments; far fewer through a
			// TUN means the traffic did not take it.
			if got := ra.packets.Load() - a0; c.viaA && got < 100 {
				t.Errorf("only %d packets through gwa's TUN", got)
			}
			if got := rb.packets.Load() - b0; c.viaB && got < 100 {
				t.Errorf("only %d packets through gwb's TUN", got)
			}
		})
	}
}

// TestNATNeedsBypass shows why the conntrack bypass exists: without it,
// conntrack confirms the LAN->TUN pass un-NATed and the TUN->WAN pass is
// never masqueraded, so an IPv4 connection from behind the NAT cannot be
// established (the wan router has no route back to the private LAN).
func TestNATNeedsBypass(t *testing.T) {
	requireRoot(t)
	topo, err := netns.NewTopology("tcgwnsetup2", netns.TopologyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { topo.Close() })
	applyIn(t, topo.GwA, gatewayParams(topo.GwALANPrefixes, BypassOff))
	if _, err := echo(topo.Server, ":9100", topo.Client, fmt.Sprintf("%s:9100", topo.ServerAddr4)); err == nil {
		t.Fatal("IPv4 through NAT worked without the conntrack bypass; the bypass would be unnecessary")
	}
	// IPv6 has no NAT here and works all the same.
	if _, err := echo(topo.Server, "[::]:9101", topo.Client, fmt.Sprintf("[%s]:9101", topo.ServerAddr6)); err != nil {
		t.Fatalf("IPv6 without the bypass: %v", err)
	}
}

// TestLooseRPFilter covers traffic from a steered interface to one that is
// neither LAN nor WAN (a DMZ): the re-injected packets leave by dmz0, the
// reverse-path lookup for their LAN source finds lan0, not the TUN, and only
// loose rp_filter on the TUN (with the TUN's address, without which the
// kernel fails loose mode too) lets them through. Two routers: one with
// rp_filter off in conf/all and strict for new devices (the TUN would be
// strict without netsetup), one loose in conf/all (systemd's default).
func TestLooseRPFilter(t *testing.T) {
	requireRoot(t)
	for _, all := range []string{"0", "2"} {
		t.Run("conf/all/rp_filter="+all, func(t *testing.T) { testLooseRPFilter(t, all) })
	}
}

func testLooseRPFilter(t *testing.T, confAll string) {
	var all []*netns.NS
	t.Cleanup(func() {
		for _, n := range all {
			n.Close()
		}
	})
	mk := func() *netns.NS {
		n, err := netns.New("tcgwnsetup3")
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, n)
		return n
	}
	lan, gw, dmz, wan := mk(), mk(), mk(), mk()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(netns.Veth(lan, "eth0", gw, "lan0"))
	must(netns.Veth(dmz, "eth0", gw, "dmz0"))
	must(netns.Veth(wan, "eth0", gw, "wan0"))
	must(lan.Addr("eth0", "10.91.10.2/24"))
	must(gw.Addr("lan0", "10.91.10.1/24"))
	must(dmz.Addr("eth0", "10.91.11.2/24"))
	must(gw.Addr("dmz0", "10.91.11.1/24"))
	must(lan.Route("default", "10.91.10.1"))
	must(dmz.Route("default", "10.91.11.1"))
	// dmz0 itself must be loose: the replies it receives have their reverse
	// path (via lan0, TCP) steered into the TUN by our rules.
	for _, kv := range [][2]string{
		{"net.ipv4.ip_forward", "1"}, {"net.ipv4.conf.all.rp_filter", confAll}, {"net.ipv4.conf.default.rp_filter", "1"},
		{"net.ipv4.conf.lan0.rp_filter", "1"}, {"net.ipv4.conf.wan0.rp_filter", "1"}, {"net.ipv4.conf.dmz0.rp_filter", "2"},
	} {
		must(gw.Sysctl(kv[0], kv[1]))
	}
	p := gatewayParams([]netip.Prefix{netip.MustParsePrefix("10.91.10.0/24")}, BypassOn)
	p.IPv6 = false
	_, r := applyIn(t, gw, p)
	src, err := echo(dmz, ":9200", lan, "10.91.11.2:9200")
	if err != nil {
		t.Fatalf("LAN to DMZ through the TUN: %v", err)
	}
	if src != netip.MustParseAddr("10.91.10.2") {
		t.Errorf("DMZ host saw %v", src)
	}
	if r.packets.Load() < 100 {
		t.Errorf("only %d packets through the TUN", r.packets.Load())
	}
}
