// Ephemeral key pairs and key agreement (RFC 8548 §5).
//
// A KeyPair is one side's ephemeral key for one TEP. Its public key goes into
// Init1/Init2 in wire form; SharedSecret turns the peer's wire-form public key
// into ES, the input of the key schedule, and Respond is B's side: Pub_B and
// ES from A's Pub_A. The TEP table (tep.go) says which operations a TEP
// uses; this file holds them: X25519, P-256 and P-521 from crypto/ecdh, X448
// from circl.
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
// requires; the NIST curves have cofactor 1, so that is the whole check).
// The private key never leaves the KeyPair: it is not exported, not printed
// (Format), and never written anywhere.
package tcpcrypt

import (
	"bytes"
	"crypto/ecdh"
	"crypto/elliptic"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"

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
	key    hidden[privateKey]
}

func newKeyPair(tep TEP, k privateKey) *KeyPair {
	return &KeyPair{tep: tep, public: k.public(), key: hide(&k)}
}

// GenerateKeyPair makes a fresh key pair for tep. Pass crypto/rand.Reader;
// crypto/ecdh may use the system CSPRNG whatever rand is.
func GenerateKeyPair(tep TEP, rand io.Reader) (*KeyPair, error) {
	s := tep.spec()
	if s == nil {
		return nil, errInvalidTEP
	}
	k, err := s.keys.generate(rand)
	if err != nil {
		return nil, fmt.Errorf("tcpcrypt: generating %v key: %w", tep, err)
	}
	return newKeyPair(tep, k), nil
}

// NewKeyPairFromPrivate builds a key pair from a private key in its standard
// encoding: the 32- or 56-byte X25519/X448 scalar (RFC 7748), the
// big-endian P-256 (32 bytes) or P-521 (66 bytes) scalar, or for
// x25519mlkem768 the 64-byte ML-KEM-768 seed followed by the X25519 scalar
// (96 bytes). It exists for
// known-answer tests; connections use GenerateKeyPair or a KeyPool.
func NewKeyPairFromPrivate(tep TEP, priv []byte) (*KeyPair, error) {
	s := tep.spec()
	if s == nil {
		return nil, errInvalidTEP
	}
	k, err := s.keys.fromPrivate(priv)
	if err != nil {
		return nil, errPrivateKey
	}
	return newKeyPair(tep, k), nil
}

// TEP is the key agreement scheme this pair belongs to.
func (k *KeyPair) TEP() TEP { return k.tep }

// PublicKey is Pub_A in wire form (RFC 8548 §4.1, §5): 32, 35, 69, 56 or
// (x25519mlkem768) 1220 bytes, and for a Diffie-Hellman TEP also Pub_B.
// The caller must not modify it.
func (k *KeyPair) PublicKey() []byte { return k.public }

// SharedSecret computes ES (RFC 8548 §3.3, §5) with the peer's public key in
// wire form: A's from Pub_B, and for a Diffie-Hellman TEP also B's from
// Pub_A. It is the X25519/X448 output, or the x-coordinate for
// P-256/P-521. A key of the wrong length, a wrong pubkey_len, a point not
// on the curve (or at infinity) and an all-zero X25519/X448 result are
// errors: the connection must be aborted (§3.3: "If ... a key-validation
// step fails ..., it MUST abort the connection"; §5 on the all-zero value).
func (k *KeyPair) SharedSecret(peerPublic []byte) ([]byte, error) {
	if len(peerPublic) != k.tep.ResponseKeyLen() {
		return nil, errPeerKeyLength
	}
	return (*k.key.get()).sharedSecret(peerPublic)
}

// Respond is B's side of the key agreement (RFC 8548 §3.3): from A's Pub_A
// it returns Pub_B for Init2 and ES. For a Diffie-Hellman TEP Pub_B is
// PublicKey and ES is SharedSecret(pubA); for x25519mlkem768 Pub_B holds a
// fresh ML-KEM ciphertext for A's key (hybrid.go). Errors abort the
// connection (§3.3).
func (k *KeyPair) Respond(pubA []byte) (pubB, es []byte, err error) {
	if len(pubA) != k.tep.PublicKeyLen() {
		return nil, nil, errPeerKeyLength
	}
	return (*k.key.get()).respond(pubA)
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

// ecdhKeys is a TEP over a crypto/ecdh curve: X25519, or a NIST curve whose
// points go compressed behind pubkey_len (compressed).
type ecdhKeys struct {
	curve      ecdh.Curve
	compressed bool
}

func (c ecdhKeys) generate(rand io.Reader) (privateKey, error) {
	k, err := c.curve.GenerateKey(rand)
	if err != nil {
		return nil, err
	}
	return c.wrap(k), nil
}

func (c ecdhKeys) fromPrivate(priv []byte) (privateKey, error) {
	k, err := c.curve.NewPrivateKey(priv)
	if err != nil {
		return nil, err
	}
	return c.wrap(k), nil
}

func (c ecdhKeys) wrap(k *ecdh.PrivateKey) *ecdhKey {
	pub := k.PublicKey().Bytes()
	if c.compressed {
		pub = compressPoint(pub)
	}
	return &ecdhKey{keys: c, priv: k, pub: pub}
}

type ecdhKey struct {
	keys  ecdhKeys
	priv  *ecdh.PrivateKey
	pub   []byte
	known dhCache // the last peers' keys and their results
}

func (k *ecdhKey) public() []byte { return k.pub }

func (k *ecdhKey) respond(pubA []byte) ([]byte, []byte, error) {
	es, err := k.sharedSecret(pubA)
	return k.pub, es, err
}

func (k *ecdhKey) sharedSecret(peerPublic []byte) ([]byte, error) {
	if es := k.known.get(peerPublic); es != nil {
		return es, nil
	}
	wire := peerPublic
	if k.keys.compressed {
		p, err := decompressPoint(k.priv.Curve(), peerPublic)
		if err != nil {
			return nil, err
		}
		peerPublic = p
	}
	peer, err := k.priv.Curve().NewPublicKey(peerPublic)
	if err != nil {
		return nil, errPeerKeyInvalid
	}
	es, err := k.priv.ECDH(peer)
	if err != nil {
		// crypto/ecdh fails only for an all-zero X25519 result here: NIST
		// points were validated by NewPublicKey.
		return nil, errSharedSecretZero
	}
	k.known.put(wire, es)
	return es, nil
}

// dhCache remembers the last results of one private key. A KeyPool hands
// the same pair to every connection for its lifetime (60 s by default,
// RFC 8548 §3.3 only asks that ephemeral keys be "refreshed frequently"),
// and a peer gateway does the same with its own, so without it the same
// scalar multiplication with the same two keys, giving the same ES, was
// done for every connection between them: most of a full handshake's CPU
// after the packets themselves (docs/performance.md, "The connection
// path"). What makes each connection's keys its own (the nonces, the Init
// messages, the ENO transcript) enters the key schedule after ES (§3.3).
// Only results that passed every validation are kept (a peer key that
// fails, fails again: it is checked each time). The cache is bounded and
// lives exactly as long as the private key, which could compute the same
// results again; it adds nothing an attacker holding the key would lack.
type dhCache struct {
	mu   sync.Mutex
	ents [dhCacheLen]struct{ peer, es []byte }
	next int // the slot the next put overwrites
}

// dhCacheLen bounds the peers remembered per key pair: the gateways a
// busy gateway talks to at the same time; more go round the slots.
const dhCacheLen = 16

// get returns a copy of the result for the peer's wire-form key, or nil.
func (c *dhCache) get(peer []byte) []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := range c.ents {
		if e := &c.ents[i]; e.es != nil && bytes.Equal(e.peer, peer) {
			return bytes.Clone(e.es)
		}
	}
	return nil
}

// put keeps a copy of peer's key and its result, over the oldest slot.
func (c *dhCache) put(peer, es []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := &c.ents[c.next]
	clear(e.es)
	e.peer, e.es = append(e.peer[:0], peer...), append(e.es[:0], es...)
	c.next = (c.next + 1) % dhCacheLen
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
func decompressPoint(c ecdh.Curve, wire []byte) ([]byte, error) {
	curve := elliptic.P256()
	if c == ecdh.P521() {
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

// x448Keys is the X448 TEP, from circl (crypto/ecdh has no X448).
type x448Keys struct{}

func (x448Keys) generate(rand io.Reader) (privateKey, error) {
	var priv x448.Key
	if _, err := io.ReadFull(rand, priv[:]); err != nil {
		return nil, err
	}
	return newX448Key(&priv), nil
}

func (x448Keys) fromPrivate(priv []byte) (privateKey, error) {
	if len(priv) != x448.Size {
		return nil, errPrivateKey
	}
	var k x448.Key
	copy(k[:], priv)
	return newX448Key(&k), nil
}

type x448Key struct {
	priv x448.Key
	pub  x448.Key
}

// newX448Key takes the scalar out of priv, clearing it.
func newX448Key(priv *x448.Key) *x448Key {
	k := &x448Key{priv: *priv}
	clear(priv[:])
	x448.KeyGen(&k.pub, &k.priv)
	return k
}

func (k *x448Key) public() []byte { return k.pub[:] }

func (k *x448Key) respond(pubA []byte) ([]byte, []byte, error) {
	es, err := k.sharedSecret(pubA)
	return k.pub[:], es, err
}

func (k *x448Key) sharedSecret(peerPublic []byte) ([]byte, error) {
	var peer, shared x448.Key
	copy(peer[:], peerPublic)
	ok := x448.Shared(&shared, &k.priv, &peer)
	if !ok || isAllZero(shared[:]) {
		return nil, errSharedSecretZero
	}
	return shared[:], nil
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
