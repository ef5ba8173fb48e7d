// An active attacker in the wan namespace (nftables rules in its forward
// chain) against the SYN fallback and the key exchange (issue 23 items 1,
// 2, 7; docs/security.md "Forced SYN fallback" and "Broken paths"):
//  1. ENO SYNs dropped towards a peer never seen: the fallback happens,
//     flagged syn_fallback, with its evidence in /api/paths; towards a
//     remembered peer: a suspected downgrade; under no_syn_fallback or
//     block, and for a require_encryption flow: no plain connection.
//  2. Ciphertext dropped after the key exchange towards one peer: the
//     first connections fail, the next go plain with the reason (not a
//     require_encryption flow), another peer stays encrypted; repaired, the path is encrypted again once the
//     memory expires.

package e2e

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"tcpcrypt-gw/gateway/monitor"
	"tcpcrypt-gw/test/netns"
)

// attacker loads an nftables table named table into the wan namespace's
// forward path with rules, and removes it at the end of the test. It
// returns a function that removes it earlier (the path repaired).
func attacker(t *testing.T, e *env, table, rules string) func() {
	t.Helper()
	ruleset := fmt.Sprintf("table inet %s {\n  chain forward { type filter hook forward priority -10; policy accept;\n%s\n  }\n}\n", table, rules)
	if out, err := e.topo.Wan.RunStdin(ruleset, "nft", "-f", "-"); err != nil {
		t.Fatalf("nft: %v: %s", err, out)
	}
	removed := false
	remove := func() {
		if !removed {
			removed = true
			if out, err := e.topo.Wan.Run(t.Context(), "nft", "delete", "table", "inet", table); err != nil {
				t.Errorf("nft delete: %v: %s", err, out)
			}
		}
	}
	t.Cleanup(func() {
		if !removed {
			removed = true
			e.topo.Wan.Run(t.Context(), "nft", "delete", "table", "inet", table)
		}
	})
	return remove
}

// nftCounter reads the packets of the first counter in table.
func nftCounter(t *testing.T, e *env, table string) int {
	t.Helper()
	out, err := e.topo.Wan.Run(t.Context(), "nft", "list", "table", "inet", table)
	if err != nil {
		t.Fatalf("nft list: %v: %s", err, out)
	}
	var n int
	if i := strings.Index(string(out), "counter packets "); i >= 0 {
		fmt.Sscan(string(out[i+len("counter packets "):]), &n)
	}
	return n
}

// dropENOSYNs is the rule of an attacker who drops every SYN carrying
// TCP-ENO (option kind 69) towards daddr (an "ip" or "ip6" match).
func dropENOSYNs(daddr string) string {
	return fmt.Sprintf("    %s tcp flags & (syn|ack) == syn tcp option @69,0,8 69 counter drop", daddr)
}

func (e *env) paths(ns *netns.NS) []map[string]any {
	e.t.Helper()
	b, err := e.api(ns, "/api/paths")
	if err != nil {
		e.t.Fatalf("api: %v", err)
	}
	var l struct {
		Paths []map[string]any `json:"paths"`
	}
	if err := json.Unmarshal(b, &l); err != nil {
		e.t.Fatalf("api json: %v: %s", err, b)
	}
	return l.Paths
}

func pathOf(ps []map[string]any, addr string) map[string]any {
	for _, p := range ps {
		if p["addr"] == addr {
			return p
		}
	}
	return nil
}

func metricsHas(t *testing.T, e *env, lines ...string) {
	t.Helper()
	m, err := e.api(e.topo.GwA, "/metrics")
	if err != nil {
		t.Fatalf("metrics: %v", err)
	}
	for _, l := range lines {
		if !strings.Contains(string(m), "\n"+l+"\n") {
			t.Errorf("metrics lack %q", l)
		}
	}
}

// TestAttackDropENOSYNs: an attacker drops every ENO SYN. Towards a peer
// never seen (its IPv4 address), the SYN falls back and the connection
// opens plain, flagged syn_fallback, the evidence per peer in /api/paths;
// towards a remembered peer (its IPv6 address, encrypted just before) it
// is a suspected downgrade. A require_encryption flow to the new peer
// never falls back: no connection.
func TestAttackDropENOSYNs(t *testing.T) {
	e := newEnv(t, envOptions{extraA: "tcpcrypt:\n  syn_fallback_retries: 1\nrequire_encryption:\n  ports: [9803]\n"})
	l4 := listen(t, e.topo.Server, "0.0.0.0:9800")
	listen(t, e.topo.Server, "0.0.0.0:9803") // would accept a fallen-back SYN
	l6 := listen(t, e.topo.Server, "[::]:9801")
	v6 := fmt.Sprintf("[%s]:9801", e.topo.ServerAddr6)
	transfer(t, l6, e.topo.Client, v6, 16<<10, 16<<10, 9801) // remembered
	attacker(t, e, "tcgw_attack", dropENOSYNs("ip daddr "+e.topo.ServerAddr4.String())+"\n"+dropENOSYNs("ip6 daddr "+e.topo.ServerAddr6.String()))

	// A peer never seen: plain, flagged, never a downgrade.
	transfer(t, l4, e.topo.Client, fmt.Sprintf("%s:9800", e.topo.ServerAddr4), 64<<10, 64<<10, 9800)
	if n := nftCounter(t, e, "tcgw_attack"); n < 1 {
		t.Fatalf("the attacker dropped %d SYNs", n)
	}
	f := flowWithPort(e.flows(e.topo.GwA), 9800)
	if f == nil || f.Encrypted || f.DowngradeSuspected || !strings.HasPrefix(f.Reason, "syn_fallback: SYN sent without ENO") {
		t.Fatalf("gateway A's flow to the new peer: %+v", f)
	}
	p := pathOf(e.paths(e.topo.GwA), e.topo.ServerAddr4.String())
	if p == nil || p["syn_fallbacks"] != 1.0 || !strings.Contains(fmt.Sprint(p["fallback_evidence"]), "SYNs with ENO unanswered") {
		t.Fatalf("/api/paths: %+v", e.paths(e.topo.GwA))
	}
	st := e.apiStats(e.topo.GwA)
	if st["syn_fallbacks"] != 1 || st["eno_failures_type1"] != 1 || st["downgrades_suspected"] != 0 {
		t.Fatalf("stats: fallbacks %v type-1 %v downgrades %v", st["syn_fallbacks"], st["eno_failures_type1"], st["downgrades_suspected"])
	}
	metricsHas(t, e, "tcpcrypt_gw_syn_fallbacks_total 1", "tcpcrypt_gw_eno_failures_type1_total 1")
	if b, _ := os.ReadFile(filepath.Join(e.logs, "gwa.log")); !strings.Contains(string(b), "level=WARN msg=\"SYN fallback") {
		t.Error("no warning in gateway A's log")
	}

	// A required flow to the same peer: its SYN keeps ENO, nothing opens.
	dialFails(t, e, fmt.Sprintf("%s:9803", e.topo.ServerAddr4), 4*time.Second)
	if f := flowWithPort(e.flows(e.topo.GwA), 9803); f == nil || f.State != "syn-sent" || f.Encrypted {
		t.Fatalf("gateway A's required flow under the attack: %+v", f)
	}
	if st := e.apiStats(e.topo.GwA); st["syn_fallbacks"] != 1 {
		t.Fatalf("a required flow fell back: syn_fallbacks %v", st["syn_fallbacks"])
	}

	// The remembered peer: the same attack is a suspected downgrade.
	transfer(t, l6, e.topo.Client, v6, 16<<10, 16<<10, 9802)
	var down *monitor.FlowJSON
	for _, x := range e.flows(e.topo.GwA) {
		if x.WAN == v6 && x.DowngradeSuspected {
			down = &x
		}
	}
	if down == nil || down.Encrypted || !strings.HasPrefix(down.Reason, "downgrade suspected: syn_fallback: ") {
		t.Fatalf("no downgrade flagged towards the remembered peer: %+v", e.flows(e.topo.GwA))
	}
	if st := e.apiStats(e.topo.GwA); st["downgrades_suspected"] != 1 || st["syn_fallbacks"] != 2 {
		t.Fatalf("stats: downgrades %v fallbacks %v", st["downgrades_suspected"], st["syn_fallbacks"])
	}
}

// dialFails dials addr from the client and wants no connection within d.
func dialFails(t *testing.T, e *env, addr string, d time.Duration) {
	t.Helper()
	var c net.Conn
	err := e.topo.Client.Do(func() (err error) { c, err = net.DialTimeout("tcp", addr, d); return })
	if err == nil {
		c.Close()
		t.Fatalf("a connection to %s opened", addr)
	}
}

// TestAttackDropENOSYNsNoFallback: the same attacker against
// downgrade.no_syn_fallback (a peer never seen) and downgrade.block (a
// remembered peer): the SYN keeps ENO, no plain connection opens.
func TestAttackDropENOSYNsNoFallback(t *testing.T) {
	e := newEnv(t, envOptions{extraA: fmt.Sprintf("tcpcrypt:\n  syn_fallback_retries: 1\ndowngrade:\n  no_syn_fallback: [%s/32]\n  block: [%s/128]\n",
		e2eAddr4Server, e2eAddr6Server)})
	l6 := listen(t, e.topo.Server, "[::]:9811")
	listen(t, e.topo.Server, "0.0.0.0:9810")
	v6 := fmt.Sprintf("[%s]:9811", e.topo.ServerAddr6)
	transfer(t, l6, e.topo.Client, v6, 16<<10, 16<<10, 9811) // remembered
	attacker(t, e, "tcgw_attack", dropENOSYNs("ip daddr "+e.topo.ServerAddr4.String())+"\n"+dropENOSYNs("ip6 daddr "+e.topo.ServerAddr6.String()))

	dialFails(t, e, fmt.Sprintf("%s:9810", e.topo.ServerAddr4), 4*time.Second)
	if f := flowWithPort(e.flows(e.topo.GwA), 9810); f == nil || f.State != "syn-sent" {
		t.Fatalf("gateway A's flow under no_syn_fallback: %+v", f)
	}
	if st := e.apiStats(e.topo.GwA); st["syn_fallbacks"] != 0 || st["syn_fallbacks_refused"] < 1 {
		t.Fatalf("stats: fallbacks %v refused %v", st["syn_fallbacks"], st["syn_fallbacks_refused"])
	}

	dialFails(t, e, v6, 4*time.Second)
	var blocked *monitor.FlowJSON
	for _, x := range e.flows(e.topo.GwA) {
		if x.WAN == v6 && x.DowngradeSuspected {
			blocked = &x
		}
	}
	if blocked == nil || blocked.Encrypted || blocked.State != "syn-sent" {
		t.Fatalf("gateway A's flow to the remembered peer under block: %+v", blocked)
	}
	if st := e.apiStats(e.topo.GwA); st["downgrades_blocked"] != 1 || st["syn_fallbacks"] != 0 {
		t.Fatalf("stats: blocked %v fallbacks %v", st["downgrades_blocked"], st["syn_fallbacks"])
	}
}

// Addresses of the topology used in configuration text before the env
// exists (netns.NewTopology assigns them).
const (
	e2eAddr4Server = "10.91.5.2"
	e2eAddr6Server = "fd91:5::2"
)

// dropCiphertext is an attacker who lets the SYNs and the key exchange
// through but drops the large segments (data frames; the Init messages
// are under 300 bytes) of every connection to daddr whose SYN carried
// TCP-ENO: conntrack marks those connections at their SYN.
func dropCiphertext(daddr string) string {
	return fmt.Sprintf("    %[1]s tcp flags & (syn|ack) == syn tcp option @69,0,8 69 ct mark set 0x4e4f\n"+
		"    %[1]s ct mark 0x4e4f ip length > 300 counter drop", daddr)
}

// failingRequest opens a connection to addr, sends a request of 4 KiB and
// waits at most wait for any answer; then it resets the connection, as a
// client that gives up. It reports whether an answer came.
func failingRequest(t *testing.T, e *env, addr string, wait time.Duration) bool {
	t.Helper()
	c, err := dial(e.topo.Client, addr)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	defer func() {
		c.(*net.TCPConn).SetLinger(0)
		c.Close()
	}()
	if _, err := c.Write(markerPayload(4 << 10)); err != nil {
		return false
	}
	c.SetReadDeadline(time.Now().Add(wait))
	var b [1]byte
	n, _ := c.Read(b[:])
	return n > 0
}

// requestAnswerer answers each connection of l with "ok" once it has read
// 4 KiB, until l closes.
func requestAnswerer(l net.Listener) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			c.SetDeadline(time.Now().Add(30 * time.Second))
			var b [4 << 10]byte
			got := 0
			for got < len(b) {
				n, err := c.Read(b[got:])
				if err != nil {
					return
				}
				got += n
			}
			c.Write([]byte("ok"))
		}()
	}
}

// TestAttackBrokenPath: ciphertext to one peer is dropped after the key
// exchange. Its first two connections fail (RFC 8547 §9 type 2); the next
// goes plain with the reason and works; another peer (the server's IPv6
// address) stays encrypted; a require_encryption flow to the broken path
// is still encrypted (and fails as the path makes it), never plain.
// Repaired, the path stays plain until the memory expires
// (broken_path_ttl), then is encrypted again.
func TestAttackBrokenPath(t *testing.T) {
	const ttl = 12 * time.Second // long enough for the steps before the repair under load
	e := newEnv(t, envOptions{extraA: fmt.Sprintf("downgrade:\n  broken_path_ttl: %v\n  broken_path_window: 1m\nrequire_encryption:\n  ports: [9823]\n", ttl)})
	l := listen(t, e.topo.Server, "[::]:9820") // both families
	go requestAnswerer(l)
	go requestAnswerer(listen(t, e.topo.Server, "0.0.0.0:9823"))
	v4 := fmt.Sprintf("%s:9820", e.topo.ServerAddr4)
	l6 := listen(t, e.topo.Server, fmt.Sprintf("[%s]:9822", e.topo.ServerAddr6))
	v6 := fmt.Sprintf("[%s]:9822", e.topo.ServerAddr6)
	if !failingRequest(t, e, v4, 5*time.Second) {
		t.Fatal("no answer before the attack")
	}
	repair := attacker(t, e, "tcgw_attack", dropCiphertext("ip daddr "+e.topo.ServerAddr4.String()))

	for i := range 2 {
		if failingRequest(t, e, v4, 2*time.Second) {
			t.Fatalf("connection %d answered under the attack", i+1)
		}
	}
	if n := nftCounter(t, e, "tcgw_attack"); n < 2 {
		t.Fatalf("the attacker dropped %d segments", n)
	}
	time.Sleep(200 * time.Millisecond) // the resets reach the gateway
	st := e.apiStats(e.topo.GwA)
	if st["eno_failures_type2"] != 2 {
		t.Fatalf("type-2 failures %v, want 2; paths %+v", st["eno_failures_type2"], e.paths(e.topo.GwA))
	}
	p := pathOf(e.paths(e.topo.GwA), e.topo.ServerAddr4.String())
	if p == nil || p["broken_until"] == nil || p["failures"] != 2.0 {
		t.Fatalf("/api/paths: %+v", e.paths(e.topo.GwA))
	}

	// The next connection goes plain, with the reason, and works.
	if !failingRequest(t, e, v4, 5*time.Second) {
		t.Fatal("the plain connection on the broken path got no answer")
	}
	var plain *monitor.FlowJSON
	for _, x := range e.flows(e.topo.GwA) {
		if x.WAN == v4 && strings.HasPrefix(x.Reason, "broken_path: ") {
			plain = &x
		}
	}
	if plain == nil || plain.Encrypted {
		t.Fatalf("no plain flow with the broken_path reason: %+v", e.flows(e.topo.GwA))
	}
	metricsHas(t, e, "tcpcrypt_gw_eno_failures_type2_total 2", "tcpcrypt_gw_broken_path_plain_total 1", "tcpcrypt_gw_broken_paths 1")

	// A required flow to the broken path is not sent plain: it negotiates
	// ENO, and its ciphertext is dropped like the others' (one more type-2
	// failure).
	dropped := nftCounter(t, e, "tcgw_attack")
	if failingRequest(t, e, fmt.Sprintf("%s:9823", e.topo.ServerAddr4), 2*time.Second) {
		t.Fatal("the required connection answered under the attack")
	}
	time.Sleep(200 * time.Millisecond)
	if f := flowWithPort(e.flows(e.topo.GwA), 9823); f != nil && strings.HasPrefix(f.Reason, "broken_path") {
		t.Fatalf("a required flow went plain on the broken path: %+v", f)
	}
	if st := e.apiStats(e.topo.GwA); st["broken_path_plain"] != 1 || st["eno_failures_type2"] != 3 || nftCounter(t, e, "tcgw_attack") <= dropped {
		t.Fatalf("required flow: broken_path_plain %v (want 1), type-2 %v (want 3), dropped %d then %d",
			st["broken_path_plain"], st["eno_failures_type2"], dropped, nftCounter(t, e, "tcgw_attack"))
	}

	// Another peer stays encrypted.
	transfer(t, l6, e.topo.Client, v6, 64<<10, 64<<10, 9821)
	for _, x := range e.flows(e.topo.GwA) {
		if x.WAN == v6 && !x.Encrypted {
			t.Fatalf("the other peer's flow is not encrypted: %+v", x)
		}
	}

	// Repaired: still plain while remembered, encrypted after the TTL.
	encryptedTo := func() int {
		n := 0
		for _, x := range e.flows(e.topo.GwA) {
			if x.WAN == v4 && x.Encrypted {
				n++
			}
		}
		return n
	}
	before := encryptedTo()
	repair()
	failingRequest(t, e, v4, 5*time.Second)
	if st := e.apiStats(e.topo.GwA); st["broken_path_plain"] != 2 {
		t.Fatalf("broken_path_plain %v while remembered, want 2", st["broken_path_plain"])
	}
	deadline := time.Now().Add(3 * ttl)
	for {
		time.Sleep(time.Second)
		if p := pathOf(e.paths(e.topo.GwA), e.topo.ServerAddr4.String()); p == nil || p["broken_until"] == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the broken mark did not expire: %+v", e.paths(e.topo.GwA))
		}
	}
	if !failingRequest(t, e, v4, 5*time.Second) {
		t.Fatal("no answer on the repaired path")
	}
	if st := e.apiStats(e.topo.GwA); st["broken_path_plain"] != 2 || st["eno_failures_type2"] != 3 {
		t.Fatalf("after the repair: broken_path_plain %v type-2 %v", st["broken_path_plain"], st["eno_failures_type2"])
	}
	if encryptedTo() <= before {
		t.Fatalf("no encrypted flow on the repaired path: %+v", e.flows(e.topo.GwA))
	}
}
