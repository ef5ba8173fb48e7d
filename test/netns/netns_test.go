package netns

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

const testPrefix = "tcgwnstest"

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("CI=true but not root: network namespace tests cannot run")
	}
	t.Skip("needs root")
}

func newNS(t *testing.T) *NS {
	t.Helper()
	n, err := New(testPrefix)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := n.Close(); err != nil {
			t.Errorf("close %s: %v", n.Name, err)
		}
	})
	return n
}

func TestMain(m *testing.M) {
	code := m.Run()
	if os.Geteuid() == 0 {
		if left, _ := Leftovers(testPrefix); len(left) > 0 {
			fmt.Fprintln(os.Stderr, "namespaces left behind:", left)
			code = 1
		}
	}
	os.Exit(code)
}

func TestNewCloseLeftovers(t *testing.T) {
	requireRoot(t)
	if _, err := New("bad/prefix"); err == nil {
		t.Fatal("New accepted a prefix with a slash")
	}
	n, err := New(testPrefix)
	if err != nil {
		t.Fatal(err)
	}
	wantPrefix := fmt.Sprintf("%s-%d-", testPrefix, os.Getpid())
	if !strings.HasPrefix(n.Name, wantPrefix) {
		t.Errorf("name %q does not start with %q", n.Name, wantPrefix)
	}
	left, err := Leftovers(testPrefix)
	if err != nil || !slices.Contains(left, n.Name) {
		t.Fatalf("Leftovers = %v, %v; want it to contain %s", left, err, n.Name)
	}
	n2, err := New(testPrefix)
	if err != nil {
		t.Fatal(err)
	}
	if n2.Name == n.Name {
		t.Fatalf("two namespaces named %s", n.Name)
	}
	for _, x := range []*NS{n, n2} {
		if err := x.Close(); err != nil {
			t.Fatal(err)
		}
		if err := x.Close(); err != nil {
			t.Fatalf("second Close: %v", err)
		}
	}
	left, _ = Leftovers(testPrefix)
	if slices.Contains(left, n.Name) || slices.Contains(left, n2.Name) {
		t.Fatalf("namespaces still present after Close: %v", left)
	}
	if _, err := n.Start(context.Background(), "", "true"); err == nil {
		t.Fatal("Start in a closed namespace succeeded")
	}
}

// TestRemoveOrphans makes a namespace named like one of a dead process and
// one of a live other process: only the first is removed.
func TestRemoveOrphans(t *testing.T) {
	requireRoot(t)
	const prefix = "tcgwnsorphan"
	// A pid that is surely dead: a child we started and reaped.
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	dead := fmt.Sprintf("%s-%d-1", prefix, cmd.Process.Pid)
	live := fmt.Sprintf("%s-%d-1", prefix, 1) // pid 1 always exists
	for _, name := range []string{dead, live} {
		if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		t.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() })
	}
	removed, err := RemoveOrphans(prefix)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(removed, []string{dead}) {
		t.Errorf("RemoveOrphans removed %v, want [%s]", removed, dead)
	}
	if _, err := os.Stat(filepath.Join(runDir, dead)); !os.IsNotExist(err) {
		t.Errorf("%s still present", dead)
	}
	if _, err := os.Stat(filepath.Join(runDir, live)); err != nil {
		t.Errorf("%s (of a live process) was removed", live)
	}
	if left, _ := Leftovers(prefix); len(left) != 0 {
		t.Errorf("Leftovers lists other processes' namespaces: %v", left)
	}
}

func TestRunAndSysctl(t *testing.T) {
	requireRoot(t)
	n := newNS(t)
	out, err := n.Run(context.Background(), "ip", "-o", "link", "show", "lo")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(out, []byte("UP")) {
		t.Errorf("loopback not up: %s", out)
	}
	_, err = n.Run(context.Background(), "sh", "-c", "echo marker-output; exit 3")
	if err == nil || !strings.Contains(err.Error(), "marker-output") {
		t.Errorf("error %v does not carry the output", err)
	}
	out, err = n.RunStdin("from-stdin", "cat")
	if err != nil || string(out) != "from-stdin" {
		t.Errorf("RunStdin = %q, %v", out, err)
	}

	rootBefore, err := os.ReadFile("/proc/sys/net/ipv4/conf/all/rp_filter")
	if err != nil {
		t.Fatal(err)
	}
	want := "2"
	if strings.TrimSpace(string(rootBefore)) == "2" {
		want = "1"
	}
	if err := n.Sysctl("net.ipv4.conf.all.rp_filter", want); err != nil {
		t.Fatal(err)
	}
	out, err = n.Run(context.Background(), "cat", "/proc/sys/net/ipv4/conf/all/rp_filter")
	if err != nil || strings.TrimSpace(string(out)) != want {
		t.Errorf("rp_filter in namespace = %q, %v; want %s", out, err, want)
	}
	rootAfter, _ := os.ReadFile("/proc/sys/net/ipv4/conf/all/rp_filter")
	if !bytes.Equal(rootBefore, rootAfter) {
		t.Errorf("Sysctl changed the root namespace: %q -> %q", rootBefore, rootAfter)
	}
	out, _ = n.Run(context.Background(), "cat", "/proc/sys/net/ipv6/conf/default/accept_dad")
	if strings.TrimSpace(string(out)) != "0" {
		t.Errorf("accept_dad default = %q, want 0", out)
	}
	if err := n.Sysctl("net.ipv4.no_such_key", "1"); err == nil {
		t.Error("Sysctl of a missing key succeeded")
	}
}

func TestDo(t *testing.T) {
	requireRoot(t)
	n := newNS(t)
	var names []string
	err := n.Do(func() error {
		ifs, err := net.Interfaces()
		for _, i := range ifs {
			names = append(names, i.Name)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(names, []string{"lo"}) {
		t.Errorf("interfaces in a fresh namespace: %v, want [lo]", names)
	}
	sentinel := errors.New("sentinel")
	if err := n.Do(func() error { return sentinel }); !errors.Is(err, sentinel) {
		t.Errorf("Do returned %v, want fn's error", err)
	}
	// A listener made inside is reachable only inside.
	var l net.Listener
	if err := n.Do(func() (err error) { l, err = net.Listen("tcp", "127.0.0.1:0"); return }); err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		if c, err := l.Accept(); err == nil {
			c.Write([]byte("hi"))
			c.Close()
		}
	}()
	var got []byte
	err = n.Do(func() error {
		c, err := net.DialTimeout("tcp", l.Addr().String(), 5*time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		got, err = io.ReadAll(c)
		return err
	})
	if err != nil || string(got) != "hi" {
		t.Fatalf("dial inside: %q, %v", got, err)
	}
	if c, err := net.DialTimeout("tcp", l.Addr().String(), time.Second); err == nil {
		c.Close()
		t.Error("the namespace's listener was reachable from the root namespace")
	}
}

func TestProcesses(t *testing.T) {
	requireRoot(t)
	n := newNS(t)
	dir := t.TempDir()
	ctx := context.Background()

	t.Run("exit status and log", func(t *testing.T) {
		logPath := filepath.Join(dir, "exit.log")
		p, err := n.Start(ctx, logPath, "sh", "-c", "echo to-log; echo to-stderr >&2; exit 3")
		if err != nil {
			t.Fatal(err)
		}
		err = p.Wait()
		if err == nil || !strings.Contains(err.Error(), "exit status 3") {
			t.Errorf("Wait = %v, want exit status 3", err)
		}
		b, _ := os.ReadFile(logPath)
		if !bytes.Contains(b, []byte("to-log")) || !bytes.Contains(b, []byte("to-stderr")) {
			t.Errorf("log = %q", b)
		}
		if err := p.Stop(); err == nil {
			t.Error("Stop of a failed process returned nil")
		}
	})

	t.Run("runs in the namespace", func(t *testing.T) {
		p, err := n.Start(ctx, "", "sleep", "60")
		if err != nil {
			t.Fatal(err)
		}
		defer p.Kill()
		// ip execs the program once it has entered the namespace.
		for i := 0; i < 500; i++ {
			if b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", p.Pid())); string(b) == "sleep\n" {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		link, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", p.Pid()))
		if err != nil {
			t.Fatal(err)
		}
		var st syscall.Stat_t
		if err := syscall.Stat(filepath.Join(runDir, n.Name), &st); err != nil {
			t.Fatal(err)
		}
		if want := fmt.Sprintf("net:[%d]", st.Ino); link != want {
			t.Errorf("process in %s, want %s (the namespace %s)", link, want, n.Name)
		}
		if err := p.Stop(); err != nil {
			t.Errorf("Stop of a process that dies on SIGTERM: %v", err)
		}
		select {
		case <-p.Done():
		default:
			t.Error("Done not closed after Stop")
		}
	})

	t.Run("context cancel", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		p, err := n.Start(cctx, "", "sleep", "60")
		if err != nil {
			t.Fatal(err)
		}
		cancel()
		select {
		case <-p.Done():
		case <-time.After(30 * time.Second):
			p.Kill()
			t.Fatal("process still running after its context ended")
		}
	})

	t.Run("stop escalates to SIGKILL", func(t *testing.T) {
		p, err := n.Start(ctx, "", "sh", "-c", "trap '' TERM; while :; do sleep 1; done")
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 500; i++ { // let the shell install its trap
			if b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.Pid())); bytes.Contains(b, []byte("SigIgn:\t0000000000004000")) {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		err = p.Stop()
		if err == nil || !strings.Contains(err.Error(), "killed") {
			t.Errorf("Stop of a process ignoring SIGTERM = %v, want an error saying it was killed", err)
		}
		select {
		case <-p.Done():
		default:
			t.Error("still running after Stop")
		}
	})

	t.Run("kill", func(t *testing.T) {
		p, err := n.Start(ctx, "", "sh", "-c", "trap '' TERM; sleep 60")
		if err != nil {
			t.Fatal(err)
		}
		p.Kill()
		err = p.Wait()
		var ee interface{ Sys() any }
		if err == nil || !errors.As(err, &ee) || !ee.Sys().(syscall.WaitStatus).Signaled() {
			t.Errorf("Wait after Kill = %v, want killed by a signal", err)
		}
	})
}

// TestCloseKillsEverything checks that Close ends the processes started in
// the namespace and their children that outlived them.
func TestCloseKillsEverything(t *testing.T) {
	requireRoot(t)
	n, err := New(testPrefix)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	pidFile := filepath.Join(t.TempDir(), "child.pid")
	p, err := n.Start(context.Background(), "", "sh", "-c", "sleep 300 & echo $! > "+pidFile+"; wait")
	if err != nil {
		t.Fatal(err)
	}
	var child int
	for i := 0; i < 500 && child == 0; i++ {
		b, _ := os.ReadFile(pidFile)
		child, _ = strconv.Atoi(strings.TrimSpace(string(b)))
		if child == 0 {
			time.Sleep(10 * time.Millisecond)
		}
	}
	if child == 0 {
		t.Fatal("child pid not written")
	}
	p.Kill() // the shell dies, its sleep lives on inside the namespace
	if !alive(child) {
		t.Fatal("child died with its parent; the test proves nothing")
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	if alive(child) {
		t.Errorf("child %d still alive after Close", child)
	}
	if left, _ := Leftovers(testPrefix); slices.Contains(left, n.Name) {
		t.Errorf("%s still present", n.Name)
	}
}

func alive(pid int) bool {
	return syscall.Kill(pid, 0) == nil && !isZombie(pid)
}

func TestVethAddrRoute(t *testing.T) {
	requireRoot(t)
	a, b := newNS(t), newNS(t)
	if err := Veth(a, "x0", b, "y0"); err != nil {
		t.Fatal(err)
	}
	for _, s := range []struct {
		ns       *NS
		dev, pfx string
	}{{a, "x0", "10.91.200.1/30"}, {b, "y0", "10.91.200.2/30"}, {a, "x0", "fd91:200::1/64"}, {b, "y0", "fd91:200::2/64"}} {
		if err := s.ns.Addr(s.dev, s.pfx); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.Addr("x0", "not-a-prefix"); err == nil {
		t.Error("Addr accepted a bad prefix")
	}
	// A loopback address of b reached through a route in a.
	if err := b.Addr("lo", "10.91.201.1/32"); err != nil {
		t.Fatal(err)
	}
	if err := b.Addr("lo", "fd91:201::1/128"); err != nil {
		t.Fatal(err)
	}
	if err := a.Route("10.91.201.1/32", "10.91.200.2"); err != nil {
		t.Fatal(err)
	}
	if err := a.Route("fd91:201::1/128", "fd91:200::2"); err != nil {
		t.Fatal(err)
	}
	for _, dst := range []string{"10.91.201.1", "fd91:201::1"} {
		remote := tcpCheck(t, b, a, netip.MustParseAddr(dst), 0)
		want := "10.91.200.1"
		if strings.Contains(dst, ":") {
			want = "fd91:200::1"
		}
		if remote != netip.MustParseAddr(want) {
			t.Errorf("to %s: server saw %v, want %s", dst, remote, want)
		}
	}
}

// tcpCheck listens in srv on dst (port 0: any), connects from cli, echoes a
// message, and returns the client address the server saw.
func tcpCheck(t *testing.T, srv, cli *NS, dst netip.Addr, port uint16) netip.Addr {
	t.Helper()
	return tcpCheckVia(t, srv, netip.AddrPortFrom(dst, port), cli, netip.AddrPort{})
}

// tcpCheckVia listens in srv on listen, connects from cli to dial (the
// listener's address when dial is zero), and returns the source address the
// server saw. Every byte is echoed and compared.
func tcpCheckVia(t *testing.T, srv *NS, listen netip.AddrPort, cli *NS, dial netip.AddrPort) netip.Addr {
	t.Helper()
	var l net.Listener
	if err := srv.Do(func() (err error) { l, err = net.Listen("tcp", listen.String()); return }); err != nil {
		t.Fatalf("listen %v in %s: %v", listen, srv.Name, err)
	}
	defer l.Close()
	if !dial.IsValid() {
		dial = netip.MustParseAddrPort(l.Addr().String())
	}
	type accepted struct {
		remote netip.Addr
		err    error
	}
	acc := make(chan accepted, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			acc <- accepted{err: err}
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(20 * time.Second))
		_, err = io.Copy(c, c)
		acc <- accepted{netip.MustParseAddrPort(c.RemoteAddr().String()).Addr().Unmap(), err}
	}()
	msg := bytes.Repeat([]byte("tcpcrypt-gw netns harness "), 4096)
	var got []byte
	err := cli.Do(func() error {
		c, err := net.DialTimeout("tcp", dial.String(), 10*time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(20 * time.Second))
		werr := make(chan error, 1)
		go func() {
			_, err := c.Write(msg)
			if err == nil {
				err = c.(*net.TCPConn).CloseWrite()
			}
			werr <- err
		}()
		got, err = io.ReadAll(c)
		if err == nil {
			err = <-werr
		}
		return err
	})
	if err != nil {
		l.Close()
		t.Fatalf("%s -> %v: %v", cli.Name, dial, err)
	}
	if !bytes.Equal(got, msg) {
		t.Fatalf("%s -> %v: echoed %d bytes, sent %d (or content differs)", cli.Name, dial, len(got), len(msg))
	}
	a := <-acc
	if a.err != nil {
		t.Fatalf("server side: %v", a.err)
	}
	return a.remote
}
