package tcpcrypt

import (
	"bytes"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"testing"
)

// refCPRF is CPRF through the standard library's HKDF, an implementation
// independent of cprf.
func refCPRF(t testing.TB, key []byte, constant byte, n int) []byte {
	out, err := hkdf.Expand(sha256.New, key, string([]byte{constant}), n)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestScheduleMatchesHKDF(t *testing.T) {
	transcript := []byte{0x45, 0x04, 0x23, 0x21, 0x45, 0x04, 0x01, 0x23}
	init1, init2 := []byte("init1 bytes"), []byte("init2 bytes")
	es := bytes.Repeat([]byte{7}, 32)
	nonceA := bytes.Repeat([]byte{9}, NonceLen)

	ikm := bytes.Join([][]byte{transcript, init1, init2, es}, nil)
	prk, err := hkdf.Extract(sha256.New, ikm, nonceA)
	if err != nil {
		t.Fatal(err)
	}
	ss := FullHandshakeSecret(TEPCurve25519, transcript, init1, init2, es, nonceA)
	if !ss.Valid() || ss.Index() != 0 || !bytes.Equal(ss.Bytes(), prk) {
		t.Fatalf("ss[0] = %x, want PRK %x", ss.Bytes(), prk)
	}

	want := prk
	for i := range 4 {
		if ss.Index() != uint32(i) || !bytes.Equal(ss.Bytes(), want) {
			t.Fatalf("ss[%d] = %x (index %d), want %x", i, ss.Bytes(), ss.Index(), want)
		}
		sid := ss.SessionID(TEPP521)
		if len(sid) != 33 || sid[0] != byte(TEPP521) || !bytes.Equal(sid[1:], refCPRF(t, want, 0x02, 32)) {
			t.Errorf("sid[%d] = %x", i, sid)
		}
		for _, aead := range allAEADs {
			if !bytes.Equal(ss.KeyAB(aead), refCPRF(t, want, 0x04, aead.KeyLen())) {
				t.Errorf("k_ab[%d] %v wrong", i, aead)
			}
			if !bytes.Equal(ss.KeyBA(aead), refCPRF(t, want, 0x05, aead.KeyLen())) {
				t.Errorf("k_ba[%d] %v wrong", i, aead)
			}
		}
		if r := ss.ResumeID(); !bytes.Equal(r[:], refCPRF(t, want, 0x06, 18)) {
			t.Errorf("resume[%d] = %x", i, r)
		}
		want = refCPRF(t, want, 0x01, 32)
		ss = ss.Next()
	}
}

func TestScheduleBindsEveryInput(t *testing.T) {
	in := [][]byte{{0x45, 0x02}, []byte("init1"), []byte("init2"), []byte("es"), bytes.Repeat([]byte{1}, NonceLen)}
	base := FullHandshakeSecret(TEPCurve25519, in[0], in[1], in[2], in[3], in[4]).Bytes()
	for i := range in {
		mod := make([][]byte, len(in))
		copy(mod, in)
		mod[i] = append([]byte(nil), in[i]...)
		mod[i][len(mod[i])-1] ^= 0x80
		got := FullHandshakeSecret(TEPCurve25519, mod[0], mod[1], mod[2], mod[3], mod[4]).Bytes()
		if bytes.Equal(got, base) {
			t.Errorf("changing input %d does not change ss[0]", i)
		}
	}
	// The order matters: Init1 and Init2 swapped give another ss[0].
	swapped := FullHandshakeSecret(TEPCurve25519, in[0], in[2], in[1], in[3], in[4]).Bytes()
	if bytes.Equal(swapped, base) {
		t.Error("ss[0] does not depend on the order of Init1 and Init2")
	}
}

func TestSessionSecretCacheForm(t *testing.T) {
	raw := make([]byte, KeyLen)
	rand.Read(raw)
	s := SessionSecretFromBytes(5, raw)
	raw[0] ^= 1 // the secret must have copied its input
	back := SessionSecretFromBytes(s.Index(), s.Bytes())
	if back.Index() != 5 || !bytes.Equal(back.Bytes(), s.Bytes()) || bytes.Equal(s.Bytes(), raw) {
		t.Fatal("cache form does not round-trip")
	}
	b := s.Bytes()
	b[0] ^= 1
	if bytes.Equal(s.Bytes(), b) {
		t.Error("Bytes returns the secret's own storage")
	}
	if !bytes.Equal(s.Next().Bytes(), back.Next().Bytes()) || s.Next().Index() != 6 {
		t.Error("Next differs between equal secrets")
	}

	for _, bad := range []SessionSecret{{}, SessionSecretFromBytes(0, raw[:31]), FullHandshakeSecret(0x20, nil, nil, nil, nil, nil)} {
		if bad.Valid() || bad.Bytes() != nil || bad.KeyAB(AES128GCM) != nil || bad.KeyBA(AES128GCM) != nil ||
			bad.SessionID(TEPCurve25519) != nil || bad.Next().Valid() || bad.ResumeID() != [ResumeIDLen]byte{} {
			t.Errorf("invalid secret %v derives something", bad)
		}
		if _, err := NewSealer(AES128GCM, bad.KeyAB(AES128GCM)); err == nil {
			t.Error("NewSealer accepted the key of an invalid secret")
		}
	}
	if s.KeyAB(0x03) != nil {
		t.Error("KeyAB for an unknown AEAD")
	}
}

// TestFullHandshake runs both ends of a full handshake for every TEP and
// AEAD and exchanges frames in both directions.
func TestFullHandshake(t *testing.T) {
	for _, tep := range allTEPs {
		for _, aead := range allAEADs {
			a, _ := GenerateKeyPair(tep, rand.Reader)
			b, _ := GenerateKeyPair(tep, rand.Reader)
			transcript := []byte{0x45, 0x04, byte(tep), 0x21, 0x45, 0x04, 0x01, byte(tep)}

			i1 := &Init1{Ciphers: []AEADID{aead, AES128GCM}, PublicKey: a.PublicKey(), Ignored: []byte("A ext")}
			rand.Read(i1.NonceA[:])
			init1 := i1.Append(nil)

			// B
			got1, err := ParseInit1(tep, init1)
			if err != nil {
				t.Fatal(err)
			}
			cipher, ok := ChooseCipher(got1.Ciphers, []AEADID{aead})
			if !ok || cipher != aead {
				t.Fatalf("B chose %v, %v", cipher, ok)
			}
			i2 := &Init2{Cipher: cipher, PublicKey: b.PublicKey(), Ignored: []byte("B")}
			rand.Read(i2.NonceB[:])
			init2 := i2.Append(nil)
			esB, err := b.SharedSecret(got1.PublicKey)
			if err != nil {
				t.Fatal(err)
			}
			ssB := FullHandshakeSecret(tep, transcript, init1, init2, esB, got1.NonceA[:])

			// A
			got2, err := ParseInit2(tep, init2)
			if err != nil {
				t.Fatal(err)
			}
			esA, err := a.SharedSecret(got2.PublicKey)
			if err != nil {
				t.Fatal(err)
			}
			ssA := FullHandshakeSecret(tep, transcript, init1, init2, esA, i1.NonceA[:])

			if !bytes.Equal(ssA.Bytes(), ssB.Bytes()) || !bytes.Equal(ssA.SessionID(tep), ssB.SessionID(tep)) {
				t.Fatalf("%v/%v: ends disagree on ss[0] or session ID", tep, aead)
			}
			if bytes.Equal(ssA.KeyAB(aead), ssA.KeyBA(aead)) {
				t.Fatalf("%v/%v: k_ab == k_ba", tep, aead)
			}

			// A -> B starts after Init1, B -> A after Init2.
			exchange(t, ssA.KeyAB(aead), aead, FirstFrameOffset(len(init1)), "from A")
			exchange(t, ssB.KeyBA(aead), aead, FirstFrameOffset(len(init2)), "from B")

			// A man in the middle who changed the transcript gets other keys.
			tampered := append([]byte(nil), transcript...)
			tampered[2] ^= 1
			ssM := FullHandshakeSecret(tep, tampered, init1, init2, esB, got1.NonceA[:])
			if bytes.Equal(ssM.KeyAB(aead), ssA.KeyAB(aead)) {
				t.Fatalf("%v/%v: transcript not bound into keys", tep, aead)
			}
		}
	}
}

func exchange(t *testing.T, key []byte, aead AEADID, start uint64, msg string) {
	t.Helper()
	s := mustSealer(t, aead, key)
	o := mustOpener(t, aead, key)
	frame := s.SealFrame(nil, start, FlagFIN, 0, []byte(msg))
	flags, _, data, err := o.OpenFrame(frame, start)
	if err != nil || string(data) != msg || flags != FlagFIN {
		t.Fatalf("%v: frame %q: %q %v %v", aead, msg, data, flags, err)
	}
}
