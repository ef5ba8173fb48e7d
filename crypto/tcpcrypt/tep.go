// The TEP table: every TCP encryption protocol this package implements, in
// one place (RFC 8548 §5, §7 Table 4), as Go's crypto/ecdh gives each curve
// one value carrying its operations.
//
//  1. tepTable lists each TEP once: identifier, configuration name and
//     aliases, the wire lengths of Pub_A (Init1) and Pub_B (Init2), and its
//     key operations (a tepKeys).
//  2. Everything else derives from it: TEP.Valid, PublicKeyLen, String,
//     ParseTEP, TEPs (the names config accepts), the KeyPool's slots, and
//     KeyPair's key generation, import and shared secret (keys.go).
//
// Adding a TEP is one entry here plus its tests: the checklist is in
// docs/protocol.md ("Adding a TEP").
package tcpcrypt

import (
	"crypto/ecdh"
	"errors"
	"io"
	"strconv"
	"strings"
)

// TEP is a TCP-ENO encryption protocol identifier for one tcpcrypt key
// agreement scheme (RFC 8548 §5, §7 Table 4).
type TEP byte

// The tcpcrypt TEPs (RFC 8548 §5). All four use HKDF-SHA256 (prfHash).
const (
	TEPP256       TEP = 0x21 // TCPCRYPT_ECDHE_P256
	TEPP521       TEP = 0x22 // TCPCRYPT_ECDHE_P521
	TEPCurve25519 TEP = 0x23 // TCPCRYPT_ECDHE_Curve25519, REQUIRED (RFC 8548 §5 Table 2)
	TEPCurve448   TEP = 0x24 // TCPCRYPT_ECDHE_Curve448
)

// tepSpec is one row of the TEP table.
type tepSpec struct {
	tep     TEP
	name    string   // configuration name (String)
	aliases []string // also accepted by ParseTEP, lower case
	pubALen int      // Pub_A in Init1, wire form
	pubBLen int      // Pub_B in Init2, wire form
	pq      bool     // its key agreement resists a quantum computer (PostQuantum)
	keys    tepKeys
}

// tepKeys is a TEP's key operations. Its private keys are privateKey
// values; KeyPair wraps them.
type tepKeys interface {
	// generate makes a fresh private key.
	generate(rand io.Reader) (privateKey, error)
	// fromPrivate imports a private key in its standard encoding (for
	// known-answer tests).
	fromPrivate(priv []byte) (privateKey, error)
}

// privateKey is one side's ephemeral key for one TEP.
type privateKey interface {
	// public is Pub_A in wire form; for a Diffie-Hellman TEP also Pub_B.
	public() []byte
	// sharedSecret is ES from the peer's public value of the length the
	// caller has checked: A's from Pub_B, and for a Diffie-Hellman TEP also
	// B's from Pub_A.
	sharedSecret(peer []byte) ([]byte, error)
	// respond is B's side from Pub_A: Pub_B and ES.
	respond(pubA []byte) (pubB, es []byte, err error)
}

// tepTable lists the TEPs in the order config lists their names (the
// default preference, config/default.yaml, may differ).
var tepTable = [...]tepSpec{
	{tep: TEPCurve25519, name: "curve25519", aliases: []string{"x25519"}, pubALen: 32, pubBLen: 32,
		keys: ecdhKeys{curve: ecdh.X25519()}},
	{tep: TEPP256, name: "p256", aliases: []string{"p-256"}, pubALen: 2 + 33, pubBLen: 2 + 33,
		keys: ecdhKeys{curve: ecdh.P256(), compressed: true}},
	{tep: TEPP521, name: "p521", aliases: []string{"p-521"}, pubALen: 2 + 67, pubBLen: 2 + 67,
		keys: ecdhKeys{curve: ecdh.P521(), compressed: true}},
	{tep: TEPCurve448, name: "curve448", aliases: []string{"x448"}, pubALen: 56, pubBLen: 56,
		keys: x448Keys{}},
	// Not an RFC 8548 TEP: docs/pq-tep.md, hybrid.go.
	{tep: TEPX25519MLKEM768, name: "x25519mlkem768", pubALen: hybridPubA, pubBLen: hybridPubB, pq: true,
		keys: hybridKeys{}},
}

// tepIndex maps a TEP identifier (7 bits, RFC 8547 §4.1 glt) to its row
// in tepTable plus one; 0 means not implemented.
var tepIndex = func() (idx [128]uint8) {
	for i, s := range tepTable {
		if s.tep >= 0x80 || idx[s.tep] != 0 {
			panic("tcpcrypt: TEP table: bad or repeated identifier " + strconv.Itoa(int(s.tep)))
		}
		idx[s.tep] = uint8(i + 1)
	}
	return idx
}()

// spec returns t's table row, nil if t is not implemented.
func (t TEP) spec() *tepSpec {
	if t >= 0x80 || tepIndex[t] == 0 {
		return nil
	}
	return &tepTable[tepIndex[t]-1]
}

// TEPs lists every implemented TEP in the table's order.
func TEPs() []TEP {
	out := make([]TEP, len(tepTable))
	for i, s := range tepTable {
		out[i] = s.tep
	}
	return out
}

// Valid reports whether t is an implemented TEP.
func (t TEP) Valid() bool { return t.spec() != nil }

// PublicKeyLen is the length of Pub_A on the wire (RFC 8548 §5), which for
// every Diffie-Hellman TEP is also Pub_B's: X25519 and X448 send the raw
// 32- or 56-byte u-coordinate; the NIST curves send a two-byte pubkey_len
// followed by the compressed point (33 or 67 bytes), 35 or 69 bytes in
// all; x25519mlkem768 sends 1220 bytes (docs/pq-tep.md). It is 0 for an
// invalid TEP.
func (t TEP) PublicKeyLen() int {
	if s := t.spec(); s != nil {
		return s.pubALen
	}
	return 0
}

// ResponseKeyLen is the length of Pub_B on the wire: PublicKeyLen for a
// Diffie-Hellman TEP, 1124 for x25519mlkem768; 0 for an invalid TEP.
func (t TEP) ResponseKeyLen() int {
	if s := t.spec(); s != nil {
		return s.pubBLen
	}
	return 0
}

// PostQuantum reports whether t's key agreement is meant to resist a
// quantum computer: x25519mlkem768 (ML-KEM-768 beside X25519,
// docs/pq-tep.md); none of the RFC 8548 TEPs, all elliptic-curve
// Diffie-Hellman.
func (t TEP) PostQuantum() bool {
	s := t.spec()
	return s != nil && s.pq
}

// String is the TEP's configuration name.
func (t TEP) String() string {
	if s := t.spec(); s != nil {
		return s.name
	}
	return "tep(0x" + hexByte(byte(t)) + ")"
}

// ParseTEP is the inverse of TEP.String (case-insensitive; the table's
// aliases, such as "x25519" and "x448", are accepted too).
func ParseTEP(name string) (TEP, error) {
	n := strings.ToLower(strings.TrimSpace(name))
	names := make([]string, 0, len(tepTable))
	for _, s := range tepTable {
		if n == s.name {
			return s.tep, nil
		}
		for _, a := range s.aliases {
			if n == a {
				return s.tep, nil
			}
		}
		names = append(names, s.name)
	}
	return 0, errors.New("tcpcrypt: unknown TEP " + strconv.Quote(name) + " (want one of " + strings.Join(names, ", ") + ")")
}
