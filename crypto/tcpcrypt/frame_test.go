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

// refTrafficKey is k_ab[0] = CPRF(mk, CONST_KEY_A, ae_key_len + 12)
// through the standard library's HKDF (RFC 8548 §3.3).
func refTrafficKey(t testing.TB, aead AEADID, mk []byte) []byte {
	return refCPRF(t, mk, 0x04, aead.KeyLen()+12)
}

// refOpen opens a frame with traffic key tk = K | NR following RFC 8548
// §3.6 and §4.2 literally: N = (zero[4] | offset[8]) XOR NR, AD = the
// 3-byte header.
func refOpen(t testing.TB, aead AEADID, tk, frame []byte, offset uint64) (plaintext []byte, err error) {
	k, nr := tk[:aead.KeyLen()], tk[aead.KeyLen():]
	nonce := binary.BigEndian.AppendUint64(make([]byte, 4), offset)
	for i := range nonce {
		nonce[i] ^= nr[i]
	}
	return refAEAD(t, aead, k).Open(nil, nonce, frame[3:], frame[:3])
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
				// RFC 8548's layout, checked independently.
				pt, err := refOpen(t, aead, refTrafficKey(t, aead, key), frame, offset)
				if err != nil || pt[0] != flags {
					t.Fatalf("%v: reference open: %v, flags %x", aead, err, pt)
				}
				if flags&FlagURG != 0 && binary.BigEndian.Uint16(pt[1:3]) != urgent {
					t.Fatalf("%v: urgent pointer not where RFC 8548 §4.2.1 puts it", aead)
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
	var nonce [NRLen]byte
	putFrameNonce(&nonce, &g.nr, 0)
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

// TestSealFrameAfter: sealing data from where it lies, with the byte in
// front of it lent for the flags, gives the same frame as SealFrame, opens,
// gives the byte back, and allocates nothing; a rekey bit carries over the
// same way.
func TestSealFrameAfter(t *testing.T) {
	for _, aead := range allAEADs {
		key := testKey(aead, "after")
		a, b := mustSealer(t, aead, key), mustSealer(t, aead, key)
		o := mustOpener(t, aead, key)
		for i, n := range []int{0, 1, 1400, MaxFrameData} {
			if i == 2 {
				a.Rekey()
				b.Rekey()
			}
			data := make([]byte, n)
			for j := range data {
				data[j] = byte(j * 7)
			}
			want := a.SealFrame(nil, uint64(1000*i), FlagFIN, 0, data)
			src := append([]byte{0xAB}, data...)
			got := b.SealFrameAfter(make([]byte, 2, 2+n+FrameOverhead), uint64(1000*i), FlagFIN|FlagURG, src)
			if !bytes.Equal(got[2:], want) || src[0] != 0xAB || !bytes.Equal(src[1:], data) {
				t.Fatalf("%v, %d bytes: differs from SealFrame %v, lent byte %#x, data kept %v", aead, n, !bytes.Equal(got[2:], want), src[0], bytes.Equal(src[1:], data))
			}
			flags, _, pt, err := o.OpenFrame(got[2:], uint64(1000*i))
			if err != nil || flags != FlagFIN || !bytes.Equal(pt, data) {
				t.Fatalf("%v, %d bytes: opened flags %#x err %v, data equal %v", aead, n, flags, err, bytes.Equal(pt, data))
			}
		}
		src := make([]byte, 1401)
		buf := make([]byte, 0, len(src)+FrameOverhead)
		if allocs := testing.AllocsPerRun(100, func() { buf = b.SealFrameAfter(buf[:0], 5, 0, src) }); allocs != 0 {
			t.Errorf("%v: SealFrameAfter allocates %.1f times", aead, allocs)
		}
	}
}

func TestNewSealerRejects(t *testing.T) {
	for _, c := range []struct {
		aead AEADID
		mk   []byte
		keys TrafficKeys
	}{
		{AES128GCM, make([]byte, 16), KeysAB}, // a master key is K_LEN bytes
		{AES256GCM, make([]byte, 33), KeysBA},
		{ChaCha20Poly1305, nil, KeysAB},
		{0x03, make([]byte, 32), KeysAB},    // unknown AEAD
		{AES128GCM, make([]byte, 32), 0x03}, // CONST_REKEY is no traffic key
	} {
		if _, err := NewSealer(c.aead, c.mk, c.keys); err == nil {
			t.Errorf("NewSealer(%v, %d bytes, %x) accepted", c.aead, len(c.mk), c.keys)
		}
		if _, err := NewOpener(c.aead, c.mk, c.keys); err == nil {
			t.Errorf("NewOpener(%v, %d bytes, %x) accepted", c.aead, len(c.mk), c.keys)
		}
	}
}

// TestRekey runs several rekeys in each direction and checks against the
// reference HKDF: mk[j] = CPRF(mk[j-1], CONST_REKEY, 32), the traffic key
// of each generation, and rekey = 1 on exactly the first frame of each new
// generation (RFC 8548 §3.3, §3.8).
func TestRekey(t *testing.T) {
	for _, aead := range allAEADs {
		mk0 := bytes.Repeat([]byte{3}, KeyLen)
		for _, dir := range []struct {
			keys   TrafficKeys
			const_ byte
		}{{KeysAB, 0x04}, {KeysBA, 0x05}} {
			s, err := NewSealer(aead, mk0, dir.keys)
			if err != nil {
				t.Fatal(err)
			}
			o, err := NewOpener(aead, mk0, dir.keys)
			if err != nil {
				t.Fatal(err)
			}
			mk := mk0
			offset := uint64(100)
			for gen := range 6 {
				tk := refCPRF(t, mk, dir.const_, aead.KeyLen()+12)
				for j := range 3 {
					frame := s.SealFrame(nil, offset, 0, 0, []byte{byte(gen), byte(j)})
					wantRekey := byte(0)
					if gen > 0 && j == 0 {
						wantRekey = 1
					}
					if frame[0] != wantRekey {
						t.Fatalf("generation %d frame %d: control %x, want %x", gen, j, frame[0], wantRekey)
					}
					if _, err := refOpen(t, aead, tk, frame, offset); err != nil {
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
				if !s.Rekey() || !s.RekeyPending() {
					t.Fatal("Rekey did not start a generation")
				}
				// A second Rekey before a frame has used the new
				// generation would skip one the receiver cannot count.
				if s.Rekey() || s.Generation() != uint32(gen+1) {
					t.Fatalf("second Rekey moved the generation to %d", s.Generation())
				}
				mk = refCPRF(t, mk, 0x03, 32)
			}
		}
	}
}

// TestRekeyEmptyFrame: the answer to a peer's rekey may be an empty frame
// (RFC 8548 §3.8); it carries rekey = 1 and moves the receiver on.
func TestRekeyEmptyFrame(t *testing.T) {
	key := testKey(AES128GCM, "empty rekey")
	s := mustSealer(t, AES128GCM, key)
	o := mustOpener(t, AES128GCM, key)
	s.Rekey()
	f := s.SealFrame(nil, 0, 0, 0, nil)
	if f[0] != ControlRekey || len(f) != FrameOverhead {
		t.Fatalf("empty rekey frame %x", f)
	}
	if _, _, data, err := o.OpenFrame(f, 0); err != nil || len(data) != 0 || o.Generation() != 1 {
		t.Fatalf("empty rekey frame: %v, generation %d", err, o.Generation())
	}
}

// TestRekeyStreamOrder: frames are opened in stream order, so a frame of
// the previous generation after the switch does not open, and a frame
// without the rekey bit from the next generation does not either.
func TestRekeyStreamOrder(t *testing.T) {
	for _, aead := range allAEADs {
		key := testKey(aead, "order")
		s := mustSealer(t, aead, key)
		seal := func(off uint64, msg string) []byte { return s.SealFrame(nil, off, 0, 0, []byte(msg)) }
		f0 := seal(100, "gen0 a")
		f1 := seal(200, "gen0 b")
		s.Rekey()
		f2 := seal(300, "gen1 a")
		f3 := seal(400, "gen1 b")

		o := mustOpener(t, aead, key)
		if _, _, _, err := o.OpenFrame(append([]byte(nil), f3...), 400); err == nil {
			t.Fatalf("%v: a generation-1 frame without rekey opened under generation 0", aead)
		}
		for _, c := range []struct {
			f   []byte
			off uint64
		}{{f0, 100}, {f1, 200}, {f2, 300}, {f3, 400}} {
			if _, _, _, err := o.OpenFrame(append([]byte(nil), c.f...), c.off); err != nil {
				t.Fatalf("%v: frame at %d: %v", aead, c.off, err)
			}
		}
		if _, _, _, err := o.OpenFrame(append([]byte(nil), f1...), 200); err == nil || o.Generation() != 1 {
			t.Fatalf("%v: old-generation frame opened after the switch", aead)
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

// TestReleaseRebuildsTheSameKey: after Release the next frame is sealed and
// opened under the same key as before (the AEAD is rebuilt from mk).
func TestReleaseRebuildsTheSameKey(t *testing.T) {
	for _, aead := range allAEADs {
		key := testKey(aead, "release")
		s1, s2 := mustSealer(t, aead, key), mustSealer(t, aead, key)
		o := mustOpener(t, aead, key)
		s1.Release()
		f1 := s1.SealFrame(nil, 7, 0, 0, []byte("after release"))
		f2 := s2.SealFrame(nil, 7, 0, 0, []byte("after release"))
		if !bytes.Equal(f1, f2) {
			t.Fatalf("%v: a released sealer seals other bytes", aead)
		}
		s1.Rekey()
		s2.Rekey()
		g := s1.SealFrame(nil, 100, 0, 0, []byte("gen 1"))
		o.Release()
		if _, _, d, err := o.OpenFrame(append([]byte(nil), f1...), 7); err != nil || string(d) != "after release" {
			t.Fatalf("%v: released opener: %v", aead, err)
		}
		o.Release()
		if _, _, d, err := o.OpenFrame(g, 100); err != nil || string(d) != "gen 1" || o.Generation() != 1 {
			t.Fatalf("%v: released opener across a rekey: %v", aead, err)
		}
	}
}

// TestCatchUp: answering a peer at generation remote takes one rekey = 1
// frame per generation behind, a pending rekey of ours first, and nothing
// when the local generation is already there (RFC 8548 §3.8).
func TestCatchUp(t *testing.T) {
	key := testKey(AES128GCM, "catch up")
	count := func(s *Sealer, remote uint32) (frames int) {
		for s.CatchUp(remote) {
			if f := s.SealFrame(nil, 0, 0, 0, nil); f[0] != ControlRekey {
				t.Fatalf("catch-up frame with control %x", f[0])
			}
			frames++
		}
		return frames
	}
	s := mustSealer(t, AES128GCM, key)
	if n := count(s, 0); n != 0 {
		t.Fatalf("level: %d frames", n)
	}
	if n := count(s, 2); n != 2 || s.Generation() != 2 {
		t.Fatalf("two behind: %d frames, generation %d", n, s.Generation())
	}
	s.Rekey() // ours, generation 3, not on the wire
	if n := count(s, 3); n != 0 || !s.RekeyPending() {
		t.Fatalf("pending rekey at the remote generation: %d frames", n)
	}
	if n := count(s, 4); n != 2 || s.Generation() != 4 {
		t.Fatalf("pending rekey one behind: %d frames, generation %d", n, s.Generation())
	}
}
