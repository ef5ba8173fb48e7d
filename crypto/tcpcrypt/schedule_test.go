package tcpcrypt

import (
	"bytes"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"testing"
)

// refCPRF is CPRF(key, constant | info, n) through the standard library's
// HKDF, an implementation independent of cprf.
func refCPRF(t testing.TB, key []byte, constant byte, n int, info ...byte) []byte {
	out, err := hkdf.Expand(sha256.New, key, string(append([]byte{constant}, info...)), n)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestCPRFMatchesHKDF: cprf's stack HMAC and its crypto/hmac fallback give
// HKDF-Expand's output for every output, key and info length the schedule
// uses and beyond (1-3 blocks, info across cprfMaxInfo, a key longer than a
// SHA-256 block), and the stack path does not allocate.
func TestCPRFMatchesHKDF(t *testing.T) {
	for _, keyLen := range []int{KeyLen, 64, 65, 100} {
		key := make([]byte, keyLen)
		rand.Read(key)
		for _, infoLen := range []int{0, 1, 16, 64, cprfMaxInfo, cprfMaxInfo + 1, 300} {
			info := make([]byte, infoLen)
			rand.Read(info)
			for _, n := range []int{1, 18, 32, 33, 44, 64, 65, 96} {
				got := make([]byte, n)
				cprf(got, key, 0x42, info)
				if want := refCPRF(t, key, 0x42, n, info...); !bytes.Equal(got, want) {
					t.Fatalf("key %d, info %d, %d bytes: cprf %x, HKDF-Expand %x", keyLen, infoLen, n, got, want)
				}
			}
		}
	}
	key, info, dst := make([]byte, KeyLen), make([]byte, 16), make([]byte, 44)
	if a := testing.AllocsPerRun(100, func() { cprf(dst, key, constKeyA, info) }); a != 0 {
		t.Errorf("cprf allocates %v times per call", a)
	}
}

// TestExtractPRKMatchesHKDF: extractPRK is HKDF-Extract for salts of every
// length around a SHA-256 block (N_A is 32 bytes; a longer salt takes
// crypto/hmac) and Init messages up to the hybrid TEP's.
func TestExtractPRKMatchesHKDF(t *testing.T) {
	for _, saltLen := range []int{0, NonceLen, 64, 65, 100} {
		for _, n := range []int{0, 100, 1300} {
			salt, init1, init2 := make([]byte, saltLen), make([]byte, n), make([]byte, n/2+3)
			rand.Read(salt)
			rand.Read(init1)
			rand.Read(init2)
			transcript, es := []byte{0x45, 0x04, 0x20}, bytes.Repeat([]byte{5}, 64)
			want, err := hkdf.Extract(sha256.New, bytes.Join([][]byte{transcript, init1, init2, es}, nil), salt)
			if err != nil {
				t.Fatal(err)
			}
			if got := extractPRK(salt, transcript, init1, init2, es); !bytes.Equal(got[:], want) {
				t.Fatalf("salt %d, Init %d: %x, HKDF-Extract %x", saltLen, n, got, want)
			}
		}
	}
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
		sn := []byte("nonce_a|nonce_b")[:i*3] // empty for i = 0, like a fresh session
		sid := ss.SessionID(0xa2, sn)
		if len(sid) != 33 || sid[0] != 0xa2 || !bytes.Equal(sid[1:], refCPRF(t, want, 0x02, 32, sn...)) {
			t.Errorf("sid[%d] = %x", i, sid)
		}
		if mk := ss.MasterKey(sn); !bytes.Equal(mk, refCPRF(t, want, 0x03, 32, sn...)) {
			t.Errorf("mk[0] of ss[%d] = %x", i, mk)
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

	for _, bad := range []SessionSecret{{}, SessionSecretFromBytes(0, raw[:31]), FullHandshakeSecret(0x25, nil, nil, nil, nil, nil)} {
		if bad.Valid() || bad.Bytes() != nil || bad.MasterKey(nil) != nil ||
			bad.SessionID(0x23, nil) != nil || bad.Next().Valid() || bad.ResumeID() != [ResumeIDLen]byte{} {
			t.Errorf("invalid secret %v derives something", bad)
		}
		if _, _, err := NewSession(bad, AES128GCM, nil, true); err == nil {
			t.Error("NewSession accepted an invalid secret")
		}
	}
	if _, _, err := NewSession(s, 0x03, nil, true); err == nil {
		t.Error("NewSession accepted an unknown AEAD")
	}
}

// TestNewSessionKeys: an end seals with k_ab when sealAB, and the other end
// (sealAB false) opens it; sn changes every key (RFC 8548 §3.3, §3.5).
func TestNewSessionKeys(t *testing.T) {
	ss := SessionSecretFromBytes(1, bytes.Repeat([]byte{5}, KeyLen))
	for _, aead := range allAEADs {
		sn := []byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}
		sA, oA, err := NewSession(ss, aead, sn, true)
		if err != nil {
			t.Fatal(err)
		}
		sB, oB, err := NewSession(ss, aead, sn, false)
		if err != nil {
			t.Fatal(err)
		}
		tkAB := refCPRF(t, refCPRF(t, ss.Bytes(), 0x03, 32, sn...), 0x04, aead.KeyLen()+12)
		fAB := sA.SealFrame(nil, 0, 0, 0, []byte("a to b"))
		if _, err := refOpen(t, aead, tkAB, fAB, 0); err != nil {
			t.Fatalf("%v: the original A does not seal with k_ab", aead)
		}
		if _, _, d, err := oB.OpenFrame(fAB, 0); err != nil || string(d) != "a to b" {
			t.Fatalf("%v: B cannot open A's frame: %v", aead, err)
		}
		fBA := sB.SealFrame(nil, 0, 0, 0, []byte("b to a"))
		if _, _, d, err := oA.OpenFrame(fBA, 0); err != nil || string(d) != "b to a" {
			t.Fatalf("%v: A cannot open B's frame: %v", aead, err)
		}
		// Another session nonce: other keys.
		_, o2, _ := NewSession(ss, aead, sn[:8], false)
		if _, _, _, err := o2.OpenFrame(sA.SealFrame(nil, 100, 0, 0, nil), 100); err == nil {
			t.Fatalf("%v: keys do not depend on sn", aead)
		}
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

			i1 := &Init1{Ciphers: []AEADID{aead, AES128GCM}, PublicKey: a.PublicKey()}
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
			pubB, esB, err := b.Respond(got1.PublicKey)
			if err != nil {
				t.Fatal(err)
			}
			i2 := &Init2{Cipher: cipher, PublicKey: pubB}
			rand.Read(i2.NonceB[:])
			init2 := i2.Append(nil)
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

			if !bytes.Equal(ssA.Bytes(), ssB.Bytes()) || !bytes.Equal(ssA.SessionID(byte(tep), nil), ssB.SessionID(byte(tep), nil)) {
				t.Fatalf("%v/%v: ends disagree on ss[0] or session ID", tep, aead)
			}
			sA, oA, err := NewSession(ssA, aead, nil, true)
			if err != nil {
				t.Fatal(err)
			}
			sB, oB, err := NewSession(ssB, aead, nil, false)
			if err != nil {
				t.Fatal(err)
			}
			// A -> B starts after Init1, B -> A after Init2.
			exchange(t, sA, oB, FirstFrameOffset(len(init1)), "from A")
			exchange(t, sB, oA, FirstFrameOffset(len(init2)), "from B")

			// A man in the middle who changed the transcript gets other keys.
			tampered := append([]byte(nil), transcript...)
			tampered[2] ^= 1
			ssM := FullHandshakeSecret(tep, tampered, init1, init2, esB, got1.NonceA[:])
			_, oM, _ := NewSession(ssM, aead, nil, false)
			if _, _, _, err := oM.OpenFrame(sA.SealFrame(nil, 9, 0, 0, nil), 9); err == nil {
				t.Fatalf("%v/%v: transcript not bound into keys", tep, aead)
			}
		}
	}
}

func exchange(t *testing.T, s *Sealer, o *Opener, start uint64, msg string) {
	t.Helper()
	aead := s.AEAD()
	frame := s.SealFrame(nil, start, FlagFIN, 0, []byte(msg))
	flags, _, data, err := o.OpenFrame(frame, start)
	if err != nil || string(data) != msg || flags != FlagFIN {
		t.Fatalf("%v: frame %q: %q %v %v", aead, msg, data, flags, err)
	}
}
