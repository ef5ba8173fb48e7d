package main

import (
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"

	"tcpcrypt-gw/config"
	"tcpcrypt-gw/gateway/engine"
)

func TestDecideMemory(t *testing.T) {
	plan := config.MemoryPlan{Live: 49 * config.MiB, Limit: 62 * config.MiB, GOGC: 100, Peak: 62 * config.MiB}

	s := decideMemory(plan, 512*config.MiB, 0, "", "")
	if s.limit != 62*config.MiB || s.gogc != 100 || len(s.warnings) != 0 {
		t.Errorf("plain: %+v", s)
	}
	// A 96 MB machine cannot give 62 MiB to the gateway: half of it, warned.
	s = decideMemory(plan, 96*config.MiB, 0, "", "")
	if s.limit != 48*config.MiB || len(s.warnings) != 1 || !strings.Contains(s.warnings[0], "flows.max") {
		t.Errorf("capped: %+v", s)
	}
	// A service cgroup of 60 MiB: nine tenths of it (54 MiB, rounded down
	// to the cgroup's granularity of tenths).
	s = decideMemory(plan, 512*config.MiB, 60*config.MiB, "", "")
	if s.limit != 60*config.MiB/10*9 || len(s.warnings) != 1 || !strings.Contains(s.warnings[0], "cgroup") {
		t.Errorf("cgroup: %+v", s)
	}
	// Both caps: the smaller wins.
	if s = decideMemory(plan, 64*config.MiB, 60*config.MiB, "", ""); s.limit != 32*config.MiB || len(s.warnings) != 1 {
		t.Errorf("both caps: %+v", s)
	}
	// Unknown machine memory: the plan as is.
	if s = decideMemory(plan, 0, 0, "", ""); s.limit != 62*config.MiB {
		t.Errorf("unknown memory: %+v", s)
	}
	// The environment wins, each variable on its own.
	s = decideMemory(plan, 96*config.MiB, 0, "80MiB", "")
	if s.limit != 0 || s.gogc != 100 || len(s.warnings) != 1 || !strings.Contains(s.warnings[0], "GOMEMLIMIT=80MiB") {
		t.Errorf("env GOMEMLIMIT: %+v", s)
	}
	s = decideMemory(plan, 512*config.MiB, 0, "", "200")
	if s.limit != 62*config.MiB || s.gogc != 0 || len(s.warnings) != 1 || !strings.Contains(s.warnings[0], "GOGC=200") {
		t.Errorf("env GOGC: %+v", s)
	}
	// memory.limit: off
	if s = decideMemory(config.MemoryPlan{Live: 49 * config.MiB, GOGC: 50}, 96*config.MiB, 0, "", ""); s.limit != 0 || s.gogc != 50 {
		t.Errorf("off: %+v", s)
	}
}

func TestParseMemTotal(t *testing.T) {
	in := "MemFree:          10000 kB\nMemTotal:       124116 kB\nBuffers: 1 kB\n"
	if got := parseMemTotal([]byte(in)); got != 124116*config.KiB {
		t.Errorf("got %d", got)
	}
	for _, bad := range []string{"", "MemTotal: x kB\n", "MemTotal: 100 MB\n", "MemTotal: -5 kB\n"} {
		if got := parseMemTotal([]byte(bad)); got != 0 {
			t.Errorf("%q: %d", bad, got)
		}
	}
	if memTotal() <= 0 {
		t.Error("MemTotal of this machine not read")
	}
}

// TestCheckConfigPrintsMemory runs the built binary's check-config on the
// 128 MB router settings and checks the figures it prints.
func TestCheckConfigPrintsMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "tcpcrypt-gw")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	f := filepath.Join(dir, "c.yaml")
	os.WriteFile(f, []byte("flows:\n  max: 4096\n  max_buffer_total: 8MiB\n"), 0o600)
	out, err := exec.Command(bin, "check-config", "-no-interfaces", "-c", f).CombinedOutput()
	if err != nil {
		t.Fatalf("check-config: %v\n%s", err, out)
	}
	want := "memory: live at the configured maxima 47MiB, memory limit 59MiB, GOGC 100, expected peak 59MiB\n"
	if !strings.Contains(string(out), want) {
		t.Errorf("output %q lacks %q", out, want)
	}
}

// TestApplyMemorySetsRuntime checks that the runtime gets the limit and
// GOGC (restored afterwards).
func TestApplyMemorySetsRuntime(t *testing.T) {
	t.Setenv("GOMEMLIMIT", "")
	t.Setenv("GOGC", "")
	oldLimit := debug.SetMemoryLimit(-1)
	oldGOGC := debug.SetGCPercent(-1)
	debug.SetGCPercent(oldGOGC)
	t.Cleanup(func() { debug.SetMemoryLimit(oldLimit); debug.SetGCPercent(oldGOGC) })

	cfg, err := config.Parse([]byte("flows: {max: 1000, max_buffer_total: 1MiB}\nmemory: {gogc: 77}\n"), "m.yaml")
	if err != nil {
		t.Fatal(err)
	}
	s := applyMemory(cfg, slog.New(slog.DiscardHandler))
	// 16 MiB + 1000 × 3200 B + 2 × 1 MiB + 4096 × 256 B, + 1/4, in MiB
	if want := cfg.MemoryPlan().Limit; s.limit != want || debug.SetMemoryLimit(-1) != int64(want) {
		t.Errorf("limit %d, runtime %d, want %d", s.limit, debug.SetMemoryLimit(-1), want)
	}
	if got := debug.SetGCPercent(77); got != 77 {
		t.Errorf("GOGC %d, want 77", got)
	}
}

// TestMemoryModelMatchesEngine keeps the per-flow figure of the memory
// limit (config) equal to the engine's measured one, which check-config's
// worst case uses too.
func TestMemoryModelMatchesEngine(t *testing.T) {
	if config.MemoryPerFlow != engine.ActiveFlowBytes {
		t.Errorf("config.MemoryPerFlow %d, engine.ActiveFlowBytes %d", config.MemoryPerFlow, engine.ActiveFlowBytes)
	}
	if config.MemoryParkedShare != engine.ParkShare {
		t.Errorf("config.MemoryParkedShare %d, engine.ParkShare %d", config.MemoryParkedShare, engine.ParkShare)
	}
}
