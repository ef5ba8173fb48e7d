package tcpcrypt

import (
	"crypto/rand"
	"fmt"
	"testing"
)

var benchSizes = []int{64, 1400, 16 << 10}

func BenchmarkSealFrame(b *testing.B) {
	for _, aead := range allAEADs {
		for _, n := range benchSizes {
			b.Run(fmt.Sprintf("%v/%d", aead, n), func(b *testing.B) {
				s := mustSealer(b, aead, testKey(aead, "bench"))
				data := make([]byte, n)
				buf := make([]byte, 0, n+FrameOverhead)
				b.SetBytes(int64(n))
				b.ReportAllocs()
				off := uint64(0)
				for b.Loop() {
					buf = s.SealFrame(buf[:0], off, 0, 0, data)
					off += uint64(len(buf))
				}
			})
		}
	}
}

// BenchmarkOpenFrame opens in place, so each iteration first copies the
// sealed frame into the work buffer; the copy is included (a memmove is a
// few percent of the AEAD's cost).
func BenchmarkOpenFrame(b *testing.B) {
	for _, aead := range allAEADs {
		for _, n := range benchSizes {
			b.Run(fmt.Sprintf("%v/%d", aead, n), func(b *testing.B) {
				key := testKey(aead, "bench")
				frame := mustSealer(b, aead, key).SealFrame(nil, 1, 0, 0, make([]byte, n))
				o := mustOpener(b, aead, key)
				work := make([]byte, len(frame))
				b.SetBytes(int64(n))
				b.ReportAllocs()
				for b.Loop() {
					copy(work, frame)
					if _, _, _, err := o.OpenFrame(work, 1); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkFullHandshake is both ends' work for one full handshake with
// key generation excluded (the KeyPool does it ahead of need; see
// BenchmarkGenerateKeyPair): A encodes Init1, B parses it, chooses the
// cipher, encodes Init2, computes ES and ss[0]; A parses Init2, computes ES
// and ss[0]; both derive k_ab, k_ba and the session ID and build their
// Sealer and Opener.
//
// The same two pairs serve every iteration, as two gateways' pooled pairs
// serve their connections for tcpcrypt.keypair_lifetime: after the first,
// ES comes from the pairs' caches (keys.go, dhCache) and the hybrid TEP's
// encapsulation key is parsed once. "/new-peer-key" gives A a pair B has
// not met for each iteration (64 pairs in turn, more than the caches
// hold): a peer that generates a pair per connection.
func BenchmarkFullHandshake(b *testing.B) {
	for _, tep := range allTEPs {
		b.Run(tep.String(), func(b *testing.B) { benchFullHandshake(b, tep, 1) })
	}
	for _, tep := range []TEP{TEPCurve25519, TEPX25519MLKEM768} {
		b.Run(tep.String()+"/new-peer-key", func(b *testing.B) { benchFullHandshake(b, tep, 64) })
	}
}

func benchFullHandshake(b *testing.B, tep TEP, pairsA int) {
	var kas []*KeyPair
	for range pairsA {
		k, _ := GenerateKeyPair(tep, rand.Reader)
		kas = append(kas, k)
	}
	kb, _ := GenerateKeyPair(tep, rand.Reader)
	transcript := []byte{0x45, 0x04, byte(tep), 0x21, 0x45, 0x04, 0x01, byte(tep)}
	aead := AES128GCM
	var nonceA, nonceB [NonceLen]byte
	rand.Read(nonceA[:])
	rand.Read(nonceB[:])
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		ka := kas[i%len(kas)]
		i++
		// A
		init1 := (&Init1{Ciphers: []AEADID{aead}, NonceA: nonceA, PublicKey: ka.PublicKey()}).Append(nil)
		// B
		m1, err := ParseInit1(tep, init1)
		if err != nil {
			b.Fatal(err)
		}
		c, _ := ChooseCipher(m1.Ciphers, []AEADID{aead})
		pubB, esB, err := kb.Respond(m1.PublicKey)
		if err != nil {
			b.Fatal(err)
		}
		init2 := (&Init2{Cipher: c, NonceB: nonceB, PublicKey: pubB}).Append(nil)
		ssB := FullHandshakeSecret(tep, transcript, init1, init2, esB, m1.NonceA[:])
		benchEnd(b, tep, ssB, c)
		// A
		m2, err := ParseInit2(tep, init2)
		if err != nil {
			b.Fatal(err)
		}
		esA, err := ka.SharedSecret(m2.PublicKey)
		if err != nil {
			b.Fatal(err)
		}
		ssA := FullHandshakeSecret(tep, transcript, init1, init2, esA, nonceA[:])
		benchEnd(b, tep, ssA, m2.Cipher)
	}
}

// benchEnd is one end's work after ss is known.
func benchEnd(b *testing.B, tep TEP, ss SessionSecret, aead AEADID) {
	_ = ss.SessionID(byte(tep), nil)
	if _, _, err := NewSession(ss, aead, nil, true); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkResumption is both ends' work for a resumed session (RFC 8548
// §3.5): from the cached ss[i], each end computes resume[i], the session ID,
// both keys with their Sealer and Opener, and ss[i+1] for the cache.
func BenchmarkResumption(b *testing.B) {
	cached := make([]byte, KeyLen)
	rand.Read(cached)
	aead := AES128GCM
	b.ReportAllocs()
	for b.Loop() {
		for range 2 { // A, then B
			ss := SessionSecretFromBytes(1, cached)
			_ = ss.ResumeID()
			benchEnd(b, TEPCurve25519, ss, aead)
			_ = ss.Next().Bytes()
		}
	}
}

func BenchmarkGenerateKeyPair(b *testing.B) {
	for _, tep := range allTEPs {
		b.Run(tep.String(), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := GenerateKeyPair(tep, rand.Reader); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
