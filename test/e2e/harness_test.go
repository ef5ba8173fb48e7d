// The end-to-end harness: real Linux TCP stacks in network namespaces,
// the tcpcrypt-gw binary running as gateway A (with NAT) and gateway B, and
// every byte of every transfer checked by SHA-256 at both ends.
//
//	client --lan0-- gwa --wan0-- wan --wan0-- gwb --lan0-- server, client2
//	                              |
//	                              +-- legacy (no gateway)
package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"tcpcrypt-gw/gateway/monitor"
	"tcpcrypt-gw/test/impair"
	"tcpcrypt-gw/test/netns"
)

var gwBinary, impairBinary, authClientBinary, authServerBinary string

func TestMain(m *testing.M) {
	code := func() int {
		if os.Geteuid() != 0 {
			if os.Getenv("CI") == "true" {
				fmt.Fprintln(os.Stderr, "e2e: CI=true but not root: the end-to-end tests cannot run")
				return 1
			}
			fmt.Fprintln(os.Stderr, "e2e: not root, skipping the end-to-end tests")
			return 0
		}
		// Namespaces of an earlier run that was killed (a -timeout panic
		// skips the cleanups) are removed first.
		if gone, err := netns.RemoveOrphans(nsPrefix); err == nil && len(gone) > 0 {
			fmt.Fprintln(os.Stderr, "e2e: removed namespaces of a dead run:", gone)
		}
		dir, err := os.MkdirTemp("", "tcgw-e2e-bin")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		gwBinary = filepath.Join(dir, "tcpcrypt-gw")
		impairBinary = filepath.Join(dir, "tcpcrypt-impair")
		authClientBinary = filepath.Join(dir, "auth-client")
		authServerBinary = filepath.Join(dir, "auth-server")
		for bin, pkg := range map[string]string{gwBinary: "tcpcrypt-gw/cmd/tcpcrypt-gw", impairBinary: "tcpcrypt-gw/test/impair/cmd/tcpcrypt-impair",
			authClientBinary: "tcpcrypt-gw/examples/auth-client", authServerBinary: "tcpcrypt-gw/examples/auth-server"} {
			build := exec.Command("go", "build", "-o", bin, pkg)
			build.Stdout, build.Stderr = os.Stderr, os.Stderr
			if err := build.Run(); err != nil {
				fmt.Fprintln(os.Stderr, "e2e: build:", err)
				return 1
			}
		}
		code := m.Run()
		if left, _ := netns.Leftovers(nsPrefix); len(left) > 0 {
			fmt.Fprintln(os.Stderr, "e2e: namespaces left behind:", left)
			return 1
		}
		return code
	}()
	os.Exit(code)
}

const nsPrefix = "tcgwe2e"

// env is one topology with both gateways running.
type env struct {
	t      *testing.T
	topo   *netns.Topology
	gwA    *netns.Proc
	gwB    *netns.Proc
	impair *impairer // nil unless envOptions.impair was given
	logs   string
}

type envOptions struct {
	portForward bool
	extraA      string // extra YAML for gateway A
	extraB      string
	// impair, if not nil, runs tcpcrypt-impair as the wan router with
	// these flags (plus the interfaces and the a2b/b2a directions).
	impair []string
	// tunQueues, if not 0, is both gateways' interfaces.tun_queues.
	tunQueues int
	// faultA, if set, runs gateway A from a build with -tags faultinject
	// and TCPCRYPT_GW_FAULT=faultA (cmd/tcpcrypt-gw/fault_on.go).
	faultA string
}

const apiAddr = "127.0.0.1:8473"

func gatewayYAML(lanPrefixes []string, extra string) string {
	return fmt.Sprintf(`interfaces:
  lan: [lan0]
  wan: [wan0]
  tun: tcgw0
lan_prefixes: [%s]
http:
  listen: %s
log:
  level: debug
%s`, strings.Join(lanPrefixes, ", "), apiAddr, extra)
}

func newEnv(t *testing.T, opt envOptions) *env {
	t.Helper()
	topoOpt := netns.TopologyOptions{}
	if opt.portForward {
		topoOpt.PortForward = &netns.PortForward{WANPort: 8080, ClientPort: 9090}
	}
	topo, err := netns.NewTopology(nsPrefix, topoOpt)
	if err != nil {
		t.Fatalf("topology: %v", err)
	}
	e := &env{t: t, topo: topo, logs: t.TempDir()}
	t.Cleanup(func() {
		if e.impair != nil {
			e.impair.proc.Stop()
		}
		if e.gwA != nil {
			e.gwA.Stop()
		}
		if e.gwB != nil {
			e.gwB.Stop()
		}
		if t.Failed() {
			for _, n := range []string{"gwa.log", "gwb.log", "impair.log"} {
				b, _ := os.ReadFile(filepath.Join(e.logs, n))
				if len(b) > 8000 {
					b = b[len(b)-8000:]
				}
				t.Logf("---- %s (tail)\n%s", n, b)
			}
		}
		if err := topo.Close(); err != nil {
			t.Errorf("topology close: %v", err)
		}
	})
	if opt.impair != nil {
		e.impair = e.startImpairer(opt.impair...)
	}
	if withFirewall4 {
		loadFirewall4(t, topo) // firewall4_test.go
	}
	yamlA := gatewayYAML([]string{"10.91.1.0/24", "fd91:1::/64"}, opt.extraA)
	yamlB := gatewayYAML([]string{"10.91.5.0/24", "fd91:5::/64"}, opt.extraB)
	if opt.tunQueues != 0 {
		q := fmt.Sprintf("  tun: tcgw0\n  tun_queues: %d\n", opt.tunQueues)
		yamlA = strings.Replace(yamlA, "  tun: tcgw0\n", q, 1)
		yamlB = strings.Replace(yamlB, "  tun: tcgw0\n", q, 1)
	}
	var cmdA []string
	if opt.faultA != "" {
		cmdA = []string{"env", "TCPCRYPT_GW_FAULT=" + opt.faultA, faultBinary(t)}
	}
	e.gwA = e.startGateway(topo.GwA, "gwa", yamlA, cmdA...)
	e.gwB = e.startGateway(topo.GwB, "gwb", yamlB)
	return e
}

var (
	faultOnce sync.Once
	faultBin  string
	faultErr  error
)

// faultBinary builds, once, the gateway with fault injection (-tags
// faultinject), beside gwBinary.
func faultBinary(t *testing.T) string {
	t.Helper()
	faultOnce.Do(func() {
		faultBin = gwBinary + "-faultinject"
		out, err := exec.Command("go", "build", "-tags", "faultinject", "-o", faultBin, "tcpcrypt-gw/cmd/tcpcrypt-gw").CombinedOutput()
		if err != nil {
			faultErr = fmt.Errorf("%v: %s", err, out)
		}
	})
	if faultErr != nil {
		t.Fatalf("build with -tags faultinject: %v", faultErr)
	}
	return faultBin
}

// startGateway runs the gateway in ns with yaml; cmd, if given, is the
// command to run it with instead of gwBinary (its arguments follow).
func (e *env) startGateway(ns *netns.NS, name, yaml string, cmd ...string) *netns.Proc {
	e.t.Helper()
	cfg := filepath.Join(e.logs, name+".yaml")
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		e.t.Fatal(err)
	}
	if len(cmd) == 0 {
		cmd = []string{gwBinary}
	}
	p, err := ns.Start(context.Background(), filepath.Join(e.logs, name+".log"), cmd[0], append(cmd[1:], "run", "-c", cfg)...)
	if err != nil {
		e.t.Fatalf("start %s: %v", name, err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		if _, err := e.api(ns, "/healthz"); err == nil {
			return p
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(filepath.Join(e.logs, name+".log"))
			e.t.Fatalf("%s did not come up:\n%s", name, b)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// api GETs path from the gateway API inside ns.
func (e *env) api(ns *netns.NS, path string) ([]byte, error) {
	return ns.HTTPGet(apiAddr, path)
}

func (e *env) flows(ns *netns.NS) []monitor.FlowJSON {
	e.t.Helper()
	b, err := e.api(ns, "/api/flows?limit=10000")
	if err != nil {
		e.t.Fatalf("api: %v", err)
	}
	var l struct {
		Flows []monitor.FlowJSON `json:"flows"`
	}
	if err := json.Unmarshal(b, &l); err != nil {
		e.t.Fatalf("api json: %v", err)
	}
	return l.Flows
}

// flowWithPort finds the newest flow of a gateway whose WAN or LAN
// endpoint has port: an earlier attempt on the same port (a client that
// retried while its server was not listening yet: a SYN answered by a
// RST) has a flow too, with a smaller ID.
func flowWithPort(flows []monitor.FlowJSON, port int) *monitor.FlowJSON {
	suffix := fmt.Sprintf(":%d", port)
	var found *monitor.FlowJSON
	for i := range flows {
		if (strings.HasSuffix(flows[i].LAN, suffix) || strings.HasSuffix(flows[i].WAN, suffix)) && (found == nil || flows[i].ID > found.ID) {
			found = &flows[i]
		}
	}
	return found
}

// listen opens a TCP listener inside ns.
func listen(t *testing.T, ns *netns.NS, addr string) net.Listener {
	t.Helper()
	var l net.Listener
	if err := ns.Do(func() (err error) { l, err = net.Listen("tcp", addr); return }); err != nil {
		t.Fatalf("listen %s: %v", addr, err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func dial(ns *netns.NS, addr string) (net.Conn, error) {
	var c net.Conn
	err := ns.Do(func() (err error) { c, err = net.DialTimeout("tcp", addr, 10*time.Second); return })
	return c, err
}

// stream is a deterministic pseudo-random byte stream.
type stream struct {
	r *rand.ChaCha8
	n int64
}

func newStream(seed uint64, n int64) *stream {
	var s [32]byte
	for i := range 8 {
		s[i] = byte(seed >> (8 * i))
	}
	return &stream{r: rand.NewChaCha8(s), n: n}
}

func (s *stream) Read(p []byte) (int, error) {
	if s.n <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > s.n {
		p = p[:s.n]
	}
	s.r.Read(p)
	s.n -= int64(len(p))
	return len(p), nil
}

func hashOf(seed uint64, n int64) [32]byte {
	h := sha256.New()
	io.Copy(h, newStream(seed, n))
	return [32]byte(h.Sum(nil))
}

// result is what one side of a transfer read: its hash and length.
type result struct {
	got [32]byte
	n   int64
	err error
}

// duplex writes `send` pseudo-random bytes (seed) on c, half-closes, and reads
// everything until EOF, returning the hash of what was read.
func duplex(c net.Conn, seed uint64, send int64) result {
	var wg sync.WaitGroup
	var werr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		_, werr = io.Copy(c, newStream(seed, send))
		if tc, ok := c.(*net.TCPConn); ok && werr == nil {
			werr = tc.CloseWrite()
		}
	}()
	h := sha256.New()
	n, rerr := io.Copy(h, c)
	wg.Wait()
	err := rerr
	if err == nil {
		err = werr
	}
	return result{got: [32]byte(h.Sum(nil)), n: n, err: err}
}

// transfer runs one connection from `from` to addr with up bytes client to
// server and down bytes server to client, checking every byte both ways.
func transfer(t *testing.T, l net.Listener, from *netns.NS, addr string, up, down int64, seed uint64) {
	t.Helper()
	srvRes := make(chan result, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			srvRes <- result{err: err}
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Minute))
		srvRes <- duplex(c, seed+1, down)
	}()
	c, err := dial(from, addr)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Minute))
	cr := duplex(c, seed, up)
	sr := <-srvRes
	if cr.err != nil || sr.err != nil {
		t.Fatalf("transfer errors: client %v, server %v", cr.err, sr.err)
	}
	if sr.n != up || sr.got != hashOf(seed, up) {
		t.Fatalf("server received %d bytes, want %d; hash match %v", sr.n, up, sr.got == hashOf(seed, up))
	}
	if cr.n != down || cr.got != hashOf(seed+1, down) {
		t.Fatalf("client received %d bytes, want %d; hash match %v", cr.n, down, cr.got == hashOf(seed+1, down))
	}
}

// impairer is tcpcrypt-impair running as the wan router: direction a2b is
// gateway A to gateway B (towards B's LAN), b2a the way back (towards A's
// NAT address and A's IPv6 LAN).
type impairer struct {
	t    *testing.T
	proc *netns.Proc
	log  string
	from int64 // where this run's output starts in log (shared by the runs of a test)
}

// impairDirs are the impairer's directions in the standard topology.
var impairDirs = []string{"--dir", "a2b=10.91.5.0/24,fd91:5::/64", "--dir", "b2a=10.91.2.0/24,fd91:1::/64"}

// startImpairer starts tcpcrypt-impair in the wan namespace with flags and
// waits (at most 30s) for its ready line.
func (e *env) startImpairer(flags ...string) *impairer {
	e.t.Helper()
	args := append([]string{"--iface", "gwa0,gwb0"}, impairDirs...)
	return e.startImpairerIn(e.topo.Wan, "impair.log", append(args, flags...)...)
}

// startImpairerIn starts tcpcrypt-impair in ns with args, its output in
// the log file named logName, and waits (at most 30s) for its ready line.
func (e *env) startImpairerIn(ns *netns.NS, logName string, args ...string) *impairer {
	e.t.Helper()
	im := &impairer{t: e.t, log: filepath.Join(e.logs, logName)}
	if fi, err := os.Stat(im.log); err == nil {
		im.from = fi.Size()
	}
	p, err := ns.Start(context.Background(), im.log, impairBinary, args...)
	if err != nil {
		e.t.Fatalf("start impairer: %v", err)
	}
	im.proc = p
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(im.output(), "ready tun=") {
		select {
		case <-p.Done():
			e.t.Fatalf("impairer exited before ready: %v\n%s", p.Wait(), im.output())
		default:
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("impairer not ready after 30s:\n%s", im.output())
		}
		time.Sleep(20 * time.Millisecond)
	}
	return im
}

// output is what this run of the impairer has printed so far.
func (im *impairer) output() string {
	b, _ := os.ReadFile(im.log)
	if int64(len(b)) < im.from {
		return ""
	}
	return string(b[im.from:])
}

// stats asks for the counts (SIGUSR1) and returns them by direction.
func (im *impairer) stats() map[string]impair.DirStats {
	im.t.Helper()
	before := strings.Count(im.output(), "stats dir="+impair.DefaultName+" ")
	if err := syscall.Kill(im.proc.Pid(), syscall.SIGUSR1); err != nil {
		im.t.Fatalf("impairer: %v", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for strings.Count(im.output(), "stats dir="+impair.DefaultName+" ") == before {
		if time.Now().After(deadline) {
			im.t.Fatalf("impairer printed no stats:\n%s", im.output())
		}
		time.Sleep(20 * time.Millisecond)
	}
	res := map[string]impair.DirStats{}
	for _, l := range strings.Split(im.output(), "\n") {
		if strings.HasPrefix(l, "stats ") {
			s, err := impair.ParseStatsLine(l)
			if err != nil {
				im.t.Fatalf("impairer: %v", err)
			}
			res[s.Name] = s // the last block wins
		}
	}
	return res
}

// stop ends the impairer (its rules go with it): the wan forwards
// unimpaired from then on.
func (im *impairer) stop() {
	im.t.Helper()
	if err := im.proc.Stop(); err != nil {
		im.t.Fatalf("impairer: %v\n%s", err, im.output())
	}
}
