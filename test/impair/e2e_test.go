// End-to-end test of the tcpcrypt-impair command: three network namespaces
// a - router - b joined by veth pairs, the command running as the router's
// impairment, real Linux TCP at both ends.

package impair

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/gopacket/layers"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Addresses of the topology, only ever inside its namespaces.
const (
	e2eA4, e2eR4a, e2eR4b, e2eB4 = "10.201.1.2", "10.201.1.1", "10.201.2.1", "10.201.2.2"
	e2eA6, e2eR6a, e2eR6b, e2eB6 = "fd20:1::2", "fd20:1::1", "fd20:2::1", "fd20:2::2"
	e2eTable, e2ePriority        = 4242, 4242
	e2eDirs                      = "--dir=a2b=10.201.2.0/24,fd20:2::/64"
	e2eDirsBack                  = "--dir=b2a=10.201.1.0/24,fd20:1::/64"
)

// requireRoot skips without root, except in CI, where the test must run.
func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() == 0 {
		if _, err := exec.LookPath("ip"); err == nil {
			return
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("CI=true: this test needs root and iproute2 (euid %d)", os.Geteuid())
	}
	t.Skip("needs root and iproute2")
}

type topology struct {
	a, r, b string // namespace names
}

func mustRun(t *testing.T, args ...string) {
	t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// newTopology builds a - r - b with IPv4 and IPv6 routing through r. The
// namespaces (and with them the veth pairs) are deleted at cleanup, also
// after a failure.
func newTopology(t *testing.T) *topology {
	prefix := fmt.Sprintf("impt%d%04x", os.Getpid(), rand.Uint32()&0xffff)
	tp := &topology{a: prefix + "a", r: prefix + "r", b: prefix + "b"}
	for _, ns := range []string{tp.a, tp.r, tp.b} {
		mustRun(t, "ip", "netns", "add", ns)
		t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	}
	mustRun(t, "ip", "-n", tp.a, "link", "add", "a0", "type", "veth", "peer", "name", "ra", "netns", tp.r)
	mustRun(t, "ip", "-n", tp.b, "link", "add", "b0", "type", "veth", "peer", "name", "rb", "netns", tp.r)
	for _, c := range [][]string{
		{tp.a, "a0", e2eA4 + "/24", e2eA6 + "/64"},
		{tp.r, "ra", e2eR4a + "/24", e2eR6a + "/64"},
		{tp.r, "rb", e2eR4b + "/24", e2eR6b + "/64"},
		{tp.b, "b0", e2eB4 + "/24", e2eB6 + "/64"},
	} {
		mustRun(t, "ip", "-n", c[0], "addr", "add", c[2], "dev", c[1])
		mustRun(t, "ip", "-n", c[0], "addr", "add", c[3], "dev", c[1], "nodad")
		mustRun(t, "ip", "-n", c[0], "link", "set", c[1], "up")
	}
	for _, ns := range []string{tp.a, tp.r, tp.b} {
		mustRun(t, "ip", "-n", ns, "link", "set", "lo", "up")
	}
	mustRun(t, "ip", "-n", tp.a, "route", "add", "default", "via", e2eR4a)
	mustRun(t, "ip", "-n", tp.a, "-6", "route", "add", "default", "via", e2eR6a)
	mustRun(t, "ip", "-n", tp.b, "route", "add", "default", "via", e2eR4b)
	mustRun(t, "ip", "-n", tp.b, "-6", "route", "add", "default", "via", e2eR6b)
	err := inNS(tp.r, func() error {
		for _, k := range []string{"net/ipv4/ip_forward", "net/ipv6/conf/all/forwarding"} {
			if err := os.WriteFile("/proc/sys/"+k, []byte("1"), 0); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("forwarding in %s: %v", tp.r, err)
	}
	return tp
}

// inNS runs fn on an OS thread in the named namespace. Sockets fn creates
// stay in that namespace. A thread that cannot return to its namespace is
// not unlocked, so it dies with its goroutine.
func inNS(name string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer orig.Close()
		target, err := netns.GetFromName(name)
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer target.Close()
		if err := netns.Set(target); err != nil {
			errc <- err
			return
		}
		err = fn()
		if netns.Set(orig) == nil {
			runtime.UnlockOSThread()
		}
		errc <- err
	}()
	return <-errc
}

// buildImpair builds the command once per test binary run, into a
// temporary directory that TestMain removes.
var buildOnce = struct {
	sync.Once
	path string
	err  error
	out  []byte
}{}

func buildImpair(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "tcpcrypt-impair-bin")
		if err != nil {
			buildOnce.err = err
			return
		}
		buildOnce.path = filepath.Join(dir, "tcpcrypt-impair")
		buildOnce.out, buildOnce.err = exec.Command("go", "build", "-o", buildOnce.path, "tcpcrypt-gw/test/impair/cmd/tcpcrypt-impair").CombinedOutput()
	})
	if buildOnce.err != nil {
		t.Fatalf("go build: %v\n%s", buildOnce.err, buildOnce.out)
	}
	return buildOnce.path
}

func TestMain(m *testing.M) {
	code := m.Run()
	if buildOnce.path != "" {
		os.RemoveAll(filepath.Dir(buildOnce.path))
	}
	os.Exit(code)
}

// impairProc is a running tcpcrypt-impair.
type impairProc struct {
	cmd    *exec.Cmd
	stderr bytes.Buffer
	mu     sync.Mutex
	lines  []string
	ready  chan struct{}
	done   chan struct{} // closed when stdout is drained
}

// startImpair runs the command in the router namespace and waits until it
// says it is ready. It is killed at cleanup if still running.
func startImpair(t *testing.T, bin, ns string, args ...string) *impairProc {
	t.Helper()
	args = append([]string{"netns", "exec", ns, bin, "--iface=ra,rb", fmt.Sprint("--table=", e2eTable), fmt.Sprint("--priority=", e2ePriority)}, args...)
	p := &impairProc{cmd: exec.Command("ip", args...), ready: make(chan struct{}), done: make(chan struct{})}
	p.cmd.Stderr = &p.stderr
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			p.cmd.Process.Kill()
			p.cmd.Wait()
		}
	})
	go func() {
		defer close(p.done)
		sc := bufio.NewScanner(stdout)
		readied := false
		for sc.Scan() {
			p.mu.Lock()
			p.lines = append(p.lines, sc.Text())
			p.mu.Unlock()
			if !readied && strings.HasPrefix(sc.Text(), "ready ") {
				readied = true
				close(p.ready)
			}
		}
	}()
	select {
	case <-p.ready:
	case <-p.done:
		p.cmd.Wait()
		t.Fatalf("tcpcrypt-impair exited before ready: %v\n%s", p.cmd.ProcessState, p.stderr.String())
	case <-time.After(30 * time.Second):
		t.Fatalf("tcpcrypt-impair not ready after 30s\n%s", p.stderr.String())
	}
	return p
}

// statsLines returns the stats lines printed so far.
func (p *impairProc) statsLines() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for _, l := range p.lines {
		if strings.HasPrefix(l, "stats ") {
			out = append(out, l)
		}
	}
	return out
}

// stop sends sig and waits (bounded) for the exit; it returns the stats by
// direction name.
func (p *impairProc) stop(t *testing.T, sig syscall.Signal) map[string]DirStats {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("signal: %v", err)
	}
	exited := make(chan error, 1)
	go func() { <-p.done; exited <- p.cmd.Wait() }()
	var err error
	select {
	case err = <-exited:
	case <-time.After(30 * time.Second):
		p.cmd.Process.Kill()
		t.Fatalf("tcpcrypt-impair did not exit within 30s of %v", sig)
	}
	if sig == syscall.SIGKILL {
		return nil
	}
	if err != nil {
		t.Fatalf("tcpcrypt-impair: %v\n%s", err, p.stderr.String())
	}
	stats := map[string]DirStats{}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, l := range p.lines {
		if strings.HasPrefix(l, "stats ") {
			s, err := ParseStatsLine(l)
			if err != nil {
				t.Fatal(err)
			}
			stats[s.Name] = s
		}
	}
	return stats
}

// routerState returns our rules and routes left in the router namespace,
// and whether the TUN device exists.
func routerState(t *testing.T, ns string) (rules, routes int, tunExists bool) {
	t.Helper()
	h, err := netns.GetFromName(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	nl, err := netlink.NewHandleAt(h)
	if err != nil {
		t.Fatal(err)
	}
	defer nl.Close()
	for _, fam := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		rs, err := nl.RuleListFiltered(fam, &netlink.Rule{Priority: e2ePriority}, netlink.RT_FILTER_PRIORITY)
		if err != nil {
			t.Fatal(err)
		}
		rules += len(rs)
		rts, err := nl.RouteListFiltered(fam, &netlink.Route{Table: e2eTable}, netlink.RT_FILTER_TABLE)
		if err != nil {
			t.Fatal(err)
		}
		routes += len(rts)
	}
	_, err = nl.LinkByName("impair0")
	return rules, routes, err == nil
}

// transfer sends n pseudo-random bytes from a to b over TCP and compares
// the SHA-256 of what b received with what a sent.
func transfer(t *testing.T, tp *topology, dst string, n int, seed uint64) {
	t.Helper()
	var ln net.Listener
	if err := inNS(tp.b, func() (err error) {
		ln, err = net.Listen("tcp", net.JoinHostPort(dst, "0"))
		return err
	}); err != nil {
		t.Fatalf("listen in b: %v", err)
	}
	defer ln.Close()
	deadline := time.Now().Add(3 * time.Minute)

	type result struct {
		sum [32]byte
		n   int64
		err error
	}
	got := make(chan result, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- result{err: err}
			return
		}
		defer c.Close()
		c.SetDeadline(deadline)
		h := sha256.New()
		m, err := io.Copy(h, c)
		var r result
		copy(r.sum[:], h.Sum(nil))
		r.n, r.err = m, err
		got <- r
	}()

	var conn net.Conn
	if err := inNS(tp.a, func() (err error) {
		conn, err = net.DialTimeout("tcp", ln.Addr().String(), 30*time.Second)
		return err
	}); err != nil {
		t.Fatalf("dial from a: %v", err)
	}
	defer conn.Close()
	conn.SetDeadline(deadline)
	src := rand.NewChaCha8([32]byte{byte(seed)})
	h := sha256.New()
	buf := make([]byte, 64<<10)
	for sent := 0; sent < n; {
		chunk := buf[:min(len(buf), n-sent)]
		src.Read(chunk)
		h.Write(chunk)
		if _, err := conn.Write(chunk); err != nil {
			t.Fatalf("write after %d bytes: %v", sent, err)
		}
		sent += len(chunk)
	}
	if err := conn.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	r := <-got
	if r.err != nil {
		t.Fatalf("receive: %v after %d bytes", r.err, r.n)
	}
	if want := h.Sum(nil); r.n != int64(n) || !bytes.Equal(r.sum[:], want) {
		t.Fatalf("received %d bytes with SHA-256 %s, sent %d with %s", r.n, hex.EncodeToString(r.sum[:]), n, hex.EncodeToString(want))
	}
}

func TestEndToEnd(t *testing.T) {
	requireRoot(t)
	bin := buildImpair(t)
	tp := newTopology(t)

	t.Run("transfer", func(t *testing.T) {
		p := startImpair(t, bin, tp.r, e2eDirs, e2eDirsBack, "--seed=3",
			"--delay=5ms", "--loss=1", "--reorder=1", "--dup=1", "--reseg=a2b=100")
		if rules, routes, tun := routerState(t, tp.r); rules != 4 || routes != 2 || !tun {
			t.Fatalf("while running: %d rules, %d routes, TUN %v; want 4, 2, true", rules, routes, tun)
		}
		transfer(t, tp, e2eB4, 8<<20, 1)
		transfer(t, tp, e2eB6, 1<<20, 2)
		st := p.stop(t, syscall.SIGTERM)
		a2b, b2a := st["a2b"].Counts, st["b2a"].Counts
		t.Logf("a2b: %v", st["a2b"])
		t.Logf("b2a: %v", st["b2a"])
		if a2b[Packets] < 8<<20/1500 || a2b[Resegmented] < a2b[Packets]/2 || a2b[Pieces] < 2*a2b[Resegmented] ||
			a2b[Lost] == 0 || a2b[Duplicated] == 0 || a2b[Reordered] == 0 || a2b[QueueFull] != 0 {
			t.Errorf("a2b counts do not show the impairments: %v", st["a2b"])
		}
		if b2a[Packets] == 0 || b2a[Resegmented] != 0 {
			t.Errorf("b2a counts: %v", st["b2a"])
		}
		if rules, routes, tun := routerState(t, tp.r); rules != 0 || routes != 0 || tun {
			t.Fatalf("after exit: %d rules, %d routes, TUN %v left", rules, routes, tun)
		}
	})

	t.Run("resegmented-on-the-wire", func(t *testing.T) {
		// Capture on b's side what arrives during a transfer: the segments
		// must be the split ones, not coalesced again on the way.
		p := startImpair(t, bin, tp.r, e2eDirs, e2eDirsBack, "--reseg=a2b=100")
		capFD := openCapture(t, tp.b, "b0")
		stop := make(chan struct{})
		counted := make(chan [2]int, 1) // data segments from a, the largest payload
		go func() {
			buf := make([]byte, 65536)
			segs, largest := 0, 0
			flags := 0
			for {
				if flags == 0 {
					select {
					case <-stop: // drain what is queued, then report
						flags = unix.MSG_DONTWAIT
					default:
					}
				}
				n, _, err := unix.Recvfrom(capFD, buf, flags)
				if err != nil {
					if flags != 0 && err == unix.EAGAIN {
						counted <- [2]int{segs, largest}
						return
					}
					continue
				}
				s, ok := parseTCP(buf[:n])
				if ok && !s.v6 && bytes.Equal(s.pkt[12:16], net.ParseIP(e2eA4).To4()) && len(s.payload()) > 0 {
					segs++
					largest = max(largest, len(s.payload()))
				}
			}
		}()
		// Every data segment passed the capture point before b's
		// application could read the last byte, so after the transfer they
		// are all in the capture socket's queue.
		const size = 1 << 20
		transfer(t, tp, e2eB4, size, 4)
		close(stop)
		c := <-counted
		drops := 0
		if st, err := unix.GetsockoptTpacketStats(capFD, unix.SOL_PACKET, unix.PACKET_STATISTICS); err == nil {
			drops = int(st.Drops)
		}
		st := p.stop(t, syscall.SIGTERM)
		t.Logf("%d data segments captured (%d capture drops), largest payload %d; %v", c[0], drops, c[1], st["a2b"])
		// Unsplit, 1 MiB takes about 725 full-sized segments.
		if c[0] < 2*size/1448 || uint64(c[0]+drops) < st["a2b"].Counts[Pieces]*9/10 {
			t.Errorf("%d data segments arrived, %d pieces were sent: the segments were coalesced again", c[0], st["a2b"].Counts[Pieces])
		}
	})

	t.Run("strip-eno", func(t *testing.T) {
		p := startImpair(t, bin, tp.r, e2eDirs, e2eDirsBack, "--strip-eno=a2b=syn")
		// a2b: the option is stripped on the way to b.
		opts := sendSYNWithENO(t, tp.a, e2eA4, e2eB4, tp.b, "b0", 40001)
		if has(opts, OptionENO) || !has(opts, layers.TCPOptionKindMSS) {
			t.Errorf("SYN a->b arrived with options %v; want MSS kept, ENO stripped", opts)
		}
		// b2a, not configured: the option arrives, so the capture sees it.
		opts = sendSYNWithENO(t, tp.b, e2eB4, e2eA4, tp.a, "a0", 40002)
		if !has(opts, OptionENO) {
			t.Errorf("SYN b->a arrived with options %v; want ENO kept", opts)
		}
		// SIGUSR1 prints the counts without stopping.
		if err := p.cmd.Process.Signal(syscall.SIGUSR1); err != nil {
			t.Fatal(err)
		}
		var usr1 []string
		for range 100 { // 100 x 50ms at most
			if usr1 = p.statsLines(); len(usr1) == 3 {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		if len(usr1) != 3 || !strings.Contains(usr1[0], "dir=a2b") || !strings.Contains(usr1[0], "eno_stripped=1 ") {
			t.Fatalf("after SIGUSR1: stats lines %q", usr1)
		}
		st := p.stop(t, syscall.SIGTERM)
		if st["a2b"].Counts[ENOStripped] == 0 || st["b2a"].Counts[ENOStripped] != 0 {
			t.Errorf("stats: %v / %v", st["a2b"], st["b2a"])
		}
	})

	t.Run("crash-safe", func(t *testing.T) {
		p := startImpair(t, bin, tp.r, "--delay=1ms")
		p.stop(t, syscall.SIGKILL)
		// The kernel deletes the TUN device, and the routes through it, with
		// the last file descriptor; the rules stay behind.
		if rules, routes, tun := routerState(t, tp.r); rules != 4 || routes != 0 || tun {
			t.Fatalf("after SIGKILL: %d rules, %d routes, TUN %v; the test expects 4 stale rules", rules, routes, tun)
		}
		p = startImpair(t, bin, tp.r, "--delay=1ms")
		if rules, routes, _ := routerState(t, tp.r); rules != 4 || routes != 2 {
			t.Fatalf("restart did not replace the stale state: %d rules, %d routes", rules, routes)
		}
		transfer(t, tp, e2eB4, 256<<10, 3)
		p.stop(t, syscall.SIGINT)
		if rules, routes, tun := routerState(t, tp.r); rules != 0 || routes != 0 || tun {
			t.Fatalf("after exit: %d rules, %d routes, TUN %v left", rules, routes, tun)
		}
	})
}

func has(kinds []layers.TCPOptionKind, k layers.TCPOptionKind) bool {
	for _, x := range kinds {
		if x == k {
			return true
		}
	}
	return false
}

// openCapture opens an AF_PACKET socket on an interface of a namespace: it
// receives the IP packets the interface sends and receives, with a 200ms
// read timeout. It is closed at cleanup.
func openCapture(t *testing.T, ns, ifName string) int {
	t.Helper()
	fd := -1
	if err := inNS(ns, func() error {
		ifi, err := net.InterfaceByName(ifName)
		if err != nil {
			return err
		}
		fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ALL)))
		if err != nil {
			return err
		}
		if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifi.Index}); err != nil {
			return err
		}
		// A large buffer, so that a fast transfer does not overflow it.
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 32<<20); err != nil {
			return err
		}
		tv := unix.NsecToTimeval((200 * time.Millisecond).Nanoseconds())
		return unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	}); err != nil {
		if fd >= 0 {
			unix.Close(fd)
		}
		t.Fatalf("capture socket on %s in %s: %v", ifName, ns, err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	return fd
}

// sendSYNWithENO sends, from namespace fromNS through a raw socket, an IPv4
// SYN carrying a TCP-ENO option, and captures it on capIf in namespace
// capNS. It returns the option kinds of the SYN as it arrived, after
// checking its lengths and checksums.
func sendSYNWithENO(t *testing.T, fromNS, src, dst, capNS, capIf string, port uint16) []layers.TCPOptionKind {
	t.Helper()
	capFD := openCapture(t, capNS, capIf)
	s := seg{srcPort: port, dstPort: 9, seq: 1000, syn: true, opts: synOpts()}
	pkt := s.build(t)
	copy(pkt[12:16], net.ParseIP(src).To4())
	copy(pkt[16:20], net.ParseIP(dst).To4())
	ps, _ := parseTCP(pkt)
	ps.fixIPv4Checksum()
	ps.fixTCPChecksum()
	var sendFD int
	if err := inNS(fromNS, func() (err error) {
		sendFD, err = unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_RAW)
		return err
	}); err != nil {
		t.Fatalf("raw socket in %s: %v", fromNS, err)
	}
	defer unix.Close(sendFD)
	to := &unix.SockaddrInet4{Addr: [4]byte(net.ParseIP(dst).To4())}

	buf := make([]byte, 65536)
	for attempt := range 50 { // 50 read timeouts of 200ms at most
		if attempt%10 == 0 { // (re)send every ~2s in case it was lost
			if err := unix.Sendto(sendFD, pkt, 0, to); err != nil {
				t.Fatalf("send SYN: %v", err)
			}
		}
		n, _, err := unix.Recvfrom(capFD, buf, 0)
		if err != nil {
			if err == unix.EAGAIN || err == unix.EINTR {
				continue
			}
			t.Fatalf("capture: %v", err)
		}
		got, ok := parseTCP(buf[:n])
		if !ok || got.v6 || got.srcPort() != port || got.flags()&flagSYN == 0 || !bytes.Equal(got.pkt[12:16], pkt[12:16]) {
			continue
		}
		return kinds(checkValid(t, got.pkt))
	}
	t.Fatalf("SYN %s:%d -> %s not seen on %s in %s", src, port, dst, capIf, capNS)
	return nil
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }
