// Gateway A killed with SIGKILL in the middle of encrypted transfers, then
// started again with the same configuration: the start must clean what the
// dead run left (one set of policy rules, not two), the connections that
// were in flight must end with an error (their keys died with the process)
// without a single wrong byte reaching either host, and new connections
// must work, encrypted.
package e2e

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"tcpcrypt-gw/test/netns"
)

// restartConns is how many connections are in flight at the kill.
const restartConns = 4

// restartEnd bounds how long after the restart the connections in flight
// may take to end; then their deadline ends them.
const restartEnd = 15 * time.Second

// TestRestartAfterKill is case 4.
func TestRestartAfterKill(t *testing.T) {
	e := newEnv(t, envOptions{})
	rulesBefore := policyRules(t, e)
	if !strings.Contains(rulesBefore, "lookup") {
		t.Fatalf("no policy rules of the gateway:\n%s", rulesBefore)
	}

	// 1. Connections streaming both ways, each side verifying every byte.
	const port = 9200
	l := listen(t, e.topo.Server, fmt.Sprintf("0.0.0.0:%d", port))
	addr := fmt.Sprintf("%s:%d", e.topo.ServerAddr4, port)
	type side struct {
		who  string
		res  verified
		werr error // how the same end's writing ended
	}
	results := make(chan side, 2*restartConns)
	var conns []net.Conn
	var mu sync.Mutex
	keep := func(c net.Conn) {
		mu.Lock()
		conns = append(conns, c)
		mu.Unlock()
	}
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	const huge = 1 << 40 // never reached: the kill comes first
	for i := 0; i < restartConns; i++ {
		seed := uint64(4000 + 10*i)
		srvDone := make(chan net.Conn, 1)
		go func() {
			c, err := l.Accept()
			if err != nil {
				srvDone <- nil
				return
			}
			srvDone <- c
		}()
		c, err := dial(e.topo.Client, addr)
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		sc := <-srvDone
		if sc == nil {
			t.Fatal("accept failed")
		}
		keep(c)
		keep(sc)
		for _, x := range []struct {
			who     string
			c       net.Conn
			out, in uint64
		}{{"client", c, seed, seed + 1}, {"server", sc, seed + 1, seed}} {
			x.c.SetDeadline(time.Now().Add(5 * time.Minute))
			werr := make(chan error, 1)
			go func() { werr <- copyStream(x.c, x.out, huge) }()
			go func() {
				res := readVerified(x.c, x.in, huge)
				results <- side{fmt.Sprintf("%s %d", x.who, i), res, <-werr}
			}()
		}
	}
	// Wait until every connection carries data both ways through A.
	deadline := time.Now().Add(time.Minute)
	for {
		busy := 0
		for _, f := range e.flows(e.topo.GwA) {
			if strings.HasSuffix(f.WAN, fmt.Sprintf(":%d", port)) && f.Encrypted && f.PlainBytesIn > 1<<20 && f.PlainBytesOut > 1<<20 {
				busy++
			}
		}
		if busy == restartConns {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d connections carried 1 MiB each way", busy, restartConns)
		}
		time.Sleep(50 * time.Millisecond)
	}

	// 2. Kill, and start again with the same configuration.
	e.gwA.Kill()
	killed := time.Now()
	stale := policyRules(t, e)
	t.Logf("policy rules left by the killed gateway:\n%s", stale)
	cfg := filepath.Join(e.logs, "gwa.yaml")
	yaml, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.gwA = e.startGateway(e.topo.GwA, "gwa", string(yaml))
	t.Logf("gateway A up again %v after the kill", time.Since(killed).Round(time.Millisecond))
	if after := policyRules(t, e); after != rulesBefore {
		t.Fatalf("policy rules after the restart differ from the first start:\nfirst:\n%s\nnow:\n%s", rulesBefore, after)
	}

	// 3. The connections in flight end, none with a wrong byte.
	mu.Lock()
	for _, c := range conns {
		c.SetDeadline(time.Now().Add(restartEnd))
	}
	mu.Unlock()
	defer func() {
		for _, g := range []struct {
			name string
			ns   *netns.NS
		}{{"A", e.topo.GwA}, {"B", e.topo.GwB}} {
			for _, f := range e.flows(g.ns) {
				t.Logf("gateway %s flow after the restart: %s %s %s encrypted=%v reason=%q", g.name, f.LAN, f.WAN, f.State, f.Encrypted, f.Reason)
			}
		}
	}()
	for i := 0; i < 2*restartConns; i++ {
		s := <-results
		s.res.mustBePrefix(t, s.who)
		// Linux reports a reset once: when the writer takes the error, the
		// reader sees an end of stream. That is a reset, not a FIN.
		if s.res.err == nil && !errors.Is(s.werr, syscall.ECONNRESET) && !errors.Is(s.werr, syscall.EPIPE) {
			t.Errorf("%s: clean end of stream after %d bytes (writing: %v): the stream was cut short silently", s.who, s.res.n, s.werr)
		}
		t.Logf("%s: %d bytes, all correct, then reading: %v, writing: %v", s.who, s.res.n, s.res.err, s.werr)
	}

	// 4. New connections work and are encrypted.
	l2 := listen(t, e.topo.Server, "0.0.0.0:9201")
	transfer(t, l2, e.topo.Client, fmt.Sprintf("%s:9201", e.topo.ServerAddr4), 8<<20, 8<<20, 4100)
	requireEncrypted(t, e, 9201, 1)
}

// copyStream writes the stream seed (n bytes) to c until an error.
func copyStream(c net.Conn, seed uint64, n int64) error {
	buf := make([]byte, 32<<10)
	src := newStream(seed, n)
	for {
		k, _ := src.Read(buf)
		if k == 0 {
			return nil
		}
		if _, err := c.Write(buf[:k]); err != nil {
			return err
		}
	}
}

// policyRules lists gateway A's namespace's IPv4 and IPv6 policy rules.
func policyRules(t *testing.T, e *env) string {
	t.Helper()
	var b strings.Builder
	for _, fam := range []string{"-4", "-6"} {
		out, err := e.topo.GwA.Run(context.Background(), "ip", fam, "rule", "show")
		if err != nil {
			t.Fatalf("ip rule: %v", err)
		}
		b.Write(out)
	}
	return b.String()
}
