// The algorithm names the configuration accepts. The lead maps them onto
// crypto/tcpcrypt (ParseTEP, ParseAEAD); this list is the only place the
// config package knows them.

package config

// tepNames are the TCP encryption protocols of RFC 8548 §5 (ECDHE over
// P-256, P-521, Curve25519, Curve448) in the order the default prefers.
var tepNames = []string{"curve25519", "p256", "p521", "curve448"}

// cipherNames are the AEADs of RFC 8548 §6 (AEAD_AES_128_GCM is mandatory
// to implement).
var cipherNames = []string{"aes128gcm", "aes256gcm", "chacha20poly1305"}

// TEPNames returns the TEP names tcpcrypt.teps accepts, in a fixed order.
func TEPNames() []string { return append([]string(nil), tepNames...) }

// CipherNames returns the cipher names tcpcrypt.ciphers accepts, in a fixed
// order.
func CipherNames() []string { return append([]string(nil), cipherNames...) }
