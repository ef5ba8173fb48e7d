package deploy

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"gopkg.in/yaml.v3"

	"tcpcrypt-gw/config"
)

// uciStub is deploy/testdata/functions.sh: OpenWrt's /lib/functions.sh
// and procd's functions as far as the init script, uci2yaml.sh and the
// LuCI app's rpcd plugin use them.
func uciStub(t *testing.T) string {
	b, err := os.ReadFile(filepath.Join(repoRoot(t), "deploy/testdata/functions.sh"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

var (
	gwBinOnce sync.Once
	gwBin     string
	gwBinErr  error
)

// TestMain removes the gateway binary gatewayBinary built.
func TestMain(m *testing.M) {
	code := m.Run()
	if gwBin != "" {
		os.RemoveAll(filepath.Dir(gwBin))
	}
	os.Exit(code)
}

// gatewayBinary builds the gateway once for the tests of this package.
func gatewayBinary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the gateway")
	}
	gwBinOnce.Do(func() {
		dir, err := os.MkdirTemp("", "tcpcrypt-gw-deploy-")
		if err != nil {
			gwBinErr = err
			return
		}
		gwBin = filepath.Join(dir, "tcpcrypt-gw")
		cmd := exec.Command("go", "build", "-o", gwBin, "./cmd/tcpcrypt-gw")
		cmd.Dir = repoRoot(t)
		if out, err := cmd.CombinedOutput(); err != nil {
			gwBinErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if gwBinErr != nil {
		t.Fatal(gwBinErr)
	}
	return gwBin
}

// uciRun is one run of the init script on a UCI file, with the real
// gateway binary's check-config.
type uciRun struct {
	record, output string
	err            error
	genDir, runDir string
}

// runInitUCI sources the init script under uciStub with the UCI file uci
// and runs commands. The gateway is the real binary; its check-config
// gets -no-interfaces, as this machine has no br-lan.
func runInitUCI(t *testing.T, shell []string, uci, commands string) uciRun {
	t.Helper()
	bin := gatewayBinary(t)
	dir := t.TempDir()
	r := uciRun{genDir: filepath.Join(dir, "var/etc/tcpcrypt-gw"), runDir: filepath.Join(dir, "var/run/tcpcrypt-gw")}
	rec := filepath.Join(dir, "record")
	ucif := filepath.Join(dir, "tcpcrypt-gw")
	os.WriteFile(ucif, []byte(uci), 0o600)
	wrapper := filepath.Join(dir, "gw")
	os.WriteFile(wrapper, []byte(`#!/bin/sh
printf 'binary %s\n' "$*" >>"$RECORD"
if [ "$1" = check-config ]; then shift; exec `+bin+` check-config -no-interfaces "$@"; fi
exec `+bin+` "$@"
`), 0o755)
	root := repoRoot(t)
	sh := uciStub(t) + "\n. " + filepath.Join(root, "deploy/openwrt/files/tcpcrypt-gw.init") + "\n" +
		"PROG=" + wrapper + "\nUCI2YAML=" + filepath.Join(root, "deploy/openwrt/files/uci2yaml.sh") +
		"\nGEN_DIR=" + r.genDir + "\nRUN_DIR=" + r.runDir + "\n" + commands + "\n"
	cmd := exec.Command(shell[0], append(shell[1:], "-c", sh)...)
	cmd.Env = append(os.Environ(), "RECORD="+rec, "UCI_FILE="+ucif)
	out, err := cmd.CombinedOutput()
	b, _ := os.ReadFile(rec)
	r.record = strings.ReplaceAll(string(b), wrapper, "PROG")
	r.record = strings.ReplaceAll(r.record, r.genDir, "GEN_DIR")
	r.output, r.err = string(out), err
	return r
}

const uciFull = `
config tcpcrypt-gw 'main'
	option enabled '1'
	option source 'uci'
	option wan_interface 'wan'
	list lan_device 'br-lan'
	list lan_device 'lan2'
	list wan_device 'pppoe-wan'
	option tun_mtu '1492'
	option tun_queues '2'
	list lan_prefix '192.168.1.0/24'
	list lan_prefix '2001:db8:1234::/56'
	list tep 'x25519mlkem768'
	list tep 'p256'
	list tep 'curve25519'
	list cipher 'chacha20poly1305'
	list require_port '5432'
	list require_port '6000-6010'
	list require_prefix '203.0.113.0/24'
	list require_pq_port '22'
	list require_pq_prefix '2001:db8:9::/48'
	list downgrade_block '198.51.100.0/24'
	list downgrade_block '2001:db8:2::/48'
	list downgrade_no_syn_fallback '192.0.2.0/24'
	option flows_max '8192'
	option flows_buffer_total '16MiB'
`

// TestUCIToYAML: the init script turns every UCI option into its YAML key
// (uci2yaml.sh), the gateway's own config loader reads the result back
// as intended, and the gateway starts on it with the API token in RAM.
func TestUCIToYAML(t *testing.T) {
	for _, sh := range shells {
		t.Run(strings.Join(sh, " "), func(t *testing.T) {
			needTool(t, sh[0])
			r := runInitUCI(t, sh, uciFull, "start_service")
			if r.err != nil {
				t.Fatalf("start: %v\n%s\n%s", r.err, r.output, r.record)
			}
			checkOrder(t, r.record, []string{
				"config_load tcpcrypt-gw",
				"binary check-config -c GEN_DIR/config.yaml.new",
				"procd_open_instance main",
				"procd_set_param command PROG run -c GEN_DIR/config.yaml",
			})
			yml := filepath.Join(r.genDir, "config.yaml")
			text, _ := os.ReadFile(yml)
			t.Logf("generated:\n%s", text)
			cfg, err := config.Load(yml)
			if err != nil {
				t.Fatalf("config.Load of the generated YAML: %v", err)
			}
			ports := func(rs []config.PortRange) (s []string) {
				for _, r := range rs {
					s = append(s, r.String())
				}
				return s
			}
			prefixes := func(ps any) string { return fmt.Sprint(ps) }
			for name, c := range map[string][2]any{
				"interfaces.lan":                           {cfg.Interfaces.LAN, []string{"br-lan", "lan2"}},
				"interfaces.wan":                           {cfg.Interfaces.WAN, []string{"pppoe-wan"}},
				"interfaces.tun_mtu":                       {cfg.Interfaces.TUNMTU, 1492},
				"interfaces.tun_queues":                    {cfg.Interfaces.TUNQueues, 2},
				"lan_prefixes":                             {prefixes(cfg.LANPrefixes), "[192.168.1.0/24 2001:db8:1234::/56]"},
				"tcpcrypt.teps":                            {cfg.TCPCrypt.TEPs, []string{"x25519mlkem768", "p256", "curve25519"}},
				"tcpcrypt.ciphers":                         {cfg.TCPCrypt.Ciphers, []string{"chacha20poly1305"}},
				"require_encryption.ports":                 {ports(cfg.Require.Ports), []string{"5432", "6000-6010"}},
				"require_encryption.prefixes":              {prefixes(cfg.Require.Prefixes), "[203.0.113.0/24]"},
				"require_encryption.post_quantum.ports":    {ports(cfg.Require.PostQuantum.Ports), []string{"22"}},
				"require_encryption.post_quantum.prefixes": {prefixes(cfg.Require.PostQuantum.Prefixes), "[2001:db8:9::/48]"},
				"downgrade.block":                          {prefixes(cfg.Downgrade.Block), "[198.51.100.0/24 2001:db8:2::/48]"},
				"downgrade.no_syn_fallback":                {prefixes(cfg.Downgrade.NoSYNFallback), "[192.0.2.0/24]"},
				"flows.max":                                {cfg.Flows.Max, 8192},
				"flows.max_buffer_total":                   {int64(cfg.Flows.MaxBufferTotal), int64(16 << 20)},
				"http.listen":                              {cfg.HTTP.Listen, "127.0.0.1:8473"},
				"http.token_file":                          {cfg.HTTP.TokenFile, filepath.Join(r.runDir, "api-token")},
			} {
				if fmt.Sprint(c[0]) != fmt.Sprint(c[1]) {
					t.Errorf("%s: %v, want %v", name, c[0], c[1])
				}
			}
			// Keys without a UCI option keep the gateway's defaults.
			def := config.Default()
			if cfg.Flows.IdleTimeout != def.Flows.IdleTimeout || cfg.TCPCrypt.RekeyInterval != def.TCPCrypt.RekeyInterval {
				t.Error("a key UCI does not set changed from its default")
			}
			// The token: 32 random bytes in hex, readable by root only,
			// in RAM (RUN_DIR); the YAML too.
			tok, err := os.ReadFile(filepath.Join(r.runDir, "api-token"))
			if err != nil || !regexp.MustCompile(`^[0-9a-f]{64}$`).Match(tok) {
				t.Errorf("token %q: %v", tok, err)
			}
			for _, f := range []string{filepath.Join(r.runDir, "api-token"), yml} {
				if st, err := os.Stat(f); err != nil || st.Mode().Perm() != 0o600 {
					t.Errorf("%s: %v %v", f, st.Mode(), err)
				}
			}
		})
	}
}

// TestUCIBadValue: a bad value stops the start with check-config's own
// message naming the YAML key (the LuCI app shows the same message), and
// a value cannot smuggle YAML of its own in.
func TestUCIBadValue(t *testing.T) {
	sh := shells[len(shells)-1] // busybox ash, as on OpenWrt
	needTool(t, sh[0])
	for name, c := range map[string]struct {
		uci, want string
	}{
		"flows_max":       {"\toption flows_max '99999999999'\n", "flows.max: 99999999999 out of range"},
		"cipher":          {"\tlist cipher 'rot13'\n", `tcpcrypt.ciphers[0]: unknown cipher "rot13"`},
		"prefix":          {"\tlist require_prefix '10.0.0.0/33'\n", `require_encryption.prefixes[0]: invalid prefix "10.0.0.0/33"`},
		"port":            {"\tlist require_port 'ssh'\n", "require_encryption.ports[0]"},
		"pq prefix":       {"\tlist require_pq_prefix '10.0.0.0/33'\n", `require_encryption.post_quantum.prefixes[0]: invalid prefix "10.0.0.0/33"`},
		"pq teps":         {"\tlist tep 'curve25519'\n\tlist require_pq_port '22'\n", "x25519mlkem768"},
		"no syn fallback": {"\tlist downgrade_no_syn_fallback '192.0.2.0/33'\n", `downgrade.no_syn_fallback[0]: invalid prefix "192.0.2.0/33"`},
		"injection":       {"\tlist wan_device \"wan', 'x']\nhttp: {listen: '0.0.0.0:80'}\n#\"\n", "interfaces.wan[1]"},
	} {
		t.Run(name, func(t *testing.T) {
			uci := "config tcpcrypt-gw 'main'\n\toption enabled '1'\n\toption source 'uci'\n" +
				"\tlist lan_device 'br-lan'\n\tlist wan_device 'wan'\n"
			r := runInitUCI(t, sh, uci+c.uci, "start_service")
			if r.err == nil || strings.Contains(r.record, "procd_open_instance") {
				t.Fatalf("started with a bad %s: %v\n%s", name, r.err, r.record)
			}
			if !strings.Contains(r.output, c.want) || !strings.Contains(r.output, "has problems") {
				t.Errorf("output lacks %q:\n%s", c.want, r.output)
			}
			if name == "injection" {
				// The value stays one string in the list.
				r := runInitUCI(t, sh, uci+c.uci, `config_load tcpcrypt-gw; . "$UCI2YAML"; mkdir -p "$GEN_DIR"; tcpcrypt_gw_uci2yaml tok >"$GEN_DIR/config.yaml"`)
				b, _ := os.ReadFile(filepath.Join(r.genDir, "config.yaml"))
				var doc struct {
					Interfaces struct{ WAN []string }
					HTTP       map[string]string
				}
				if err := yaml.Unmarshal(b, &doc); err != nil || len(doc.Interfaces.WAN) != 2 || doc.HTTP["listen"] != "127.0.0.1:8473" {
					t.Errorf("a UCI value added YAML (%v): %+v\n%s", err, doc, b)
				}
			}
		})
	}
}

// TestUCIBadReload: a bad value on reload sends no signal and leaves the
// last good YAML in place (a respawn of the gateway uses it).
func TestUCIBadReload(t *testing.T) {
	sh := shells[len(shells)-1]
	needTool(t, sh[0])
	good := "config tcpcrypt-gw 'main'\n\toption enabled '1'\n\toption source 'uci'\n\tlist lan_device 'br-lan'\n\tlist wan_device 'wan'\n\toption flows_max '4096'\n"
	bad := filepath.Join(t.TempDir(), "bad")
	os.WriteFile(bad, []byte(good+"\toption flows_max '0'\n"), 0o600)
	r := runInitUCI(t, sh, good, "start_service || exit 9; UCI_FILE="+bad+" reload_service && exit 8; exit 0")
	if r.err != nil {
		t.Fatalf("%v\n%s\n%s", r.err, r.output, r.record)
	}
	if !strings.Contains(r.record, "procd_open_instance") || strings.Contains(r.record, "procd_send_signal") {
		t.Errorf("record:\n%s", r.record)
	}
	if !strings.Contains(r.output, "flows.max: 0 out of range") {
		t.Errorf("output:\n%s", r.output)
	}
	b, err := os.ReadFile(filepath.Join(r.genDir, "config.yaml"))
	if err != nil || !strings.Contains(string(b), "max: 4096") {
		t.Errorf("the good YAML was replaced: %v\n%s", err, b)
	}
	if _, err := os.Stat(filepath.Join(r.genDir, "config.yaml.new")); !os.IsNotExist(err) {
		t.Errorf("the rejected YAML was left: %v", err)
	}
}

// TestUCISourceYAML: without `option source 'uci'` (a UCI file kept from
// an older package) the hand-written YAML file is used and nothing is
// generated.
func TestUCISourceYAML(t *testing.T) {
	sh := shells[len(shells)-1]
	needTool(t, sh[0])
	yml := filepath.Join(t.TempDir(), "hand.yaml")
	os.WriteFile(yml, []byte("interfaces: {lan: [br-lan], wan: [wan]}\n"), 0o600)
	r := runInitUCI(t, sh, "config tcpcrypt-gw 'main'\n\toption enabled '1'\n\toption config '"+yml+"'\n\tlist lan_device 'ignored0'\n", "start_service")
	if r.err != nil {
		t.Fatalf("%v\n%s", r.err, r.output)
	}
	checkOrder(t, r.record, []string{"binary check-config -c " + yml, "procd_set_param command PROG run -c " + yml})
	if _, err := os.Stat(r.genDir); !os.IsNotExist(err) {
		t.Errorf("YAML generated in yaml mode: %v", err)
	}
	// The shipped UCI file is in uci mode and names devices.
	b, _ := os.ReadFile(filepath.Join(repoRoot(t), "deploy/openwrt/files/tcpcrypt-gw.config"))
	for _, want := range []string{"option source 'uci'", "list lan_device 'br-lan'", "list wan_device 'wan'", "option enabled '0'"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("tcpcrypt-gw.config lacks %q", want)
		}
	}
}
