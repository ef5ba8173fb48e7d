// The hybrid post-quantum TEP X25519MLKEM768 on TCP-ENO's experimental
// identifier 0x20 (RFC 8547 §11 Table 3), specified in docs/pq-tep.md.
//
// It is a key encapsulation, not a Diffie-Hellman exchange, so B's public
// value depends on A's:
//
//	Pub_A = id[4] | ML-KEM-768 encapsulation key[1184] | X25519 public[32]   (1220)
//	Pub_B = id[4] | ML-KEM-768 ciphertext[1088]        | X25519 public[32]   (1124)
//	ES    = ML-KEM shared secret[32] | X25519 shared secret[32]              (64)
//
// The ML-KEM part comes first, as in TLS's X25519MLKEM768 key shares and
// shared secret (draft-ietf-tls-ecdhe-mlkem-02 §4.1; Go's crypto/tls does the
// same). id is this experiment's identifier (hybridID): a peer that uses
// 0x20 for another experiment fails on it with a reason, before any key
// is derived.
//
//  1. A: a pooled KeyPair holds an ML-KEM-768 decapsulation key and an
//     X25519 key; PublicKey is Pub_A.
//  2. B: Respond(Pub_A) checks id, the encapsulation key (FIPS 203 §7.2)
//     and the X25519 result, encapsulates to A's key with fresh randomness
//     and returns Pub_B and ES. B's pooled pair lends its X25519 key only.
//  3. A: SharedSecret(Pub_B) checks id and the X25519 result, decapsulates
//     (FIPS 203 §7.3: implicit rejection, a wrong ciphertext gives a
//     different secret, never an error) and returns ES.
package tcpcrypt

import (
	"bytes"
	"crypto/ecdh"
	"crypto/rand"
	"crypto/subtle"
	"errors"
	"io"
	"sync"

	"github.com/cloudflare/circl/kem/mlkem/mlkem768"
)

// ML-KEM-768 comes from CIRCL (FIPS 203 final), not crypto/mlkem: on this
// project's amd64 machines its encapsulation and decapsulation took 8 and
// 13 µs where crypto/mlkem's took 38 and 54 (AVX2 NTT and 4-way Keccak;
// arm64 has assembly too), and its portable code was also the faster one
// under qemu for 32-bit arm and mips (docs/performance.md, "ML-KEM"). The
// vectors and TestHybridLayout check it against crypto/mlkem; test/rfcref
// keeps crypto/mlkem, so two implementations meet in the tests.

// TEPX25519MLKEM768 is the hybrid X25519 + ML-KEM-768 TEP (docs/pq-tep.md)
// on the experimental TEP identifier (RFC 8547 §11 Table 3).
const TEPX25519MLKEM768 TEP = 0x20

// hybridID opens Pub_A and Pub_B: "tgw" and the version of docs/pq-tep.md's
// format, 1. Another experiment on 0x20 (or another version of this one)
// sends other bytes here, or a Pub_A of another length.
var hybridID = [4]byte{0x74, 0x67, 0x77, 0x01}

const (
	hybridIDLen = len(hybridID)
	hybridXLen  = 32                      // X25519 public key and shared secret (RFC 7748)
	hybridEKLen = mlkem768.PublicKeySize  // 1184
	hybridCTLen = mlkem768.CiphertextSize // 1088
	hybridPubA  = hybridIDLen + hybridEKLen + hybridXLen
	hybridPubB  = hybridIDLen + hybridCTLen + hybridXLen
	// hybridPrivLen is a private key's standard encoding for
	// NewKeyPairFromPrivate: the ML-KEM seed d | z (FIPS 203 §7.1), then the
	// X25519 scalar.
	hybridPrivLen = mlkem768.KeySeedSize + hybridXLen
)

var (
	errHybridID     = errors.New("tcpcrypt: peer's x25519mlkem768 public value has another experiment identifier (a different use of TEP 0x20)")
	errHybridEncKey = errors.New("tcpcrypt: peer's ML-KEM-768 encapsulation key is invalid (FIPS 203 §7.2)")
)

// hybridKeys is the X25519MLKEM768 row's key operations.
type hybridKeys struct{}

func (hybridKeys) generate(rand io.Reader) (privateKey, error) {
	var seed [mlkem768.KeySeedSize]byte
	if _, err := io.ReadFull(rand, seed[:]); err != nil {
		return nil, err
	}
	ek, dk := mlkem768.NewKeyFromSeed(seed[:])
	clear(seed[:])
	x, err := ecdh.X25519().GenerateKey(rand)
	if err != nil {
		return nil, err
	}
	return newHybridKey(ek, dk, hybridX.wrap(x)), nil
}

func (hybridKeys) fromPrivate(priv []byte) (privateKey, error) {
	if len(priv) != hybridPrivLen {
		return nil, errPrivateKey
	}
	ek, dk := mlkem768.NewKeyFromSeed(priv[:mlkem768.KeySeedSize])
	x, err := ecdh.X25519().NewPrivateKey(priv[mlkem768.KeySeedSize:])
	if err != nil {
		return nil, err
	}
	return newHybridKey(ek, dk, hybridX.wrap(x)), nil
}

// hybridX is the X25519 half: the curve25519 TEP's operations, with its
// all-zero check (RFC 8548 §5, RFC 7748 §6.1).
var hybridX = ecdhKeys{curve: ecdh.X25519()}

type hybridKey struct {
	dk  *mlkem768.PrivateKey
	x   *ecdhKey
	pub []byte // Pub_A
	eks ekCache
}

// ekCache keeps the last peers' parsed encapsulation keys for respond.
// Parsing one (FIPS 203 §7.2's check, and expanding its matrix from the
// seed) was a tenth of role B's CPU in a hybrid handshake, and a peer
// gateway sends the same key for as long as its KeyPool reuses the pair
// (60 s by default): each connection still encapsulates with fresh
// randomness, so the ciphertext and the ML-KEM secret are its own. Keys
// are matched on all their bytes; only keys that passed the check are
// kept; bounded, and dropped with B's key pair.
type ekCache struct {
	mu   sync.Mutex
	ents [ekCacheLen]struct {
		raw []byte
		ek  *mlkem768.PublicKey
	}
	next int
}

const ekCacheLen = 4

// parse returns the encapsulation key of raw, from the cache or parsed
// (and then kept).
func (c *ekCache) parse(raw []byte) (*mlkem768.PublicKey, error) {
	c.mu.Lock()
	for i := range c.ents {
		if e := &c.ents[i]; e.ek != nil && bytes.Equal(e.raw, raw) {
			c.mu.Unlock()
			return e.ek, nil
		}
	}
	c.mu.Unlock()
	ek := new(mlkem768.PublicKey)
	if err := ek.Unpack(raw); err != nil { // FIPS 203 §7.2's modulus check
		return nil, err
	}
	c.mu.Lock()
	e := &c.ents[c.next]
	e.raw, e.ek = append(e.raw[:0], raw...), ek
	c.next = (c.next + 1) % ekCacheLen
	c.mu.Unlock()
	return ek, nil
}

func newHybridKey(ek *mlkem768.PublicKey, dk *mlkem768.PrivateKey, x *ecdhKey) *hybridKey {
	pub := make([]byte, hybridPubA)
	copy(pub, hybridID[:])
	ek.Pack(pub[hybridIDLen : hybridIDLen+hybridEKLen])
	copy(pub[hybridIDLen+hybridEKLen:], x.pub)
	return &hybridKey{dk: dk, x: x, pub: pub}
}

func (k *hybridKey) public() []byte { return k.pub }

// sharedSecret is A's ES from Pub_B (whose length the caller checked).
func (k *hybridKey) sharedSecret(pubB []byte) ([]byte, error) {
	if subtle.ConstantTimeCompare(pubB[:hybridIDLen], hybridID[:]) != 1 {
		return nil, errHybridID
	}
	ct, xB := pubB[hybridIDLen:hybridIDLen+hybridCTLen], pubB[hybridIDLen+hybridCTLen:]
	xs, err := k.x.sharedSecret(xB)
	if err != nil {
		return nil, err
	}
	es := make([]byte, mlkem768.SharedKeySize, mlkem768.SharedKeySize+len(xs))
	k.dk.DecapsulateTo(es, ct) // the caller checked the length
	return append(es, xs...), nil
}

// respond is B's Pub_B and ES from Pub_A, with fresh ML-KEM randomness.
func (k *hybridKey) respond(pubA []byte) ([]byte, []byte, error) {
	return k.respondWith(pubA, nil)
}

// respondWith is respond with the encapsulation's randomness m (FIPS 203
// ML-KEM.Encaps_internal) given, for known answers, or read from
// crypto/rand when m is nil.
func (k *hybridKey) respondWith(pubA, m []byte) ([]byte, []byte, error) {
	if subtle.ConstantTimeCompare(pubA[:hybridIDLen], hybridID[:]) != 1 {
		return nil, nil, errHybridID
	}
	ekBytes, xA := pubA[hybridIDLen:hybridIDLen+hybridEKLen], pubA[hybridIDLen+hybridEKLen:]
	ek, err := k.eks.parse(ekBytes)
	if err != nil {
		return nil, nil, errHybridEncKey
	}
	xs, err := k.x.sharedSecret(xA)
	if err != nil {
		return nil, nil, err
	}
	var fresh [mlkem768.EncapsulationSeedSize]byte
	if m == nil {
		if _, err := rand.Read(fresh[:]); err != nil {
			return nil, nil, err
		}
		m = fresh[:]
	} else if len(m) != len(fresh) {
		return nil, nil, errors.New("tcpcrypt: ML-KEM encapsulation randomness must be 32 bytes")
	}
	pubB := make([]byte, hybridPubB)
	copy(pubB, hybridID[:])
	copy(pubB[hybridIDLen+hybridCTLen:], k.x.pub)
	es := make([]byte, mlkem768.SharedKeySize, mlkem768.SharedKeySize+len(xs))
	ek.EncapsulateTo(pubB[hybridIDLen:hybridIDLen+hybridCTLen], es, m)
	clear(fresh[:])
	return pubB, append(es, xs...), nil
}
