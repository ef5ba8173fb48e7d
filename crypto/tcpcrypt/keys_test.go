package tcpcrypt

import (
	"bytes"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"strings"
	"testing"
)

func TestSharedSecretAgrees(t *testing.T) {
	wantES := map[TEP]int{TEPP256: 32, TEPP521: 66, TEPCurve25519: 32, TEPCurve448: 56, TEPX25519MLKEM768: 64}
	for _, tep := range allTEPs {
		a, err := GenerateKeyPair(tep, rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		b, err := GenerateKeyPair(tep, rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		if a.TEP() != tep || len(a.PublicKey()) != tep.PublicKeyLen() {
			t.Fatalf("%v: TEP %v, public key %d bytes", tep, a.TEP(), len(a.PublicKey()))
		}
		if bytes.Equal(a.PublicKey(), b.PublicKey()) {
			t.Fatalf("%v: two generated pairs share a public key", tep)
		}
		pubB, esB, err := b.Respond(a.PublicKey())
		if err != nil {
			t.Fatal(err)
		}
		esA, err := a.SharedSecret(pubB)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(esA, esB) || len(esA) != wantES[tep] {
			t.Errorf("%v: ES differ or wrong length (%d, want %d)", tep, len(esA), wantES[tep])
		}
		// A third party gets a different secret.
		c, _ := GenerateKeyPair(tep, rand.Reader)
		esC, err := c.SharedSecret(pubB)
		if err != nil || bytes.Equal(esC, esA) {
			t.Errorf("%v: third party shares ES (err %v)", tep, err)
		}
	}
}

// TestRFC7748 checks X25519 and X448 against the Diffie-Hellman examples of
// RFC 7748 §6.1 and §6.2, so that the wire forms follow the RFC's encoding.
func TestRFC7748(t *testing.T) {
	cases := []struct {
		tep                          TEP
		privA, pubA, privB, pubB, es string
	}{
		{TEPCurve25519,
			"77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a",
			"8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a",
			"5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb",
			"de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f",
			"4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742"},
		{TEPCurve448,
			"9a8f4925d1519f5775cf46b04b5800d4ee9ee8bae8bc5565d498c28dd9c9baf574a9419744897391006382a6f127ab1d9ac2d8c0a598726b",
			"9b08f7cc31b7e3e67d22d5aea121074a273bd2b83de09c63faa73d2c22c5d9bbc836647241d953d40c5b12da88120d53177f80e532c41fa0",
			"1c306a7ac2a0e2e0990b294470cba339e6453772b075811d8fad0d1d6927c120bb5ee8972b0d3e21374c9c921b09d1b0366f10b65173992d",
			"3eb7a829b0cd20f5bcfc0b599b6feccf6da4627107bdb0d4f345b43027d8b972fc3e34fb4232a13ca706dcb57aec3dae07bdc1c67bf33609",
			"07fff4181ac6cc95ec1c16a94a0f74d12da232ce40a77552281d282bb60c0b56fd2464c335543936521c24403085d59a449a5037514a879d"},
	}
	for _, c := range cases {
		a, err := NewKeyPairFromPrivate(c.tep, mustHex(t, c.privA))
		if err != nil {
			t.Fatal(err)
		}
		b, err := NewKeyPairFromPrivate(c.tep, mustHex(t, c.privB))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(a.PublicKey(), mustHex(t, c.pubA)) || !bytes.Equal(b.PublicKey(), mustHex(t, c.pubB)) {
			t.Errorf("%v: public keys differ from RFC 7748", c.tep)
		}
		es, err := a.SharedSecret(b.PublicKey())
		if err != nil || !bytes.Equal(es, mustHex(t, c.es)) {
			t.Errorf("%v: ES %x, %v", c.tep, es, err)
		}
	}
}

func TestInvalidPeerKeys(t *testing.T) {
	for _, tep := range allTEPs {
		kp, err := GenerateKeyPair(tep, rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		good := testPubB(t, tep) // a valid answer to some Pub_A
		bad := map[string][]byte{
			"empty":     nil,
			"short":     good[:len(good)-1],
			"long":      append(append([]byte(nil), good...), 0),
			"all zeros": make([]byte, len(good)),
		}
		switch tep {
		case TEPP256, TEPP521:
			bad["off curve"] = offCurveKey(t, tep, good)
			wrongPrefix := append([]byte(nil), good...)
			wrongPrefix[2] = 0x05
			bad["prefix 05"] = wrongPrefix
			uncompressed := append([]byte(nil), good...)
			uncompressed[2] = 0x04
			bad["prefix 04"] = uncompressed
			tooBig := bytes.Repeat([]byte{0xff}, len(good)) // x >= p
			copy(tooBig, good[:3])
			bad["x >= p"] = tooBig
			for _, l := range []int{0, 1, len(good) - 3, len(good) + 1, 0xffff} {
				wrongLen := append([]byte(nil), good...)
				binary.BigEndian.PutUint16(wrongLen, uint16(l))
				bad[fmt.Sprintf("pubkey_len %d", l)] = wrongLen
			}
		case TEPCurve25519:
			// Points of small order (u = 1, p-1, p, p+1, and the order-8
			// points) whose X25519 output is all zero.
			for _, h := range []string{
				"0100000000000000000000000000000000000000000000000000000000000000",
				"e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800",
				"5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157",
				"ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
				"edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
				"eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
			} {
				bad["low order "+h[:8]] = mustHex(t, h)
			}
		case TEPCurve448:
			for _, h := range []string{
				"0100000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
				"fefffffffffffffffffffffffffffffffffffffffffffffffffffffffeffffffffffffffffffffffffffffffffffffffffffffffffffffff",
				"fffffffffffffffffffffffffffffffffffffffffffffffffffffffffeffffffffffffffffffffffffffffffffffffffffffffffffffffff",
				"00000000000000000000000000000000000000000000000000000000ffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
			} {
				bad["low order "+h[:8]] = mustHex(t, h)
			}
		}
		for name, pk := range bad {
			if es, err := kp.SharedSecret(pk); err == nil {
				t.Errorf("%v: %s peer key accepted, ES %x", tep, name, es)
			}
		}
	}
}

// offCurveKey returns good with its x-coordinate changed to one for which
// no point exists (x^3 - 3x + b is not a square mod p).
func offCurveKey(t *testing.T, tep TEP, good []byte) []byte {
	curve := elliptic.P256()
	if tep == TEPP521 {
		curve = elliptic.P521()
	}
	k := append([]byte(nil), good...)
	for i := range 256 {
		k[len(k)-1] = byte(i)
		if x, _ := elliptic.UnmarshalCompressed(curve, k[2:]); x == nil {
			return k
		}
	}
	t.Fatal("no off-curve x found")
	return nil
}

// TestNISTWireForm: a P-256/P-521 key is pubkey_len = the whole length (35
// or 69) followed by the compressed point (RFC 8548 §5); a peer that
// writes pubkey_len as the point's length alone (33 or 67) is understood
// too, with the same ES.
func TestNISTWireForm(t *testing.T) {
	for _, tep := range []TEP{TEPP256, TEPP521} {
		a, _ := GenerateKeyPair(tep, rand.Reader)
		b, _ := GenerateKeyPair(tep, rand.Reader)
		pub := b.PublicKey()
		if int(binary.BigEndian.Uint16(pub)) != len(pub) || len(pub) != tep.PublicKeyLen() || pub[2] != 2 && pub[2] != 3 {
			t.Fatalf("%v: wire form %x", tep, pub[:3])
		}
		es1, err := a.SharedSecret(pub)
		if err != nil {
			t.Fatal(err)
		}
		alt := append([]byte(nil), pub...)
		binary.BigEndian.PutUint16(alt, uint16(len(pub)-2))
		es2, err := a.SharedSecret(alt)
		if err != nil || !bytes.Equal(es1, es2) {
			t.Fatalf("%v: pubkey_len = point length: %v", tep, err)
		}
		es3, err := b.SharedSecret(a.PublicKey())
		if err != nil || !bytes.Equal(es1, es3) {
			t.Fatalf("%v: ends disagree", tep)
		}
	}
}

func TestNewKeyPairFromPrivateRejects(t *testing.T) {
	cases := map[TEP][][]byte{
		TEPP256:           {nil, make([]byte, 31), make([]byte, 32), bytes.Repeat([]byte{0xff}, 32)}, // zero and >= order
		TEPP521:           {make([]byte, 65), make([]byte, 66), bytes.Repeat([]byte{0xff}, 66)},
		TEPCurve25519:     {make([]byte, 31), make([]byte, 33)},
		TEPCurve448:       {make([]byte, 55), make([]byte, 57)},
		TEPX25519MLKEM768: {make([]byte, 95), make([]byte, 97), make([]byte, 64), make([]byte, 32)},
	}
	for tep, privs := range cases {
		for _, p := range privs {
			if _, err := NewKeyPairFromPrivate(tep, p); err == nil {
				t.Errorf("%v: private key %x accepted", tep, p)
			}
		}
	}
	if _, err := NewKeyPairFromPrivate(0x25, make([]byte, 32)); err == nil {
		t.Error("invalid TEP accepted")
	}
	if _, err := GenerateKeyPair(0x25, rand.Reader); err == nil {
		t.Error("GenerateKeyPair accepted an invalid TEP")
	}
}

// TestSecretsNotPrinted formats key pairs and secrets every way a log line
// might, alone and nested in a caller's struct, and looks for the secret.
func TestSecretsNotPrinted(t *testing.T) {
	priv25519 := mustHex(t, "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")
	priv448 := mustHex(t, "9a8f4925d1519f5775cf46b04b5800d4ee9ee8bae8bc5565d498c28dd9c9baf574a9419744897391006382a6f127ab1d9ac2d8c0a598726b")
	kp25519, err := NewKeyPairFromPrivate(TEPCurve25519, priv25519)
	if err != nil {
		t.Fatal(err)
	}
	kp448, err := NewKeyPairFromPrivate(TEPCurve448, priv448)
	if err != nil {
		t.Fatal(err)
	}
	ssBytes := bytes.Repeat([]byte{0xa7}, KeyLen)
	ss := SessionSecretFromBytes(3, ssBytes)
	secrets := [][]byte{priv25519, priv448, ssBytes}
	type holder struct {
		kp     *KeyPair
		ss     SessionSecret
		sealer *Sealer
		opener *Opener
		reader *FrameReader
	}
	var values []any
	for _, aead := range allAEADs {
		key := testKey(aead, "print")
		secrets = append(secrets, key)
		s, o := mustSealer(t, aead, key), mustOpener(t, aead, key)
		for _, kp := range []*KeyPair{kp25519, kp448} {
			h := holder{kp, ss, s, o, NewFrameReader(o, 0, 0)}
			values = append(values, kp, ss, s, o, h, &h, []holder{h}, map[string]holder{"h": h})
		}
	}
	for _, v := range values {
		for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%t"} {
			out := fmt.Sprintf(verb, v)
			for _, sec := range secrets {
				for _, enc := range []string{fmt.Sprintf("%x", sec[:8]), fmt.Sprintf("%X", sec[:8]), strings.Trim(fmt.Sprint(sec[:8]), "[]")} {
					if strings.Contains(out, enc) {
						t.Fatalf("%s of %T shows a secret: %s", verb, v, out)
					}
				}
			}
		}
	}
}
