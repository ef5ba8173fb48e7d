package config

import (
	"strings"
	"testing"
)

func TestMemoryPlan(t *testing.T) {
	for _, c := range []struct {
		name, yaml        string
		live, limit, peak ByteSize
	}{
		// 16 MiB + 65536 × 2 KiB + 64 MiB + 4096 × 256 B = 209 MiB; + 1/4 = 261.25 -> 262 MiB
		{"defaults", "", 209 * MiB, 262 * MiB, 262 * MiB},
		// the 128 MB router of docs/deploy.md: 16 + 16 + 16 + 1 = 49 MiB; + 1/4 -> 62 MiB
		{"router128", "flows: {max: 8192, max_buffer_total: 16MiB}\n", 49 * MiB, 62 * MiB, 62 * MiB},
		{"no session cache", "flows: {max: 8192, max_buffer_total: 16MiB}\ntcpcrypt: {session_cache: {size: 0}}\n", 48 * MiB, 60 * MiB, 60 * MiB},
		{"explicit limit", "flows: {max: 8192, max_buffer_total: 16MiB}\nmemory: {limit: 100MiB}\n", 49 * MiB, 100 * MiB, 100 * MiB},
		// without a limit the heap may grow to live × (1 + GOGC/100)
		{"off", "flows: {max: 8192, max_buffer_total: 16MiB}\nmemory: {limit: off, gogc: 50}\n", 49 * MiB, 0, 74 * MiB},
	} {
		cfg, err := Parse([]byte(c.yaml), c.name)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		p := cfg.MemoryPlan()
		if p.Live != c.live || p.Limit != c.limit || p.Peak != c.peak {
			t.Errorf("%s: live %s limit %s peak %s, want %s %s %s", c.name, p.Live, p.Limit, p.Peak, c.live, c.limit, c.peak)
		}
	}
	// The plan grows with each input.
	base, _ := Parse([]byte("flows: {max: 1000}\n"), "a")
	more, _ := Parse([]byte("flows: {max: 2000}\n"), "b")
	if d := more.MemoryPlan().Live - base.MemoryPlan().Live; d != 1000*MemoryPerFlow {
		t.Errorf("1000 more flows add %s, want %s", d, 1000*MemoryPerFlow)
	}
}

func TestMemoryBadValues(t *testing.T) {
	for _, c := range []struct{ yaml, want string }{
		{"memory: {limit: lots}\n", `memory.limit: "lots" is not auto, off or a size`},
		{"memory: {limit: 1MiB}\n", "memory.limit: 1MiB out of range"},
		{"memory: {limit: 100MiB}\n", "memory.limit: 100MiB is less than the 209MiB the flow and buffer limits can hold"},
		{"memory: {gogc: 5}\n", "memory.gogc: 5 out of range [10, 1000]"},
		{"memory: {gogc: off}\n", "memory.gogc"},
	} {
		_, err := Parse([]byte(c.yaml), "m.yaml")
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: %v, want %q", c.yaml, err, c.want)
		}
	}
}
