// The router VM test: the gateway, built as the release binary for the
// router's architecture (static), runs as gateway B inside a 128 MB,
// one-CPU VM (lab_test.go): 32-bit ARM (qemu-system-arm, linux/arm GOARM=7)
// and 32-bit little-endian MIPS (qemu-system-mipsel -M malta, linux/mipsle
// GOMIPS=softfloat), with the amd64 gateway as gateway A. Through the VM:
// an encrypted HTTP transfer with SHA-256 checked both ways, IPv6, a legacy
// server left plain, a reset; the session IDs of both gateways equal; and
// the VM gateway's RSS with 1,000 idle encrypted flows.
//
// It runs when TCPCRYPT_ROUTER_VM=1 (`make router-test`, which .ci/run
// calls): booting under TCG takes minutes of CPU, more than `make test`
// should spend on every package run. Under CI=true, a missing prerequisite
// (qemu, the kernel or busybox package) fails the test instead of skipping.

package router

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"tcpcrypt-gw/test/netns"
)

var (
	gwBinary   string // amd64, gateway A
	idleBinary string // test/bench/cmd/idle-conns
	binDir     string
	skipReason string // why the VM tests do not run ("" when they do)
)

func TestMain(m *testing.M) {
	os.Exit(func() int {
		switch {
		case os.Getenv("TCPCRYPT_ROUTER_VM") != "1":
			skipReason = "the router VM test runs with TCPCRYPT_ROUTER_VM=1 (make router-test)"
			return m.Run()
		case os.Geteuid() != 0:
			if os.Getenv("CI") == "true" {
				fmt.Fprintln(os.Stderr, "router: CI=true but not root: the router VM test cannot run")
				return 1
			}
			skipReason = "not root"
			return m.Run()
		}
		var miss []string
		for _, a := range []Arch{ARM, MIPSLE} {
			if m := Missing(a, DebDir()); m != "" {
				miss = append(miss, m)
			}
		}
		if miss := strings.Join(miss, ", "); miss != "" {
			if os.Getenv("CI") == "true" {
				fmt.Fprintln(os.Stderr, "router: CI=true and missing (make deps):", miss)
				return 1
			}
			skipReason = "missing (make deps): " + miss
			return m.Run()
		}
		if gone, err := netns.RemoveOrphans(nsPrefix); err == nil && len(gone) > 0 {
			fmt.Fprintln(os.Stderr, "router: removed namespaces of a dead run:", gone)
		}
		var err error
		if binDir, err = os.MkdirTemp("", "tcgw-router-bin"); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(binDir)
		gwBinary = filepath.Join(binDir, "tcpcrypt-gw")
		idleBinary = filepath.Join(binDir, "idle-conns")
		for _, b := range []struct {
			out, pkg string
			cross    *Arch
		}{
			{gwBinary, "tcpcrypt-gw/cmd/tcpcrypt-gw", nil},
			{idleBinary, "tcpcrypt-gw/test/bench/cmd/idle-conns", nil},
		} {
			if err := goBuild(b.out, b.pkg, b.cross); err != nil {
				fmt.Fprintln(os.Stderr, "router:", err)
				return 1
			}
		}
		code := m.Run()
		if left, _ := netns.Leftovers(nsPrefix); len(left) > 0 {
			fmt.Fprintln(os.Stderr, "router: namespaces left behind:", left)
			return 1
		}
		return code
	}())
}

// goBuild builds pkg for the host, or with cross for that VM's
// architecture as scripts/release.sh builds the router binary (static,
// GOARM or GOMIPS, trimmed, stripped). An out ending in .test is the
// package's test binary (go test -c).
func goBuild(out, pkg string, cross *Arch) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	args := []string{"build", "-o", out}
	if strings.HasSuffix(out, ".test") {
		args = []string{"test", "-c", "-o", out}
	}
	env := os.Environ()
	if cross != nil {
		args = append(args, "-trimpath", "-buildvcs=false", "-tags", "noprofile", "-ldflags", "-s -w")
		env = append(env, "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+cross.GOARCH)
		env = append(env, cross.GOENV...)
	}
	cmd := exec.CommandContext(ctx, "go", append(args, pkg)...)
	cmd.Env = env
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %v: %s", pkg, err, bytes.TrimSpace(b))
	}
	return nil
}

func needVM(t *testing.T) {
	t.Helper()
	if skipReason != "" {
		t.Skip(skipReason)
	}
}

// pkgVersion is the version the VM's package is built with; the VM's
// gateway must report it (the binary is the package's).
const pkgVersion = "1.0.0-routervm"

// image builds the initramfs of a VM: the gateway's OpenWrt package for a,
// built as `make package` builds it and installed (the files of its .ipk
// unpacked into the root), and extra files.
func image(t *testing.T, a Arch, extra ...File) *Image {
	t.Helper()
	root := filepath.Join(binDir, "pkgroot-"+a.Name)
	if _, err := os.Stat(root); err != nil {
		if err := installPackage(a, root); err != nil {
			t.Fatal(err)
		}
	}
	files, err := rootFiles(root)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	img, err := BuildImage(ctx, a, DebDir(), t.TempDir(), append(files, extra...))
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// installPackage builds a's .ipk with scripts/package.sh and unpacks its
// data.tar.gz (what opkg installs) into root.
func installPackage(a Arch, root string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	dist := filepath.Join(binDir, "dist-"+a.Name)
	cmd := exec.CommandContext(ctx, "bash", "scripts/package.sh")
	cmd.Dir = repoRoot()
	cmd.Env = append(os.Environ(), "DIST="+dist, "VERSION="+pkgVersion, "PKG_TARGETS=ipk:"+a.PkgTarget)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("package.sh: %v: %s", err, bytes.TrimSpace(out))
	}
	ipks, _ := filepath.Glob(filepath.Join(dist, "tcpcrypt-gw_*.ipk"))
	if len(ipks) != 1 {
		return fmt.Errorf("package.sh made %v in %s, want one tcpcrypt-gw .ipk", ipks, dist)
	}
	outer := filepath.Join(dist, "ipk")
	for _, step := range [][]string{
		{"mkdir", "-p", outer, root},
		{"tar", "-xzf", ipks[0], "-C", outer},
		{"tar", "-xzf", filepath.Join(outer, "data.tar.gz"), "-C", root},
	} {
		if out, err := exec.CommandContext(ctx, step[0], step[1:]...).CombinedOutput(); err != nil {
			return fmt.Errorf("%s: %v: %s", strings.Join(step, " "), err, bytes.TrimSpace(out))
		}
	}
	return nil
}

// rootFiles lists the regular files under root as the VM's files at the
// same paths (the cpio has no symbolic links: one is an error).
func rootFiles(root string) ([]File, error) {
	var files []File
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if !info.Mode().IsRegular() {
			return fmt.Errorf("router: %s in the package is not a regular file", p)
		}
		files = append(files, File{Path: "/" + filepath.ToSlash(strings.TrimPrefix(p, root+"/")), Src: p, Mode: info.Mode().Perm()})
		return nil
	})
	if err == nil && len(files) == 0 {
		err = fmt.Errorf("router: no files in the package's root %s", root)
	}
	return files, err
}

func TestRouterVM(t *testing.T) {
	needVM(t)
	testRouter(t, ARM)
}

// TestRouterVMMIPS is the same with a 32-bit little-endian MIPS VM
// (qemu-system-mipsel -M malta). Its WAN NIC used to stop receiving in 2
// of 5 runs: the two NICs share IRQ 10, which was edge-triggered (MIPSLE's
// InitSetup makes it level-triggered).
func TestRouterVMMIPS(t *testing.T) {
	needVM(t)
	testRouter(t, MIPSLE)
}

func testRouter(t *testing.T, a Arch) {
	l := newLab(t, a, image(t, a))
	tp := l.topo
	l.startGwA("")
	l.startVMGateway("")
	t.Logf("VM gateway up; RSS %.1f MiB", float64(l.vmGatewayRSS())/(1<<20))
	// The gateway that runs (lab.startVMGateway) is the package's binary.
	if v := l.run("/usr/bin/tcpcrypt-gw version"); !strings.HasPrefix(v, "tcpcrypt-gw "+pkgVersion+" ") || !strings.Contains(v, "linux/"+a.GOARCH) {
		t.Fatalf("the VM's /usr/bin/tcpcrypt-gw says %q, want version %s for linux/%s", v, pkgVersion, a.GOARCH)
	}

	// Each case checks what the VM's gateway reports about its flow.
	t.Run("encrypted HTTP, SHA-256 both ways", func(t *testing.T) {
		l.t = t
		httpTransfer(t, tp.Server, tp.Client, net.JoinHostPort(tp.ServerAddr4.String(), "9000"), 2<<20, 2<<20)
		l.sameSession(t, 9000)
	})
	t.Run("IPv6", func(t *testing.T) {
		l.t = t
		httpTransfer(t, tp.Server, tp.Client, net.JoinHostPort(tp.ServerAddr6.String(), "9001"), 1<<20, 1<<20)
		l.sameSession(t, 9001)
	})
	t.Run("legacy server left plain", func(t *testing.T) {
		l.t = t
		// client2, behind the VM, reaches the legacy server (no gateway):
		// the VM's gateway offers TCP-ENO, gets none, and leaves the
		// connection plain.
		httpTransfer(t, tp.Legacy, tp.Client2, net.JoinHostPort(tp.LegacyAddr4.String(), "9002"), 1<<20, 1<<20)
		f := flowWithPort(l.flowsVM(), 9002)
		if f == nil || f.Encrypted || f.Reason == "" || f.Direction != "outbound" {
			t.Fatalf("the VM's flow to the legacy server: %+v", f)
		}
	})
	t.Run("reset propagates", func(t *testing.T) {
		l.t = t
		resetThrough(t, tp.Server, tp.Client, net.JoinHostPort(tp.ServerAddr4.String(), "9003"))
		f := flowWithPort(l.flowsVM(), 9003)
		if f == nil || !f.Encrypted {
			t.Fatalf("the VM's flow of the reset connection: %+v", f)
		}
	})
	t.Run("1000 idle encrypted flows", func(t *testing.T) {
		l.t = t
		l.idleFlows(t, 1000)
	})
	l.t = t
	l.stopVMGateway()
	l.stopGwA()
}

// sameSession checks that both gateways encrypted the flow on port and
// report the same session ID (RFC 8548 §3.4: both ends derive it).
func (l *lab) sameSession(t *testing.T, port int) {
	t.Helper()
	fa := flowWithPort(l.flowsA(), port)
	fb := flowWithPort(l.flowsVM(), port)
	if fa == nil || fb == nil {
		t.Fatalf("flows not found: A %v, VM %v", fa, fb)
	}
	if !fa.Encrypted || !fb.Encrypted || fa.SessionID == "" || fa.SessionID != fb.SessionID {
		t.Fatalf("gateway A: encrypted=%v sid=%s; VM: encrypted=%v sid=%s", fa.Encrypted, fa.SessionID, fb.Encrypted, fb.SessionID)
	}
	if fa.Direction != "outbound" || fb.Direction != "inbound" || fb.Cipher == "" {
		t.Fatalf("flow fields: A %+v, VM %+v", fa, fb)
	}
	t.Logf("session %s… cipher %s, equal at both gateways", fa.SessionID[:16], fb.Cipher)
}

// httpTransfer serves HTTP in srvNS at addr; the client in cliNS POSTs up
// random bytes and gets down random bytes back. Each side checks the other's
// SHA-256 (sent in a header), so every byte is checked in both directions.
func httpTransfer(t *testing.T, srvNS, cliNS *netns.NS, addr string, up, down int) {
	t.Helper()
	var ln net.Listener
	if err := srvNS.Do(func() (err error) { ln, err = net.Listen("tcp", addr); return }); err != nil {
		t.Fatal(err)
	}
	respBody := make([]byte, down)
	rand.Read(respBody)
	respSum := sha256.Sum256(respBody)
	srvErr := make(chan error, 1)
	hs := &http.Server{ReadTimeout: 5 * time.Minute, WriteTimeout: 5 * time.Minute, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := sha256.New()
		n, err := io.Copy(h, r.Body)
		if err == nil && (n != int64(up) || hex.EncodeToString(h.Sum(nil)) != r.Header.Get("X-Sha256")) {
			err = fmt.Errorf("the server received %d bytes, want %d, or a wrong SHA-256", n, up)
		}
		srvErr <- err
		w.Header().Set("X-Sha256", hex.EncodeToString(respSum[:]))
		w.Write(respBody)
	})}
	go hs.Serve(ln)
	defer hs.Close()

	reqBody := make([]byte, up)
	rand.Read(reqBody)
	reqSum := sha256.Sum256(reqBody)
	tr := &http.Transport{DialContext: func(ctx context.Context, network, a string) (net.Conn, error) {
		var c net.Conn
		err := cliNS.Do(func() (err error) { c, err = net.DialTimeout("tcp", a, 30*time.Second); return })
		return c, err
	}}
	defer tr.CloseIdleConnections()
	req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/", bytes.NewReader(reqBody))
	req.Header.Set("X-Sha256", hex.EncodeToString(reqSum[:]))
	start := time.Now()
	resp, err := (&http.Client{Transport: tr, Timeout: 5 * time.Minute}).Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", addr, err)
	}
	defer resp.Body.Close()
	h := sha256.New()
	n, err := io.Copy(h, resp.Body)
	if err != nil {
		t.Fatalf("reading the response: %v", err)
	}
	if err := <-srvErr; err != nil {
		t.Fatal(err)
	}
	if n != int64(down) || hex.EncodeToString(h.Sum(nil)) != resp.Header.Get("X-Sha256") || resp.Header.Get("X-Sha256") != hex.EncodeToString(respSum[:]) {
		t.Fatalf("the client received %d bytes, want %d, or a wrong SHA-256", n, down)
	}
	t.Logf("%s: %d bytes up, %d down, SHA-256 equal both ways, %v", addr, up, down, time.Since(start).Round(time.Millisecond))
}

// resetThrough: the server sends a byte and resets the connection; the
// client must read the byte and then ECONNRESET.
func resetThrough(t *testing.T, srvNS, cliNS *netns.NS, addr string) {
	t.Helper()
	var ln net.Listener
	if err := srvNS.Do(func() (err error) { ln, err = net.Listen("tcp", addr); return }); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		c.Write([]byte("x"))
		time.Sleep(time.Second)
		c.(*net.TCPConn).SetLinger(0)
		c.Close() // RST
	}()
	var c net.Conn
	if err := cliNS.Do(func() (err error) { c, err = net.DialTimeout("tcp", addr, 30*time.Second); return }); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Minute))
	b, err := io.ReadAll(c)
	if string(b) != "x" || !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("read %q then %v; want \"x\" then connection reset", b, err)
	}
}

var idleDoneRE = regexp.MustCompile(`idle-conns: done opened (\d+) failed (\d+)`)

// idleFlows opens n connections from client to server (each with one byte
// echoed, so its key exchange is done), holds them idle, and reads the VM
// gateway's RSS before and after.
func (l *lab) idleFlows(t *testing.T, n int) {
	t.Helper()
	tp := l.topo
	// A warm-up connection (keys, session cache) before the baseline.
	httpTransfer(t, tp.Server, tp.Client, net.JoinHostPort(tp.ServerAddr4.String(), "9004"), 1, 1)
	rss0 := l.vmGatewayRSS()
	srvLog, cliLog := filepath.Join(l.dir, "idle-server.log"), filepath.Join(l.dir, "idle-client.log")
	srv, err := tp.Server.Start(context.Background(), srvLog, idleBinary, "-listen", ":5400")
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	if err := waitLog(srvLog, "idle-conns: listening", 10*time.Second); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	limit := 5 * time.Minute
	cli, err := tp.Client.Start(context.Background(), cliLog, idleBinary, "-connect", net.JoinHostPort(tp.ServerAddr4.String(), "5400"),
		"-n", strconv.Itoa(n), "-par", "8", "-limit", limit.String())
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Stop()
	if err := waitLog(cliLog, "idle-conns: done", limit+30*time.Second); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(cliLog)
	m := idleDoneRE.FindSubmatch(b)
	if m == nil {
		t.Fatalf("idle-conns: %s", b)
	}
	opened, _ := strconv.Atoi(string(m[1]))
	if opened != n {
		t.Fatalf("opened %d of %d idle connections: %s", opened, n, b)
	}
	openTime := time.Since(start)
	// Let the flows go idle (an encrypted flow quiet for 10 s gives back its
	// AEAD states) before reading the memory.
	time.Sleep(15 * time.Second)
	encrypted := 0
	for _, f := range l.flowsVM() {
		if f.Encrypted && (bytes.HasSuffix([]byte(f.LAN), []byte(":5400")) || bytes.HasSuffix([]byte(f.WAN), []byte(":5400"))) {
			encrypted++
		}
	}
	if encrypted != n {
		t.Fatalf("the VM's gateway holds %d encrypted flows on port 5400, want %d", encrypted, n)
	}
	rss1 := l.vmGatewayRSS()
	free := l.run("free | sed -n 2p")
	t.Logf("%d idle encrypted flows (opened in %v): VM gateway RSS %.1f MiB -> %.1f MiB (%+.0f bytes per flow); VM memory: %s",
		n, openTime.Round(time.Second), float64(rss0)/(1<<20), float64(rss1)/(1<<20), float64(rss1-rss0)/float64(n), free)
	// A router of 128 MB runs more than the gateway: half of it for 1,000
	// idle flows would be a leak, not a figure.
	if rss1 > MemoryMB<<20/2 {
		t.Fatalf("VM gateway RSS %d MiB with %d idle flows: more than half the VM's memory", rss1>>20, n)
	}
}

// waitLog waits (bounded) until the file at path contains marker.
func waitLog(path, marker string, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		if b, _ := os.ReadFile(path); bytes.Contains(b, []byte(marker)) {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	b, _ := os.ReadFile(path)
	return fmt.Errorf("no %q in %s after %v: %s", marker, filepath.Base(path), limit, bytes.TrimSpace(b))
}
