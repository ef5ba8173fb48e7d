// Paths remembers, per WAN peer address, how TCP-ENO and tcpcrypt failed on
// the way to it: RFC 8547 §9's two kinds of failure.
//
// The flow:
//  1. Type 1 (the SYN exchange): the engine's SYN fallback sent a SYN
//     without ENO after the ENO SYNs went unanswered, and that plain SYN
//     was answered (Fallback). Counted and kept as evidence only: it never
//     changes what the next connection does (docs/security.md, "SYN
//     fallback").
//  2. Type 2 (after the SYN exchange): an outbound flow that negotiated
//     ENO died without progress of the peer's frames (reset, stall,
//     authentication failure, Init timeout) (Failure). Threshold such
//     failures within Window mark the path broken for TTL.
//  3. Broken answers for a new connection whether the path is broken: the
//     engine then connects without ENO, the reason on the flow, unless the
//     flow must be encrypted or its peer is under the block policy.
//  4. Bounded (the least recently touched path goes when full) and every
//     record expires TTL after its last failure, so a repaired path is
//     tried again.
//
// Safe for concurrent use; touched once per failure or fallback and once
// per outbound SYN (Broken), never per data packet.
package downgrade

import (
	"container/list"
	"net/netip"
	"slices"
	"sync"
	"time"
)

// PathConfig bounds a Paths.
type PathConfig struct {
	Max       int           // paths remembered
	TTL       time.Duration // how long a record (and a broken mark) lasts after its last failure
	Window    time.Duration // type-2 failures count together within this window
	Threshold int           // type-2 failures within Window that mark a path broken
}

// Path is what is known of the path to one peer. It holds addresses,
// times and reasons: never a key or secret.
type Path struct {
	Addr netip.Addr `json:"addr"`
	// Type 1: SYN fallbacks to the peer that were answered without ENO.
	SYNFallbacks  uint64    `json:"syn_fallbacks"`
	LastFallback  time.Time `json:"last_fallback,omitzero"`
	FallbackProof string    `json:"fallback_evidence,omitempty"`
	// Type 2: failures after the SYN exchange, all and within the window.
	Failures     uint64    `json:"failures"`
	RecentFails  int       `json:"recent_failures"`
	WindowStart  time.Time `json:"window_start,omitzero"`
	LastFailure  time.Time `json:"last_failure,omitzero"`
	FailureProof string    `json:"failure_evidence,omitempty"`
	// BrokenUntil: encryption fails on this path; connections to it go
	// plain until then (zero: not broken).
	BrokenUntil time.Time `json:"broken_until,omitzero"`
	last        time.Time // last change: expiry
}

// Paths is a bounded, expiring map of peer address to Path.
type Paths struct {
	mu    sync.Mutex
	cfg   PathConfig
	byIP  map[netip.Addr]*list.Element
	order list.List // of *Path, most recently touched first
}

// NewPaths returns a path memory; nil (remembering nothing) when Max or TTL
// is not positive.
func NewPaths(cfg PathConfig) *Paths {
	if cfg.Max <= 0 || cfg.TTL <= 0 {
		return nil
	}
	cfg.Threshold = max(cfg.Threshold, 1)
	return &Paths{cfg: cfg, byIP: make(map[netip.Addr]*list.Element)}
}

// get returns addr's record, made (evicting the oldest) if missing or
// expired at now, moved to the front.
func (p *Paths) get(addr netip.Addr, now time.Time) *Path {
	if el, ok := p.byIP[addr]; ok {
		r := el.Value.(*Path)
		if !p.expired(r, now) {
			p.order.MoveToFront(el)
			return r
		}
		delete(p.byIP, addr)
		p.order.Remove(el)
	}
	for p.order.Len() >= p.cfg.Max {
		old := p.order.Back()
		delete(p.byIP, old.Value.(*Path).Addr)
		p.order.Remove(old)
	}
	r := &Path{Addr: addr}
	p.byIP[addr] = p.order.PushFront(r)
	return r
}

func (p *Paths) expired(r *Path, now time.Time) bool { return now.Sub(r.last) > p.cfg.TTL }

func norm(a netip.Addr) netip.Addr { return a.Unmap().WithZone("") }

// Fallback records a type-1 failure: a SYN fallback to addr answered
// without ENO, evidence saying what was seen.
func (p *Paths) Fallback(addr netip.Addr, now time.Time, evidence string) {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	r := p.get(norm(addr), now)
	r.SYNFallbacks++
	r.LastFallback, r.FallbackProof, r.last = now, evidence, now
}

// Failure records a type-2 failure towards addr and reports whether the
// path is (now) broken.
func (p *Paths) Failure(addr netip.Addr, now time.Time, evidence string) bool {
	if p == nil {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	r := p.get(norm(addr), now)
	r.Failures++
	if r.RecentFails == 0 || now.Sub(r.WindowStart) > p.cfg.Window {
		r.RecentFails, r.WindowStart = 0, now
	}
	r.RecentFails++
	r.LastFailure, r.FailureProof, r.last = now, evidence, now
	if r.RecentFails >= p.cfg.Threshold {
		r.BrokenUntil = now.Add(p.cfg.TTL)
	}
	return !r.BrokenUntil.IsZero() && now.Before(r.BrokenUntil)
}

// Broken reports whether encryption is known to fail on the path to addr
// at now, and the record that says so.
func (p *Paths) Broken(addr netip.Addr, now time.Time) (Path, bool) {
	if p == nil {
		return Path{}, false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	el, ok := p.byIP[norm(addr)]
	if !ok {
		return Path{}, false
	}
	r := el.Value.(*Path)
	if r.BrokenUntil.IsZero() || !now.Before(r.BrokenUntil) {
		return Path{}, false
	}
	return *r, true
}

// Snapshot lists the records not expired at now, most recently touched
// first.
func (p *Paths) Snapshot(now time.Time) []Path {
	if p == nil {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]Path, 0, p.order.Len())
	for el := p.order.Front(); el != nil; el = el.Next() {
		r := el.Value.(*Path)
		if !p.expired(r, now) {
			c := *r
			if !now.Before(c.BrokenUntil) {
				c.BrokenUntil = time.Time{}
			}
			out = append(out, c)
		}
	}
	return slices.Clip(out)
}

// BrokenCount is the number of paths marked broken at now.
func (p *Paths) BrokenCount(now time.Time) int {
	if p == nil {
		return 0
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for el := p.order.Front(); el != nil; el = el.Next() {
		if now.Before(el.Value.(*Path).BrokenUntil) {
			n++
		}
	}
	return n
}
