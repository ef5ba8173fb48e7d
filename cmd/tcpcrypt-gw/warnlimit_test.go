package main

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// TestWarnLimiter: per kind of warning, burst lines per window are logged
// with their attributes, one line says that more are counted, not logged,
// and the next window's first warning says how many were not logged.
// Another kind has its own window.
func TestWarnLimiter(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	w := newWarnLimiter(log, 3, time.Minute, func() time.Time { return now })

	for i := range 10 {
		w.Warn("SYN fallback", "n", i)
	}
	w.Warn("downgrade suspected", "n", 100)
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 5 {
		t.Fatalf("%d lines, want 3 fallbacks, the note and 1 downgrade:\n%s", len(lines), buf.String())
	}
	for i := range 3 {
		if !strings.Contains(lines[i], `msg="SYN fallback" n=`+fmt.Sprint(i)) {
			t.Errorf("line %d: %s", i, lines[i])
		}
	}
	if !strings.Contains(lines[3], "counted, not logged") || !strings.Contains(lines[3], `warning="SYN fallback"`) || !strings.Contains(lines[3], "until=2026-12-07T12:01:00Z") {
		t.Errorf("no note that more are not logged: %s", lines[3])
	}
	if !strings.Contains(lines[4], `msg="downgrade suspected" n=100`) {
		t.Errorf("another kind was limited with the first: %s", lines[4])
	}

	buf.Reset()
	now = now.Add(time.Minute)
	w.Warn("SYN fallback", "n", 10)
	lines = strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], "not_logged=7") || !strings.Contains(lines[1], `msg="SYN fallback" n=10`) {
		t.Fatalf("the next window: want the count of 7 not logged, then the warning:\n%s", buf.String())
	}
}

// TestWarnLimiterKindsBounded: messages beyond warnKinds share one window,
// so the limiter's memory is bounded whatever the messages.
func TestWarnLimiterKindsBounded(t *testing.T) {
	var buf bytes.Buffer
	w := newWarnLimiter(slog.New(slog.NewTextHandler(&buf, nil)), 1, time.Minute, time.Now)
	for i := range 1000 {
		w.Warn(fmt.Sprint("kind ", i))
	}
	if len(w.kinds) > warnKinds+1 {
		t.Fatalf("%d kinds tracked, want at most %d", len(w.kinds), warnKinds+1)
	}
	if n := strings.Count(buf.String(), "\n"); n != warnKinds+2 {
		t.Fatalf("%d lines, want %d (one per tracked kind, one for the rest, one note)", n, warnKinds+2)
	}
}
