package config

import (
	"strings"
	"testing"
	"time"
)

func TestParseByteSize(t *testing.T) {
	good := map[string]ByteSize{
		"0": 0, "1": 1, "1000": 1000, "7B": 7, "512KiB": 512 << 10, "64MiB": 64 << 20,
		"1GiB": 1 << 30, "2TiB": 2 << 40, " 3 MiB ": 3 << 20, "8388607TiB": 8388607 << 40,
	}
	for in, want := range good {
		got, err := ParseByteSize(in)
		if err != nil || got != want {
			t.Errorf("ParseByteSize(%q) = %d, %v; want %d", in, got, err, want)
		}
		// String reads back to the same value.
		if back, err := ParseByteSize(got.String()); err != nil || back != got {
			t.Errorf("round trip of %d via %q: %d, %v", got, got.String(), back, err)
		}
	}
	bad := map[string]string{
		"": "invalid size", "KiB": "invalid size", "-1": "negative", "1KB": `unknown unit "KB"`,
		"1.5GiB": `unknown unit ".5GiB"`, "8388608TiB": "too large", "99999999999999999999": "too large", "1 kib": "unknown unit",
	}
	for in, want := range bad {
		if _, err := ParseByteSize(in); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseByteSize(%q) error %v, want %q", in, err, want)
		}
	}
	if s := (1536 * KiB).String(); s != "1536KiB" {
		t.Errorf("String = %q", s)
	}
}

func TestParseDuration(t *testing.T) {
	good := map[string]time.Duration{"0": 0, "0s": 0, "90s": 90 * time.Second, "1h30m": 90 * time.Minute, "250ms": 250 * time.Millisecond}
	for in, want := range good {
		if got, err := ParseDuration(in); err != nil || got != want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	bad := map[string]string{"30": "no unit", "-1s": "negative", "1d": "invalid duration", "": "invalid duration", "soon": "invalid duration"}
	for in, want := range bad {
		if _, err := ParseDuration(in); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseDuration(%q) error %v, want %q", in, err, want)
		}
	}
}

func TestParsePortRange(t *testing.T) {
	good := map[string]PortRange{"22": {22, 22}, "1-65535": {1, 65535}, " 6000 - 6010 ": {6000, 6010}, "80-80": {80, 80}}
	for in, want := range good {
		got, err := ParsePortRange(in)
		if err != nil || got != want {
			t.Errorf("ParsePortRange(%q) = %v, %v; want %v", in, got, err, want)
		}
		if back, err := ParsePortRange(got.String()); err != nil || back != got {
			t.Errorf("round trip of %v: %v, %v", got, back, err)
		}
	}
	bad := []string{"", "0", "65536", "-5", "5-", "-", "10-5", "a-b", "1-2-3", "+5"}
	for _, in := range bad {
		if r, err := ParsePortRange(in); err == nil {
			t.Errorf("ParsePortRange(%q) = %v, want an error", in, r)
		}
	}
	r := PortRange{6000, 6010}
	if !r.Contains(6000) || !r.Contains(6010) || r.Contains(5999) || r.Contains(6011) {
		t.Error("Contains")
	}
}
