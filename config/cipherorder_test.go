package config

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"testing"

	"tcpcrypt-gw/crypto/tcpcrypt"
)

// withAESHardware makes AESGCMHardware answer hw for the rest of the test.
func withAESHardware(t testing.TB, hw bool) {
	old := AESGCMHardware
	AESGCMHardware = func() (bool, string) { return hw, fmt.Sprintf("test says %v", hw) }
	t.Cleanup(func() { AESGCMHardware = old })
}

func TestCipherOrderFollowsCPU(t *testing.T) {
	for _, tc := range []struct {
		hw   bool
		want []string
		why  string
	}{
		{true, []string{"aes128gcm", "chacha20poly1305", "aes256gcm"}, "AES-GCM first: test says true"},
		{false, []string{"chacha20poly1305", "aes128gcm", "aes256gcm"}, "chacha20poly1305 first: test says false"},
	} {
		withAESHardware(t, tc.hw)
		for _, c := range []*Config{Default(), mustParse(t, ""), mustParse(t, "tcpcrypt: {rekey_interval: 2h}\n")} {
			if !slices.Equal(c.TCPCrypt.Ciphers, tc.want) || !strings.Contains(c.CipherOrder(), tc.why) {
				t.Errorf("AES hardware %v: ciphers %v (%s), want %v (%s)", tc.hw, c.TCPCrypt.Ciphers, c.CipherOrder(), tc.want, tc.why)
			}
		}
		// A list in the file wins, whatever the CPU.
		c := mustParse(t, "tcpcrypt:\n  ciphers: [aes256gcm, aes128gcm]\n")
		if !slices.Equal(c.TCPCrypt.Ciphers, []string{"aes256gcm", "aes128gcm"}) || c.CipherOrder() != "tcpcrypt.ciphers in test.yaml" {
			t.Errorf("AES hardware %v, list in the file: %v (%s)", tc.hw, c.TCPCrypt.Ciphers, c.CipherOrder())
		}
	}
}

// GODEBUG=cpu.aes=off, which also turns off Go's own AES-GCM assembly,
// must make the default chacha20poly1305 first: the test binary runs
// itself with it and reads the order it prints.
func TestCipherOrderGODEBUG(t *testing.T) {
	if os.Getenv("TCPCRYPT_CIPHER_ORDER_CHILD") == "1" {
		fmt.Printf("order=%s\n", strings.Join(Default().TCPCrypt.Ciphers, ","))
		return
	}
	if runtime.GOARCH != "amd64" {
		t.Skip("GODEBUG=cpu.aes=off is an x86 option")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestCipherOrderGODEBUG$", "-test.count=1")
	cmd.Env = append(os.Environ(), "TCPCRYPT_CIPHER_ORDER_CHILD=1", "GODEBUG=cpu.aes=off")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	if !bytes.Contains(out, []byte("order=chacha20poly1305,aes128gcm,aes256gcm\n")) {
		t.Fatalf("with GODEBUG=cpu.aes=off the default order is not chacha20poly1305 first:\n%s", out)
	}
}

// BenchmarkDefaultCipherSeal seals 1,400-byte frames with the cipher the
// default order puts first on this CPU, and the others for comparison: run
// it plain and with GODEBUG=cpu.aes=off (or under qemu-user for a router's
// architecture) to see the default follow the faster one.
func BenchmarkDefaultCipherSeal(b *testing.B) {
	order := Default().TCPCrypt.Ciphers
	b.Logf("default order: %v (%s)", order, Default().CipherOrder())
	for i, name := range order {
		label := name
		if i == 0 {
			label += "-default"
		}
		b.Run(label, func(b *testing.B) {
			aead, err := tcpcrypt.ParseAEAD(name)
			if err != nil {
				b.Fatal(err)
			}
			s, err := tcpcrypt.NewSealer(aead, make([]byte, 32), tcpcrypt.KeysAB)
			if err != nil {
				b.Fatal(err)
			}
			data := make([]byte, 1400)
			buf := make([]byte, 0, len(data)+tcpcrypt.FrameOverhead)
			b.SetBytes(int64(len(data)))
			off := uint64(0)
			for b.Loop() {
				buf = s.SealFrame(buf[:0], off, 0, 0, data)
				off += uint64(len(buf))
			}
		})
	}
}
