package rfcref_test

// The hybrid TEP x25519mlkem768 (experimental TEP 0x20), written from
// docs/pq-tep.md alone, with Go's crypto/mlkem and crypto/ecdh as the
// primitives (FIPS 203, RFC 7748). Like the rest of this package it
// imports nothing from tcpcrypt-gw. Section numbers below are those of
// docs/pq-tep.md.

import (
	"bytes"
	"crypto/ecdh"
	"crypto/mlkem"
	"crypto/mlkem/mlkemtest"
	"fmt"
)

// Section 1.
const tepX25519MLKEM768 byte = 0x20

// Section 3: Pub_A = id | ek | X_A, Pub_B = id | ct | X_B.
var pqID = []byte{0x74, 0x67, 0x77, 0x01}

const (
	pqEKLen   = 1184 // ML-KEM-768 encapsulation key
	pqCTLen   = 1088 // ML-KEM-768 ciphertext
	pqXLen    = 32   // X25519 public value and shared secret
	pqPubALen = 4 + pqEKLen + pqXLen
	pqPubBLen = 4 + pqCTLen + pqXLen
	pqSeedLen = 64 // d | z (section 10: a_private, b_private)
)

// pqSplitPrivate splits a vector's 96-byte private key (section 10).
func pqSplitPrivate(priv []byte) (seed, x []byte, err error) {
	if len(priv) != pqSeedLen+pqXLen {
		return nil, nil, fmt.Errorf("x25519mlkem768 private key: %d bytes, want 96", len(priv))
	}
	return priv[:pqSeedLen], priv[pqSeedLen:], nil
}

// pqPubA builds Pub_A from A's private key (sections 2, 3).
func pqPubA(priv []byte) ([]byte, error) {
	seed, x, err := pqSplitPrivate(priv)
	if err != nil {
		return nil, err
	}
	dk, err := mlkem.NewDecapsulationKey768(seed)
	if err != nil {
		return nil, err
	}
	xk, err := ecdh.X25519().NewPrivateKey(x)
	if err != nil {
		return nil, err
	}
	return cat(pqID, dk.EncapsulationKey().Bytes(), xk.PublicKey().Bytes()), nil
}

// pqX25519 is Z = X25519(priv, peer), all zero refused (section 4: as
// for TCPCRYPT_ECDHE_Curve25519, RFC 8548 Section 5).
func pqX25519(priv, peer []byte) ([]byte, error) { return sharedSecret(tepCurve25519, priv, peer) }

// pqRespond is host B's side (section 4): Pub_B and ES = K | Z from
// Pub_A, with the encapsulation randomness m given (section 10).
func pqRespond(privB, pubA, m []byte) (pubB, es []byte, err error) {
	_, xB, err := pqSplitPrivate(privB)
	if err != nil {
		return nil, nil, err
	}
	if len(pubA) != pqPubALen {
		return nil, nil, fmt.Errorf("x25519mlkem768: Pub_A is %d bytes, want %d", len(pubA), pqPubALen)
	}
	if !bytes.Equal(pubA[:4], pqID) {
		return nil, nil, fmt.Errorf("x25519mlkem768: Pub_A id %x", pubA[:4])
	}
	ek, err := mlkem.NewEncapsulationKey768(pubA[4 : 4+pqEKLen]) // the FIPS 203 §7.2 check
	if err != nil {
		return nil, nil, err
	}
	z, err := pqX25519(xB, pubA[4+pqEKLen:])
	if err != nil {
		return nil, nil, err
	}
	k, ct, err := mlkemtest.Encapsulate768(ek, m)
	if err != nil {
		return nil, nil, err
	}
	xk, _ := ecdh.X25519().NewPrivateKey(xB)
	return cat(pqID, ct, xk.PublicKey().Bytes()), cat(k, z), nil
}

// pqShared is host A's side (section 4): ES = K | Z from Pub_B.
func pqShared(privA, pubB []byte) ([]byte, error) {
	seed, xA, err := pqSplitPrivate(privA)
	if err != nil {
		return nil, err
	}
	if len(pubB) != pqPubBLen {
		return nil, fmt.Errorf("x25519mlkem768: Pub_B is %d bytes, want %d", len(pubB), pqPubBLen)
	}
	if !bytes.Equal(pubB[:4], pqID) {
		return nil, fmt.Errorf("x25519mlkem768: Pub_B id %x", pubB[:4])
	}
	z, err := pqX25519(xA, pubB[4+pqCTLen:])
	if err != nil {
		return nil, err
	}
	dk, err := mlkem.NewDecapsulationKey768(seed)
	if err != nil {
		return nil, err
	}
	k, err := dk.Decapsulate(pubB[4 : 4+pqCTLen])
	if err != nil {
		return nil, err
	}
	return cat(k, z), nil
}
