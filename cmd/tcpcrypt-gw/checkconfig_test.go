package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"tcpcrypt-gw/config"
)

func TestCheckConfig(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("interfaces:\n  lan: [lo]\n  wan: [lo]\nlan_prefixes: [10.0.0.0/33]\nbogus: 1\n"), 0o600)
	err := cmdCheckConfig([]string{"-c", bad})
	if err == nil {
		t.Fatal("a bad file passed")
	}
	for _, want := range []string{"bad.yaml:4", "lan_prefixes", "bad.yaml:5", "bogus"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
	missing := filepath.Join(dir, "missing-if.yaml")
	os.WriteFile(missing, []byte("interfaces:\n  lan: [tcgw-no-such-if]\n  wan: [lo]\n"), 0o600)
	if err := cmdCheckConfig([]string{"-c", missing}); err == nil || !strings.Contains(err.Error(), "tcgw-no-such-if") {
		t.Fatalf("missing interface: %v", err)
	}
	if err := cmdCheckConfig([]string{"-c", missing, "-no-interfaces"}); err != nil {
		t.Fatalf("-no-interfaces: %v", err)
	}
	good := filepath.Join(dir, "good.yaml")
	os.WriteFile(good, []byte("interfaces:\n  lan: [lan0]\n  wan: [wan0]\n"), 0o600)
	if err := cmdCheckConfig([]string{"-c", good, "-no-interfaces"}); err != nil {
		t.Fatalf("good file: %v", err)
	}
}

// TestCipherReport: check-config names the cipher order and its origin,
// for either answer of the CPU check and for a list in the file.
func TestCipherReport(t *testing.T) {
	old := config.AESGCMHardware
	defer func() { config.AESGCMHardware = old }()
	for _, tc := range []struct {
		hw   bool
		file string
		want string
	}{
		{false, "", "ciphers: chacha20poly1305, aes128gcm, aes256gcm (default for this CPU, chacha20poly1305 first: no AES)\n"},
		{true, "", "ciphers: aes128gcm, chacha20poly1305, aes256gcm (default for this CPU, AES-GCM first: AES)\n"},
		{false, "tcpcrypt: {ciphers: [aes256gcm]}\n", "ciphers: aes256gcm (tcpcrypt.ciphers in c.yaml)\n"},
	} {
		why := map[bool]string{false: "no AES", true: "AES"}[tc.hw]
		config.AESGCMHardware = func() (bool, string) { return tc.hw, why }
		cfg, err := config.Parse([]byte(tc.file), "c.yaml")
		if err != nil {
			t.Fatal(err)
		}
		var b strings.Builder
		cipherReport(&b, cfg)
		if b.String() != tc.want {
			t.Errorf("AES %v, file %q: %q, want %q", tc.hw, tc.file, b.String(), tc.want)
		}
	}
}

// TestBudgetWorstCaseMemory: check-config's figures for the defaults:
// 65,536 active flows at 3,200 bytes (200 MiB), 64 MiB of buffers in up
// to 128 MiB, and 8 MiB of buffers kept by bulk flows between bursts.
func TestBudgetWorstCaseMemory(t *testing.T) {
	var b strings.Builder
	memoryReport(&b, config.Flows{Max: 65536, MaxBufferPerFlow: 512 * config.KiB, MaxBufferTotal: 64 * config.MiB})
	out := b.String()
	for _, want := range []string{"worst-case memory of the flow limits: 336 MiB", "= 200 MiB", "64MiB of data", "512KiB per flow", "= 128 MiB", "1/8 of the data = 8 MiB"} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
}
