package config

import (
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"tcpcrypt-gw/crypto/tcpcrypt"
)

func TestDefaultValidates(t *testing.T) {
	c := Default()
	if probs := c.Validate(); len(probs) != 0 {
		t.Fatalf("default.yaml does not validate: %v", probs)
	}
	// Spot-check that the embedded file was decoded, not left zero.
	if c.Interfaces.TUN != "tcpcrypt0" || c.Interfaces.TUNMTU != 1500 || c.Routing.Table != 7463 ||
		c.TCPCrypt.RekeyBytes != GiB || c.Flows.MaxBufferPerFlow != 4*MiB || c.Flows.IdleTimeout != 2*time.Hour ||
		len(c.LANPrefixes) != 4 || c.TCPCrypt.TEPs[0] != "x25519mlkem768" || c.HTTP.Listen != "127.0.0.1:8473" {
		t.Fatalf("unexpected defaults: %+v", c)
	}
	// Defaults validate but cannot run: no interfaces are named.
	probs := c.CheckInterfaces(func(string) bool { return true })
	if len(probs) != 2 || probs[0].Field != "interfaces.lan" || probs[1].Field != "interfaces.wan" {
		t.Fatalf("CheckInterfaces on defaults: %v", probs)
	}
}

func TestDefaultIsFreshCopy(t *testing.T) {
	a := Default()
	a.TCPCrypt.TEPs[0] = "changed"
	a.LANPrefixes[0] = netip.MustParsePrefix("1.0.0.0/8")
	b := Default()
	if b.TCPCrypt.TEPs[0] != "x25519mlkem768" || b.LANPrefixes[0] != netip.MustParsePrefix("10.0.0.0/8") {
		t.Fatal("Default shares state between calls")
	}
}

// Every file that is empty or only comments yields exactly the defaults.
func TestParseEmptyIsDefault(t *testing.T) {
	for _, data := range []string{"", "# nothing\n", "---\n", "~\n"} {
		c, err := Parse([]byte(data), "empty.yaml")
		if err != nil {
			t.Fatalf("%q: %v", data, err)
		}
		if !sameSettings(c, Default()) {
			t.Errorf("%q: not the defaults: %+v", data, c)
		}
	}
}

func TestParseGoodFile(t *testing.T) {
	const file = `
interfaces:
  lan: [br-lan, lan2]
  wan: [wan]
  tun: tc0
  tun_mtu: 9000
routing: {table: 100, rule_priority: 1000, conntrack_bypass: "off"}
lan_prefixes: [192.168.1.0/24, 2001:db8:42::/48]
tcpcrypt:
  teps: [p521]
  ciphers: [chacha20poly1305]
  keypair_lifetime: 0
  rekey_bytes: 0
  rekey_interval: 1h30m
  session_cache: {size: 0, ttl: 0s}
  syn_fallback_retries: 0
  init_timeout: 2m
bypass:
  ports: [22, 6000-6010, "443"]
  prefixes: [203.0.113.0/24]
  hosts: [198.51.100.7, "2001:db8::7"]
flows:
  max: 100
  idle_timeout: 30m
  handshake_timeout: 5s
  closing_timeout: 10s
  max_buffer_per_flow: 1048576
  max_buffer_total: 1GiB
http:
  listen: "[::]:9000"
  token_file: /etc/tcpcrypt-gw/token
log: {level: debug, format: json}
`
	c, err := Parse([]byte(file), "good.yaml")
	if err != nil {
		t.Fatal(err)
	}
	want := Default()
	want.Interfaces = Interfaces{LAN: []string{"br-lan", "lan2"}, WAN: []string{"wan"}, TUN: "tc0", TUNMTU: 9000}
	want.Routing = Routing{Table: 100, RulePriority: 1000, ConntrackBypass: ConntrackOff, UCIFirewall: "/etc/config/firewall"}
	want.LANPrefixes = []netip.Prefix{netip.MustParsePrefix("192.168.1.0/24"), netip.MustParsePrefix("2001:db8:42::/48")}
	want.TCPCrypt = TCPCrypt{
		TEPs: []string{"p521"}, Ciphers: []string{"chacha20poly1305"},
		RekeyInterval: 90 * time.Minute, InitTimeout: 2 * time.Minute,
		SessionCache: SessionCache{NonceLen: 8}, // the default stays when the file omits it
	}
	want.BypassRules = BypassRules{
		Ports:    []PortRange{{22, 22}, {6000, 6010}, {443, 443}},
		Prefixes: []netip.Prefix{netip.MustParsePrefix("203.0.113.0/24")},
		Hosts:    []netip.Addr{netip.MustParseAddr("198.51.100.7"), netip.MustParseAddr("2001:db8::7")},
	}
	want.Flows = Flows{Max: 100, IdleTimeout: 30 * time.Minute, HandshakeTimeout: 5 * time.Second,
		ClosingTimeout: 10 * time.Second, MaxBufferPerFlow: MiB, MaxBufferTotal: GiB}
	want.HTTP = HTTP{Listen: "[::]:9000", TokenFile: "/etc/tcpcrypt-gw/token"}
	want.Log = Log{Level: "debug", Format: "json"}
	if !sameSettings(c, want) {
		t.Fatalf("got  %+v\nwant %+v", c, want)
	}
	if probs := c.CheckInterfaces(func(n string) bool { return n != "lan2" }); len(probs) != 1 ||
		probs[0].Field != "interfaces.lan[1]" || probs[0].Line != 3 || probs[0].File != "good.yaml" ||
		!strings.Contains(probs[0].Reason, `LAN interface "lan2" does not exist`) {
		t.Fatalf("CheckInterfaces: %v", probs)
	}
}

// Keys a file leaves out keep their defaults, inside a section too; lists
// in the file replace the default list; null sections keep defaults; null
// lists empty the list.
func TestParseMergesOverDefaults(t *testing.T) {
	const file = `tcpcrypt:
  rekey_bytes: 2GiB
  session_cache:
    ttl: 1m
bypass:
  ports: [22]
flows:
http:
  token_file:
log:
  level: warn
`
	c, err := Parse([]byte(file), "merge.yaml")
	if err != nil {
		t.Fatal(err)
	}
	want := Default()
	want.TCPCrypt.RekeyBytes = 2 * GiB
	want.TCPCrypt.SessionCache.TTL = time.Minute
	want.BypassRules.Ports = []PortRange{{22, 22}}
	want.Log.Level = "warn"
	if !sameSettings(c, want) {
		t.Fatalf("got  %+v\nwant %+v", c, want)
	}

	c, err = Parse([]byte("lan_prefixes: [10.9.0.0/16]\nbypass:\n  ports:\n"), "replace.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(c.LANPrefixes) != 1 || c.LANPrefixes[0] != netip.MustParsePrefix("10.9.0.0/16") {
		t.Errorf("list not replaced: %v", c.LANPrefixes)
	}
	if c.BypassRules.Ports == nil || len(c.BypassRules.Ports) != 0 {
		t.Errorf("null list not emptied: %#v", c.BypassRules.Ports)
	}
}

// Aliases resolve to the anchored value.
func TestParseAliases(t *testing.T) {
	c, err := Parse([]byte("interfaces:\n  lan: &l [lan0]\n  wan: [wan0]\nlog:\n  level: &lv debug\n"), "alias.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if c.Log.Level != "debug" || c.Interfaces.LAN[0] != "lan0" {
		t.Fatalf("got %+v", c)
	}
}

// Cross-field problems point at the field the file set.
func TestCrossFieldProblemLine(t *testing.T) {
	_, err := Parse([]byte("flows:\n  max_buffer_total: 1MiB\n  max_buffer_per_flow: 2MiB\n"), "x.yaml")
	e, ok := err.(*Error)
	if !ok || len(e.Problems) != 1 || e.Problems[0].Line != 3 || e.Problems[0].Field != "flows.max_buffer_per_flow" {
		t.Fatalf("want one problem at line 3 flows.max_buffer_per_flow, got %v", err)
	}
	_, err = Parse([]byte("http:\n  token_file: \"\"\n  listen: 192.0.2.1:80\n"), "x.yaml")
	e, ok = err.(*Error)
	if !ok || len(e.Problems) != 1 || e.Problems[0].Line != 3 || e.Problems[0].Field != "http.listen" {
		t.Fatalf("want one problem at line 3 http.listen, got %v", err)
	}
	// With a token file, a non-loopback listen address is fine.
	if _, err := Parse([]byte("http:\n  token_file: /run/t\n  listen: 192.0.2.1:80\n"), "x.yaml"); err != nil {
		t.Fatal(err)
	}
}

// Validate on a Config built in code reports problems without lines.
func TestValidateBuiltInCode(t *testing.T) {
	c := Default()
	c.TCPCrypt.TEPs = []string{"p256", "x25519"}
	c.BypassRules.Ports = []PortRange{{0, 5}}
	probs := c.Validate()
	if len(probs) != 2 {
		t.Fatalf("got %v", probs)
	}
	for _, p := range probs {
		if p.Line != 0 || p.File != "" {
			t.Errorf("problem with a position: %+v", p)
		}
	}
	if probs[0].Field != "tcpcrypt.teps[1]" || probs[1].Field != "bypass.ports[0]" {
		t.Errorf("fields: %v", probs)
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	if err := os.WriteFile(good, []byte("log:\n  level: error\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(good)
	if err != nil || c.Log.Level != "error" {
		t.Fatalf("Load: %v %+v", err, c)
	}
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("log:\n  levle: error\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = Load(bad)
	if err == nil || !strings.HasPrefix(err.Error(), bad+":2: log.levle: unknown key") {
		t.Fatalf("Load(bad): %v", err)
	}
	if _, err := Load(filepath.Join(dir, "missing.yaml")); err == nil {
		t.Fatal("Load of a missing file succeeded")
	}
	big := filepath.Join(dir, "big.yaml")
	if err := os.WriteFile(big, []byte(strings.Repeat("#", MaxFileSize+1)), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(big); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("Load(big): %v", err)
	}
}

// The shipped example parses, validates, and sets every key of the schema.
func TestExampleFile(t *testing.T) {
	data, err := os.ReadFile("../deploy/config.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	c, err := Parse(data, "config.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Interfaces.LAN) == 0 || len(c.Interfaces.WAN) == 0 {
		t.Error("the example names no interfaces")
	}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		t.Fatal(err)
	}
	have := map[string]bool{}
	collectKeys(root.Content[0], "", have)
	for _, key := range schemaKeys(reflect.TypeFor[Config](), "") {
		if !have[key] {
			t.Errorf("example does not set %s", key)
		}
	}
}

// docs/config.md describes every key.
func TestDocsNameEveryKey(t *testing.T) {
	data, err := os.ReadFile("../docs/config.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range schemaKeys(reflect.TypeFor[Config](), "") {
		if !strings.Contains(string(data), "`"+key+"`") {
			t.Errorf("docs/config.md does not describe `%s`", key)
		}
	}
}

// schemaKeys lists the dotted paths of every leaf key of the schema.
func schemaKeys(t reflect.Type, prefix string) []string {
	var keys []string
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		path := joinPath(prefix, yamlName(f))
		if f.Type.Kind() == reflect.Struct && f.Type.PkgPath() == reflect.TypeFor[Config]().PkgPath() && f.Type != reflect.TypeFor[PortRange]() {
			keys = append(keys, schemaKeys(f.Type, path)...)
			continue
		}
		keys = append(keys, path)
	}
	if len(keys) < 30 && prefix == "" {
		panic("schemaKeys found too few keys")
	}
	return keys
}

func collectKeys(n *yaml.Node, prefix string, have map[string]bool) {
	if n.Kind != yaml.MappingNode {
		return
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		path := joinPath(prefix, n.Content[i].Value)
		have[path] = true
		collectKeys(n.Content[i+1], path, have)
	}
}

func TestNamesAreCopies(t *testing.T) {
	n := TEPNames()
	n[0] = "x"
	if TEPNames()[0] != "curve25519" || !slices.Equal(CipherNames(), []string{"aes128gcm", "aes256gcm", "chacha20poly1305"}) {
		t.Fatal("names changed")
	}
	if !slices.Equal(TEPNames(), []string{"curve25519", "p256", "p521", "curve448", "x25519mlkem768"}) {
		t.Fatal("TEP names changed")
	}
	// Every name maps back onto its TEP (the names come from the TEP table).
	for _, n := range TEPNames() {
		if tep, err := tcpcrypt.ParseTEP(n); err != nil || tep.String() != n {
			t.Errorf("TEP name %q: ParseTEP gives %v, %v", n, tep, err)
		}
	}
}

// sameSettings compares the exported settings of two configs.
func sameSettings(a, b *Config) bool {
	a2, b2 := *a, *b
	a2.file, a2.lines, b2.file, b2.lines = "", nil, "", nil
	a2.cipherOrigin, b2.cipherOrigin = "", "" // a description of where Ciphers came from
	return reflect.DeepEqual(a2, b2)
}

func TestUCIFirewallPath(t *testing.T) {
	if _, err := Parse([]byte("routing: {uci_firewall: etc/config/firewall}\n"), "u.yaml"); err == nil ||
		!strings.Contains(err.Error(), `routing.uci_firewall: "etc/config/firewall" is not an absolute path`) {
		t.Errorf("relative path: %v", err)
	}
	c, err := Parse([]byte("routing: {uci_firewall: \"\"}\n"), "u.yaml")
	if err != nil || c.Routing.UCIFirewall != "" {
		t.Errorf("empty: %v", err)
	}
}

// TestSmallTotalLowersDefaultPerFlow: a file that sets only a total budget
// below the default per-flow figure is taken, with the per-flow figure
// lowered to the total; one that sets both the wrong way round is refused.
func TestSmallTotalLowersDefaultPerFlow(t *testing.T) {
	c, err := Parse([]byte("flows:\n  max_buffer_total: 1MiB\n"), "x.yaml")
	if err != nil {
		t.Fatalf("a small total alone: %v", err)
	}
	if c.Flows.MaxBufferPerFlow != MiB || c.Flows.MaxBufferTotal != MiB {
		t.Fatalf("per flow %v, total %v; want 1MiB and 1MiB", c.Flows.MaxBufferPerFlow, c.Flows.MaxBufferTotal)
	}
	if _, err := Parse([]byte("flows:\n  max_buffer_total: 1MiB\n  max_buffer_per_flow: 2MiB\n"), "x.yaml"); err == nil {
		t.Fatal("per flow above total, both set: accepted")
	}
}

// TestEveryTEPName: each name of the TEP table (crypto/tcpcrypt) is
// accepted in tcpcrypt.teps and documented in docs/config.md and
// docs/protocol.md, so a TEP added to the table shows up in both.
func TestEveryTEPName(t *testing.T) {
	cfgDoc, err := os.ReadFile("../docs/config.md")
	if err != nil {
		t.Fatal(err)
	}
	protoDoc, err := os.ReadFile("../docs/protocol.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range TEPNames() {
		c, err := Parse([]byte("tcpcrypt:\n  teps: ["+n+"]\n"), "tep.yaml")
		if err != nil || !slices.Equal(c.TCPCrypt.TEPs, []string{n}) {
			t.Errorf("tcpcrypt.teps: [%s]: %v", n, err)
		}
		for doc, text := range map[string][]byte{"docs/config.md": cfgDoc, "docs/protocol.md": protoDoc} {
			if !strings.Contains(string(text), "`"+n+"`") {
				t.Errorf("%s does not name the TEP `%s`", doc, n)
			}
		}
	}
}

// Workers: tun_queues when set, else one worker below 4 CPUs and one per
// CPU up to 8 above.
func TestWorkers(t *testing.T) {
	for _, c := range []struct{ queues, cpus, want int }{
		{0, 1, 1}, {0, 2, 1}, {0, 3, 1}, {0, 4, 4}, {0, 16, 8}, {2, 1, 2}, {3, 16, 3},
	} {
		in := Interfaces{TUNQueues: c.queues}
		if got := in.Workers(c.cpus); got != c.want {
			t.Errorf("tun_queues %d, %d CPUs: %d workers, want %d", c.queues, c.cpus, got, c.want)
		}
	}
}
