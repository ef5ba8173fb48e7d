package deploy

import (
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// rpcdPlugin runs the LuCI app's rpcd plugin as rpcd does (`list`, or
// `call METHOD` with the arguments on stdin) with BusyBox's ash, the
// functions.sh stand-in and the real gateway binary (check-config with
// -no-interfaces: this machine has no br-lan).
func rpcdPlugin(t *testing.T, env []string, stdin string, args ...string) map[string]any {
	t.Helper()
	needTool(t, "busybox")
	bin := gatewayBinary(t)
	dir := t.TempDir()
	wrapper := filepath.Join(dir, "gw")
	os.WriteFile(wrapper, []byte("#!/bin/sh\nif [ \"$1\" = check-config ]; then shift; exec "+bin+" check-config -no-interfaces \"$@\"; fi\nexec "+bin+" \"$@\"\n"), 0o755)
	root := repoRoot(t)
	cmd := exec.Command("busybox", append([]string{"sh", filepath.Join(root, "deploy/openwrt/luci-app-tcpcrypt-gw/root/usr/libexec/rpcd/tcpcrypt-gw")}, args...)...)
	cmd.Env = append(os.Environ(),
		"TCPCRYPT_GW_BIN="+wrapper,
		"TCPCRYPT_GW_FUNCTIONS="+filepath.Join(root, "deploy/testdata/functions.sh"),
		"TCPCRYPT_GW_UCI2YAML="+filepath.Join(root, "deploy/openwrt/files/uci2yaml.sh"),
		"TCPCRYPT_GW_RUN_DIR="+dir)
	cmd.Env = append(cmd.Env, env...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("plugin %v: %v\n%s", args, err, out)
	}
	var m map[string]any
	if err := json.Unmarshal(out, &m); err != nil {
		t.Fatalf("plugin %v printed no JSON object: %v\n%s", args, err, out)
	}
	return m
}

// TestRPCDCheck: the plugin's check method turns the settings LuCI sends
// (a UCI file, hex) into YAML with uci2yaml.sh and answers with
// check-config's verdict and message, without the temporary file's name.
func TestRPCDCheck(t *testing.T) {
	if m := rpcdPlugin(t, nil, "", "list"); m["status"] == nil || m["check"] == nil {
		t.Errorf("list: %v", m)
	}
	call := func(uci string) map[string]any {
		return rpcdPlugin(t, nil, `{"uci_hex":"`+hex.EncodeToString([]byte(uci))+`","ubus_rpc_session":"x"}`, "call", "check")
	}
	good := "config tcpcrypt-gw 'main'\n\toption source 'uci'\n\tlist lan_device 'br-lan'\n\tlist wan_device 'wan'\n\toption flows_max '4096'\n"
	if m := call(good); m["ok"] != true || !strings.Contains(m["message"].(string), "memory") {
		t.Errorf("good settings: %v", m)
	}
	m := call(good + "\toption flows_buffer_total '8MB'\n\tlist cipher \"it's\"\n")
	msg, _ := m["message"].(string)
	if m["ok"] != false || !strings.Contains(msg, "flows.max_buffer_total") || !strings.Contains(msg, `unknown cipher "it's"`) {
		t.Errorf("bad settings: %v", m)
	}
	if strings.Contains(msg, "/tcpcrypt-gw-check.") {
		t.Errorf("the message names the temporary file: %q", msg)
	}
	if m := rpcdPlugin(t, nil, `{}`, "call", "check"); m["ok"] != false {
		t.Errorf("no settings: %v", m)
	}
}

// TestRPCDStatus: the status method reads totals and flows from the API
// with the token from the run directory, and reports an API that does
// not answer as an error.
func TestRPCDStatus(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer tok-1" {
			http.Error(w, `{"error":"missing or wrong bearer token"}`, http.StatusUnauthorized)
			return
		}
		switch r.URL.Path {
		case "/api/stats":
			w.Write([]byte(`{"flows":1,"downgrades_suspected":2}`))
		case "/api/flows":
			w.Write([]byte(`{"total":1,"flows":[{"id":7,"encrypted":true,"tep":"curve25519"}]}`))
		}
	}))
	defer srv.Close()
	env := []string{"TCPCRYPT_GW_API=" + srv.URL}
	withToken := func(t *testing.T) []string {
		// A run directory with the token file the init script writes
		// (the later TCPCRYPT_GW_RUN_DIR wins).
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, "api-token"), []byte("tok-1"), 0o600)
		return append(env, "TCPCRYPT_GW_RUN_DIR="+dir)
	}
	m := rpcdPlugin(t, withToken(t), "{}", "call", "status")
	stats, _ := m["stats"].(map[string]any)
	flows, _ := m["flows"].(map[string]any)
	if stats["downgrades_suspected"] != 2.0 || flows["total"] != 1.0 {
		t.Errorf("status: %v", m)
	}
	// Without the token the API refuses: an error, as JSON.
	m = rpcdPlugin(t, env, "{}", "call", "status")
	if e, _ := m["error"].(string); !strings.Contains(e, "401") {
		t.Errorf("status without the token: %v", m)
	}
	srv.Close()
	m = rpcdPlugin(t, withToken(t), "{}", "call", "status")
	if e, _ := m["error"].(string); !strings.Contains(e, "cannot reach") {
		t.Errorf("status with the gateway down: %v", m)
	}
}
