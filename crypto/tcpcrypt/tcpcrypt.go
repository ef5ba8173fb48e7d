// Package tcpcrypt implements the protocol core of tcpcrypt (RFC 8548): the
// TCP encryption protocols (TEPs) that TCP-ENO negotiates, the AEAD
// algorithms, ephemeral key pairs, the Init1/Init2 key-exchange messages, the
// key schedule (session secrets, session IDs, directional keys, resumption
// identifiers) and the encryption frames with their rekeying.
//
// The flow of a full handshake, as the callers in this project drive it:
//
//  1. A picks a KeyPair from a KeyPool, sends Init1 (Init1.Append) as the
//     first bytes of its stream.
//  2. B waits for the whole Init1 (InitMessageLen, ParseInit1), picks a
//     cipher (ChooseCipher), answers with Init2.
//  3. Both compute ES (KeyPair.SharedSecret) and ss[0]
//     (FullHandshakeSecret); keys come from SessionSecret.KeyAB/KeyBA.
//  4. Each direction seals frames with a Sealer and opens them with an
//     Opener, directly or through a FrameReader over the received byte
//     stream.
//
// Nothing in this package writes secrets anywhere: types that hold private
// keys or session secrets format themselves without them.
//
// Section numbers cite RFC 8548 as published.
package tcpcrypt

import (
	"errors"
	"strconv"
	"strings"
)

// AEADID identifies an AEAD algorithm in Init1's and Init2's sym_cipher
// fields: two bytes on the wire (RFC 8548 §4.1, §7 Table 5).
type AEADID uint16

// The AEAD algorithms (RFC 8548 §6 Table 3, §7 Table 5). All take a
// 12-byte nonce (ae_nonce_len) and produce a 16-byte tag.
const (
	AES128GCM        AEADID = 0x0001 // AEAD_AES_128_GCM, REQUIRED (§6)
	AES256GCM        AEADID = 0x0002 // AEAD_AES_256_GCM
	ChaCha20Poly1305 AEADID = 0x0010 // AEAD_CHACHA20_POLY1305
)

// Valid reports whether a is a known AEAD.
func (a AEADID) Valid() bool { return a.KeyLen() != 0 }

// KeyLen is the AEAD's key length (ae_key_len, RFC 8548 §6 Table 3), 0 if
// unknown.
func (a AEADID) KeyLen() int {
	switch a {
	case AES128GCM:
		return 16
	case AES256GCM, ChaCha20Poly1305:
		return 32
	}
	return 0
}

// String is the AEAD's configuration name.
func (a AEADID) String() string {
	switch a {
	case AES128GCM:
		return "aes128gcm"
	case AES256GCM:
		return "aes256gcm"
	case ChaCha20Poly1305:
		return "chacha20poly1305"
	}
	return "aead(0x" + hexByte(byte(a>>8)) + hexByte(byte(a)) + ")"
}

// ParseAEAD is the inverse of AEADID.String (case-insensitive).
func ParseAEAD(name string) (AEADID, error) {
	switch strings.ToLower(strings.TrimSpace(name)) {
	case "aes128gcm", "aes-128-gcm":
		return AES128GCM, nil
	case "aes256gcm", "aes-256-gcm":
		return AES256GCM, nil
	case "chacha20poly1305", "chacha20-poly1305":
		return ChaCha20Poly1305, nil
	}
	return 0, errors.New("tcpcrypt: unknown AEAD " + strconv.Quote(name) + " (want aes128gcm, aes256gcm or chacha20poly1305)")
}

// Protocol constants (RFC 8548 §4.3, §5).
const (
	KeyLen   = 32 // K_LEN: session secrets
	NonceLen = 32 // N_A_LEN = N_B_LEN

	TagLen         = 16                          // every AEAD of RFC 8548 §6
	FrameHeaderLen = 3                           // control[1] | clen[2] (RFC 8548 §4.2)
	FrameOverhead  = FrameHeaderLen + 1 + TagLen // header, flags byte, tag: 20

	// MaxInitLen bounds message_len of Init1/Init2. RFC 8548 §4.1 sets no
	// limit; a receiver must buffer the whole message before it can answer,
	// so a longer one is refused (the connection is aborted).
	MaxInitLen = 65536

	// NRLen is ae_nonce_len, the same for every AEAD of RFC 8548 §6: the
	// length of the AEAD nonce and of the nonce randomizer NR that ends
	// each traffic key (§3.6 Figure 4).
	NRLen = 12

	// MaxResumeNonceLen bounds the resumption nonce (RFC 8548 §3.5: 0 to 8
	// bytes).
	MaxResumeNonceLen = 8
)

// Magic numbers (RFC 8548 §4.3).
const (
	Init1Magic uint32 = 0x15101a0e // INIT1_MAGIC
	Init2Magic uint32 = 0x097105e0 // INIT2_MAGIC
)

// The one-byte CPRF constants (RFC 8548 §4.3).
const (
	constNextK  = 0x01 // CONST_NEXTK
	constSessID = 0x02 // CONST_SESSID
	constRekey  = 0x03 // CONST_REKEY
	constKeyA   = 0x04 // CONST_KEY_A
	constKeyB   = 0x05 // CONST_KEY_B
	constResume = 0x06 // CONST_RESUME
)

func hexByte(b byte) string {
	const digits = "0123456789abcdef"
	return string([]byte{digits[b>>4], digits[b&0xf]})
}
