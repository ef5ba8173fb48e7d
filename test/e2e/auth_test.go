// Session-ID authentication, required encryption and downgrade detection
// against real TCP stacks and a real active attacker on the wan:
//   - the LAN session endpoint gives both ends the same session ID, and
//     refuses to tell one LAN host about another host's connection;
//   - the example programs authenticate their connection (and fail on a
//     wrong key);
//   - require_encryption resets a connection to a legacy server, and lets
//     one to a tcpcrypt server through;
//   - the wan router strips TCP-ENO from SYN-ACKs (tcpcrypt-impair
//     --strip-eno) after a first encrypted connection: flagged (warn), or
//     reset before any byte leaves (block, checked in a wan capture).
package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"tcpcrypt-gw/gateway/lanapi"
	"tcpcrypt-gw/gateway/monitor"
	"tcpcrypt-gw/test/impair"
	"tcpcrypt-gw/test/netns"
)

// sessionCLI runs `tcpcrypt-gw session --json LOCAL REMOTE` in ns (the LAN
// host's own namespace: it asks its default gateway).
func sessionCLI(t *testing.T, ns *netns.NS, local, remote net.Addr) (lanapi.Session, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := ns.Run(ctx, gwBinary, "session", "--json", local.String(), remote.String())
	var s lanapi.Session
	if jerr := json.Unmarshal(out[:strings.LastIndexByte(string(out), '}')+1], &s); jerr != nil && err == nil {
		t.Fatalf("session CLI output %q: %v", out, jerr)
	}
	return s, err
}

// acceptedConn dials addr from `from` and returns both ends, open.
func acceptedConn(t *testing.T, l net.Listener, from *netns.NS, addr string) (client, server net.Conn) {
	t.Helper()
	acc := make(chan net.Conn, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			c = nil
		}
		acc <- c
	}()
	client, err := dial(from, addr)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { client.Close() })
	select {
	case server = <-acc:
	case <-time.After(10 * time.Second):
	}
	if server == nil {
		t.Fatal("the server accepted nothing")
	}
	t.Cleanup(func() { server.Close() })
	return client, server
}

func TestSessionEndpoint(t *testing.T) {
	e := newEnv(t, envOptions{})
	srv := fmt.Sprintf("%s:9600", e.topo.ServerAddr4)
	client, server := acceptedConn(t, listen(t, e.topo.Server, "0.0.0.0:9600"), e.topo.Client, srv)

	// Both LAN hosts ask their own gateway, by default route, on the
	// default lan:8474.
	cs, ss := lookupBothEnds(t, e, client, server)
	if !cs.Encrypted || !ss.Encrypted || len(cs.SessionID) != 66 || cs.SessionID != ss.SessionID || cs.TEP != "x25519mlkem768" || cs.Cipher == "" {
		t.Fatalf("client sees %+v\nserver sees %+v", cs, ss)
	}
	fa := flowWithPort(e.flows(e.topo.GwA), 9600)
	if fa == nil || fa.SessionID != cs.SessionID {
		t.Fatalf("gateway A's flow %+v, session endpoint said %s", fa, cs.SessionID)
	}

	// client2, on the server's LAN, asks about the server's connection: it
	// gets exactly the answer for a connection that does not exist.
	q := func(local string) string {
		return lanapi.Path + "?local=" + local + "&remote=" + server.RemoteAddr().String()
	}
	gwb := net.JoinHostPort(e.topo.GwBLANAddr4.String(), "8474")
	_, other := e.topo.Client2.HTTPGet(gwb, q(server.LocalAddr().String()))
	_, unknown := e.topo.Client2.HTTPGet(gwb, q(e.topo.Client2Addr4.String()+":9600"))
	if other == nil || unknown == nil || other.Error() != unknown.Error() || !strings.Contains(other.Error(), lanapi.NotFound) {
		t.Fatalf("another host's connection: %v\nan unknown connection: %v", other, unknown)
	}
	if strings.Contains(other.Error(), strings.TrimPrefix(cs.SessionID, "21")[:16]) {
		t.Fatal("the session ID leaked to another LAN host")
	}
	// The server itself, asking the same, gets it.
	body, err := e.topo.Server.HTTPGet(gwb, q(server.LocalAddr().String()))
	if err != nil || !strings.Contains(string(body), cs.SessionID) {
		t.Fatalf("the server's own question: %v %s", err, body)
	}
	// The endpoint is on the LAN side only: not on the WAN address.
	if _, err := e.topo.Wan.HTTPGet(net.JoinHostPort(e.topo.GwBWANAddr4.String(), "8474"), q(server.LocalAddr().String())); err == nil {
		t.Fatal("the session endpoint answers on the WAN address")
	}
}

// pskFile writes a pre-shared key file for the examples.
func pskFile(t *testing.T, key string) string {
	p := filepath.Join(t.TempDir(), "psk")
	if err := os.WriteFile(p, []byte(key+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// runExamples starts auth-server (one connection) in the server namespace
// and runs auth-client towards addr; it returns both outputs and errors.
func runExamples(t *testing.T, e *env, serverPSK, clientPSK, addr, listenAddr string) (cliOut string, cliErr error, srvOut string, srvErr error) {
	t.Helper()
	srvLog := filepath.Join(t.TempDir(), "auth-server.log")
	p, err := e.topo.Server.Start(context.Background(), srvLog, authServerBinary, "-listen", listenAddr, "-once", "-psk-file", pskFile(t, serverPSK))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Kill() })
	deadline := time.Now().Add(10 * time.Second)
	for b, _ := os.ReadFile(srvLog); !strings.Contains(string(b), "listening"); b, _ = os.ReadFile(srvLog) {
		if time.Now().After(deadline) {
			t.Fatalf("auth-server did not start: %s", b)
		}
		time.Sleep(20 * time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, cliErr := e.topo.Client.Run(ctx, authClientBinary, "-connect", addr, "-psk-file", pskFile(t, clientPSK), "-message", "hello through two gateways")
	select {
	case <-p.Done():
	case <-time.After(15 * time.Second):
		t.Fatal("auth-server did not finish")
	}
	b, _ := os.ReadFile(srvLog)
	return string(out), cliErr, string(b), p.Wait()
}

func TestExamplesAuthenticate(t *testing.T) {
	e := newEnv(t, envOptions{})
	addr := fmt.Sprintf("%s:7100", e.topo.ServerAddr4)
	out, cerr, sout, serr := runExamples(t, e, "shared secret", "shared secret", addr, ":7100")
	if cerr != nil || serr != nil || !strings.Contains(out, "authenticated: session ID ") ||
		!strings.Contains(out, "reply: authenticated hello through two gateways") {
		t.Fatalf("client (%v):\n%s\nserver (%v):\n%s", cerr, out, serr, sout)
	}
	sid := strings.Fields(out[strings.Index(out, "session ID"):])[2]
	if !strings.Contains(sout, sid) {
		t.Fatalf("server saw another session ID than the client's %s:\n%s", sid, sout)
	}
	if fa := flowWithPort(e.flows(e.topo.GwA), 7100); fa == nil || fa.SessionID != sid {
		t.Fatalf("gateway A's flow %+v", fa)
	}

	// A wrong key fails at both ends, with the reason.
	out, cerr, sout, serr = runExamples(t, e, "shared secret", "other secret", fmt.Sprintf("%s:7101", e.topo.ServerAddr4), ":7101")
	if cerr == nil || serr == nil || !strings.Contains(out, "authentication FAILED") || !strings.Contains(sout, "authentication FAILED") {
		t.Fatalf("wrong key: client (%v):\n%s\nserver (%v):\n%s", cerr, out, serr, sout)
	}
}

func TestRequireEncryption(t *testing.T) {
	e := newEnv(t, envOptions{extraA: "require_encryption:\n  ports: [7300]\n"})
	// To a legacy server (no gateway): the connection is reset, nothing
	// is established at the server.
	ll := listen(t, e.topo.Legacy, "0.0.0.0:7300")
	accepted := make(chan struct{}, 1)
	go func() {
		if c, err := ll.Accept(); err == nil {
			c.Close()
			accepted <- struct{}{}
		}
	}()
	legacy := fmt.Sprintf("%s:7300", e.topo.LegacyAddr4)
	c, err := dial(e.topo.Client, legacy)
	if err == nil {
		c.Close()
		t.Fatal("connection to a legacy server on a required port succeeded")
	}
	if !errors.Is(err, syscall.ECONNREFUSED) && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("dial: %v, want a reset", err)
	}
	f := flowWithPort(e.flows(e.topo.GwA), 7300)
	if f == nil || f.State != "reset" || f.Reason != "encryption required: peer did not answer ENO" || f.Encrypted {
		t.Fatalf("gateway A's flow: %+v", f)
	}
	select {
	case <-accepted:
		t.Fatal("the legacy server got an established connection")
	case <-time.After(time.Second):
	}
	var st monitor.StatsJSON
	b, err := e.api(e.topo.GwA, "/api/stats")
	if err != nil || json.Unmarshal(b, &st) != nil || st.RequiredResets != 1 {
		t.Fatalf("stats: %v %s", err, b)
	}

	// To a tcpcrypt server (behind gateway B): encrypted, byte-exact.
	srv := fmt.Sprintf("%s:7300", e.topo.ServerAddr4)
	transfer(t, listen(t, e.topo.Server, "0.0.0.0:7300"), e.topo.Client, srv, 1<<20, 1<<20, 73)
	for _, f := range e.flows(e.topo.GwA) {
		if f.WAN == srv && (!f.Encrypted || f.SessionID == "") {
			t.Fatalf("required flow to the tcpcrypt server: %+v", f)
		}
	}
}

// TestRequireEncryptionNoKeyPair (issue 23 item 6): gateway A cannot have a
// key pair (a build with fault injection: every key generation fails, as
// with a broken entropy source). A connection on a required port is reset
// at both ends and no byte of it reaches the server; a connection on
// another port goes plain, with the reason on its flow (RFC 8547 §9 and
// docs/security.md: never plain where encryption is required).
func TestRequireEncryptionNoKeyPair(t *testing.T) {
	e := newEnv(t, envOptions{faultA: "no-key-pairs", extraA: "require_encryption:\n  ports: [7310]\n"})
	const why = "no key pair: key generation failed (fault injected)"

	// The required port: the three-way handshake completes (the key pair
	// is asked for at the LAN host's ACK, RFC 8548 §3.3's Init1), then both
	// ends are reset and the server never has a byte.
	ls := listen(t, e.topo.Server, "0.0.0.0:7310")
	got := make(chan int, 1)
	go func() {
		c, err := ls.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, _ := c.Read(make([]byte, 64))
		got <- n
	}()
	c, err := dial(e.topo.Client, fmt.Sprintf("%s:7310", e.topo.ServerAddr4))
	if err == nil {
		c.SetDeadline(time.Now().Add(5 * time.Second))
		_, err = c.Write([]byte("secret"))
		if err == nil {
			_, err = c.Read(make([]byte, 64))
		}
		c.Close()
	}
	if !errors.Is(err, syscall.ECONNRESET) && !errors.Is(err, syscall.ECONNREFUSED) && !errors.Is(err, syscall.EPIPE) {
		t.Fatalf("client on the required port: %v, want a reset", err)
	}
	select {
	case n := <-got:
		if n > 0 {
			t.Fatalf("the server read %d bytes of a required connection without encryption", n)
		}
	case <-time.After(time.Second):
	}
	f := flowWithPort(e.flows(e.topo.GwA), 7310)
	if f == nil || f.State != "reset" || f.Reason != "encryption required: "+why || f.Encrypted {
		t.Fatalf("gateway A's required flow: %+v", f)
	}
	if st := e.apiStats(e.topo.GwA); st["required_resets"] != 1 {
		t.Fatalf("gateway A's required_resets: %v, want 1", st["required_resets"])
	}

	// Another port: plain, byte-exact, with the reason.
	transfer(t, listen(t, e.topo.Server, "0.0.0.0:7311"), e.topo.Client, fmt.Sprintf("%s:7311", e.topo.ServerAddr4), 64<<10, 64<<10, 731)
	if f := flowWithPort(e.flows(e.topo.GwA), 7311); f == nil || f.Encrypted || f.Reason != why {
		t.Fatalf("gateway A's flow on a port not required: %+v, want plain with reason %q", f, why)
	}
}

// stripENOFromSYNACKs makes the wan router replace TCP-ENO in every
// SYN-ACK towards gateway A with NOPs, checksum fixed: an active attacker.
func stripENOFromSYNACKs(e *env) {
	e.impair = e.startImpairer("--strip-eno", "b2a=synack")
}

func TestDowngradeWarn(t *testing.T) {
	e := newEnv(t, envOptions{})
	l := listen(t, e.topo.Server, "0.0.0.0:9700")
	srv := fmt.Sprintf("%s:9700", e.topo.ServerAddr4)
	transfer(t, l, e.topo.Client, srv, 64<<10, 64<<10, 97) // gateway B's address completes tcpcrypt
	stripENOFromSYNACKs(e)
	transfer(t, l, e.topo.Client, srv, 64<<10, 64<<10, 98) // warn: it still works, in the clear
	if n := e.impair.stats()["b2a"].Counts[impair.ENOStripped]; n < 1 {
		t.Fatalf("the attacker stripped %d options", n)
	}
	var down *monitor.FlowJSON
	for _, f := range e.flows(e.topo.GwA) {
		if f.WAN == srv && f.DowngradeSuspected {
			down = &f
		}
	}
	if down == nil || down.Encrypted || !strings.HasPrefix(down.Reason, "downgrade suspected: peer did not answer ENO") {
		t.Fatalf("no flow flagged: %+v", e.flows(e.topo.GwA))
	}
	var st monitor.StatsJSON
	if b, err := e.api(e.topo.GwA, "/api/stats"); err != nil || json.Unmarshal(b, &st) != nil || st.DowngradesSuspected != 1 || st.DowngradesBlocked != 0 {
		t.Fatalf("stats: %v %+v", err, st)
	}
	m, err := e.api(e.topo.GwA, "/metrics")
	if err != nil || !strings.Contains(string(m), "\ntcpcrypt_gw_downgrades_suspected_total 1\n") {
		t.Fatalf("metrics: %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(e.logs, "gwa.log")); !strings.Contains(string(b), "level=WARN msg=\"downgrade suspected") {
		t.Fatal("no warning in gateway A's log")
	}

	t.Run("dashboard", func(t *testing.T) {
		requireChromium(t)
		dom := chromium(t, e.topo.GwA, 1200, 800, "http://"+apiAddr+"/", "--dump-dom")
		var row string
		for _, r := range flowRows(dom) {
			if strings.Contains(r, `data-downgrade="true"`) {
				row = r
			}
		}
		if !strings.Contains(row, "downgrade suspected") || !strings.Contains(row, srv) {
			t.Fatalf("no highlighted row:\n%s", dom)
		}
		if !strings.Contains(string(dom), `id="t-down">1<`) {
			t.Error("the downgrade total is not 1")
		}
	})
}

func TestDowngradeBlock(t *testing.T) {
	e := newEnv(t, envOptions{extraA: "downgrade:\n  block: [10.91.5.0/24]\n"})
	first := fmt.Sprintf("%s:9710", e.topo.ServerAddr4)
	transfer(t, listen(t, e.topo.Server, "0.0.0.0:9710"), e.topo.Client, first, 64<<10, 64<<10, 971)
	stripENOFromSYNACKs(e)
	cap := startCapture(t, e.topo.Wan, "tcp port 9711")
	ls := listen(t, e.topo.Server, "0.0.0.0:9711")
	go func() {
		if c, err := ls.Accept(); err == nil {
			c.Close()
		}
	}()
	c, err := dial(e.topo.Client, fmt.Sprintf("%s:9711", e.topo.ServerAddr4))
	if err == nil {
		c.SetDeadline(time.Now().Add(2 * time.Second))
		_, werr := c.Write(markerPayload(8 << 10))
		c.Close()
		t.Fatalf("the connection was established under the block policy (write: %v)", werr)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("dial: %v, want a reset", err)
	}
	time.Sleep(300 * time.Millisecond)
	pkts := cap.packets()
	facts := factsFor(pkts, 9711, marker)
	if facts.PayloadBytes != 0 || facts.MarkerSeen || len(pkts) == 0 {
		t.Fatalf("wan capture: %d packets, %d payload bytes, marker %v; want packets but no payload", len(pkts), facts.PayloadBytes, facts.MarkerSeen)
	}
	var f *monitor.FlowJSON
	for _, x := range e.flows(e.topo.GwA) {
		if strings.HasSuffix(x.WAN, ":9711") {
			f = &x
		}
	}
	if f == nil || f.State != "reset" || !f.DowngradeSuspected || !strings.HasSuffix(f.Reason, "(policy block)") {
		t.Fatalf("gateway A's flow: %+v", f)
	}
	var st monitor.StatsJSON
	if b, err := e.api(e.topo.GwA, "/api/stats"); err != nil || json.Unmarshal(b, &st) != nil || st.DowngradesSuspected != 1 || st.DowngradesBlocked != 1 {
		t.Fatalf("stats: %v %+v", err, st)
	}
}

// TestDowngradeMemoryPersists: with downgrade.persist_file the memory of
// tcpcrypt peers survives a restart of the gateway (addresses only).
func TestDowngradeMemoryPersists(t *testing.T) {
	file := filepath.Join(t.TempDir(), "peers")
	e := newEnv(t, envOptions{extraA: "downgrade:\n  persist_file: " + file + "\n"})
	l := listen(t, e.topo.Server, "0.0.0.0:9720")
	srv := fmt.Sprintf("%s:9720", e.topo.ServerAddr4)
	transfer(t, l, e.topo.Client, srv, 16<<10, 16<<10, 972)
	if err := e.gwA.Stop(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[1], e.topo.ServerAddr4.String()+" ") {
		t.Fatalf("persisted memory:\n%s", b)
	}
	if fi, _ := os.Stat(file); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v", fi.Mode().Perm())
	}
	yaml, err := os.ReadFile(filepath.Join(e.logs, "gwa.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	e.gwA = e.startGateway(e.topo.GwA, "gwa", string(yaml))
	stripENOFromSYNACKs(e)
	transfer(t, l, e.topo.Client, srv, 16<<10, 16<<10, 973)
	if f := flowWithPort(e.flows(e.topo.GwA), 9720); f == nil || !f.DowngradeSuspected {
		t.Fatalf("after the restart the downgrade went unnoticed: %+v", f)
	}
}

// TestSessionEndpointIPv6: the same over IPv6, where the client asks its
// gateway's IPv6 LAN address.
func TestSessionEndpointIPv6(t *testing.T) {
	e := newEnv(t, envOptions{})
	srv := fmt.Sprintf("[%s]:9610", e.topo.ServerAddr6)
	client, server := acceptedConn(t, listen(t, e.topo.Server, "[::]:9610"), e.topo.Client, srv)
	cs, ss := lookupBothEnds(t, e, client, server)
	if !cs.Encrypted || cs.SessionID == "" || cs.SessionID != ss.SessionID {
		t.Fatalf("client sees %+v\nserver sees %+v", cs, ss)
	}
}

// lookupBothEnds asks each end's own gateway, with the session CLI, about
// its side of the connection.
func lookupBothEnds(t *testing.T, e *env, client, server net.Conn) (cs, ss lanapi.Session) {
	t.Helper()
	cs, err := sessionCLI(t, e.topo.Client, client.LocalAddr(), client.RemoteAddr())
	if err != nil {
		t.Fatalf("client's lookup: %v", err)
	}
	ss, err = sessionCLI(t, e.topo.Server, server.LocalAddr(), server.RemoteAddr())
	if err != nil {
		t.Fatalf("server's lookup: %v", err)
	}
	return cs, ss
}
