// Package netns builds throw-away network namespaces for the end-to-end
// tests and the demo: named namespaces (`ip netns add`), veth pairs between
// them, addresses, routes and sysctls, processes started inside them, and Go
// code run inside them on a locked OS thread.
//
// The life of a namespace:
//  1. New adds a namespace with a unique name (prefix-<pid>-<n>), brings up
//     its loopback and turns off IPv6 duplicate address detection, so that
//     addresses work at once.
//  2. Veth, Addr, Route and Sysctl configure it; Run and Start execute
//     programs in it through `ip netns exec`; Do runs Go code in it.
//  3. Close kills every process still inside and deletes the namespace.
//     Leftovers finds the namespaces of this process still present;
//     RemoveOrphans deletes those of processes that crashed.
//
// Everything here needs root (CAP_SYS_ADMIN and CAP_NET_ADMIN).
package netns

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/vishvananda/netns"
)

// runDir is where `ip netns` keeps its named namespaces.
const runDir = "/run/netns"

// killWait bounds how long Close waits for killed processes to go away.
const killWait = 5 * time.Second

// seq makes namespace names unique within this process.
var seq atomic.Uint64

// NS is one named network namespace.
type NS struct {
	Name string

	handle netns.NsHandle // open while the namespace exists

	mu     sync.Mutex
	procs  map[*Proc]struct{}
	closed bool
}

// New adds a namespace named prefix-<pid>-<n>, with loopback up and IPv6
// duplicate address detection off.
func New(prefix string) (*NS, error) {
	if prefix == "" || strings.ContainsAny(prefix, "/ \t\n") {
		return nil, fmt.Errorf("netns: bad prefix %q", prefix)
	}
	name := fmt.Sprintf("%s-%d-%d", prefix, os.Getpid(), seq.Add(1))
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("netns: ip netns add %s: %w: %s", name, err, bytes.TrimSpace(out))
	}
	n := &NS{Name: name, procs: make(map[*Proc]struct{})}
	h, err := netns.GetFromName(name)
	if err != nil {
		n.deleteNS()
		return nil, fmt.Errorf("netns: open %s: %w", name, err)
	}
	n.handle = h
	steps := []func() error{
		func() error { return n.ip("link", "set", "lo", "up") },
		// "default" applies to interfaces created later, "all" to those now.
		func() error { return n.Sysctl("net.ipv6.conf.default.accept_dad", "0") },
		func() error { return n.Sysctl("net.ipv6.conf.all.accept_dad", "0") },
	}
	for _, step := range steps {
		if err := step(); err != nil {
			n.Close()
			return nil, err
		}
	}
	return n, nil
}

// Close kills the processes started in the namespace (and any other process
// still inside it) and deletes it. It is idempotent.
func (n *NS) Close() error {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return nil
	}
	n.closed = true
	procs := make([]*Proc, 0, len(n.procs))
	for p := range n.procs {
		procs = append(procs, p)
	}
	n.mu.Unlock()

	for _, p := range procs {
		p.Kill()
	}
	var errs []error
	if err := n.killRemaining(); err != nil {
		errs = append(errs, err)
	}
	for _, p := range procs {
		select {
		case <-p.done:
		case <-time.After(killWait):
			errs = append(errs, fmt.Errorf("netns: %s: process %d did not exit", n.Name, p.Pid()))
		}
	}
	if n.handle.IsOpen() {
		n.handle.Close()
	}
	if err := n.deleteNS(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// killRemaining SIGKILLs every process whose network namespace is ours:
// children of started programs (daemons fork) would otherwise survive.
func (n *NS) killRemaining() error {
	out, err := exec.Command("ip", "netns", "pids", n.Name).Output()
	if err != nil {
		return nil // namespace already gone: nothing inside
	}
	var pids []int
	for _, f := range strings.Fields(string(out)) {
		if pid, err := strconv.Atoi(f); err == nil && pid != os.Getpid() {
			pids = append(pids, pid)
		}
	}
	for _, pid := range pids {
		syscall.Kill(pid, syscall.SIGKILL)
	}
	// Wait (bounded) until they are gone, so the namespace dies with them.
	deadline := time.Now().Add(killWait)
	for _, pid := range pids {
		for syscall.Kill(pid, 0) == nil && time.Now().Before(deadline) {
			if isZombie(pid) {
				break // dead; its parent (not us) reaps it
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	return nil
}

func isZombie(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	// The state follows the command name in parentheses.
	if i := bytes.LastIndexByte(b, ')'); i >= 0 && i+2 < len(b) {
		return b[i+2] == 'Z'
	}
	return false
}

func (n *NS) deleteNS() error {
	out, err := exec.Command("ip", "netns", "del", n.Name).CombinedOutput()
	if err != nil {
		if _, serr := os.Stat(filepath.Join(runDir, n.Name)); os.IsNotExist(serr) {
			return nil
		}
		return fmt.Errorf("netns: ip netns del %s: %w: %s", n.Name, err, bytes.TrimSpace(out))
	}
	return nil
}

// Run executes a program inside the namespace and returns its combined
// output; the error includes that output.
func (n *NS) Run(ctx context.Context, name string, args ...string) ([]byte, error) {
	return n.run(ctx, nil, name, args...)
}

// RunStdin is Run with stdin as the program's standard input.
func (n *NS) RunStdin(stdin string, name string, args ...string) ([]byte, error) {
	return n.run(context.Background(), strings.NewReader(stdin), name, args...)
}

func (n *NS) run(ctx context.Context, stdin *strings.Reader, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", n.Name, name}, args...)...)
	if stdin != nil {
		cmd.Stdin = stdin
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("netns %s: %s %s: %w: %s", n.Name, name, strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return out, nil
}

// ip runs `ip -n <ns> args...`.
func (n *NS) ip(args ...string) error {
	out, err := exec.Command("ip", append([]string{"-n", n.Name}, args...)...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("netns %s: ip %s: %w: %s", n.Name, strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

// Do runs fn on an OS thread switched into the namespace. Sockets fn
// creates (net.Listen, net.Dial) belong to the namespace and may be used from
// any goroutine afterwards; goroutines fn starts do not run in it.
func (n *NS) Do(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("netns: current namespace: %w", err)
			return
		}
		defer orig.Close()
		if err := netns.Set(n.handle); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("netns: enter %s: %w", n.Name, err)
			return
		}
		ferr := fn()
		if err := netns.Set(orig); err != nil {
			// The thread stays locked and dies with this goroutine,
			// so no other goroutine runs in the wrong namespace.
			errc <- fmt.Errorf("netns: leave %s: %w", n.Name, err)
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// Sysctl sets key (dotted, "net.ipv4.ip_forward", or a path below /proc/sys)
// to val inside the namespace.
func (n *NS) Sysctl(key, val string) error {
	path := key
	if !strings.Contains(key, "/") {
		path = strings.ReplaceAll(key, ".", "/")
	}
	path = filepath.Join("/proc/sys", path)
	// /proc/sys/net shows the namespace of the thread that opens the file.
	err := n.Do(func() error { return os.WriteFile(path, []byte(val), 0) })
	if err != nil {
		return fmt.Errorf("netns %s: sysctl %s=%s: %w", n.Name, key, val, err)
	}
	return nil
}

// Veth creates a veth pair with one end, aName, in a and the other, bName,
// in b, and brings both up.
func Veth(a *NS, aName string, b *NS, bName string) error {
	out, err := exec.Command("ip", "link", "add", aName, "netns", a.Name, "type", "veth", "peer", "name", bName, "netns", b.Name).CombinedOutput()
	if err != nil {
		return fmt.Errorf("netns: veth %s/%s - %s/%s: %w: %s", a.Name, aName, b.Name, bName, err, bytes.TrimSpace(out))
	}
	if err := a.ip("link", "set", aName, "up"); err != nil {
		return err
	}
	return b.ip("link", "set", bName, "up")
}

// Addr adds an address ("10.0.0.1/24", "fd00::1/64") to dev. IPv6 addresses
// skip duplicate address detection.
func (n *NS) Addr(dev string, prefix string) error {
	pf, err := netip.ParsePrefix(prefix)
	if err != nil {
		return fmt.Errorf("netns %s: address %q: %w", n.Name, prefix, err)
	}
	args := []string{"addr", "add", pf.String(), "dev", dev}
	if pf.Addr().Is6() {
		args = append(args, "nodad")
	}
	return n.ip(args...)
}

// Route adds a route to dst ("default" or a prefix) via the gateway via.
// The address family follows via.
func (n *NS) Route(dst, via string) error {
	gw, err := netip.ParseAddr(via)
	if err != nil {
		return fmt.Errorf("netns %s: route gateway %q: %w", n.Name, via, err)
	}
	fam := "-4"
	if gw.Is6() {
		fam = "-6"
	}
	return n.ip(fam, "route", "add", dst, "via", gw.String())
}

// Link runs `ip link args...` inside the namespace (bridges, MTUs, ...).
func (n *NS) Link(args ...string) error {
	return n.ip(append([]string{"link"}, args...)...)
}

// Leftovers lists the namespaces this process made with prefix (named
// prefix-<pid>-<n>) that still exist. Namespaces of other processes, such
// as a concurrent test run, are not ours and not listed.
func Leftovers(prefix string) ([]string, error) {
	return list(prefix, func(pid int) bool { return pid == os.Getpid() })
}

// RemoveOrphans deletes the namespaces with prefix whose creating process no
// longer exists (left by a crashed test or demo), with any process still
// inside, and returns their names.
func RemoveOrphans(prefix string) ([]string, error) {
	names, err := list(prefix, func(pid int) bool {
		return pid != os.Getpid() && syscall.Kill(pid, 0) == syscall.ESRCH
	})
	if err != nil {
		return nil, err
	}
	var errs []error
	for _, name := range names {
		n := &NS{Name: name, procs: make(map[*Proc]struct{})}
		if err := n.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	return names, errors.Join(errs...)
}

// list returns the namespaces named prefix-<pid>-<n> whose pid passes keep.
func list(prefix string, keep func(pid int) bool) ([]string, error) {
	ents, err := os.ReadDir(runDir)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range ents {
		rest, ok := strings.CutPrefix(e.Name(), prefix+"-")
		if !ok {
			continue
		}
		pidStr, _, ok := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(pidStr)
		if !ok || err != nil || pid <= 0 {
			continue
		}
		if keep(pid) {
			out = append(out, e.Name())
		}
	}
	return out, nil
}
