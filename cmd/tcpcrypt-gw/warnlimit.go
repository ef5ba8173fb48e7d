package main

import (
	"log/slog"
	"sync"
	"time"
)

// The engine's warnings come one per connection (a SYN fallback, a
// suspected downgrade, a path where encryption fails), so whoever can drop
// ENO SYNs or ciphertext on the WAN could otherwise write a log line per
// connection they spoil, and fill a router's small log. Each kind of
// warning (its message) gets warnBurst lines per warnWindow; the rest are
// counted and said in one line when the next window opens. The counters
// in /api/stats and /metrics count every event.
const (
	warnBurst  = 10
	warnWindow = time.Minute
	// warnKinds bounds the messages tracked; the engine has a few fixed
	// ones, so more only come from a bug, and they share one window.
	warnKinds = 16
)

type warnLimiter struct {
	log   *slog.Logger
	burst int
	per   time.Duration
	now   func() time.Time

	mu    sync.Mutex
	kinds map[string]*warnCount // guarded by mu
}

type warnCount struct {
	start   time.Time // the window's start
	logged  int       // lines logged in this window
	dropped int       // warnings not logged in this window
}

func newWarnLimiter(log *slog.Logger, burst int, per time.Duration, now func() time.Time) *warnLimiter {
	return &warnLimiter{log: log, burst: burst, per: per, now: now, kinds: map[string]*warnCount{}}
}

// Warn logs msg unless its kind has used up this window's lines.
func (w *warnLimiter) Warn(msg string, args ...any) {
	t := w.now()
	w.mu.Lock()
	key := msg
	if _, ok := w.kinds[key]; !ok && len(w.kinds) >= warnKinds {
		key = "" // any further kind
	}
	c := w.kinds[key]
	if c == nil {
		c = &warnCount{start: t}
		w.kinds[key] = c
	}
	var missed int
	if t.Sub(c.start) >= w.per {
		missed = c.dropped
		*c = warnCount{start: t}
	}
	log := c.logged < w.burst
	if log {
		c.logged++
	} else {
		c.dropped++
	}
	first := c.dropped == 1
	until := c.start.Add(w.per)
	w.mu.Unlock()

	if missed > 0 {
		w.log.Warn("warnings not logged in the last window", "warning", msg, "not_logged", missed, "window", w.per.String())
	}
	if log {
		w.log.Warn(msg, args...)
	} else if first {
		w.log.Warn("more warnings like this one are counted, not logged, until the window ends (the counters in /metrics have every one)",
			"warning", msg, "per_window", w.burst, "until", until.UTC().Format(time.RFC3339))
	}
}
