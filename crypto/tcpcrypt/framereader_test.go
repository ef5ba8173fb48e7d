package tcpcrypt

import (
	"bytes"
	"math/rand/v2"
	"testing"
)

// sentFrame is what a sender put in one frame.
type sentFrame struct {
	offset uint64
	length int
	flags  byte
	urgent uint16
	data   []byte
}

// buildStream seals n frames of random sizes from offset start, rekeying
// now and then, the last one with FIN.
func buildStream(t testing.TB, rng *rand.Rand, aead AEADID, key []byte, start uint64, n int) ([]byte, []sentFrame) {
	s := mustSealer(t, aead, key)
	var stream []byte
	var sent []sentFrame
	off := start
	for i := range n {
		data := make([]byte, rng.IntN(1500))
		for j := range data {
			data[j] = byte(rng.Uint32())
		}
		var flags byte
		var urgent uint16
		if rng.IntN(8) == 0 {
			flags, urgent = FlagURG, uint16(rng.Uint32())
		}
		if i == n-1 {
			flags |= FlagFIN
		}
		if rng.IntN(5) == 0 {
			s.Rekey()
		}
		before := len(stream)
		stream = s.SealFrame(stream, off, flags, urgent, data)
		sent = append(sent, sentFrame{off, len(stream) - before, flags, urgent, data})
		off += uint64(len(stream) - before)
	}
	return stream, sent
}

// feed writes stream cut at the given points, draining frames after each
// write, and returns what it read.
func feed(t testing.TB, r *FrameReader, stream []byte, cuts []int) ([]sentFrame, error) {
	var got []sentFrame
	prev := 0
	for _, c := range append(cuts, len(stream)) {
		if err := r.Write(stream[prev:c]); err != nil {
			return got, err
		}
		prev = c
		for {
			f, ok, err := r.Next()
			if err != nil {
				return got, err
			}
			if !ok {
				break
			}
			got = append(got, sentFrame{f.Offset, f.Len, f.Flags, f.Urgent, append([]byte(nil), f.Data...)})
		}
		if r.Buffered() > r.max {
			t.Fatalf("buffered %d > bound %d", r.Buffered(), r.max)
		}
	}
	return got, nil
}

func randomCuts(rng *rand.Rand, n, count int) []int {
	cuts := make([]int, count)
	for i := range cuts {
		cuts[i] = rng.IntN(n + 1)
	}
	// sorted, duplicates allowed (empty writes)
	for i := 1; i < len(cuts); i++ {
		for j := i; j > 0 && cuts[j] < cuts[j-1]; j-- {
			cuts[j], cuts[j-1] = cuts[j-1], cuts[j]
		}
	}
	return cuts
}

func compareFrames(t *testing.T, got, want []sentFrame) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d frames, want %d", len(got), len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.offset != w.offset || g.length != w.length || g.flags != w.flags || !bytes.Equal(g.data, w.data) ||
			(w.flags&FlagURG != 0 && g.urgent != w.urgent) {
			t.Fatalf("frame %d: got off %d len %d flags %x, want off %d len %d flags %x", i, g.offset, g.length, g.flags, w.offset, w.length, w.flags)
		}
	}
}

func TestFrameReaderRandomCuts(t *testing.T) {
	for seed := range uint64(20) {
		rng := rand.New(rand.NewPCG(seed, 99))
		aead := allAEADs[seed%3]
		key := testKey(aead, "stream")
		start := uint64(rng.IntN(200))
		stream, sent := buildStream(t, rng, aead, key, start, 40)

		var cuts []int
		switch seed % 4 {
		case 0: // every byte on its own
			for i := 1; i < len(stream); i++ {
				cuts = append(cuts, i)
			}
		case 1: // the whole stream at once
		default:
			cuts = randomCuts(rng, len(stream), 1+rng.IntN(200))
		}
		r := NewFrameReader(mustOpener(t, aead, key), start, 4*MaxFrameLen)
		got, err := feed(t, r, stream, cuts)
		if err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		compareFrames(t, got, sent)
		if r.Buffered() != 0 || r.Offset() != start+uint64(len(stream)) {
			t.Fatalf("seed %d: %d bytes left, offset %d", seed, r.Buffered(), r.Offset())
		}
		// Nothing may follow the FIN frame.
		if err := r.Write([]byte{0}); err == nil {
			t.Fatal("bytes after the FIN frame accepted")
		}
	}
}

func TestFrameReaderWrongStart(t *testing.T) {
	key := testKey(AES128GCM, "start")
	stream, _ := buildStream(t, rand.New(rand.NewPCG(5, 5)), AES128GCM, key, 50, 3)
	r := NewFrameReader(mustOpener(t, AES128GCM, key), 51, 0)
	if _, err := feed(t, r, stream, nil); err == nil {
		t.Fatal("frames opened at the wrong stream offset")
	}
}

func TestFrameReaderBounds(t *testing.T) {
	key := testKey(AES128GCM, "bounds")
	s := mustSealer(t, AES128GCM, key)
	big := s.SealFrame(nil, 0, 0, 0, make([]byte, 200))

	// A frame larger than the bound can never complete: error, not a stall.
	r := NewFrameReader(mustOpener(t, AES128GCM, key), 0, 100)
	if err := r.Write(big[:50]); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := r.Next(); ok || err == nil {
		t.Fatalf("frame beyond the bound: ok %v err %v", ok, err)
	}

	// Writing past the bound fails, and the reader stays failed.
	r = NewFrameReader(mustOpener(t, AES128GCM, key), 0, 100)
	if err := r.Write(make([]byte, 60)); err != nil {
		t.Fatal(err)
	}
	if err := r.Write(make([]byte, 41)); err == nil {
		t.Fatal("write beyond the bound accepted")
	}
	if r.Buffered() > 100 {
		t.Fatalf("buffered %d beyond the bound", r.Buffered())
	}
	if _, _, err := r.Next(); err == nil {
		t.Fatal("error not sticky")
	}

	// Exactly at the bound is fine, and consuming frames frees room.
	small := func(off uint64) []byte { return s.SealFrame(nil, off, 0, 0, make([]byte, 30)) } // 50 bytes
	o := mustOpener(t, AES128GCM, key)
	r = NewFrameReader(o, 0, 100)
	off := uint64(0)
	for i := range 20 {
		f := small(off)
		off += uint64(len(f))
		if err := r.Write(f); err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if i%2 == 1 { // two frames buffered (100 bytes), then drain
			for range 2 {
				if _, ok, err := r.Next(); !ok || err != nil {
					t.Fatalf("frame %d: %v %v", i, ok, err)
				}
			}
		}
	}
}

func TestFrameReaderStopsAtBadFrame(t *testing.T) {
	key := testKey(ChaCha20Poly1305, "stop")
	stream, sent := buildStream(t, rand.New(rand.NewPCG(7, 7)), ChaCha20Poly1305, key, 0, 6)
	bad := append([]byte(nil), stream...)
	bad[sent[2].offset+5] ^= 0x10 // inside frame 2's ciphertext
	r := NewFrameReader(mustOpener(t, ChaCha20Poly1305, key), 0, 0)
	got, err := feed(t, r, bad, nil)
	if err == nil {
		t.Fatal("corrupted stream read without error")
	}
	compareFrames(t, got, sent[:2]) // exactly the frames before the bad one
	if r.Err() == nil || r.Buffered() != 0 {
		t.Fatal("failed reader keeps bytes or forgets the error")
	}
	if err := r.Write(stream[sent[3].offset:]); err == nil {
		t.Fatal("failed reader accepts more bytes")
	}
}

func TestFrameReaderGarbage(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 11))
	key := testKey(AES256GCM, "garbage")
	for range 200 {
		garbage := make([]byte, rng.IntN(3000))
		for i := range garbage {
			garbage[i] = byte(rng.Uint32())
		}
		r := NewFrameReader(mustOpener(t, AES256GCM, key), 0, 0)
		got, _ := feed(t, r, garbage, randomCuts(rng, len(garbage), 5))
		if len(got) != 0 {
			t.Fatal("a frame authenticated from random bytes")
		}
	}
}

func TestFrameReaderSteadyStateAllocs(t *testing.T) {
	key := testKey(AES128GCM, "readerallocs")
	s := mustSealer(t, AES128GCM, key)
	r := NewFrameReader(mustOpener(t, AES128GCM, key), 0, 0)
	data := make([]byte, 1400)
	frame := make([]byte, 0, 1500)
	off := uint64(0)
	step := func() {
		frame = s.SealFrame(frame[:0], off, 0, 0, data)
		off += uint64(len(frame))
		// Cut the frame in two, as TCP might.
		if err := r.Write(frame[:700]); err != nil {
			t.Fatal(err)
		}
		if _, ok, _ := r.Next(); ok {
			t.Fatal("half a frame returned")
		}
		if err := r.Write(frame[700:]); err != nil {
			t.Fatal(err)
		}
		if _, ok, err := r.Next(); !ok || err != nil {
			t.Fatal("whole frame not returned", err)
		}
	}
	step() // the buffer grows once
	if a := testing.AllocsPerRun(100, step); a != 0 {
		t.Errorf("FrameReader allocates %.1f times per frame", a)
	}
}
