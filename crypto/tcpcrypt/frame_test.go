package tcpcrypt

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"encoding/binary"
	"math/rand/v2"
	"testing"

	"golang.org/x/crypto/chacha20poly1305"
)

// refAEAD builds the AEAD without the package's code.
func refAEAD(t testing.TB, aead AEADID, key []byte) cipher.AEAD {
	var c cipher.AEAD
	var err error
	if aead == ChaCha20Poly1305 {
		c, err = chacha20poly1305.New(key)
	} else {
		var b cipher.Block
		if b, err = aes.NewCipher(key); err == nil {
			c, err = cipher.NewGCM(b)
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// refOpen opens a frame following the digest's layout literally.
func refOpen(t testing.TB, aead AEADID, key, frame []byte, offset uint64) (plaintext []byte, err error) {
	nonce := binary.BigEndian.AppendUint32(nil, 0x44415441)
	nonce = binary.BigEndian.AppendUint64(nonce, offset)
	return refAEAD(t, aead, key).Open(nil, nonce, frame[3:], frame[:3])
}

func TestFrameRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, aead := range allAEADs {
		key := testKey(aead, "roundtrip")
		s := mustSealer(t, aead, key)
		o := mustOpener(t, aead, key)
		for _, n := range []int{0, 1, 15, 16, 17, 1400, 9000, MaxFrameData} {
			for _, flags := range []byte{0, FlagFIN, FlagURG, FlagFIN | FlagURG} {
				if flags&FlagURG != 0 && n > MaxFrameData {
					continue
				}
				data := make([]byte, n)
				for i := range data {
					data[i] = byte(rng.Uint32())
				}
				offset := rng.Uint64()
				urgent := uint16(rng.Uint32())
				frame := s.SealFrame(nil, offset, flags, urgent, data)
				wantLen := FrameOverhead + n
				if flags&FlagURG != 0 {
					wantLen += 2
				}
				if len(frame) != wantLen || frame[0] != 0 || int(binary.BigEndian.Uint16(frame[1:3])) != wantLen-3 {
					t.Fatalf("%v: frame of %d bytes: len %d header %x", aead, n, len(frame), frame[:3])
				}
				if fl, need, err := FrameLen(frame[:3]); fl != len(frame) || need || err != nil {
					t.Fatalf("FrameLen = %d %v %v", fl, need, err)
				}
				// The digest's layout, checked independently.
				pt, err := refOpen(t, aead, key, frame, offset)
				if err != nil || pt[0] != flags {
					t.Fatalf("%v: reference open: %v, flags %x", aead, err, pt)
				}
				if flags&FlagURG != 0 && binary.BigEndian.Uint16(pt[1:3]) != urgent {
					t.Fatalf("%v: urgent pointer not where the digest puts it", aead)
				}
				gotFlags, gotUrg, got, err := o.OpenFrame(frame, offset)
				if err != nil || gotFlags != flags || !bytes.Equal(got, data) {
					t.Fatalf("%v n=%d flags=%x: %v %x", aead, n, flags, err, gotFlags)
				}
				if flags&FlagURG != 0 && gotUrg != urgent || flags&FlagURG == 0 && gotUrg != 0 {
					t.Fatalf("urgent %d, want %d", gotUrg, urgent)
				}
			}
		}
	}
}

func TestFrameWrongContext(t *testing.T) {
	for _, aead := range allAEADs {
		key := testKey(aead, "ctx")
		s := mustSealer(t, aead, key)
		frame := s.SealFrame(nil, 1000, 0, 0, []byte("payload"))
		check := func(name string, o *Opener, off uint64) {
			t.Helper()
			f := append([]byte(nil), frame...)
			if _, _, data, err := o.OpenFrame(f, off); err == nil || data != nil {
				t.Errorf("%v: opened with %s", aead, name)
			}
		}
		check("wrong offset", mustOpener(t, aead, key), 1001)
		check("wrong key", mustOpener(t, aead, testKey(aead, "other")), 1000)
		// The other direction's key (k_ba vs k_ab) is just another key;
		// so is another AEAD with the same key length.
		if aead != AES128GCM {
			other := AES256GCM
			if aead == AES256GCM {
				other = ChaCha20Poly1305
			}
			check("other AEAD", mustOpener(t, other, key), 1000)
		}
	}
}

// TestFrameBitFlips flips every bit of a sealed frame (control, clen,
// ciphertext, tag): OpenFrame and FrameReader must reject each and return no
// plaintext.
func TestFrameBitFlips(t *testing.T) {
	for _, aead := range allAEADs {
		key := testKey(aead, "flip")
		const offset = 4242
		for _, flags := range []byte{0, FlagURG} {
			frame := mustSealer(t, aead, key).SealFrame(nil, offset, flags, 7, []byte("some plaintext"))
			for bit := range len(frame) * 8 {
				bad := append([]byte(nil), frame...)
				bad[bit/8] ^= 1 << (bit % 8)

				if _, _, data, err := mustOpener(t, aead, key).OpenFrame(append([]byte(nil), bad...), offset); err == nil || data != nil {
					t.Fatalf("%v: OpenFrame accepted bit %d flipped", aead, bit)
				}

				r := NewFrameReader(mustOpener(t, aead, key), offset, MaxFrameLen)
				if err := r.Write(bad); err != nil {
					t.Fatal(err)
				}
				f, ok, err := r.Next()
				if !ok && err == nil {
					// clen grew: the reader waits for the rest. Give it.
					n, _, _ := FrameLen(bad)
					if n <= len(bad) {
						t.Fatalf("%v bit %d: reader waits with the whole frame buffered", aead, bit)
					}
					if err := r.Write(make([]byte, n-len(bad))); err != nil {
						t.Fatal(err)
					}
					f, ok, err = r.Next()
				}
				if ok || err == nil || f.Data != nil {
					t.Fatalf("%v: FrameReader accepted bit %d flipped (ok %v err %v)", aead, bit, ok, err)
				}
				if _, ok, err2 := r.Next(); ok || err2 == nil {
					t.Fatalf("%v: reader error not sticky", aead)
				}
			}
		}
	}
}

func TestOpenFrameMalformed(t *testing.T) {
	key := testKey(AES128GCM, "malformed")
	s := mustSealer(t, AES128GCM, key)
	frame := s.SealFrame(nil, 0, 0, 0, []byte("x"))
	o := mustOpener(t, AES128GCM, key)
	for name, f := range map[string][]byte{
		"empty":        nil,
		"header only":  frame[:3],
		"short":        frame[:len(frame)-1],
		"long":         append(append([]byte(nil), frame...), 0),
		"clen too low": {0, 0, 16, 1, 2},
	} {
		if _, _, data, err := o.OpenFrame(f, 0); err == nil || data != nil {
			t.Errorf("OpenFrame accepted %s", name)
		}
	}
	// A frame that authenticates but claims URG without an urgent pointer.
	g := s.cur.get()
	hdr := []byte{0, 0, byte(1 + TagLen)}
	var nonce [aeadNonceLen]byte
	putFrameNonce(&nonce, 0)
	urgFrame := g.cipher.Seal(hdr, nonce[:], []byte{FlagURG}, hdr)
	if _, _, data, err := o.OpenFrame(urgFrame, 0); err == nil || data != nil {
		t.Error("URG frame without urgent pointer accepted")
	}
	// Reserved flag bits are authenticated but ignored.
	hdr2 := []byte{0, 0, byte(2 + TagLen)}
	resFrame := g.cipher.Seal(append([]byte(nil), hdr2...), nonce[:], []byte{0xf0 | FlagFIN, 'z'}, hdr2)
	flags, _, data, err := o.OpenFrame(resFrame, 0)
	if err != nil || flags != FlagFIN || string(data) != "z" {
		t.Errorf("reserved flag bits: flags %x data %q err %v", flags, data, err)
	}
}

func TestFrameLen(t *testing.T) {
	for i := range 3 {
		if _, need, err := FrameLen(make([]byte, i)); !need || err != nil {
			t.Errorf("%d bytes: need %v err %v", i, need, err)
		}
	}
	for clen := range 17 {
		if _, _, err := FrameLen([]byte{0, 0, byte(clen)}); err == nil {
			t.Errorf("clen %d accepted", clen)
		}
	}
	for _, clen := range []int{17, 18, 1000, 0xffff} {
		n, need, err := FrameLen([]byte{0, byte(clen >> 8), byte(clen)})
		if n != clen+3 || need || err != nil {
			t.Errorf("clen %d: %d %v %v", clen, n, need, err)
		}
	}
}

func TestSealFrameInPlaceAndAppend(t *testing.T) {
	key := testKey(ChaCha20Poly1305, "inplace")
	s := mustSealer(t, ChaCha20Poly1305, key)
	data := []byte("data already where the frame puts it")
	want := s.SealFrame(nil, 77, FlagURG, 3, data)

	// The engine's layout: room for the header, flags and urgent pointer
	// before the data, and for the tag after it.
	buf := make([]byte, 10, 10+FrameOverhead+2+len(data))
	copy(buf, "0123456789")
	region := buf[10 : 10+6+len(data)]
	copy(region[6:], data)
	out := s.SealFrame(buf, 77, FlagURG, 3, region[6:])
	if string(out[:10]) != "0123456789" || !bytes.Equal(out[10:], want) || &out[0] != &buf[0] {
		t.Fatal("in-place seal differs from a copying seal or reallocated")
	}

	defer func() {
		if recover() == nil {
			t.Error("SealFrame accepted more than MaxFrameData bytes")
		}
	}()
	s.SealFrame(nil, 0, 0, 0, make([]byte, MaxFrameData+1))
}

func TestNewSealerRejects(t *testing.T) {
	for _, c := range []struct {
		aead AEADID
		key  []byte
	}{{AES128GCM, make([]byte, 32)}, {AES256GCM, make([]byte, 16)}, {ChaCha20Poly1305, nil}, {0x03, make([]byte, 16)}} {
		if _, err := NewSealer(c.aead, c.key); err == nil {
			t.Errorf("NewSealer(%v, %d bytes) accepted", c.aead, len(c.key))
		}
		if _, err := NewOpener(c.aead, c.key); err == nil {
			t.Errorf("NewOpener(%v, %d bytes) accepted", c.aead, len(c.key))
		}
	}
}

// TestRekey runs several rekeys in each direction and checks the derivation
// k_next = CPRF(k, CONST_REKEY, key_len) against the reference HKDF.
func TestRekey(t *testing.T) {
	for _, aead := range allAEADs {
		ss := SessionSecretFromBytes(0, bytes.Repeat([]byte{3}, KeyLen))
		for _, key := range [][]byte{ss.KeyAB(aead), ss.KeyBA(aead)} {
			s := mustSealer(t, aead, key)
			o := mustOpener(t, aead, key)
			refKey := key
			offset := uint64(100)
			for gen := range 6 {
				for j := range 3 {
					frame := s.SealFrame(nil, offset, 0, 0, []byte{byte(gen), byte(j)})
					if frame[0] != byte(gen&1) {
						t.Fatalf("generation %d: control %x", gen, frame[0])
					}
					if _, err := refOpen(t, aead, refKey, frame, offset); err != nil {
						t.Fatalf("generation %d: not sealed under the reference key", gen)
					}
					_, _, data, err := o.OpenFrame(frame, offset)
					if err != nil || !bytes.Equal(data, []byte{byte(gen), byte(j)}) {
						t.Fatalf("gen %d frame %d: %v", gen, j, err)
					}
					if o.Generation() != uint32(gen) || s.Generation() != uint32(gen) {
						t.Fatalf("generations: sealer %d opener %d, want %d", s.Generation(), o.Generation(), gen)
					}
					offset += uint64(len(frame))
				}
				s.Rekey()
				refKey = refCPRF(t, refKey, 0x03, aead.KeyLen())
			}
		}
	}
}

// TestRekeyReordering: a frame of the previous generation that arrives after
// the receiver switched still opens (one generation back, by offset); two
// generations back does not.
func TestRekeyReordering(t *testing.T) {
	for _, aead := range allAEADs {
		key := testKey(aead, "reorder")
		s := mustSealer(t, aead, key)
		seal := func(off uint64, msg string) []byte { return s.SealFrame(nil, off, 0, 0, []byte(msg)) }
		f0 := seal(100, "gen0 a")
		f1 := seal(200, "gen0 b")
		s.Rekey()
		f2 := seal(300, "gen1 a")
		f3 := seal(400, "gen1 b")
		s.Rekey()
		f4 := seal(500, "gen2 a")

		o := mustOpener(t, aead, key)
		open := func(f []byte, off uint64, want string) {
			t.Helper()
			_, _, data, err := o.OpenFrame(append([]byte(nil), f...), off)
			if err != nil || string(data) != want {
				t.Fatalf("%v: frame at %d: %q %v", aead, off, data, err)
			}
		}
		open(f0, 100, "gen0 a")
		open(f2, 300, "gen1 a") // switch to gen 1
		open(f1, 200, "gen0 b") // one step back, before the switch point
		if o.Generation() != 1 {
			t.Fatalf("generation %d after an old frame, want 1", o.Generation())
		}
		open(f4, 500, "gen2 a") // switch to gen 2
		open(f3, 400, "gen1 b") // one step back again
		if o.Generation() != 2 {
			t.Fatalf("generation %d, want 2", o.Generation())
		}
		// Two generations back: the rekey bit matches the current generation,
		// the key does not.
		if _, _, data, err := o.OpenFrame(append([]byte(nil), f1...), 200); err == nil || data != nil {
			t.Fatalf("%v: frame two generations back accepted", aead)
		}
	}
}

// TestForgedRekeyBit: a frame whose rekey bit was flipped fails and does not
// move the receiver to the next generation.
func TestForgedRekeyBit(t *testing.T) {
	key := testKey(AES256GCM, "forged")
	s := mustSealer(t, AES256GCM, key)
	o := mustOpener(t, AES256GCM, key)
	f := s.SealFrame(nil, 0, 0, 0, []byte("one"))
	forged := append([]byte(nil), f...)
	forged[0] ^= ControlRekey
	if _, _, _, err := o.OpenFrame(forged, 0); err == nil {
		t.Fatal("forged rekey bit accepted")
	}
	if o.Generation() != 0 {
		t.Fatal("failed frame moved the generation")
	}
	if _, _, data, err := o.OpenFrame(f, 0); err != nil || string(data) != "one" {
		t.Fatalf("genuine frame after a forged one: %q %v", data, err)
	}
	// The next genuine rekey still works (the cached next key is right).
	s.Rekey()
	f2 := s.SealFrame(nil, 100, 0, 0, []byte("two"))
	if _, _, data, err := o.OpenFrame(f2, 100); err != nil || string(data) != "two" || o.Generation() != 1 {
		t.Fatalf("rekeyed frame: %q %v gen %d", data, err, o.Generation())
	}
}

func TestSealOpenAllocs(t *testing.T) {
	for _, aead := range allAEADs {
		key := testKey(aead, "allocs")
		s := mustSealer(t, aead, key)
		o := mustOpener(t, aead, key)
		data := make([]byte, 1400)
		buf := make([]byte, 0, len(data)+FrameOverhead+2)
		work := make([]byte, len(data)+FrameOverhead)
		frame := s.SealFrame(nil, 9, 0, 0, data)
		var openErr error
		if a := testing.AllocsPerRun(100, func() {
			buf = s.SealFrame(buf[:0], 9, FlagURG, 1, data)
		}); a != 0 {
			t.Errorf("%v: SealFrame allocates %.1f times", aead, a)
		}
		if a := testing.AllocsPerRun(100, func() {
			copy(work, frame)
			_, _, _, openErr = o.OpenFrame(work, 9)
		}); a != 0 || openErr != nil {
			t.Errorf("%v: OpenFrame allocates %.1f times (err %v)", aead, a, openErr)
		}
		if a := testing.AllocsPerRun(100, func() {
			copy(work, frame)
			_, _, _, openErr = o.OpenFrame(work, 10) // failure path too
		}); a != 0 || openErr == nil {
			t.Errorf("%v: failing OpenFrame allocates %.1f times (err %v)", aead, a, openErr)
		}
	}
}
