// Ephemeral key pairs and ECDH (RFC 8548 §5).
//
// A KeyPair is one side's ephemeral key for one TEP. Its public key goes into
// Init1/Init2 in wire form; SharedSecret turns the peer's wire-form public key
// into ES, the input of the key schedule. X25519, P-256 and P-521 come from
// crypto/ecdh, X448 from circl.
//
// Wire form (RFC 8548 §5): X25519 and X448 keys go raw (32 and 56 bytes).
// P-256 and P-521 keys go as
//
//	pubkey_len[2] = L | compressed point (IEEE 1363 E.2.3: 02/03 | X)
//
// where L counts the whole structure, length bytes included: the figure in
// §5 puts the last byte at index L - 1, the same convention as Init's
// message_len. A receiver also accepts L = the point's length alone (33 or
// 67): the point size is fixed per curve, so both readings of the figure
// describe the same bytes and neither is ambiguous. The point is validated
// (on the curve, not the point at infinity: IEEE 1363 A.16.10, which §5
// requires; the NIST curves have cofactor 1, so that is the whole check). The private key never leaves the KeyPair: it
// is not exported, not printed (Format), and never written anywhere.
package tcpcrypt

import (
	"crypto/ecdh"
	"crypto/elliptic"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/cloudflare/circl/dh/x448"
)

var (
	errInvalidTEP       = errors.New("tcpcrypt: invalid TEP")
	errPeerKeyLength    = errors.New("tcpcrypt: peer public key has the wrong length")
	errPeerKeyInvalid   = errors.New("tcpcrypt: peer public key is not a valid point")
	errPeerKeyLenField  = errors.New("tcpcrypt: peer public key has a wrong pubkey_len")
	errSharedSecretZero = errors.New("tcpcrypt: shared secret is all zero (low-order peer key)")
	errPrivateKey       = errors.New("tcpcrypt: invalid private key")
)

// KeyPair is an ephemeral key pair for one TEP. It is safe for concurrent
// use: a KeyPool hands one pair to several connections.
type KeyPair struct {
	tep    TEP
	public []byte

	ecdhKey hidden[ecdh.PrivateKey] // P-256, P-521, X25519
	x448Key hidden[x448.Key]        // X448 only
}

// ecdhCurve maps a TEP to its crypto/ecdh curve; nil for X448 (circl).
func ecdhCurve(tep TEP) ecdh.Curve {
	switch tep {
	case TEPP256:
		return ecdh.P256()
	case TEPP521:
		return ecdh.P521()
	case TEPCurve25519:
		return ecdh.X25519()
	}
	return nil
}

// GenerateKeyPair makes a fresh key pair for tep. Pass crypto/rand.Reader;
// crypto/ecdh may use the system CSPRNG whatever rand is.
func GenerateKeyPair(tep TEP, rand io.Reader) (*KeyPair, error) {
	if !tep.Valid() {
		return nil, errInvalidTEP
	}
	if tep == TEPCurve448 {
		var priv x448.Key
		if _, err := io.ReadFull(rand, priv[:]); err != nil {
			return nil, fmt.Errorf("tcpcrypt: generating X448 key: %w", err)
		}
		return newX448KeyPair(&priv), nil
	}
	k, err := ecdhCurve(tep).GenerateKey(rand)
	if err != nil {
		return nil, fmt.Errorf("tcpcrypt: generating %v key: %w", tep, err)
	}
	return newECDHKeyPair(tep, k), nil
}

// newECDHKeyPair wraps a crypto/ecdh key, with its public key in wire form.
func newECDHKeyPair(tep TEP, k *ecdh.PrivateKey) *KeyPair {
	pub := k.PublicKey().Bytes()
	if tep == TEPP256 || tep == TEPP521 {
		pub = compressPoint(pub)
	}
	return &KeyPair{tep: tep, public: pub, ecdhKey: hide(k)}
}

// compressPoint turns an uncompressed NIST point 04 | X | Y into its wire
// form pubkey_len | (02 + y mod 2) | X (RFC 8548 §5).
func compressPoint(uncompressed []byte) []byte {
	coord := (len(uncompressed) - 1) / 2
	l := 2 + 1 + coord
	out := make([]byte, l)
	binary.BigEndian.PutUint16(out, uint16(l))
	out[2] = 2 | uncompressed[len(uncompressed)-1]&1
	copy(out[3:], uncompressed[1:1+coord])
	return out
}

// decompressPoint validates a NIST public key in wire form and returns it
// uncompressed (04 | X | Y), as crypto/ecdh takes it.
func decompressPoint(tep TEP, wire []byte) ([]byte, error) {
	curve := elliptic.P256()
	if tep == TEPP521 {
		curve = elliptic.P521()
	}
	pointLen := len(wire) - 2
	switch int(binary.BigEndian.Uint16(wire)) {
	case len(wire), pointLen:
	default:
		return nil, errPeerKeyLenField
	}
	x, y := elliptic.UnmarshalCompressed(curve, wire[2:])
	if x == nil {
		return nil, errPeerKeyInvalid
	}
	coord := pointLen - 1
	out := make([]byte, 1+2*coord)
	out[0] = 4
	x.FillBytes(out[1 : 1+coord])
	y.FillBytes(out[1+coord:])
	return out, nil
}

// NewKeyPairFromPrivate builds a key pair from a private key in its standard
// encoding: the 32- or 56-byte X25519/X448 scalar (RFC 7748), or the
// big-endian P-256 (32 bytes) or P-521 (66 bytes) scalar. It exists for
// known-answer tests; connections use GenerateKeyPair or a KeyPool.
func NewKeyPairFromPrivate(tep TEP, priv []byte) (*KeyPair, error) {
	if !tep.Valid() {
		return nil, errInvalidTEP
	}
	if tep == TEPCurve448 {
		if len(priv) != x448.Size {
			return nil, errPrivateKey
		}
		var k x448.Key
		copy(k[:], priv)
		return newX448KeyPair(&k), nil
	}
	k, err := ecdhCurve(tep).NewPrivateKey(priv)
	if err != nil {
		return nil, errPrivateKey
	}
	return newECDHKeyPair(tep, k), nil
}

func newX448KeyPair(priv *x448.Key) *KeyPair {
	key := new(x448.Key)
	*key = *priv
	clear(priv[:])
	var pub x448.Key
	x448.KeyGen(&pub, key)
	return &KeyPair{tep: TEPCurve448, public: pub[:], x448Key: hide(key)}
}

// TEP is the key agreement scheme this pair belongs to.
func (k *KeyPair) TEP() TEP { return k.tep }

// PublicKey is the public key in wire form (Pub_A/Pub_B, RFC 8548 §4.1,
// §5): 32, 35, 69 or 56 bytes. The caller must not modify it.
func (k *KeyPair) PublicKey() []byte { return k.public }

// SharedSecret computes ES (RFC 8548 §3.3, §5) with the peer's public key in
// wire form: the X25519/X448 output, or the x-coordinate for P-256/P-521. A
// key of the wrong length, a wrong pubkey_len, a point not on the curve (or
// at infinity) and an all-zero X25519/X448 result are errors: the
// connection must be aborted (§3.3: "If ... a key-validation step fails
// ..., it MUST abort the connection"; §5 on the all-zero value).
func (k *KeyPair) SharedSecret(peerPublic []byte) ([]byte, error) {
	if len(peerPublic) != k.tep.PublicKeyLen() {
		return nil, errPeerKeyLength
	}
	if k.tep == TEPCurve448 {
		var peer, shared x448.Key
		copy(peer[:], peerPublic)
		ok := x448.Shared(&shared, k.x448Key.get(), &peer)
		if !ok || isAllZero(shared[:]) {
			return nil, errSharedSecretZero
		}
		return shared[:], nil
	}
	priv := k.ecdhKey.get()
	if k.tep == TEPP256 || k.tep == TEPP521 {
		p, err := decompressPoint(k.tep, peerPublic)
		if err != nil {
			return nil, err
		}
		peerPublic = p
	}
	peer, err := priv.Curve().NewPublicKey(peerPublic)
	if err != nil {
		return nil, errPeerKeyInvalid
	}
	es, err := priv.ECDH(peer)
	if err != nil {
		// crypto/ecdh fails only for an all-zero X25519 result here: NIST
		// points were validated by NewPublicKey.
		return nil, errSharedSecretZero
	}
	return es, nil
}

// Format prints the TEP and public key only, so that a KeyPair in a log line
// or a %v of a larger struct never shows the private key.
func (k *KeyPair) Format(f fmt.State, _ rune) {
	if k == nil {
		fmt.Fprint(f, "KeyPair(nil)")
		return
	}
	fmt.Fprintf(f, "KeyPair(%v, public %x)", k.tep, k.public)
}

// isAllZero reports whether b is all zero, in time independent of its
// contents.
func isAllZero(b []byte) bool {
	var acc byte
	for _, x := range b {
		acc |= x
	}
	return subtle.ConstantTimeByteEq(acc, 0) == 1
}
