package impair

import (
	"flag"
	"io"
	"strings"
	"testing"
	"time"
)

func parseFlags(args ...string) (Config, error) {
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	f := BindFlags(fs)
	if err := fs.Parse(args); err != nil {
		return Config{}, err
	}
	return f.Config()
}

func TestFlags(t *testing.T) {
	cfg, err := parseFlags(
		"--seed", "9",
		"--dir", "a2b=10.91.3.0/24, fd91:3::/64", "--dir", "b2a=10.91.1.5",
		"--loss", "a2b=2.5", "--loss", "1%",
		"--delay", "30ms", "--jitter", "b2a=5ms",
		"--strip-eno", "a2b=syn", "--strip-eno", "default=both",
		"--corrupt-nth", "a2b=50", "--corrupt-bad-checksum=a2b=true",
		"--reseg", "100", "--clamp-mss", "b2a=1200",
		"--drop-syn-with-option", "69", "--forge-fin-after-bytes", "a2b=4096",
	)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Seed != 9 || len(cfg.Directions) != 2 {
		t.Fatalf("config %+v", cfg)
	}
	a, b, d := cfg.Directions[0].Settings, cfg.Directions[1].Settings, cfg.Default
	if cfg.Directions[1].Prefixes[0].String() != "10.91.1.5/32" || cfg.Directions[0].Prefixes[1].String() != "fd91:3::/64" {
		t.Errorf("prefixes %v %v", cfg.Directions[0].Prefixes, cfg.Directions[1].Prefixes)
	}
	if a.LossPct != 2.5 || b.LossPct != 1 || d.LossPct != 1 {
		t.Errorf("loss %v %v %v: the scoped value must win whatever the order", a.LossPct, b.LossPct, d.LossPct)
	}
	if a.Delay != 30*time.Millisecond || d.Delay != 30*time.Millisecond || b.Jitter != 5*time.Millisecond || a.Jitter != 0 {
		t.Errorf("delay/jitter %+v %+v", a, b)
	}
	if a.StripENO != StripSYN || b.StripENO != StripNone || d.StripENO != StripBoth {
		t.Errorf("strip-eno %v %v %v", a.StripENO, b.StripENO, d.StripENO)
	}
	if a.CorruptNth != 50 || !a.CorruptBadChecksum || b.CorruptBadChecksum {
		t.Errorf("corrupt %+v", a)
	}
	if a.ResegmentPct != 100 || b.ClampMSS != 1200 || a.ClampMSS != 0 || b.DropSYNWithOption != 69 || a.ForgeFINAfterBytes != 4096 || b.ForgeFINAfterBytes != 0 {
		t.Errorf("settings %+v %+v", a, b)
	}
}

func TestFlagErrors(t *testing.T) {
	for _, args := range [][]string{
		{"--loss", "101"},
		{"--loss", "-1"},
		{"--loss", "NaN"},
		{"--delay", "-5ms"},
		{"--delay", "soon"},
		{"--strip-eno", "ack"},
		{"--drop-syn-with-option", "1"},
		{"--clamp-mss", "0"},
		{"--loss", "c2d=1"},          // undefined direction
		{"--dir", "a2b"},             // no prefixes
		{"--dir", "a2b=10.0.0.0/33"}, // bad prefix
		{"--dir", "a2b=10.0.0.0/8", "--dir", "a2b=10.0.0.0/8"}, // twice
		{"--dir", "default=10.0.0.0/8"},
		{"--forge-fin-after-bytes", "4294967296"},
	} {
		if _, err := parseFlags(args...); err == nil {
			t.Errorf("%q accepted", strings.Join(args, " "))
		}
	}
}

func TestStatsRoundTrip(t *testing.T) {
	im := newImpairer(t, testConfig(Settings{LossPct: 50}, Settings{}, Settings{}))
	var c collector
	for i := range 100 {
		im.Process(seg{srcPort: 1, dstPort: 2, seq: uint32(i)}.build(t), t0, c.emit)
	}
	var b strings.Builder
	if err := WriteStats(&b, im.Stats()); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("%d lines:\n%s", len(lines), b.String())
	}
	s, err := ParseStatsLine(lines[0])
	if err != nil {
		t.Fatal(err)
	}
	if s != im.Stats()[0] || s.Counts[Packets] != 100 || s.Counts[Lost] == 0 {
		t.Fatalf("parsed %v from %q", s, lines[0])
	}
	if _, err := ParseStatsLine("stats dir=x packets=1"); err == nil {
		t.Fatalf("short line accepted")
	}
}
