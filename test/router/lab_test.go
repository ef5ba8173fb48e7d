// The lab: the standard topology of the end-to-end tests (test/netns) with
// gateway B replaced by the router VM.
//
//	client --lan0-- gwa --wan0-- wan --gwb0--+                 +-- server
//	                              |          | (gwb namespace: two bridges,
//	                              +-- legacy |  no addresses, no routing)
//	                                  wanbr: wan0 + tap vmwan0   lan0: srv0, cl2 + tap vmlan0
//	                                              |                    |
//	                                              +---- router VM -----+
//	                                                 wan0 10.91.3.1    lan0 10.91.5.1
//
// The gwb namespace becomes a switch: its addresses move to the VM, its
// veths and the VM's taps meet in bridges, so wan, server and client2 see
// the VM exactly where gateway B was, at the same addresses.
//
//  1. NewTopology; the gwb namespace gives up its addresses and forwarding.
//  2. Boot the VM in the gwb namespace, its taps in the bridges.
//  3. Address the VM (console), forwarding on, strict rp_filter as in the
//     other routers.
//  4. Start gateways as each test asks: gateway A (amd64, in gwa), and the
//     VM's gateway (startVMGateway), its API on the VM's WAN address with a
//     token.

package router

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"tcpcrypt-gw/gateway/monitor"
	"tcpcrypt-gw/test/netns"
)

const nsPrefix = "tcgwrvm"

// Bounds of the slow steps: TCG on a shared CPU is slow, but never
// unbounded.
const (
	bootLimit    = 4 * time.Minute
	commandLimit = time.Minute
	gwStartLimit = 2 * time.Minute
)

const apiPort = 8473

type lab struct {
	t     *testing.T
	topo  *netns.Topology
	vm    *VM
	dir   string
	gwA   *netns.Proc
	token string
	vmGW  bool // the VM's gateway runs
}

func newLab(t *testing.T, a Arch, img *Image) *lab {
	t.Helper()
	topo, err := netns.NewTopology(nsPrefix, netns.TopologyOptions{})
	if err != nil {
		t.Fatalf("topology: %v", err)
	}
	l := &lab{t: t, topo: topo, dir: t.TempDir()}
	t.Cleanup(func() {
		if l.gwA != nil {
			l.gwA.Stop()
		}
		if l.vm != nil {
			if t.Failed() && l.vmGW {
				if out, err := l.vm.Run("tail -c 6000 /tmp/gw.log", 20*time.Second); err == nil {
					t.Logf("---- VM gateway log (tail)\n%s", out)
				}
			}
			l.vm.Close()
			if strings.Contains(l.vm.Console(), shellExited) {
				t.Logf("the VM's console shell exited and was restarted:\n%s", tail(l.vm.Console(), 3000))
			}
			if t.Failed() {
				t.Logf("---- VM console (tail)\n%s", tail(l.vm.Console(), 6000))
			}
		}
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(l.dir, "gwa.log"))
			t.Logf("---- gateway A log (tail)\n%s", tail(string(b), 6000))
		}
		if err := topo.Close(); err != nil {
			t.Errorf("topology close: %v", err)
		}
	})
	// 1. gwb becomes a switch.
	b := topo.GwB
	for _, step := range [][]string{
		{"addr", "flush", "dev", netns.WANIf}, {"addr", "flush", "dev", netns.LANIf},
		{"link", "add", "wanbr", "type", "bridge"},
		{"link", "set", netns.WANIf, "master", "wanbr"},
		{"link", "set", "wanbr", "up"},
	} {
		if _, err := b.Run(context.Background(), "ip", step...); err != nil {
			t.Fatal(err)
		}
	}
	for _, k := range []string{"net.ipv4.ip_forward", "net.ipv6.conf.all.forwarding"} {
		if err := b.Sysctl(k, "0"); err != nil {
			t.Fatal(err)
		}
	}
	// 2. The VM.
	vm, err := Boot(a, img, b, "vmwan0", "vmlan0", filepath.Join(l.dir, "console.log"), bootLimit)
	if err != nil {
		t.Fatal(err)
	}
	l.vm = vm
	t.Logf("%s VM booted in %v", a.Name, vm.BootTime.Round(100*time.Millisecond))
	for _, step := range [][]string{
		{"link", "set", "vmwan0", "master", "wanbr"},
		{"link", "set", "vmlan0", "master", netns.LANIf},
	} {
		if _, err := b.Run(context.Background(), "ip", step...); err != nil {
			t.Fatal(err)
		}
	}
	// 3. The VM's addresses and routes.
	tp := topo
	l.run(strings.Join([]string{
		"echo 1 > /proc/sys/net/ipv4/ip_forward",
		"echo 1 > /proc/sys/net/ipv6/conf/all/forwarding",
		"echo 1 > /proc/sys/net/ipv4/conf/all/rp_filter",
		"echo 1 > /proc/sys/net/ipv4/conf/default/rp_filter",
		"ip link set wan0 up", "ip link set lan0 up",
		fmt.Sprintf("ip addr add %s/24 dev wan0", tp.GwBWANAddr4), fmt.Sprintf("ip addr add %s/64 dev wan0", tp.GwBWANAddr6),
		fmt.Sprintf("ip addr add %s/24 dev lan0", tp.GwBLANAddr4), fmt.Sprintf("ip addr add %s/64 dev lan0", tp.GwBLANAddr6),
		fmt.Sprintf("ip route add default via %s", tp.WanGwBAddr4), fmt.Sprintf("ip -6 route add default via %s", tp.WanGwBAddr6),
	}, " && "))
	tok := make([]byte, 16)
	rand.Read(tok)
	l.token = hex.EncodeToString(tok)
	if err := vm.WriteFile("/etc/tcpcrypt-gw/token", l.token); err != nil {
		t.Fatal(err)
	}
	// The path works (plain, no gateway yet) before any test uses it:
	// neighbour discovery through the bridges and the VM's routing.
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := l.vm.Run(fmt.Sprintf("ping -c 1 -W 2 %s && ping -c 1 -W 2 %s && ping -c 1 -W 2 %s", tp.WanGwBAddr4, tp.ServerAddr4, tp.ServerAddr6), 20*time.Second)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the VM does not reach its neighbours: %v", err)
		}
		time.Sleep(time.Second)
	}
	return l
}

// run runs a command in the VM or fails the test.
func (l *lab) run(cmd string) string {
	l.t.Helper()
	out, err := l.vm.Run(cmd, commandLimit)
	if err != nil {
		l.t.Fatal(err)
	}
	return out
}

// gatewayYAML is a gateway's configuration: the interfaces of the topology,
// lanPrefixes, the API at listen, and extra YAML.
func gatewayYAML(lanPrefixes, listen, extra string) string {
	return fmt.Sprintf(`interfaces:
  lan: [lan0]
  wan: [wan0]
  tun: tcgw0
lan_prefixes: [%s]
http:
  listen: %s
%s
`, lanPrefixes, listen, extra)
}

// startGwA starts the amd64 gateway in gwa with extra YAML.
func (l *lab) startGwA(extra string) {
	l.t.Helper()
	cfg := filepath.Join(l.dir, "gwa.yaml")
	if err := os.WriteFile(cfg, []byte(gatewayYAML("10.91.1.0/24, fd91:1::/64", "127.0.0.1:8473", extra)), 0o600); err != nil {
		l.t.Fatal(err)
	}
	p, err := l.topo.GwA.Start(context.Background(), filepath.Join(l.dir, "gwa.log"), gwBinary, "run", "-c", cfg)
	if err != nil {
		l.t.Fatal(err)
	}
	l.gwA = p
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := l.topo.GwA.HTTPGet("127.0.0.1:8473", "/healthz"); err == nil {
			return
		}
		if time.Now().After(deadline) {
			l.t.Fatalf("gateway A did not come up")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (l *lab) stopGwA() {
	l.t.Helper()
	if l.gwA != nil {
		if err := l.gwA.Stop(); err != nil {
			l.t.Errorf("gateway A: %v", err)
		}
		l.gwA = nil
	}
}

// vmAPI is the VM gateway's API address, reached from the wan namespace.
func (l *lab) vmAPI() string {
	return net.JoinHostPort(l.topo.GwBWANAddr4.String(), strconv.Itoa(apiPort))
}

// vmGatewayYAML is what the VM's gateway always has: the flow limits of
// the OpenWrt package's file for 128 MB routers
// (deploy/openwrt/files/config.yaml), and the conntrack bypass required
// (the kernel's nf_tables from 32-bit user space).
const vmGatewayYAML = `routing:
  conntrack_bypass: on
flows:
  max: 4096
  max_buffer_total: 8MiB
`

// startVMGateway starts the gateway in the VM with extra YAML, its API on
// the VM's WAN address with the token, and waits until the API answers.
func (l *lab) startVMGateway(extra string) {
	l.t.Helper()
	cfg := gatewayYAML("10.91.5.0/24, fd91:5::/64", l.vmAPI(), "  token_file: /etc/tcpcrypt-gw/token\n"+vmGatewayYAML+extra)
	if err := l.vm.WriteFile("/etc/tcpcrypt-gw/config.yaml", cfg); err != nil {
		l.t.Fatal(err)
	}
	l.run(background("/usr/bin/tcpcrypt-gw run -c /etc/tcpcrypt-gw/config.yaml", "/tmp/gw.log", "/tmp/gw.pid"))
	l.vmGW = true
	deadline := time.Now().Add(gwStartLimit)
	for {
		if _, err := l.vmGet("/healthz"); err == nil {
			return
		}
		if _, err := l.vm.Run("kill -0 $(cat /tmp/gw.pid)", commandLimit); err != nil {
			l.t.Fatalf("the VM's gateway exited: %s", l.run("cat /tmp/gw.log"))
		}
		if time.Now().After(deadline) {
			l.t.Fatalf("the VM's gateway API does not answer after %v", gwStartLimit)
		}
		time.Sleep(time.Second)
	}
}

// background is the VM's shell command that starts cmd in the background,
// in a session of its own with no console input (the console's shell is
// the VM's init: nothing may take its terminal), output to log, its PID in
// pidFile.
func background(cmd, log, pidFile string) string {
	return fmt.Sprintf("setsid %s </dev/null >%s 2>&1 & echo $! > %s", cmd, log, pidFile)
}

// stopVMGateway stops the VM's gateway (SIGTERM) and waits (bounded) for
// it to exit.
func (l *lab) stopVMGateway() {
	l.t.Helper()
	if !l.vmGW {
		return
	}
	l.run("pid=$(cat /tmp/gw.pid); kill $pid; i=0; while kill -0 $pid 2>/dev/null && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done; ! kill -0 $pid 2>/dev/null")
	l.vmGW = false
}

// vmGet GETs path from the VM gateway's API with the token, from the wan
// namespace.
func (l *lab) vmGet(path string) ([]byte, error) {
	var body []byte
	err := l.topo.Wan.Do(func() error {
		c, err := net.DialTimeout("tcp", l.vmAPI(), 5*time.Second)
		if err != nil {
			return err
		}
		tr := &http.Transport{DialContext: func(context.Context, string, string) (net.Conn, error) { return c, nil }}
		defer tr.CloseIdleConnections()
		req, _ := http.NewRequest(http.MethodGet, "http://"+l.vmAPI()+path, nil)
		req.Header.Set("Authorization", "Bearer "+l.token)
		resp, err := (&http.Client{Transport: tr, Timeout: 30 * time.Second}).Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		body, err = io.ReadAll(io.LimitReader(resp.Body, 64<<20))
		if err == nil && resp.StatusCode != http.StatusOK {
			err = fmt.Errorf("%s: %s", resp.Status, body)
		}
		return err
	})
	return body, err
}

func decodeFlows(t *testing.T, b []byte, err error) []monitor.FlowJSON {
	t.Helper()
	if err != nil {
		t.Fatalf("api: %v", err)
	}
	var l struct {
		Flows []monitor.FlowJSON `json:"flows"`
	}
	if err := json.Unmarshal(b, &l); err != nil {
		t.Fatalf("api json: %v", err)
	}
	return l.Flows
}

func (l *lab) flowsA() []monitor.FlowJSON {
	b, err := l.topo.GwA.HTTPGet("127.0.0.1:8473", "/api/flows?limit=10000")
	return decodeFlows(l.t, b, err)
}

func (l *lab) flowsVM() []monitor.FlowJSON {
	b, err := l.vmGet("/api/flows?limit=10000")
	return decodeFlows(l.t, b, err)
}

// flowWithPort finds the flow whose LAN or WAN endpoint has port.
func flowWithPort(flows []monitor.FlowJSON, port int) *monitor.FlowJSON {
	suffix := fmt.Sprintf(":%d", port)
	for i := range flows {
		if strings.HasSuffix(flows[i].LAN, suffix) || strings.HasSuffix(flows[i].WAN, suffix) {
			return &flows[i]
		}
	}
	return nil
}

var vmRSSRE = regexp.MustCompile(`VmRSS:\s+(\d+) kB`)

// vmGatewayRSS reads the VM gateway's VmRSS (bytes) from /proc.
func (l *lab) vmGatewayRSS() int64 {
	l.t.Helper()
	out := l.run("cat /proc/$(cat /tmp/gw.pid)/status")
	m := vmRSSRE.FindStringSubmatch(out)
	if m == nil {
		l.t.Fatalf("no VmRSS in the gateway's status: %s", out)
	}
	kb, _ := strconv.ParseInt(m[1], 10, 64)
	return kb << 10
}
