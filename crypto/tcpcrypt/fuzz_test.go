package tcpcrypt

import (
	"bytes"
	"testing"
)

// fuzzTEP maps any byte to one of the TEPs.
func fuzzTEP(b byte) TEP { return allTEPs[int(b)%len(allTEPs)] }

func fixedKeyPair(t testing.TB, tep TEP) *KeyPair {
	n := map[TEP]int{TEPP256: 32, TEPP521: 66, TEPCurve25519: 32, TEPCurve448: 56, TEPX25519MLKEM768: hybridPrivLen}[tep]
	priv := make([]byte, n)
	priv[n-1] = 7 // small, valid scalar on every curve (and any ML-KEM seed is valid)
	kp, err := NewKeyPairFromPrivate(tep, priv)
	if err != nil {
		t.Fatal(err)
	}
	return kp
}

// fuzzKeys holds one fixed key pair per TEP: the fuzz targets hand every
// public value they parse to its key operations, which must reject or
// accept it without panicking.
func fuzzKeys(t testing.TB) map[TEP]*KeyPair {
	keys := map[TEP]*KeyPair{}
	for _, tep := range allTEPs {
		keys[tep] = fixedKeyPair(t, tep)
	}
	return keys
}

func FuzzParseInit1(f *testing.F) {
	keys := fuzzKeys(f)
	for i, tep := range allTEPs {
		m := &Init1{Ciphers: []AEADID{AES128GCM, ChaCha20Poly1305}, PublicKey: fixedKeyPair(f, tep).PublicKey(), Ignored: []byte("x")}
		msg := m.Append(nil)
		f.Add(byte(i), msg)
		f.Add(byte(i), msg[:len(msg)-1])
		f.Add(byte(i), msg[:8])
	}
	f.Add(byte(0), []byte{})
	f.Fuzz(func(t *testing.T, tepByte byte, msg []byte) {
		tep := fuzzTEP(tepByte)
		m, err := ParseInit1(tep, msg)
		if err != nil {
			if m != nil {
				t.Fatal("error with a message")
			}
			return
		}
		if len(m.Ciphers) == 0 || len(m.PublicKey) != tep.PublicKeyLen() || len(msg) > MaxInitLen {
			t.Fatalf("accepted an invalid message: %d ciphers, %d-byte key, %d bytes", len(m.Ciphers), len(m.PublicKey), len(msg))
		}
		if n, need, err := InitMessageLen(Init1Magic, tep, msg); n != len(msg) || need || err != nil {
			t.Fatalf("InitMessageLen disagrees: %d %v %v", n, need, err)
		}
		// Append writes no ignored bytes (RFC 8548 §4.1); with them put back
		// and message_len fixed, the message is the one parsed.
		if !bytes.Equal(withIgnored(m.Append(nil), m.Ignored), msg) {
			t.Fatal("re-encoding differs from the parsed message")
		}
		// B's side of the key agreement on the parsed Pub_A.
		pubB, es, err := keys[tep].Respond(m.PublicKey)
		if err == nil && (len(pubB) != tep.ResponseKeyLen() || len(es) == 0) {
			t.Fatalf("Respond: %d-byte Pub_B, %d-byte ES", len(pubB), len(es))
		}
	})
}

func FuzzParseInit2(f *testing.F) {
	keys := fuzzKeys(f)
	for i, tep := range allTEPs {
		pubB, _, err := fixedKeyPair(f, tep).Respond(keys[tep].PublicKey())
		if err != nil {
			f.Fatal(err)
		}
		m := &Init2{Cipher: AES256GCM, PublicKey: pubB}
		msg := m.Append(nil)
		f.Add(byte(i), msg)
		f.Add(byte(i), append(msg, 1, 2, 3))
		f.Add(byte(i), withIgnored(msg, []byte{1, 2, 3}))
	}
	f.Fuzz(func(t *testing.T, tepByte byte, msg []byte) {
		tep := fuzzTEP(tepByte)
		m, err := ParseInit2(tep, msg)
		if err != nil {
			return
		}
		if !m.Cipher.Valid() || len(m.PublicKey) != tep.ResponseKeyLen() || len(msg) > MaxInitLen {
			t.Fatal("accepted an invalid message")
		}
		if !bytes.Equal(withIgnored(m.Append(nil), m.Ignored), msg) {
			t.Fatal("re-encoding differs from the parsed message")
		}
		// A's side of the key agreement on the parsed Pub_B.
		if es, err := keys[tep].SharedSecret(m.PublicKey); err == nil && len(es) == 0 {
			t.Fatal("SharedSecret: empty ES")
		}
	})
}

// FuzzFrameReader feeds nValid genuine frames followed by arbitrary bytes,
// cut at arbitrary points, into a reader with an arbitrary bound. Whatever
// happens, the frames it returns are a prefix of the genuine ones (nothing
// authenticates from the fuzzer's bytes), it never buffers beyond its bound
// and it never panics.
func FuzzFrameReader(f *testing.F) {
	f.Add(uint8(0), []byte{}, []byte{}, uint16(0))
	f.Add(uint8(3), []byte{}, []byte{1, 7, 200}, uint16(0))
	f.Add(uint8(2), []byte{0, 0, 17}, []byte{0}, uint16(300))
	f.Add(uint8(1), []byte{0, 0xff, 0xff, 1, 2, 3}, []byte{2}, uint16(40))
	f.Add(uint8(5), bytes.Repeat([]byte{0x01, 0x00, 0x20}, 20), []byte{5, 3}, uint16(1000))
	f.Fuzz(func(t *testing.T, nValid uint8, garbage, cuts []byte, maxBuf uint16) {
		aead := allAEADs[int(nValid)%len(allAEADs)]
		key := testKey(aead, "fuzz")
		s := mustSealer(t, aead, key)
		const start = 60
		n := int(nValid % 8)
		var stream []byte
		var want [][]byte
		off := uint64(start)
		for i := range n {
			data := bytes.Repeat([]byte{byte(i)}, 10*i)
			if i == 3 {
				s.Rekey()
			}
			before := len(stream)
			stream = s.SealFrame(stream, off, 0, 0, data)
			off += uint64(len(stream) - before)
			want = append(want, data)
		}
		stream = append(stream, garbage...)

		r := NewFrameReader(mustOpener(t, aead, key), start, int(maxBuf))
		bound := int(maxBuf)
		if bound <= 0 {
			bound = MaxFrameLen
		}
		got := 0
		for pos, i := 0, 0; pos < len(stream); i++ {
			chunk := len(stream) - pos
			if len(cuts) > 0 {
				chunk = min(chunk, 1+int(cuts[i%len(cuts)]))
			}
			werr := r.Write(stream[pos : pos+chunk])
			pos += chunk
			for {
				fr, ok, err := r.Next()
				if err != nil || !ok {
					break
				}
				if got >= len(want) || !bytes.Equal(fr.Data, want[got]) {
					t.Fatalf("frame %d authenticated from bytes nobody sealed", got)
				}
				got++
			}
			if r.Buffered() > bound {
				t.Fatalf("buffered %d beyond bound %d", r.Buffered(), bound)
			}
			if werr != nil {
				break
			}
		}
		if len(garbage) == 0 && bound >= len(stream) && got != n {
			t.Fatalf("read %d of %d genuine frames", got, n)
		}
	})
}
