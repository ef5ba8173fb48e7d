package tcpcrypt

import (
	"bytes"
	"crypto/ecdh"
	"crypto/mlkem"
	"crypto/mlkem/mlkemtest"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// respondDeterministic is B's Respond with ML-KEM's encapsulation
// randomness fixed (FIPS 203 ML-KEM.Encaps_internal), for known answers.
func respondDeterministic(t testing.TB, b *KeyPair, pubA, random []byte) ([]byte, []byte, error) {
	t.Helper()
	hk, ok := (*b.key.get()).(*hybridKey)
	if !ok {
		t.Fatalf("%v is not a hybrid key pair", b.TEP())
	}
	return hk.respondWith(pubA, random)
}

// TestHybridLayout rebuilds Pub_A, Pub_B and ES of x25519mlkem768 from
// crypto/mlkem and crypto/ecdh directly, in the order docs/pq-tep.md and
// draft-ietf-tls-ecdhe-mlkem-02 §4.1 give: identifier, ML-KEM part, X25519
// part; ES = ML-KEM secret | X25519 secret.
func TestHybridLayout(t *testing.T) {
	privA := append(fixedBytes("layout A seed", 64), fixedBytes("layout A x25519", 32)...)
	privB := append(fixedBytes("layout B seed", 64), fixedBytes("layout B x25519", 32)...)
	random := fixedBytes("layout m", 32)
	a, err := NewKeyPairFromPrivate(TEPX25519MLKEM768, privA)
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewKeyPairFromPrivate(TEPX25519MLKEM768, privB)
	if err != nil {
		t.Fatal(err)
	}

	dkA, _ := mlkem.NewDecapsulationKey768(privA[:64])
	xA, _ := ecdh.X25519().NewPrivateKey(privA[64:])
	xB, _ := ecdh.X25519().NewPrivateKey(privB[64:])
	wantPubA := append(append([]byte{0x74, 0x67, 0x77, 0x01}, dkA.EncapsulationKey().Bytes()...), xA.PublicKey().Bytes()...)
	if !bytes.Equal(a.PublicKey(), wantPubA) || len(wantPubA) != 1220 {
		t.Fatalf("Pub_A is not id | ek | X25519 public (%d bytes)", len(a.PublicKey()))
	}
	ks, ct, err := mlkemtest.Encapsulate768(dkA.EncapsulationKey(), random)
	if err != nil {
		t.Fatal(err)
	}
	xs, _ := xB.ECDH(xA.PublicKey())
	wantPubB := append(append([]byte{0x74, 0x67, 0x77, 0x01}, ct...), xB.PublicKey().Bytes()...)
	wantES := append(append([]byte(nil), ks...), xs...)

	pubB, esB, err := respondDeterministic(t, b, a.PublicKey(), random)
	if err != nil || !bytes.Equal(pubB, wantPubB) || len(pubB) != 1124 {
		t.Fatalf("Pub_B is not id | ciphertext | X25519 public (%v)", err)
	}
	if !bytes.Equal(esB, wantES) {
		t.Fatalf("B's ES is not ML-KEM secret | X25519 secret")
	}
	esA, err := a.SharedSecret(pubB)
	if err != nil || !bytes.Equal(esA, wantES) {
		t.Fatalf("A's ES differs (%v)", err)
	}
}

// TestHybridRejects: every malformed public value of docs/pq-tep.md's
// validation list is an error with its reason; a changed ciphertext is
// not (ML-KEM's implicit rejection) but gives another ES.
func TestHybridRejects(t *testing.T) {
	a, _ := GenerateKeyPair(TEPX25519MLKEM768, rand.Reader)
	b, _ := GenerateKeyPair(TEPX25519MLKEM768, rand.Reader)
	pubA := a.PublicKey()
	pubB, es, err := b.Respond(pubA)
	if err != nil {
		t.Fatal(err)
	}
	with := func(v []byte, off int, patch []byte) []byte {
		out := append([]byte(nil), v...)
		copy(out[off:], patch)
		return out
	}
	zero32 := make([]byte, 32)
	lowOrder := mustHex(t, "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800")
	badA := map[string]struct {
		v    []byte
		want error
	}{
		"empty":                  {nil, errPeerKeyLength},
		"short":                  {pubA[:len(pubA)-1], errPeerKeyLength},
		"long":                   {append(append([]byte(nil), pubA...), 0), errPeerKeyLength},
		"Pub_B as Pub_A":         {pubB, errPeerKeyLength},
		"other experiment id":    {with(pubA, 0, []byte{0x74, 0x67, 0x77, 0x02}), errHybridID},
		"no id":                  {with(pubA, 0, []byte{0, 0, 0, 0}), errHybridID},
		"ek coefficient >= q":    {with(pubA, 4, bytes.Repeat([]byte{0xff}, 12)), errHybridEncKey},
		"all-zero X25519 result": {with(pubA, 4+1184, zero32), errSharedSecretZero},
		"low-order X25519":       {with(pubA, 4+1184, lowOrder), errSharedSecretZero},
	}
	for name, c := range badA {
		if _, _, err := b.Respond(c.v); !errors.Is(err, c.want) {
			t.Errorf("Respond(%s): %v, want %v", name, err, c.want)
		}
	}
	badB := map[string]struct {
		v    []byte
		want error
	}{
		"empty":                  {nil, errPeerKeyLength},
		"short":                  {pubB[:len(pubB)-1], errPeerKeyLength},
		"Pub_A as Pub_B":         {pubA, errPeerKeyLength},
		"other experiment id":    {with(pubB, 3, []byte{0x02}), errHybridID},
		"all-zero X25519 result": {with(pubB, 4+1088, zero32), errSharedSecretZero},
		"low-order X25519":       {with(pubB, 4+1088, lowOrder), errSharedSecretZero},
	}
	for name, c := range badB {
		if _, err := a.SharedSecret(c.v); !errors.Is(err, c.want) {
			t.Errorf("SharedSecret(%s): %v, want %v", name, err, c.want)
		}
	}
	if !strings.Contains(errHybridID.Error(), "0x20") {
		t.Errorf("the identifier error does not say what differs: %v", errHybridID)
	}
	flipped := with(pubB, 100, []byte{pubB[100] ^ 1})
	if es2, err := a.SharedSecret(flipped); err != nil || bytes.Equal(es2, es) || !bytes.Equal(es2[32:], es[32:]) {
		t.Errorf("a changed ciphertext: err %v, same ES %v", err, bytes.Equal(es2, es))
	}
	// B's Pub_B carries a fresh ciphertext each time, its X25519 key the
	// pooled one.
	pubB2, _, _ := b.Respond(pubA)
	if bytes.Equal(pubB2[4:1092], pubB[4:1092]) || !bytes.Equal(pubB2[1092:], pubB[1092:]) {
		t.Error("Respond reused ML-KEM randomness or changed its X25519 key")
	}
	// A Diffie-Hellman caller that hands B's SharedSecret the Pub_A (an
	// engine not yet using Respond) fails closed.
	if _, err := b.SharedSecret(pubA); err == nil {
		t.Error("SharedSecret accepted a Pub_A")
	}
}

func TestHybridSecretsNotPrinted(t *testing.T) {
	priv := append(fixedBytes("print seed", 64), fixedBytes("print x25519", 32)...)
	kp, err := NewKeyPairFromPrivate(TEPX25519MLKEM768, priv)
	if err != nil {
		t.Fatal(err)
	}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%x"} {
		out := fmt.Sprintf(verb, struct{ K *KeyPair }{kp})
		for _, sec := range [][]byte{priv[:16], priv[64:80]} {
			if strings.Contains(out, fmt.Sprintf("%x", sec)) {
				t.Fatalf("%s shows the private key", verb)
			}
		}
	}
}
