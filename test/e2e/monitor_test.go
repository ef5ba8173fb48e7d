// The monitoring interface against running gateways: /api/flows and
// /api/stats after a transfer through both gateways, /metrics, and a policy
// reload by SIGHUP (a good file takes effect for new connections only, a bad
// one is rejected and changes nothing).
package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"tcpcrypt-gw/gateway/monitor"
	"tcpcrypt-gw/test/netns"
)

func (e *env) stats(ns *netns.NS) monitor.StatsJSON {
	e.t.Helper()
	b, err := e.api(ns, "/api/stats")
	if err != nil {
		e.t.Fatalf("api: %v", err)
	}
	var s monitor.StatsJSON
	if err := json.Unmarshal(b, &s); err != nil {
		e.t.Fatalf("/api/stats: %v in %s", err, b)
	}
	return s
}

func (e *env) metrics(ns *netns.NS) map[string]*dto.MetricFamily {
	e.t.Helper()
	b, err := e.api(ns, "/metrics")
	if err != nil {
		e.t.Fatalf("api: %v", err)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(bytes.NewReader(b))
	if err != nil {
		e.t.Fatalf("/metrics does not parse: %v", err)
	}
	return fams
}

// scalar is the value of a metric without labels.
func scalar(t *testing.T, fams map[string]*dto.MetricFamily, name string) float64 {
	t.Helper()
	f := fams[name]
	if f == nil || len(f.Metric) != 1 {
		t.Fatalf("metric %s missing", name)
	}
	m := f.Metric[0]
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Histogram != nil:
		return float64(m.Histogram.GetSampleCount())
	}
	t.Fatalf("metric %s has no value", name)
	return 0
}

func TestMonitorAfterTransfer(t *testing.T) {
	e := newEnv(t, envOptions{})
	beforeA, beforeB := e.stats(e.topo.GwA), e.stats(e.topo.GwB)
	const up, down = 1 << 20, 3 << 20
	srv := fmt.Sprintf("%s:9300", e.topo.ServerAddr4)
	l := listen(t, e.topo.Server, "0.0.0.0:9300")
	transfer(t, l, e.topo.Client, srv, up, down, 30)

	fa := flowWithPort(e.flows(e.topo.GwA), 9300)
	fb := flowWithPort(e.flows(e.topo.GwB), 9300)
	if fa == nil || fb == nil {
		t.Fatalf("flows not found: A %v B %v", fa, fb)
	}
	if fa.Direction != "outbound" || fb.Direction != "inbound" {
		t.Errorf("directions: A %q, B %q", fa.Direction, fb.Direction)
	}
	if !fa.Encrypted || !fb.Encrypted || fa.State == "reset" || fb.State == "reset" || fa.Reason != "" || fb.Reason != "" {
		t.Errorf("A: encrypted %v state %s reason %q; B: encrypted %v state %s reason %q",
			fa.Encrypted, fa.State, fa.Reason, fb.Encrypted, fb.State, fb.Reason)
	}
	if fa.TEP == "" || fa.TEP != fb.TEP || fa.Cipher == "" || fa.Cipher != fb.Cipher {
		t.Errorf("TEP %q/%q, cipher %q/%q", fa.TEP, fb.TEP, fa.Cipher, fb.Cipher)
	}
	if fa.SessionID == "" || fa.SessionID != fb.SessionID {
		t.Errorf("session IDs %q and %q", fa.SessionID, fb.SessionID)
	}
	if !strings.HasPrefix(fa.LAN, e.topo.ClientAddr4.String()+":") || fa.WAN != srv || fb.LAN != srv {
		t.Errorf("endpoints: A %s -> %s, B %s <- %s", fa.LAN, fa.WAN, fb.LAN, fb.WAN)
	}
	// Payload counters: retransmissions may add, never remove.
	if fa.PlainBytesOut < up || fa.PlainBytesIn < down || fb.PlainBytesIn < up || fb.PlainBytesOut < down {
		t.Errorf("plaintext bytes: A out %d in %d, B in %d out %d; sent %d up, %d down",
			fa.PlainBytesOut, fa.PlainBytesIn, fb.PlainBytesIn, fb.PlainBytesOut, up, down)
	}
	if fa.CipherBytesOut <= fa.PlainBytesOut || fb.CipherBytesOut <= fb.PlainBytesOut || fa.PacketsOut == 0 || fa.PacketsIn == 0 {
		t.Errorf("ciphertext bytes: A out %d (plain %d), B out %d (plain %d); packets A %d/%d",
			fa.CipherBytesOut, fa.PlainBytesOut, fb.CipherBytesOut, fb.PlainBytesOut, fa.PacketsOut, fa.PacketsIn)
	}

	// The same flow by ID, with its sequence bookkeeping.
	b, err := e.api(e.topo.GwA, fmt.Sprintf("/api/flows/%d", fa.ID))
	if err != nil {
		t.Fatal(err)
	}
	var one monitor.FlowJSON
	if err := json.Unmarshal(b, &one); err != nil || one.ID != fa.ID || one.Seq == nil || one.SessionID != fa.SessionID {
		t.Errorf("/api/flows/%d: %v %s", fa.ID, err, b)
	}
	// Filters reach the gateway.
	b, err = e.api(e.topo.GwA, "/api/flows?encrypted=false&host=:9300")
	if err != nil {
		t.Fatal(err)
	}
	var none monitor.FlowListJSON
	if err := json.Unmarshal(b, &none); err != nil || none.Total != 0 {
		t.Errorf("encrypted=false&host=:9300: %v %s", err, b)
	}

	afterA, afterB := e.stats(e.topo.GwA), e.stats(e.topo.GwB)
	for _, s := range []struct {
		name          string
		before, after monitor.StatsJSON
	}{{"A", beforeA, afterA}, {"B", beforeB, afterB}} {
		if s.after.FlowsEncrypted < s.before.FlowsEncrypted+1 || s.after.PacketsIn < s.before.PacketsIn+(up+down)/1500 ||
			s.after.PacketsOut <= s.before.PacketsOut || s.after.Flows < 1 || s.after.FlowsByState["encrypted"]+s.after.FlowsByState["closed"] < 1 {
			t.Errorf("gateway %s stats did not move: before %+v, after %+v", s.name, s.before, s.after)
		}
		if s.after.AuthFailures != 0 || s.after.Truncations != 0 {
			t.Errorf("gateway %s: %d auth failures, %d truncations", s.name, s.after.AuthFailures, s.after.Truncations)
		}
	}
	if afterA.LivePlainBytesOut < up || afterA.LivePlainBytesIn < down {
		t.Errorf("gateway A live bytes out %d in %d", afterA.LivePlainBytesOut, afterA.LivePlainBytesIn)
	}

	// /metrics agrees with /api/stats (scraped later: counters only grow).
	m := e.metrics(e.topo.GwA)
	if v := scalar(t, m, "tcpcrypt_gw_flows_encrypted_total"); v < float64(afterA.FlowsEncrypted) || v < 1 {
		t.Errorf("flows_encrypted_total %v, /api/stats said %d", v, afterA.FlowsEncrypted)
	}
	if v := scalar(t, m, "tcpcrypt_gw_packets_in_total"); v < float64(afterA.PacketsIn) {
		t.Errorf("packets_in_total %v, /api/stats said %d", v, afterA.PacketsIn)
	}
	if v := scalar(t, m, "tcpcrypt_gw_handshake_duration_seconds"); v < 1 {
		t.Errorf("handshake histogram count %v after a key exchange", v)
	}
	for _, name := range []string{"tcpcrypt_gw_flows", "tcpcrypt_gw_buffered_bytes", "tcpcrypt_gw_rekeys_total",
		"go_goroutines", "process_resident_memory_bytes"} {
		if m[name] == nil {
			t.Errorf("/metrics lacks %s", name)
		}
	}
}

// echoServer echoes every connection l accepts until l is closed.
func echoServer(l net.Listener) {
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(time.Minute))
				io.Copy(c, c)
			}()
		}
	}()
}

// echo writes msg on c and reads it back.
func echo(c net.Conn, msg []byte) error {
	c.SetDeadline(time.Now().Add(20 * time.Second))
	errc := make(chan error, 1)
	go func() { _, err := c.Write(msg); errc <- err }()
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil {
		return err
	}
	if err := <-errc; err != nil {
		return err
	}
	if !bytes.Equal(got, msg) {
		return fmt.Errorf("echo differs")
	}
	return nil
}

// echoOnce makes one connection to addr, echoes a message and returns the
// client's address (gateway A's LAN endpoint of the flow).
func echoOnce(t *testing.T, from *netns.NS, addr string) net.Conn {
	t.Helper()
	c, err := dial(from, addr)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	defer c.Close()
	if err := echo(c, markerPayload(32<<10)); err != nil {
		t.Fatalf("echo via %s: %v", addr, err)
	}
	return c
}

// flowOf is gateway A's newest flow of c. Both ends are matched: Linux
// reuses a local port for another destination, so the LAN end alone can
// name an older flow (CI saw a port-9401 flow answer for port 9400).
func flowOf(t *testing.T, e *env, c net.Conn) monitor.FlowJSON {
	t.Helper()
	lan, wan := c.LocalAddr().String(), c.RemoteAddr().String()
	flows := e.flows(e.topo.GwA)
	var found *monitor.FlowJSON
	for i, f := range flows {
		if f.LAN == lan && f.WAN == wan && (found == nil || f.ID > found.ID) {
			found = &flows[i]
		}
	}
	if found == nil {
		t.Fatalf("no flow %s -> %s among %+v", lan, wan, flows)
	}
	return *found
}

// waitLog waits until the log file holds the line more than `seen` times.
func waitLog(t *testing.T, path, line string, seen int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, _ := os.ReadFile(path)
		if strings.Count(string(b), line) > seen {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: no new %q after 10s", filepath.Base(path), line)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestReloadBypassRule(t *testing.T) {
	e := newEnv(t, envOptions{})
	const keptPort, bypassPort = 9400, 9401
	for _, p := range []int{keptPort, bypassPort} {
		echoServer(listen(t, e.topo.Server, fmt.Sprintf("0.0.0.0:%d", p)))
	}
	kept := fmt.Sprintf("%s:%d", e.topo.ServerAddr4, keptPort)
	bypassed := fmt.Sprintf("%s:%d", e.topo.ServerAddr4, bypassPort)

	// An encrypted connection that stays open across the reloads.
	long, err := dial(e.topo.Client, kept)
	if err != nil {
		t.Fatal(err)
	}
	defer long.Close()
	if err := echo(long, []byte("before the reload")); err != nil {
		t.Fatal(err)
	}
	longFlow := flowOf(t, e, long)
	if !longFlow.Encrypted {
		t.Fatalf("the long connection is not encrypted: %+v", longFlow)
	}
	// Before the reload the port is encrypted like any other.
	if f := flowOf(t, e, echoOnce(t, e.topo.Client, bypassed)); !f.Encrypted {
		t.Fatalf("port %d before the reload: %+v", bypassPort, f)
	}

	cfgPath := filepath.Join(e.logs, "gwa.yaml")
	logPath := filepath.Join(e.logs, "gwa.log")
	lanPrefixes := []string{"10.91.1.0/24", "fd91:1::/64"}
	reload := func(yaml, line string) {
		t.Helper()
		b, _ := os.ReadFile(logPath)
		seen := strings.Count(string(b), line)
		if err := os.WriteFile(cfgPath, []byte(yaml), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := syscall.Kill(e.gwA.Pid(), syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		waitLog(t, logPath, line, seen)
	}
	// checkPolicy: the bypass port is plain by the rule, other ports are
	// encrypted, and the long connection still carries data.
	checkPolicy := func(when string) {
		t.Helper()
		f := flowOf(t, e, echoOnce(t, e.topo.Client, bypassed))
		if f.Encrypted || f.State != "plain" || f.Reason != "bypass rule" {
			t.Errorf("%s: new connection to port %d: encrypted %v state %s reason %q", when, bypassPort, f.Encrypted, f.State, f.Reason)
		}
		if f := flowOf(t, e, echoOnce(t, e.topo.Client, kept)); !f.Encrypted {
			t.Errorf("%s: new connection to port %d is not encrypted: %+v", when, keptPort, f)
		}
		if err := echo(long, markerPayload(256<<10)); err != nil {
			t.Fatalf("%s: the established connection broke: %v", when, err)
		}
		lf := flowOf(t, e, long)
		if !lf.Encrypted || lf.State != "encrypted" || lf.SessionID != longFlow.SessionID || lf.PlainBytesOut <= longFlow.PlainBytesOut {
			t.Errorf("%s: the established connection's flow: %+v", when, lf)
		}
		longFlow = lf
	}

	reload(gatewayYAML(lanPrefixes, fmt.Sprintf("bypass:\n  ports: [%d]\n", bypassPort)), "SIGHUP: policy reloaded")
	checkPolicy("after the reload")

	// A bad file (a port out of range) is rejected; the policy stays.
	reload(gatewayYAML(lanPrefixes, "bypass:\n  ports: [70000]\n"), "SIGHUP: new config rejected, keeping the old one")
	b, _ := os.ReadFile(logPath)
	if !strings.Contains(string(b), "bypass.ports") {
		t.Errorf("the rejection does not name the bad field; log tail:\n%s", b[max(0, len(b)-2000):])
	}
	select {
	case <-e.gwA.Done():
		t.Fatal("gateway A exited after a bad reload")
	default:
	}
	checkPolicy("after the rejected reload")
}
