package e2e

// Loss recovery through the gateways (issue 10): with random loss on the
// wan, the LAN hosts' TCP must recover as it does without the gateways
// (fast retransmit from duplicate ACKs and SACK), not by timeouts. The
// same transfer runs encrypted through the pair, then by plain forwarding
// (gateways stopped), on one topology under the same loss; the encrypted
// one must not need more retransmission timeouts, and must not take more
// than a generous multiple of the plain time. The bound is loose on
// purpose (speed is measured by make bench, not here): it fails when
// recovery falls back on timeouts, which costs 200 ms or more per loss.

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"tcpcrypt-gw/test/netns"
)

const (
	lossBoundFactor = 8
	lossBoundMargin = 3 * time.Second
)

func TestLossRecoveryBound(t *testing.T) {
	e := newEnv(t, envOptions{})
	requireLog(t, e, "offloads=true") // the default path: super-packets, no checksums
	lossRules(t, e.topo.Wan, 1)
	const size = 64 << 20
	run := func(port int, seed uint64) (time.Duration, uint64) {
		addr := fmt.Sprintf("%s:%d", e.topo.ServerAddr4, port)
		l := listen(t, e.topo.Server, fmt.Sprintf("0.0.0.0:%d", port))
		defer l.Close()
		before := rtos(t, e.topo.Client) + rtos(t, e.topo.Server)
		start := time.Now()
		transfer(t, l, e.topo.Client, addr, size, size, seed)
		return time.Since(start), rtos(t, e.topo.Client) + rtos(t, e.topo.Server) - before
	}
	gwTime, gwRTOs := run(9401, 80)
	if f := flowWithPort(e.flows(e.topo.GwA), 9401); f == nil || !f.Encrypted {
		t.Fatalf("the transfer through the gateways was not encrypted: %+v", f)
	}
	for _, p := range []*netns.Proc{e.gwA, e.gwB} {
		if err := p.Stop(); err != nil {
			t.Fatalf("stopping a gateway: %v", err)
		}
	}
	plainTime, plainRTOs := run(9402, 82)
	t.Logf("64 MiB each way with 1%% loss: through the gateways %v (%d retransmission timeouts), plain forwarding %v (%d)",
		gwTime, gwRTOs, plainTime, plainRTOs)
	if limit := lossBoundFactor*plainTime + lossBoundMargin; gwTime > limit {
		t.Errorf("through the gateways %v, more than %d x plain (%v) + %v", gwTime, lossBoundFactor, plainTime, lossBoundMargin)
	}
	if gwRTOs > 2*plainRTOs+8 {
		t.Errorf("the senders timed out %d times through the gateways, %d times by plain forwarding", gwRTOs, plainRTOs)
	}
}

// rtos returns the retransmission timeouts TCP has had in ns
// (TcpExtTCPTimeouts, absolute).
func rtos(t *testing.T, ns *netns.NS) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := ns.Run(ctx, "nstat", "-saz", "TcpExtTCPTimeouts")
	if err != nil {
		t.Fatalf("nstat: %v %s", err, out)
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) >= 2 && f[0] == "TcpExtTCPTimeouts" {
			n, err := strconv.ParseUint(f[1], 10, 64)
			if err != nil {
				t.Fatalf("nstat: %q", sc.Text())
			}
			return n
		}
	}
	t.Fatalf("nstat printed no TcpExtTCPTimeouts: %s", out)
	return 0
}

// TestWithoutOffloads: a TUN device without virtio-net headers (forced with
// TCPCRYPT_GW_OFFLOAD=0) goes through the tun package's split and GRO and
// full checksums; the same transfer must work, encrypted, byte for byte,
// under loss.
func TestWithoutOffloads(t *testing.T) {
	t.Setenv("TCPCRYPT_GW_OFFLOAD", "0")
	e := newEnv(t, envOptions{})
	requireLog(t, e, "offloads=false")
	lossRules(t, e.topo.Wan, 1)
	addr := fmt.Sprintf("%s:9403", e.topo.ServerAddr4)
	l := listen(t, e.topo.Server, "0.0.0.0:9403")
	transfer(t, l, e.topo.Client, addr, 16<<20, 16<<20, 84)
	if f := flowWithPort(e.flows(e.topo.GwA), 9403); f == nil || !f.Encrypted {
		t.Fatalf("not encrypted: %+v", f)
	}
}

// requireLog fails t unless both gateways' logs contain s within 5 s (the
// API answers a moment before the start-up line is written).
func requireLog(t *testing.T, e *env, s string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for _, name := range []string{"gwa.log", "gwb.log"} {
		for {
			b, err := os.ReadFile(filepath.Join(e.logs, name))
			if err == nil && bytes.Contains(b, []byte(s)) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s does not say %s: %v\n%s", name, s, err, b)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}
