// The algorithm names the configuration accepts. TEP names come from
// crypto/tcpcrypt's TEP table (one entry per TEP, tcpcrypt.TEPs), so a TEP
// added there is accepted here with no further change; the lead maps the
// names back with tcpcrypt.ParseTEP and ParseAEAD.

package config

import "tcpcrypt-gw/crypto/tcpcrypt"

// tepNames are the TCP encryption protocols of the TEP table (RFC 8548 §5:
// ECDHE over Curve25519, P-256, P-521, Curve448; then the experimental
// hybrid x25519mlkem768, docs/pq-tep.md), in the table's order.
var tepNames = func() []string {
	var names []string
	for _, t := range tcpcrypt.TEPs() {
		names = append(names, t.String())
	}
	return names
}()

// cipherNames are the AEADs of RFC 8548 §6 (AEAD_AES_128_GCM is mandatory
// to implement).
var cipherNames = []string{"aes128gcm", "aes256gcm", "chacha20poly1305"}

// TEPNames returns the TEP names tcpcrypt.teps accepts, in a fixed order.
func TEPNames() []string { return append([]string(nil), tepNames...) }

// CipherNames returns the cipher names tcpcrypt.ciphers accepts, in a fixed
// order.
func CipherNames() []string { return append([]string(nil), cipherNames...) }
