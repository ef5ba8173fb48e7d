package config

import (
	"errors"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// badCases are files with exactly one problem each: the line, the dotted
// field and a substring of the reason that Parse must report.
var badCases = []struct {
	name   string
	yaml   string
	line   int
	field  string
	reason string
}{
	{"unknown top-level key", "lan_prefix: [10.0.0.0/8]\n", 1, "lan_prefix", `unknown key, did you mean "lan_prefixes"? (valid keys here: interfaces, routing, lan_prefixes`},
	{"misspelt key", "flows:\n  idel_timeout: 1h\n", 2, "flows.idel_timeout", `did you mean "idle_timeout"?`},
	{"unrelated key", "colour: blue\n", 1, "colour", "unknown key (valid keys here: interfaces, routing, lan_prefixes, tcpcrypt, bypass, flows, http, session_api, require_encryption, downgrade, log, memory)"},
	{"session API host name", "session_api:\n  listen: [gw.lan:8474]\n", 2, "session_api.listen[0]", `host "gw.lan" must be "lan" (the LAN interfaces' addresses) or an IP address`},
	{"session API without port", "session_api:\n  listen: [lan]\n", 2, "session_api.listen[0]", `invalid address "lan" (want lan:PORT or IP:PORT`},
	{"session API duplicate", "session_api:\n  listen: [lan:8474, lan:8474]\n", 2, "session_api.listen[1]", `duplicate of "lan:8474"`},
	{"required port overlap", "require_encryption:\n  ports: [5432, 5000-6000]\n", 2, "require_encryption.ports[1]", "overlaps 5432"},
	{"post-quantum required without its TEP", "tcpcrypt:\n  teps: [curve25519]\nrequire_encryption:\n  post_quantum:\n    ports: [22]\n", 4, "require_encryption.post_quantum", "needs a post-quantum TEP (x25519mlkem768) in tcpcrypt.teps"},
	{"post-quantum required port overlap", "require_encryption:\n  post_quantum:\n    ports: [22, 20-30]\n", 3, "require_encryption.post_quantum.ports[1]", "overlaps 22"},
	{"required prefix host bits", "require_encryption:\n  prefixes: [203.0.113.1/24]\n", 2, "require_encryption.prefixes[0]", "has host bits set"},
	{"downgrade memory too short", "downgrade:\n  memory_ttl: 10s\n", 2, "downgrade.memory_ttl", "10s out of range [1m, 8760h]"},
	{"downgrade memory too large", "downgrade:\n  memory_size: -1\n", 2, "downgrade.memory_size", "-1 out of range [0, 1048576]"},
	{"downgrade file relative", "downgrade:\n  persist_file: peers.txt\n", 2, "downgrade.persist_file", `"peers.txt" is not an absolute path`},
	{"downgrade block prefix", "downgrade:\n  block: [0.0.0.0/0, 10.0.0.0/8]\n", 2, "downgrade.block[1]", "10.0.0.0/8 is inside 0.0.0.0/0"},
	{"unknown nested key", "tcpcrypt:\n  teps: [p256]\n  tepz: [p256]\n", 3, "tcpcrypt.tepz", `unknown key, did you mean "teps"?`},
	{"unknown deep key", "tcpcrypt:\n  session_cache:\n    entries: 10\n", 3, "tcpcrypt.session_cache.entries", "valid keys here: size, ttl, nonce_len"},
	{"app-aware ports overlap", "tcpcrypt:\n  application_aware:\n    ports: [443, 400-500]\n", 3, "tcpcrypt.application_aware.ports[1]", "overlaps 443"},
	{"resumption nonce too long", "tcpcrypt:\n  session_cache:\n    nonce_len: 9\n", 3, "tcpcrypt.session_cache.nonce_len", "9 out of range [0, 8]"},
	{"unknown TEP", "tcpcrypt:\n  teps:\n    - curve25519\n    - p384\n", 4, "tcpcrypt.teps[1]", `unknown TEP "p384" (want one of curve25519, p256, p521, curve448, x25519mlkem768)`},
	{"duplicate TEP", "tcpcrypt:\n  teps:\n    - p256\n    - p521\n    - p256\n", 5, "tcpcrypt.teps[2]", `duplicate TEP "p256" (tcpcrypt.teps[0], line 3)`},
	{"empty TEP list", "tcpcrypt:\n  teps: []\n", 2, "tcpcrypt.teps", "at least one TEP is required"},
	{"null TEP list", "tcpcrypt:\n  teps:\n", 2, "tcpcrypt.teps", "at least one TEP is required"},
	{"unknown cipher", "tcpcrypt:\n  ciphers: [aes128gcm, aes192gcm]\n", 2, "tcpcrypt.ciphers[1]", `unknown cipher "aes192gcm" (want one of aes128gcm, aes256gcm, chacha20poly1305)`},
	{"empty cipher list", "tcpcrypt:\n  ciphers: []\n", 2, "tcpcrypt.ciphers", "at least one cipher is required"},
	{"bad prefix", "lan_prefixes:\n  - 10.0.0.0/8\n  - 10.0.0.0/33\n", 3, "lan_prefixes[1]", `invalid prefix "10.0.0.0/33"`},
	{"prefix with host bits", "lan_prefixes: [10.1.2.3/8]\n", 1, "lan_prefixes[0]", "has host bits set (did you mean 10.0.0.0/8?)"},
	{"duplicate prefix", "lan_prefixes:\n  - fd00::/8\n  - 10.0.0.0/8\n  - fd00::/8\n", 4, "lan_prefixes[2]", "duplicate of fd00::/8 (lan_prefixes[0], line 2)"},
	{"prefix inside another", "lan_prefixes:\n  - 192.168.1.0/24\n  - 192.168.0.0/16\n", 2, "lan_prefixes[0]", "192.168.1.0/24 is inside 192.168.0.0/16 (lan_prefixes[1], line 3)"},
	{"IPv4-mapped prefix", "lan_prefixes: ['::ffff:10.0.0.0/104']\n", 1, "lan_prefixes[0]", "IPv4-mapped IPv6 prefix"},
	{"empty lan prefixes", "lan_prefixes: []\n", 1, "lan_prefixes", "at least one prefix is required"},
	{"bad duration", "flows:\n  idle_timeout: 2hours\n", 2, "flows.idle_timeout", `invalid duration "2hours"`},
	{"negative duration", "flows:\n  closing_timeout: -5s\n", 2, "flows.closing_timeout", `negative duration "-5s"`},
	{"duration without unit", "tcpcrypt:\n  init_timeout: 30\n", 2, "tcpcrypt.init_timeout", `duration "30" has no unit (write e.g. "30s")`},
	{"duration out of range", "tcpcrypt:\n  init_timeout: 1h30m\n", 2, "tcpcrypt.init_timeout", "1h30m out of range [1s, 5m]"},
	{"duration zero not allowed", "flows:\n  handshake_timeout: 0\n", 2, "flows.handshake_timeout", "0s out of range [1s, 10m]"},
	{"session ttl zero with cache", "tcpcrypt:\n  session_cache: {size: 10, ttl: 0s}\n", 2, "tcpcrypt.session_cache.ttl", "out of range [1s, 24h]"},
	{"decimal byte unit", "flows:\n  max_buffer_total: 64MB\n", 2, "flows.max_buffer_total", `unknown unit "MB" in size "64MB" (want B, KiB, MiB, GiB or TiB)`},
	{"negative byte size", "tcpcrypt:\n  rekey_bytes: -1\n", 2, "tcpcrypt.rekey_bytes", `negative size "-1"`},
	{"byte size overflow", "tcpcrypt:\n  rekey_bytes: 99999999999TiB\n", 2, "tcpcrypt.rekey_bytes", "too large"},
	{"byte size out of range", "flows:\n  max_buffer_per_flow: 2GiB\n  max_buffer_total: 4GiB\n", 2, "flows.max_buffer_per_flow", "2GiB out of range [64KiB, 1GiB]"},
	{"rekey bytes too small", "tcpcrypt:\n  rekey_bytes: 1000\n", 2, "tcpcrypt.rekey_bytes", "1000 out of range [1MiB, 1TiB] or 0 to disable"},
	{"total below per-flow", "flows:\n  max_buffer_total: 2MiB\n  max_buffer_per_flow: 4MiB\n", 3, "flows.max_buffer_per_flow", "max_buffer_total (2MiB) is smaller than max_buffer_per_flow (4MiB)"},
	{"port range reversed", "bypass:\n  ports: [22, \"6010-6000\"]\n", 2, "bypass.ports[1]", `port range "6010-6000": 6010 > 6000`},
	{"port zero", "bypass:\n  ports:\n    - 0\n", 3, "bypass.ports[0]", "port 0 out of range 1-65535"},
	{"port too large", "bypass:\n  ports: [\"1-70000\"]\n", 2, "bypass.ports[0]", "port 70000 out of range 1-65535"},
	{"port not a number", "bypass:\n  ports: [ssh]\n", 2, "bypass.ports[0]", `"ssh" is not a port number`},
	{"ports overlap", "bypass:\n  ports:\n    - 6000-6010\n    - 22\n    - 6005\n", 5, "bypass.ports[2]", "6005 overlaps 6000-6010 (bypass.ports[0], line 3)"},
	{"duplicate host", "bypass:\n  hosts: [2001:db8::1, 198.51.100.7, 2001:db8::1]\n", 2, "bypass.hosts[2]", "duplicate of 2001:db8::1"},
	{"host covered by prefix", "bypass:\n  prefixes: [192.0.2.0/24]\n  hosts: [192.0.2.9]\n", 3, "bypass.hosts[0]", "already covered by bypass.prefixes"},
	{"bad host", "bypass:\n  hosts: [example.com]\n", 2, "bypass.hosts[0]", `invalid IP address "example.com"`},
	{"non-loopback listen without token", "http:\n  listen: 0.0.0.0:8473\n", 2, "http.listen", `token_file is required when listen ("0.0.0.0:8473") is not a loopback address`},
	{"all-address listen without token", "http:\n  listen: \":8473\"\n", 2, "http.listen", "token_file is required"},
	{"listen without port", "http:\n  listen: localhost\n", 2, "http.listen", `invalid address "localhost" (want host:port`},
	{"listen hostname", "http:\n  listen: router.lan:8473\n", 2, "http.listen", `host "router.lan" must be an IP address or localhost`},
	{"relative token file", "http:\n  token_file: token.txt\n", 2, "http.token_file", `"token.txt" is not an absolute path`},
	{"reserved table", "routing:\n  table: 254\n", 2, "routing.table", "table 254 is reserved by the kernel"},
	{"table zero", "routing:\n  table: 0\n", 2, "routing.table", "0 out of range [1, 2147483647]"},
	{"table too large", "routing:\n  table: 4294967295\n", 2, "routing.table", "out of range [1, 2147483647]"},
	{"rule priority", "routing:\n  rule_priority: 32766\n", 2, "routing.rule_priority", "32766 out of range [1, 32765]"},
	{"conntrack mode", "routing:\n  conntrack_bypass: yes\n", 2, "routing.conntrack_bypass", `unknown value "yes" (want one of auto, on, off)`},
	{"interface name too long", "interfaces:\n  lan: [averyverylongname0]\n", 2, "interfaces.lan[0]", "longer than 15 characters"},
	{"interface name with slash", "interfaces:\n  wan:\n    - eth0\n    - eth/1\n", 4, "interfaces.wan[1]", "contains '/', ':' or a space"},
	{"interface name with space", "interfaces:\n  lan: [\"br lan\"]\n", 2, "interfaces.lan[0]", "contains '/', ':' or a space"},
	{"interface on both sides", "interfaces:\n  lan: [eth0]\n  wan: [eth1, eth0]\n", 3, "interfaces.wan[1]", `interface "eth0" already listed as interfaces.lan[0]`},
	{"interface equals tun", "interfaces:\n  lan: [tcpcrypt0]\n", 2, "interfaces.lan[0]", "already listed as interfaces.tun"},
	{"tun mtu", "interfaces:\n  tun_mtu: 1000\n", 2, "interfaces.tun_mtu", "1000 out of range [1280, 65535]"},
	{"tun queues", "interfaces:\n  tun_queues: 65\n", 2, "interfaces.tun_queues", "65 out of range [0, 64]"},
	{"log level", "log:\n  level: verbose\n", 2, "log.level", `unknown value "verbose" (want one of debug, info, warn, error)`},
	{"log format", "log:\n  format: xml\n", 2, "log.format", "want one of text, json"},
	{"flows max not an integer", "flows:\n  max: many\n", 2, "flows.max", `want an integer, got "many"`},
	{"flows max float", "flows:\n  max: 1.5\n", 2, "flows.max", `want an integer, got "1.5"`},
	{"flows max zero", "flows:\n  max: 0\n", 2, "flows.max", "0 out of range [1, 16777216]"},
	{"session cache negative", "tcpcrypt:\n  session_cache:\n    size: -1\n", 3, "tcpcrypt.session_cache.size", "-1 out of range [0, 1048576]"},
	{"syn fallback retries", "tcpcrypt:\n  syn_fallback_retries: 11\n", 2, "tcpcrypt.syn_fallback_retries", "11 out of range [0, 10]"},
	{"keypair lifetime", "tcpcrypt:\n  keypair_lifetime: 2h\n", 2, "tcpcrypt.keypair_lifetime", "2h out of range [0s, 1h] or 0 to disable"},
	{"duplicate key", "log:\n  level: info\n  level: debug\n", 3, "log.level", "duplicate key (first set on line 2)"},
	{"list instead of mapping", "tcpcrypt: [p256]\n", 1, "tcpcrypt", "want a mapping of keys, got a list"},
	{"scalar instead of list", "interfaces:\n  lan: br-lan\n", 2, "interfaces.lan", `want a list such as [a, b], got "br-lan"`},
	{"mapping instead of scalar", "log:\n  level: {a: b}\n", 2, "log.level", "want a string, got a mapping"},
	{"null string", "interfaces:\n  tun:\n", 2, "interfaces.tun", "empty interface name"},
	{"null integer", "interfaces:\n  tun_mtu:\n", 2, "interfaces.tun_mtu", "want an integer, got nothing"},
	{"null duration", "flows:\n  idle_timeout: ~\n", 2, "flows.idle_timeout", "want a duration such as \"30s\", got nothing"},
	{"top level list", "- a\n- b\n", 1, "", "want a mapping of keys, got a list"},
	{"merge key", "base: &b {level: info}\nlog:\n  <<: *b\n", 1, "base", "unknown key"},
	{"syntax error", "log:\n  level: info\n format: json\n", 2, "", "YAML syntax"},
	{"tab indentation", "log:\n\tlevel: info\n", 2, "", "YAML syntax"},
	{"two documents", "log:\n  level: info\n---\nlog:\n  level: debug\n", 3, "", "more than one YAML document"},
}

func TestParseBadFiles(t *testing.T) {
	if len(badCases) < 25 {
		t.Fatalf("only %d bad cases", len(badCases))
	}
	for _, tc := range badCases {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := Parse([]byte(tc.yaml), "bad.yaml")
			if err == nil {
				t.Fatalf("Parse accepted:\n%s", tc.yaml)
			}
			if cfg != nil {
				t.Errorf("Parse returned a Config with an error")
			}
			e, ok := err.(*Error)
			if !ok {
				t.Fatalf("error is %T, want *Error: %v", err, err)
			}
			if tc.name == "merge key" {
				// The anchor's host key is unknown and so is the merge.
				if len(e.Problems) != 2 || e.Problems[1].Field != "log.<<" || !strings.Contains(e.Problems[1].Reason, "merge keys (<<) are not supported") {
					t.Fatalf("problems: %v", err)
				}
			} else if len(e.Problems) != 1 {
				t.Fatalf("want exactly one problem, got %d:\n%v", len(e.Problems), err)
			}
			p := e.Problems[0]
			if p.File != "bad.yaml" || p.Line != tc.line || p.Field != tc.field || !strings.Contains(p.Reason, tc.reason) {
				t.Errorf("got  %s:%d %q %q\nwant bad.yaml:%d %q containing %q", p.File, p.Line, p.Field, p.Reason, tc.line, tc.field, tc.reason)
			}
		})
	}
}

// A file with several problems reports all of them, sorted by line, one per
// line of the error text.
func TestParseReportsAllProblemsSorted(t *testing.T) {
	const file = `log:
  level: loud
tcpcrypt:
  teps: [p256, p384]
  ciphers: []
flows:
  idle_timeout: soon
  bogus: 1
http:
  listen: 0.0.0.0:80
`
	_, err := Parse([]byte(file), "multi.yaml")
	e, ok := err.(*Error)
	if !ok {
		t.Fatalf("want *Error, got %v", err)
	}
	want := []struct {
		line  int
		field string
	}{{2, "log.level"}, {4, "tcpcrypt.teps[1]"}, {5, "tcpcrypt.ciphers"}, {7, "flows.idle_timeout"}, {8, "flows.bogus"}, {10, "http.listen"}}
	if len(e.Problems) != len(want) {
		t.Fatalf("got %d problems, want %d:\n%v", len(e.Problems), len(want), err)
	}
	text := strings.Split(err.Error(), "\n")
	if len(text) != len(want) {
		t.Fatalf("error text has %d lines, want %d:\n%s", len(text), len(want), err)
	}
	for i, w := range want {
		p := e.Problems[i]
		if p.Line != w.line || p.Field != w.field {
			t.Errorf("problem %d: got line %d %q, want line %d %q", i, p.Line, p.Field, w.line, w.field)
		}
		prefix := "multi.yaml:" + strconv.Itoa(w.line) + ": " + w.field + ": "
		if !strings.HasPrefix(text[i], prefix) {
			t.Errorf("error line %d = %q, want prefix %q", i, text[i], prefix)
		}
	}
}

// A value that failed to decode is reported once, not again by Validate.
func TestDecodeProblemNotRepeated(t *testing.T) {
	_, err := Parse([]byte("lan_prefixes: [10.0.0.0/8, nonsense]\n"), "x.yaml")
	e, ok := err.(*Error)
	if !ok || len(e.Problems) != 1 || e.Problems[0].Field != "lan_prefixes[1]" {
		t.Fatalf("want one problem at lan_prefixes[1], got %v", err)
	}
}

func TestProblemString(t *testing.T) {
	cases := []struct {
		p    Problem
		want string
	}{
		{Problem{File: "config.yaml", Line: 12, Field: "tcpcrypt.teps[1]", Reason: "bad"}, "config.yaml:12: tcpcrypt.teps[1]: bad"},
		{Problem{File: "config.yaml", Reason: "file too large"}, "config.yaml: file too large"},
		{Problem{Field: "interfaces.lan", Reason: "none"}, "interfaces.lan: none"},
		{Problem{Line: 3, Reason: "YAML syntax: x"}, "3: YAML syntax: x"},
	}
	for _, tc := range cases {
		if got := tc.p.String(); got != tc.want {
			t.Errorf("String() = %q, want %q", got, tc.want)
		}
	}
}

// TestIntFieldsTooWide: every integer key given a value too large for any
// int (2^64, and so also every value from 2^31 on a 32-bit platform) is
// reported as out of the key's range, never as "want an integer" and never
// taken as another value.
func TestIntFieldsTooWide(t *testing.T) {
	var paths []string
	var walk func(typ reflect.Type, prefix string)
	walk = func(typ reflect.Type, prefix string) {
		for i := 0; i < typ.NumField(); i++ {
			f := typ.Field(i)
			tag := strings.Split(f.Tag.Get("yaml"), ",")[0]
			if !f.IsExported() || tag == "" {
				continue
			}
			switch {
			case f.Type.Kind() == reflect.Int:
				paths = append(paths, prefix+tag)
			case f.Type.Kind() == reflect.Struct && f.Type.PkgPath() == typ.PkgPath():
				walk(f.Type, prefix+tag+".")
			}
		}
	}
	walk(reflect.TypeOf(Config{}), "")
	if len(paths) < 9 {
		t.Fatalf("found only %d int keys: %v", len(paths), paths)
	}
	const wide = "18446744073709551616"
	for _, path := range paths {
		keys := strings.Split(path, ".")
		var b strings.Builder
		for i, k := range keys {
			b.WriteString(strings.Repeat("  ", i) + k + ":")
			if i < len(keys)-1 {
				b.WriteString("\n")
			}
		}
		b.WriteString(" " + wide + "\n")
		_, err := Parse([]byte(b.String()), "wide.yaml")
		var e *Error
		if !errors.As(err, &e) || len(e.Problems) != 1 || e.Problems[0].Field != path ||
			!strings.HasPrefix(e.Problems[0].Reason, wide+" out of range [") {
			t.Errorf("%s = 2^64: %v", path, err)
		}
	}
}
