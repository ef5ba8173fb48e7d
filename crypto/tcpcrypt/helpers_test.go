package tcpcrypt

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"testing"
)

var (
	allTEPs  = []TEP{TEPP256, TEPP521, TEPCurve25519, TEPCurve448, TEPX25519MLKEM768}
	allAEADs = []AEADID{AES128GCM, AES256GCM, ChaCha20Poly1305}
)

// testPubB is a valid Pub_B for tep: some B's answer to some A's Pub_A.
func testPubB(t testing.TB, tep TEP) []byte {
	t.Helper()
	a, err := GenerateKeyPair(tep, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	b, err := GenerateKeyPair(tep, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pubB, _, err := b.Respond(a.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	return pubB
}

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatalf("bad hex %q: %v", s, err)
	}
	return b
}

// testKey is a fixed master key mk[0], different for each label. aead is
// unused since master keys are K_LEN bytes whatever the AEAD.
func testKey(_ AEADID, label string) []byte {
	sum := sha256.Sum256([]byte("tcpcrypt test key " + label))
	return sum[:]
}

// mustSealer seals with k_ab of mk0; mustOpener opens k_ab of the same
// master key, so the two pair up.
func mustSealer(t testing.TB, aead AEADID, key []byte) *Sealer {
	t.Helper()
	s, err := NewSealer(aead, key, KeysAB)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func mustOpener(t testing.TB, aead AEADID, key []byte) *Opener {
	t.Helper()
	o, err := NewOpener(aead, key, KeysAB)
	if err != nil {
		t.Fatal(err)
	}
	return o
}
