package tcpcrypt

import (
	"bytes"
	"sync"
	"testing"
	"time"
)

// fakeClock is a settable clock for lifetime tests (no sleeping).
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func TestKeyPoolReuseWithinLifetime(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1e9, 0)}
	p := newKeyPool([]TEP{TEPCurve25519, TEPP256}, time.Minute, clock.now)
	t.Cleanup(p.Close)

	for _, tep := range []TEP{TEPCurve25519, TEPP256, TEPCurve448} { // curve448: not listed, served lazily
		first, err := p.Get(tep)
		if err != nil {
			t.Fatal(err)
		}
		if first.TEP() != tep {
			t.Fatalf("Get(%v) returned a %v pair", tep, first.TEP())
		}
		clock.advance(59 * time.Second)
		again, err := p.Get(tep)
		if err != nil {
			t.Fatal(err)
		}
		if again != first {
			t.Errorf("%v: pair replaced within its lifetime", tep)
		}
		clock.advance(time.Second) // exactly the lifetime: expired
		fresh, err := p.Get(tep)
		if err != nil {
			t.Fatal(err)
		}
		if fresh == first || bytes.Equal(fresh.PublicKey(), first.PublicKey()) {
			t.Errorf("%v: pair reused after its lifetime", tep)
		}
		// The new pair's lifetime counts from its first use.
		clock.advance(30 * time.Second)
		if again, _ := p.Get(tep); again != fresh {
			t.Errorf("%v: fresh pair replaced within its lifetime", tep)
		}
	}
}

func TestKeyPoolFreshPerCall(t *testing.T) {
	p := NewKeyPool([]TEP{TEPCurve25519}, 0)
	t.Cleanup(p.Close)
	seen := map[string]bool{}
	for range 20 {
		kp, err := p.Get(TEPCurve25519)
		if err != nil {
			t.Fatal(err)
		}
		if seen[string(kp.PublicKey())] {
			t.Fatal("lifetime 0 handed out the same pair twice")
		}
		seen[string(kp.PublicKey())] = true
	}
}

func TestKeyPoolConcurrentAndClosed(t *testing.T) {
	p := NewKeyPool(allTEPs, time.Hour)
	var wg sync.WaitGroup
	pairs := make([]*KeyPair, 8)
	for i := range pairs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			kp, err := p.Get(TEPCurve25519)
			if err != nil {
				t.Error(err)
				return
			}
			pairs[i] = kp
		}()
	}
	wg.Wait()
	for _, kp := range pairs[1:] {
		if kp != pairs[0] {
			t.Fatal("concurrent Gets within the lifetime returned different pairs")
		}
	}
	p.Close()
	p.Close() // idempotent
	kp, err := p.Get(TEPP521)
	if err != nil || kp.TEP() != TEPP521 {
		t.Fatalf("Get after Close: %v, %v", kp, err)
	}
	if _, err := p.Get(0x25); err == nil {
		t.Error("Get accepted an invalid TEP")
	}
}

// TestKeyPoolPregenerates checks that the background goroutine fills the
// spare queue, so that Get after the first one does not generate inline.
func TestKeyPoolPregenerates(t *testing.T) {
	p := NewKeyPool([]TEP{TEPCurve25519}, 0)
	t.Cleanup(p.Close)
	s := p.slot(TEPCurve25519)
	deadline := time.Now().Add(10 * time.Second) // bound only; no timing asserted
	for len(s.spares) < cap(s.spares) {
		if time.Now().After(deadline) {
			t.Fatalf("spare queue holds %d of %d pairs after 10s", len(s.spares), cap(s.spares))
		}
		time.Sleep(time.Millisecond)
	}
	p.Close() // freeze the queue: nothing refills it now
	var queued []*KeyPair
	for len(s.spares) > 0 {
		queued = append(queued, <-s.spares)
	}
	for _, kp := range queued {
		s.spares <- kp
	}
	for i, want := range queued {
		kp, err := p.Get(TEPCurve25519)
		if err != nil {
			t.Fatal(err)
		}
		if kp != want {
			t.Fatalf("Get %d did not hand out the pre-generated pair", i)
		}
	}
	if p.slot(TEPP256).wanted.Load() || len(p.slot(TEPP256).spares) != 0 {
		t.Error("pool generates pairs for a TEP nobody asked for")
	}
}
