// Key pool: ephemeral key pairs generated ahead of need (RFC 8548 §3.3:
// ephemeral keys "MUST be refreshed frequently" and "SHOULD NOT ever be
// written to persistent storage"; §8: reuse limited "as far as is
// practical").
//
//  1. NewKeyPool starts one background goroutine and asks it to fill the
//     spare queue of every listed TEP.
//  2. Get(tep) returns the TEP's current pair while it is younger than the
//     lifetime (counted from when it was first handed out). Otherwise it
//     takes a spare from the queue, makes it current and asks the goroutine
//     to refill. Only when the queue is empty (the very first Get for a TEP,
//     or a burst that outran the goroutine) does Get generate inline.
//  3. With lifetime 0 every Get consumes a spare: a fresh pair per call.
//  4. Close stops the goroutine; Get keeps working by generating inline.
//
// Everything is bounded: one slot per row of the TEP table (tep.go), at most
// poolSpares pairs queued for each.
package tcpcrypt

import (
	"crypto/rand"
	"sync"
	"sync/atomic"
	"time"
)

// poolSpares is how many pairs are generated ahead per TEP. With a lifetime,
// one spare covers the next rotation; with lifetime 0 a few absorb bursts.
const (
	poolSparesReuse = 1
	poolSparesFresh = 4
)

// KeyPool hands out ephemeral key pairs. It is safe for concurrent use.
type KeyPool struct {
	lifetime time.Duration
	now      func() time.Time // time.Now; replaced in tests

	slots [len(tepTable)]poolSlot // one per TEP, in the table's order

	refill    chan struct{} // capacity 1: a pending "fill the queues" request
	done      chan struct{}
	closeOnce sync.Once
	wg        sync.WaitGroup
}

type poolSlot struct {
	tep    TEP
	wanted atomic.Bool   // the goroutine keeps this TEP's queue full
	spares chan *KeyPair // generated, never handed out

	mu      sync.Mutex
	current *KeyPair  // reused until expires (lifetime > 0 only)
	expires time.Time // zero until current is first handed out
}

// NewKeyPool makes a pool that pre-generates pairs for teps (invalid TEPs
// are ignored) and reuses each pair for at most lifetime; lifetime 0 (or
// negative) means a fresh pair for every Get.
func NewKeyPool(teps []TEP, lifetime time.Duration) *KeyPool {
	return newKeyPool(teps, lifetime, time.Now)
}

func newKeyPool(teps []TEP, lifetime time.Duration, now func() time.Time) *KeyPool {
	lifetime = max(lifetime, 0)
	spares := poolSparesReuse
	if lifetime == 0 {
		spares = poolSparesFresh
	}
	p := &KeyPool{
		lifetime: lifetime,
		now:      now,
		refill:   make(chan struct{}, 1),
		done:     make(chan struct{}),
	}
	for i := range p.slots {
		p.slots[i].tep = tepTable[i].tep
		p.slots[i].spares = make(chan *KeyPair, spares)
	}
	for _, tep := range teps {
		if s := p.slot(tep); s != nil {
			s.wanted.Store(true)
		}
	}
	p.wg.Add(1)
	go p.refillLoop()
	p.kick()
	return p
}

func (p *KeyPool) slot(tep TEP) *poolSlot {
	if !tep.Valid() {
		return nil
	}
	return &p.slots[tepIndex[tep]-1]
}

// Get returns a key pair for tep: the current one while it is within its
// lifetime, otherwise a pre-generated one.
func (p *KeyPool) Get(tep TEP) (*KeyPair, error) {
	s := p.slot(tep)
	if s == nil {
		return nil, errInvalidTEP
	}
	if !s.wanted.Load() {
		s.wanted.Store(true) // a TEP not listed at start: serve it from now on
	}
	if p.lifetime == 0 {
		return p.take(s)
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	now := p.now()
	if s.current != nil && now.Before(s.expires) {
		return s.current, nil
	}
	kp, err := p.take(s)
	if err != nil {
		return nil, err
	}
	s.current, s.expires = kp, now.Add(p.lifetime)
	return kp, nil
}

// take removes a spare from the queue, or generates one inline if the queue
// is empty, and asks the goroutine to refill.
func (p *KeyPool) take(s *poolSlot) (*KeyPair, error) {
	defer p.kick()
	select {
	case kp := <-s.spares:
		return kp, nil
	default:
		return GenerateKeyPair(s.tep, rand.Reader)
	}
}

// kick asks the goroutine to refill without ever blocking.
func (p *KeyPool) kick() {
	select {
	case p.refill <- struct{}{}:
	default:
	}
}

func (p *KeyPool) refillLoop() {
	defer p.wg.Done()
	for {
		select {
		case <-p.done:
			return
		case <-p.refill:
		}
		for i := range p.slots {
			s := &p.slots[i]
			for s.wanted.Load() && len(s.spares) < cap(s.spares) {
				select {
				case <-p.done:
					return
				default:
				}
				kp, err := GenerateKeyPair(s.tep, rand.Reader)
				if err != nil {
					break // Get will generate inline and report the error
				}
				select {
				case s.spares <- kp:
				default: // filled concurrently; drop the extra pair
				}
			}
		}
	}
}

// Close stops the background goroutine and waits for it. Get still works
// afterwards (generating inline). Close is idempotent.
func (p *KeyPool) Close() {
	p.closeOnce.Do(func() { close(p.done) })
	p.wg.Wait()
}
