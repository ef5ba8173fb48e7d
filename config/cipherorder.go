// The default order of tcpcrypt.ciphers follows the CPU.
//
// The order serves both roles (RFC 8548 §3.3): as A it is the list offered
// in Init1, most preferred first; as B it is the preference by which B
// picks from A's list (crypto/tcpcrypt.ChooseCipher). Go's AES-GCM runs in
// hardware only on some CPUs; elsewhere it is a constant-time software
// fallback, slower than ChaCha20-Poly1305 (measured: 16 vs 23 MB/s sealing
// 1,400-byte frames on mipsle, docs/performance.md). So:
//  1. AESGCMHardware says whether this CPU has what Go's AES-GCM assembly
//     needs, decided as crypto/tls does (hasAESGCMHardwareSupport), from
//     golang.org/x/sys/cpu; GODEBUG=cpu.aes=off answers "no" on x86.
//  2. With it, default.yaml's order stands (aes128gcm first); without it,
//     chacha20poly1305 moves to the front, the others keep their order.
//  3. A tcpcrypt.ciphers written in the file wins over either.
//
// Config.CipherOrder says which of these applied, and why, for check-config
// and the startup log.

package config

import (
	"runtime"
	"slices"

	"golang.org/x/sys/cpu"
)

// AESGCMHardware reports whether Go's AES-GCM runs in hardware on this CPU,
// and the reason in words. A variable so that tests can give either answer.
var AESGCMHardware = aesGCMHardware

// aesGCMHardware mirrors crypto/tls's hasAESGCMHardwareSupport (which the
// Go source keeps in sync with crypto/internal/fips140/aes/gcm's
// supportsAESGCM), per architecture. One difference: crypto/tls tests the
// x86 flags on 386 too, but Go has AES-GCM assembly only for amd64, arm64,
// s390x and ppc64x, so 386 counts as without.
func aesGCMHardware() (bool, string) {
	switch runtime.GOARCH {
	case "amd64":
		if cpu.X86.HasAES && cpu.X86.HasPCLMULQDQ && cpu.X86.HasSSE41 && cpu.X86.HasSSSE3 {
			return true, "amd64 with AES-NI, PCLMULQDQ, SSE4.1 and SSSE3"
		}
		return false, "amd64 without AES-NI, PCLMULQDQ, SSE4.1 or SSSE3 (or switched off by GODEBUG)"
	case "arm64":
		if cpu.ARM64.HasAES && cpu.ARM64.HasPMULL {
			return true, "arm64 with the AES and PMULL instructions"
		}
		return false, "arm64 without the AES or PMULL instructions"
	case "s390x":
		if cpu.S390X.HasAES && cpu.S390X.HasAESCTR && cpu.S390X.HasGHASH {
			return true, "s390x with the AES, AES-CTR and GHASH functions"
		}
		return false, "s390x without the AES, AES-CTR or GHASH functions"
	case "ppc64", "ppc64le":
		return true, runtime.GOARCH + " (Go's POWER8 AES-GCM assembly)"
	}
	return false, runtime.GOARCH + ": Go has no AES-GCM assembly for this architecture"
}

// fastCipherWithoutAES is the cipher put first without AES hardware.
const fastCipherWithoutAES = "chacha20poly1305"

// cpuCipherOrder returns the default list for this CPU (steps 1 and 2)
// and the sentence CipherOrder reports.
func cpuCipherOrder(list []string) ([]string, string) {
	hw, why := AESGCMHardware()
	if hw {
		return list, "default for this CPU, AES-GCM first: " + why
	}
	i := slices.Index(list, fastCipherWithoutAES)
	if i < 0 {
		return list, "default (no " + fastCipherWithoutAES + " in the list to prefer): " + why
	}
	out := append([]string{fastCipherWithoutAES}, list[:i]...)
	return append(out, list[i+1:]...), "default for this CPU, " + fastCipherWithoutAES + " first: " + why
}

// CipherOrder says where tcpcrypt.ciphers came from: the file, or the
// default for this CPU and why.
func (c *Config) CipherOrder() string { return c.cipherOrigin }
