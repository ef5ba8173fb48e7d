// Scalar value syntaxes of the configuration file: byte sizes ("512KiB"),
// durations ("1h30m") and TCP port ranges ("6000-6010").

package config

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// ByteSize is a number of bytes. In YAML it is a plain integer or an integer
// with a binary unit: "512KiB", "64MiB", "1GiB".
type ByteSize int64

// Binary units of ByteSize, largest first (the order String tries them).
var byteUnits = []struct {
	name string
	size ByteSize
}{
	{"TiB", 1 << 40},
	{"GiB", 1 << 30},
	{"MiB", 1 << 20},
	{"KiB", 1 << 10},
	{"B", 1},
}

// Frequently used sizes.
const (
	KiB ByteSize = 1 << 10
	MiB ByteSize = 1 << 20
	GiB ByteSize = 1 << 30
	TiB ByteSize = 1 << 40
)

// String formats s with the largest unit that divides it exactly ("1GiB",
// "1536KiB", "1000"), which ParseByteSize reads back to the same value.
func (s ByteSize) String() string {
	if s == 0 {
		return "0"
	}
	for _, u := range byteUnits[:len(byteUnits)-1] {
		if s%u.size == 0 {
			return strconv.FormatInt(int64(s/u.size), 10) + u.name
		}
	}
	return strconv.FormatInt(int64(s), 10)
}

// ParseByteSize reads "123", "123B", "512KiB", "64MiB", "1GiB" or "2TiB".
// Decimal units (KB, MB) are refused: they are ambiguous in practice.
func ParseByteSize(text string) (ByteSize, error) {
	s := strings.TrimSpace(text)
	digits := 0
	for digits < len(s) && s[digits] >= '0' && s[digits] <= '9' {
		digits++
	}
	if digits == 0 {
		if strings.HasPrefix(s, "-") {
			return 0, fmt.Errorf("negative size %q", text)
		}
		return 0, fmt.Errorf("invalid size %q (want bytes or a number with KiB, MiB, GiB or TiB)", text)
	}
	n, err := strconv.ParseInt(s[:digits], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("size %q too large", text)
	}
	unit := strings.TrimSpace(s[digits:])
	if unit == "" {
		return ByteSize(n), nil
	}
	for _, u := range byteUnits {
		if unit == u.name {
			if n > int64(^uint64(0)>>1)/int64(u.size) {
				return 0, fmt.Errorf("size %q too large", text)
			}
			return ByteSize(n) * u.size, nil
		}
	}
	return 0, fmt.Errorf("unknown unit %q in size %q (want B, KiB, MiB, GiB or TiB)", unit, text)
}

// ParseDuration reads a Go duration ("90s", "1h30m", "0") and refuses
// negative values and numbers without a unit.
func ParseDuration(text string) (time.Duration, error) {
	s := strings.TrimSpace(text)
	if s != "0" && s != "" && strings.Trim(s, "0123456789") == "" {
		return 0, fmt.Errorf("duration %q has no unit (write e.g. \"%ss\")", text, s)
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("invalid duration %q (want e.g. \"30s\", \"10m\", \"1h30m\")", text)
	}
	if d < 0 {
		return 0, fmt.Errorf("negative duration %q", text)
	}
	return d, nil
}

// PortRange is an inclusive range of TCP ports, Lo <= Hi. In YAML it is a
// port number (22) or a string "lo-hi" ("6000-6010").
type PortRange struct {
	Lo, Hi uint16
}

// String formats r as "22" or "6000-6010".
func (r PortRange) String() string {
	if r.Lo == r.Hi {
		return strconv.Itoa(int(r.Lo))
	}
	return strconv.Itoa(int(r.Lo)) + "-" + strconv.Itoa(int(r.Hi))
}

// Contains reports whether port lies in r.
func (r PortRange) Contains(port uint16) bool { return r.Lo <= port && port <= r.Hi }

// ParsePortRange reads "22" or "6000-6010"; ports are 1..65535 and lo <= hi.
func ParsePortRange(text string) (PortRange, error) {
	s := strings.TrimSpace(text)
	if strings.HasPrefix(s, "-") {
		return PortRange{}, fmt.Errorf("port range %q: negative port", text)
	}
	loText, hiText, isRange := strings.Cut(s, "-")
	if !isRange {
		hiText = loText
	}
	lo, err := parsePort(loText)
	if err != nil {
		return PortRange{}, fmt.Errorf("port range %q: %w", text, err)
	}
	hi, err := parsePort(hiText)
	if err != nil {
		return PortRange{}, fmt.Errorf("port range %q: %w", text, err)
	}
	if lo > hi {
		return PortRange{}, fmt.Errorf("port range %q: %d > %d", text, lo, hi)
	}
	return PortRange{Lo: lo, Hi: hi}, nil
}

func parsePort(text string) (uint16, error) {
	s := strings.TrimSpace(text)
	n, err := strconv.Atoi(s)
	if err != nil || strings.HasPrefix(s, "+") {
		return 0, fmt.Errorf("%q is not a port number", s)
	}
	if n < 1 || n > 65535 {
		return 0, errors.New("port " + s + " out of range 1-65535")
	}
	return uint16(n), nil
}
