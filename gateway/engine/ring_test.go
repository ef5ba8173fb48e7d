package engine

import (
	"bytes"
	"math/rand/v2"
	"testing"
)

// TestByteRingRecords drives a ring the way a flow does (records of
// varying size appended, trimmed from the front, sometimes in the middle
// of a record) against a plain byte slice as the model: every record, and
// the rest of a record cut by a trim, reads back whole and contiguous from
// slice, and the buffer stops growing once it fits the window.
func TestByteRingRecords(t *testing.T) {
	for seed := uint64(1); seed <= 20; seed++ {
		rng := rand.New(rand.NewPCG(seed, 7))
		var r byteRing[cSpace]
		const isn = 0xfffff000 // the sequence space wraps during the run
		r.reset(isn)
		var model []byte // the bytes the ring should hold, from r.seq on
		type rec struct{ start, end cSeq }
		var recs []rec
		window := 1 << (12 + rng.IntN(8)) // 4 KiB to 512 KiB held at most
		next := byte(0)
		grewLate := 0
		for step := 0; step < 4000; step++ {
			if rng.IntN(3) > 0 && len(model) < window {
				n := 1 + rng.IntN(min(1500*(1+rng.IntN(3)), window))
				capBefore := len(r.buf())
				tl := r.tail(n, 0)
				if cap(tl) < n || len(tl) != 0 {
					t.Fatalf("seed %d: tail(%d) gave len %d cap %d", seed, n, len(tl), cap(tl))
				}
				tl = tl[:n]
				for i := range tl {
					tl[i] = next
					next++
				}
				model = append(model, tl...)
				start := r.end()
				r.commit(n)
				recs = append(recs, rec{start, start.add(n)})
				if step > 3000 && len(r.buf()) > capBefore && capBefore >= 2*(window+4500) {
					grewLate++
				}
			} else if len(recs) > 0 {
				// trim to a record boundary or into the first record
				to := recs[rng.IntN(len(recs))].start
				if rng.IntN(4) == 0 {
					to = recs[0].start.add(rng.IntN(recs[0].end.since(recs[0].start)))
				}
				n := r.trim(to)
				model = model[n:]
				for len(recs) > 0 && recs[0].end.leq(r.seq) {
					recs = recs[1:]
				}
			}
			if r.len() != len(model) {
				t.Fatalf("seed %d step %d: ring holds %d, model %d", seed, step, r.len(), len(model))
			}
			for _, rc := range recs {
				got := r.slice(rc.start, rc.end)
				from := max(0, rc.start.since(r.seq))
				if int32(rc.start-r.seq) < 0 {
					from = 0
				}
				want := model[from:rc.end.since(r.seq)]
				if !bytes.Equal(got, want) {
					t.Fatalf("seed %d step %d: record [%d,%d) read %d bytes, want %d (equal prefix %v)",
						seed, step, rc.start-isn, rc.end-isn, len(got), len(want), bytes.HasPrefix(want, got))
				}
			}
		}
		if grewLate > 0 {
			t.Errorf("seed %d: the buffer grew %d times late in the run although it held twice the window", seed, grewLate)
		}
	}
}

// TestByteRingStreamStaysContiguous: appendStream never wraps, so the whole
// of what the ring holds is one slice (the held plaintext).
func TestByteRingStreamStaysContiguous(t *testing.T) {
	var r byteRing[pSpace]
	r.reset(100)
	var model []byte
	for i := 0; i < 200; i++ {
		p := bytes.Repeat([]byte{byte(i)}, 700+i)
		r.appendStream(p)
		model = append(model, p...)
		if i%3 == 2 {
			n := r.trim(r.seq.add(len(model) / 2))
			model = model[n:]
		}
		if got := r.slice(r.seq, r.end()); !bytes.Equal(got, model) {
			t.Fatalf("step %d: the whole ring reads %d bytes, want %d", i, len(got), len(model))
		}
	}
}

// BenchmarkByteRingSteady: a flow in steady state writes a frame and
// trims one acknowledged frame; the ring must neither allocate nor move
// what it holds.
func BenchmarkByteRingSteady(b *testing.B) {
	var r byteRing[cSpace]
	r.reset(0)
	const frame, window = 1448, 2 << 20
	for r.len() < window {
		r.commit(len(r.tail(frame, 0)[:frame]))
	}
	b.SetBytes(frame)
	b.ReportAllocs()
	for b.Loop() {
		r.commit(len(r.tail(frame, 0)[:frame]))
		r.trim(r.seq.add(frame))
	}
}
