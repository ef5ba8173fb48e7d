package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"tcpcrypt-gw/gateway/monitor"
)

func TestPrintFlows(t *testing.T) {
	var b bytes.Buffer
	printFlows(&b, []monitor.FlowJSON{
		{ID: 1, Direction: "outbound", LAN: "10.0.0.2:4000", WAN: "192.0.2.1:443", State: "encrypted", Encrypted: true,
			TEP: "curve25519", Cipher: "aes128gcm", SessionID: "23aabbccddeeff00112233445566778899", PlainBytesOut: 10, PlainBytesIn: 20},
		{ID: 2, Direction: "outbound", LAN: "10.0.0.2:4001", WAN: "192.0.2.2:80", State: "plain", Reason: "peer did not answer ENO"},
		{ID: 3, Direction: "inbound", LAN: "10.0.0.3:22", WAN: "192.0.2.3:5000", State: "encrypted", Encrypted: true,
			TEP: "x25519mlkem768", Cipher: "aes128gcm", PostQuantum: true, SessionID: "20aabbccddeeff00112233445566778899"},
	})
	out := b.String()
	for _, want := range []string{"ID", "curve25519/aes128gcm", "23aabbccddeeff00…", "plain (peer did not answer ENO)", "192.0.2.2:80",
		"x25519mlkem768/aes128gcm (post-quantum)"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Count(out, "post-quantum") != 1 {
		t.Errorf("post-quantum marks a classical flow too:\n%s", out)
	}
}

func TestFlowsCommandUsesTokenAndReportsErrors(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer s3cret" {
			w.WriteHeader(http.StatusUnauthorized)
			w.Write([]byte(`{"error":"missing or wrong bearer token"}`))
			return
		}
		json.NewEncoder(w).Encode(map[string]any{"total": 0, "flows": []monitor.FlowJSON{}})
	}))
	defer srv.Close()
	tok := filepath.Join(t.TempDir(), "token")
	os.WriteFile(tok, []byte("s3cret\n"), 0o600)
	if err := cmdFlows([]string{"--api", srv.URL, "--token-file", tok, "--json"}); err != nil {
		t.Fatalf("with the token: %v", err)
	}
	defer func(f string) { openwrtTokenFile = f }(openwrtTokenFile)
	openwrtTokenFile = filepath.Join(t.TempDir(), "absent")
	err := cmdFlows([]string{"--api", srv.URL})
	if err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("without the token: %v, want a 401 error", err)
	}
	// OpenWrt's UCI mode: the token the init script made is found without
	// --token-file.
	openwrtTokenFile = tok
	if err := cmdFlows([]string{"--api", srv.URL, "--json"}); err != nil {
		t.Fatalf("with OpenWrt's token file: %v", err)
	}
}

// TestFlowsStats: --stats asks for the totals (the LuCI app's rpcd plugin
// reads them this way), with the token.
func TestFlowsStats(t *testing.T) {
	var got string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.URL.Path + " " + r.Header.Get("Authorization")
		w.Write([]byte(`{"flows_active":1}`))
	}))
	defer srv.Close()
	tok := filepath.Join(t.TempDir(), "token")
	os.WriteFile(tok, []byte("s3cret\n"), 0o600)
	if err := cmdFlows([]string{"--api", srv.URL, "--token-file", tok, "--stats"}); err != nil {
		t.Fatal(err)
	}
	if got != "/api/stats Bearer s3cret" {
		t.Errorf("request %q", got)
	}
}
