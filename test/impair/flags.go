// The command-line form of a Config.
//
// Directions are declared with --dir NAME=PREFIX[,PREFIX...]. Every
// impairment flag takes either VALUE, which applies to every direction and
// the default, or NAME=VALUE, which applies to the direction NAME (or to
// "default", the packets of no direction). A scoped value wins over an
// unscoped one whatever their order; among equals the last wins. Examples:
//
//	--dir a2b=10.91.3.0/24,fd91:3::/64 --dir b2a=10.91.1.0/24,fd91:1::/64
//	--delay 30ms --jitter 5ms --loss a2b=1 --strip-eno a2b=syn
//	--corrupt-nth a2b=50 --corrupt-bad-checksum=a2b=true

package impair

import (
	"flag"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// Flags holds the impairer's flags of a flag.FlagSet until Config reads
// them.
type Flags struct {
	seed     uint64
	dirs     dirFlag
	settings []*settingFlag
}

type dirFlag []string

func (d *dirFlag) String() string     { return strings.Join(*d, " ") }
func (d *dirFlag) Set(s string) error { *d = append(*d, s); return nil }

// settingFlag collects the values of one impairment flag.
type settingFlag struct {
	name   string
	isBool bool
	apply  func(*Settings, string) error
	values []scoped
}

type scoped struct{ scope, value string }

func (f *settingFlag) String() string   { return "" }
func (f *settingFlag) IsBoolFlag() bool { return f.isBool }

func (f *settingFlag) Set(s string) error {
	v := scoped{value: s}
	if name, val, ok := strings.Cut(s, "="); ok {
		if !validName(name) {
			return fmt.Errorf("%q: want VALUE or DIRECTION=VALUE", s)
		}
		v = scoped{scope: name, value: val}
	}
	// Check the value now, so errors name the flag at once.
	if err := f.apply(&Settings{}, v.value); err != nil {
		return err
	}
	f.values = append(f.values, v)
	return nil
}

// BindFlags defines the impairer's flags on fs.
func BindFlags(fs *flag.FlagSet) *Flags {
	f := &Flags{}
	fs.Uint64Var(&f.seed, "seed", 1, "seed of every random decision")
	fs.Var(&f.dirs, "dir", "a direction: `NAME=PREFIX[,PREFIX...]` of destinations (repeatable)")
	def := func(name, usage string, isBool bool, apply func(*Settings, string) error) {
		sf := &settingFlag{name: name, isBool: isBool, apply: apply}
		f.settings = append(f.settings, sf)
		fs.Var(sf, name, usage+"; repeatable")
	}
	def("delay", "`[DIR=]DURATION` of delay of every packet (e.g. 30ms)", false, func(s *Settings, v string) (err error) {
		s.Delay, err = parseDuration(v)
		return err
	})
	def("jitter", "`[DIR=]DURATION` of uniform jitter around the delay (e.g. 5ms); it never reorders", false, func(s *Settings, v string) (err error) {
		s.Jitter, err = parseDuration(v)
		return err
	})
	def("loss", "`[DIR=]PERCENT` of packets dropped", false, func(s *Settings, v string) (err error) {
		s.LossPct, err = parsePercent(v)
		return err
	})
	def("dup", "`[DIR=]PERCENT` of packets duplicated", false, func(s *Settings, v string) (err error) {
		s.DupPct, err = parsePercent(v)
		return err
	})
	def("reorder", "`[DIR=]PERCENT` of packets held back by the reorder delay", false, func(s *Settings, v string) (err error) {
		s.ReorderPct, err = parsePercent(v)
		return err
	})
	def("reorder-delay", fmt.Sprintf("`[DIR=]DURATION` of extra delay of reordered packets (default %v)", DefaultReorderDelay), false, func(s *Settings, v string) (err error) {
		s.ReorderDelay, err = parseDuration(v)
		return err
	})
	def("corrupt", "`[DIR=]PERCENT` of TCP segments with payload that get one payload byte flipped", false, func(s *Settings, v string) (err error) {
		s.CorruptPct, err = parsePercent(v)
		return err
	})
	def("corrupt-nth", "corrupt exactly the `[DIR=]N`th TCP segment with payload (counting after loss)", false, func(s *Settings, v string) (err error) {
		s.CorruptNth, err = strconv.ParseUint(v, 10, 64)
		return err
	})
	def("corrupt-port", "count and corrupt only segments from or to this TCP `[DIR=]PORT`", false, func(s *Settings, v string) error {
		p, err := strconv.ParseUint(v, 10, 16)
		s.CorruptPort = uint16(p)
		return err
	})
	def("corrupt-bad-checksum", "leave the TCP checksum of corrupted segments wrong (line noise, not an attacker); scoped: =DIR=true", true, func(s *Settings, v string) (err error) {
		s.CorruptBadChecksum, err = strconv.ParseBool(v)
		return err
	})
	def("reseg", "`[DIR=]PERCENT` of TCP segments split into 2-4 segments", false, func(s *Settings, v string) (err error) {
		s.ResegmentPct, err = parsePercent(v)
		return err
	})
	def("clamp-mss", "lower the MSS option of SYN and SYN-ACK to `[DIR=]MSS`", false, func(s *Settings, v string) error {
		m, err := strconv.ParseUint(v, 10, 16)
		if err == nil && m == 0 {
			err = fmt.Errorf("MSS 0")
		}
		s.ClampMSS = uint16(m)
		return err
	})
	def("strip-eno", "replace the TCP-ENO option with NOPs in `[DIR=]WHICH`: syn, synack, both or none", false, func(s *Settings, v string) error {
		switch v {
		case "none":
			s.StripENO = StripNone
		case "syn":
			s.StripENO = StripSYN
		case "synack":
			s.StripENO = StripSYNACK
		case "both":
			s.StripENO = StripBoth
		default:
			return fmt.Errorf("%q: want syn, synack, both or none", v)
		}
		return nil
	})
	def("drop-syn-with-option", "drop SYN and SYN-ACK segments carrying the TCP option `[DIR=]KIND` (2-255)", false, func(s *Settings, v string) error {
		k, err := strconv.ParseUint(v, 10, 8)
		if err == nil && k < 2 {
			err = fmt.Errorf("option kind %d: want 2-255", k)
		}
		s.DropSYNWithOption = uint8(k)
		return err
	})
	def("forge-fin-after-bytes", "inject one bare FIN into the first flow that carries `[DIR=]BYTES` payload bytes", false, func(s *Settings, v string) (err error) {
		s.ForgeFINAfterBytes, err = strconv.ParseUint(v, 10, 64)
		return err
	})
	return f
}

// Config returns the configuration the parsed flags describe.
func (f *Flags) Config() (Config, error) {
	cfg := Config{Seed: f.seed}
	for _, d := range f.dirs {
		name, list, ok := strings.Cut(d, "=")
		if !ok {
			return Config{}, fmt.Errorf("impair: --dir %q: want NAME=PREFIX[,PREFIX...]", d)
		}
		dir := Direction{Name: name}
		for _, p := range strings.Split(list, ",") {
			pf, err := parsePrefix(strings.TrimSpace(p))
			if err != nil {
				return Config{}, fmt.Errorf("impair: --dir %q: %w", d, err)
			}
			dir.Prefixes = append(dir.Prefixes, pf)
		}
		cfg.Directions = append(cfg.Directions, dir)
	}
	target := func(scope string) (*Settings, bool) {
		if scope == DefaultName {
			return &cfg.Default, true
		}
		for i := range cfg.Directions {
			if cfg.Directions[i].Name == scope {
				return &cfg.Directions[i].Settings, true
			}
		}
		return nil, false
	}
	for _, sf := range f.settings {
		for _, v := range sf.values {
			if v.scope != "" {
				continue
			}
			for _, s := range append([]*Settings{&cfg.Default}, settingsOf(cfg.Directions)...) {
				if err := sf.apply(s, v.value); err != nil {
					return Config{}, fmt.Errorf("impair: --%s %q: %w", sf.name, v.value, err)
				}
			}
		}
		for _, v := range sf.values {
			if v.scope == "" {
				continue
			}
			s, ok := target(v.scope)
			if !ok {
				return Config{}, fmt.Errorf("impair: --%s %s=%s: no direction %q (define it with --dir)", sf.name, v.scope, v.value, v.scope)
			}
			if err := sf.apply(s, v.value); err != nil {
				return Config{}, fmt.Errorf("impair: --%s %s=%s: %w", sf.name, v.scope, v.value, err)
			}
		}
	}
	if err := cfg.Validate(); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

func settingsOf(dirs []Direction) []*Settings {
	out := make([]*Settings, len(dirs))
	for i := range dirs {
		out[i] = &dirs[i].Settings
	}
	return out
}

// parsePrefix accepts a prefix or a single address.
func parsePrefix(s string) (netip.Prefix, error) {
	if !strings.Contains(s, "/") {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return netip.Prefix{}, err
		}
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	return netip.ParsePrefix(s)
}

func parsePercent(s string) (float64, error) {
	v, err := strconv.ParseFloat(strings.TrimSuffix(s, "%"), 64)
	if err != nil {
		return 0, err
	}
	if !(v >= 0 && v <= 100) {
		return 0, fmt.Errorf("%v%%: want 0-100", v)
	}
	return v, nil
}

func parseDuration(s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, err
	}
	if d < 0 || d > maxDelay {
		return 0, fmt.Errorf("%v: want 0-%v", d, maxDelay)
	}
	return d, nil
}
