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
		// 16 MiB + 65536 × 3200 B (200 MiB) + 2 × 64 MiB + 64 MiB / 8 + 4096 × 256 B = 353 MiB; + 1/4 = 441.25 -> 442 MiB
		{"defaults", "", 353 * MiB, 442 * MiB, 442 * MiB},
		// the 128 MB router of docs/deploy.md: 16 + 12.5 + 16 + 1 + 1 = 46.5 -> 47 MiB; + 1/4 = 58.75 -> 59 MiB
		{"router128", "flows: {max: 4096, max_buffer_total: 8MiB}\n", 47 * MiB, 59 * MiB, 59 * MiB},
		{"router256", "flows: {max: 8192, max_buffer_total: 16MiB}\n", 76 * MiB, 95 * MiB, 95 * MiB},
		{"no session cache", "flows: {max: 4096, max_buffer_total: 8MiB}\ntcpcrypt: {session_cache: {size: 0}}\n", 46 * MiB, 58 * MiB, 58 * MiB},
		{"explicit limit", "flows: {max: 4096, max_buffer_total: 8MiB}\nmemory: {limit: 100MiB}\n", 47 * MiB, 100 * MiB, 100 * MiB},
		// without a limit the heap may grow to live × (1 + GOGC/100)
		{"off", "flows: {max: 4096, max_buffer_total: 8MiB}\nmemory: {limit: off, gogc: 50}\n", 47 * MiB, 0, 71 * MiB},
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
	base, _ := Parse([]byte("flows: {max: 8192}\n"), "a")
	more, _ := Parse([]byte("flows: {max: 16384}\n"), "b") // 8192 × 3200 B = 25 MiB more
	if d := more.MemoryPlan().Live - base.MemoryPlan().Live; d != 25*MiB {
		t.Errorf("8192 more flows add %s, want 25MiB", d)
	}
	buf, _ := Parse([]byte("flows: {max: 8192, max_buffer_total: 128MiB}\n"), "c")
	if d := buf.MemoryPlan().Live - base.MemoryPlan().Live; d != 2*64*MiB+64*MiB/8 {
		t.Errorf("64 MiB more buffers add %s, want twice that and an eighth", d)
	}
}

func TestMemoryBadValues(t *testing.T) {
	for _, c := range []struct{ yaml, want string }{
		{"memory: {limit: lots}\n", `memory.limit: "lots" is not auto, off or a size`},
		{"memory: {limit: 1MiB}\n", "memory.limit: 1MiB out of range"},
		{"memory: {limit: 100MiB}\n", "memory.limit: 100MiB is less than the 353MiB the flow and buffer limits can hold"},
		{"memory: {gogc: 5}\n", "memory.gogc: 5 out of range [10, 1000]"},
		{"memory: {gogc: off}\n", "memory.gogc"},
	} {
		_, err := Parse([]byte(c.yaml), "m.yaml")
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: %v, want %q", c.yaml, err, c.want)
		}
	}
}
