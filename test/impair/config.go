// What the impairer does, per direction.
//
// A direction is a named set of destination prefixes: the TUN device does not
// say on which interface a packet entered the router, but its destination
// says where it goes (a2b = "towards b's prefixes"). A packet whose
// destination matches no direction gets the Default settings. The first
// direction with a matching prefix wins.

package impair

import (
	"fmt"
	"net/netip"
	"time"
)

// StripENO selects the segments whose TCP-ENO option is stripped.
type StripENO uint8

const (
	StripNone   StripENO = 0
	StripSYN    StripENO = 1 << 0 // SYN without ACK
	StripSYNACK StripENO = 1 << 1 // SYN-ACK
	StripBoth            = StripSYN | StripSYNACK
)

func (s StripENO) String() string {
	switch s {
	case StripNone:
		return "none"
	case StripSYN:
		return "syn"
	case StripSYNACK:
		return "synack"
	case StripBoth:
		return "both"
	}
	return fmt.Sprintf("StripENO(%d)", uint8(s))
}

// Settings are the impairments of one direction. The zero value changes
// nothing and delays nothing.
type Settings struct {
	// Delay is added to every packet, with a uniform jitter in
	// [-Jitter, +Jitter]. Jitter never reorders packets of one direction:
	// a packet is never due before the one that came before it.
	Delay, Jitter time.Duration
	// LossPct of packets are dropped.
	LossPct float64
	// DupPct of packets are sent twice.
	DupPct float64
	// ReorderPct of packets are held back by ReorderDelay beyond their
	// due time, so that the packets after them overtake them.
	ReorderPct   float64
	ReorderDelay time.Duration

	// CorruptPct of TCP segments with payload get one payload byte
	// flipped; independently, with CorruptNth > 0, exactly the Nth such
	// segment of the direction is corrupted. CorruptPort > 0 counts only
	// segments from or to that port. The TCP checksum is recomputed (an
	// attacker, not line noise) unless CorruptBadChecksum.
	CorruptPct         float64
	CorruptNth         uint64
	CorruptPort        uint16
	CorruptBadChecksum bool

	// ResegmentPct of TCP segments with at least 2 payload bytes are split
	// into 2 to 4 segments at random cut points.
	ResegmentPct float64

	// ClampMSS > 0 lowers the MSS option of SYN and SYN-ACK segments to it.
	ClampMSS uint16
	// StripENO replaces the TCP-ENO option (RFC 8547 §4.1) with NOPs.
	StripENO StripENO
	// DropSYNWithOption > 0 drops every segment with SYN set (SYN or
	// SYN-ACK) carrying an option of that kind, like a middlebox that
	// refuses unknown options.
	DropSYNWithOption uint8
	// ForgeFINAfterBytes > 0 injects one bare FIN, once per direction, into
	// the first flow that carries that many payload bytes: a copy of the
	// header of the segment that reached the count, with FIN set, no
	// payload, and the sequence number at the end of that segment.
	ForgeFINAfterBytes uint64
}

// DefaultReorderDelay is the extra delay of a reordered packet when none is
// configured.
const DefaultReorderDelay = 10 * time.Millisecond

// Direction is a named set of destination prefixes and their impairments.
type Direction struct {
	Name     string
	Prefixes []netip.Prefix
	Settings Settings
}

// Config is everything the impairer needs. Decisions are drawn from pseudo
// random streams seeded from Seed, one per direction, so the same packets in
// the same order get the same treatment.
type Config struct {
	Seed       uint64
	Directions []Direction
	Default    Settings
}

// Limits of a configuration.
const (
	MaxDirections = 16
	MaxPrefixes   = 64 // per direction
	// DefaultName is the name of the settings for packets of no direction.
	DefaultName = "default"
	maxForgeFIN = 1<<31 - 1 // sequence space offsets compare safely below 2^31 (RFC 9293 §3.4)
	maxDelay    = time.Minute
)

// Validate checks the configuration.
func (c *Config) Validate() error {
	if len(c.Directions) > MaxDirections {
		return fmt.Errorf("impair: %d directions, at most %d", len(c.Directions), MaxDirections)
	}
	seen := map[string]bool{DefaultName: true}
	for i := range c.Directions {
		d := &c.Directions[i]
		if !validName(d.Name) {
			return fmt.Errorf("impair: direction name %q: want 1-32 letters, digits, '-' or '_'", d.Name)
		}
		if seen[d.Name] {
			return fmt.Errorf("impair: direction %q defined twice (or named %q)", d.Name, DefaultName)
		}
		seen[d.Name] = true
		if len(d.Prefixes) == 0 || len(d.Prefixes) > MaxPrefixes {
			return fmt.Errorf("impair: direction %q: %d prefixes, want 1-%d", d.Name, len(d.Prefixes), MaxPrefixes)
		}
		for _, p := range d.Prefixes {
			if !p.IsValid() {
				return fmt.Errorf("impair: direction %q: invalid prefix %v", d.Name, p)
			}
		}
		if err := d.Settings.validate(); err != nil {
			return fmt.Errorf("impair: direction %q: %w", d.Name, err)
		}
	}
	if err := c.Default.validate(); err != nil {
		return fmt.Errorf("impair: %s: %w", DefaultName, err)
	}
	return nil
}

func validName(s string) bool {
	if len(s) == 0 || len(s) > 32 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return false
		}
	}
	return true
}

func (s *Settings) validate() error {
	for _, p := range []struct {
		name string
		v    float64
	}{{"loss", s.LossPct}, {"dup", s.DupPct}, {"reorder", s.ReorderPct}, {"corrupt", s.CorruptPct}, {"reseg", s.ResegmentPct}} {
		if !(p.v >= 0 && p.v <= 100) { // also refuses NaN
			return fmt.Errorf("%s %v%%: want 0-100", p.name, p.v)
		}
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"delay", s.Delay}, {"jitter", s.Jitter}, {"reorder delay", s.ReorderDelay}} {
		if d.v < 0 || d.v > maxDelay {
			return fmt.Errorf("%s %v: want 0-%v", d.name, d.v, maxDelay)
		}
	}
	if s.StripENO > StripBoth {
		return fmt.Errorf("strip-eno %v: want none, syn, synack or both", s.StripENO)
	}
	if s.DropSYNWithOption == optEOL || s.DropSYNWithOption == optNOP {
		if s.DropSYNWithOption != 0 {
			return fmt.Errorf("drop-syn-with-option %d: the NOP filler is not an option to drop on", s.DropSYNWithOption)
		}
	}
	if s.ForgeFINAfterBytes > maxForgeFIN {
		return fmt.Errorf("forge-fin-after-bytes %d: at most %d", s.ForgeFINAfterBytes, maxForgeFIN)
	}
	return nil
}
