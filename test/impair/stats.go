// The impairer's counters: per direction, one atomic counter per event, so
// that a signal handler can print them while packets flow.

package impair

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync/atomic"
)

// Counter names one count of a direction.
type Counter int

const (
	Packets     Counter = iota // packets processed
	Sent                       // packets emitted (pieces, duplicates and forged FINs included)
	Lost                       // packets dropped by random loss
	Duplicated                 // packets emitted twice
	Reordered                  // packets held back by the reorder delay
	Corrupted                  // segments with a payload byte flipped
	Resegmented                // segments split
	Pieces                     // segments produced by splitting
	MSSClamped                 // SYN or SYN-ACK segments whose MSS option was lowered
	ENOStripped                // SYN or SYN-ACK segments whose TCP-ENO option was replaced with NOPs
	SYNDropped                 // SYN or SYN-ACK segments dropped for carrying the configured option
	FINForged                  // bare FINs injected
	QueueFull                  // packets the EmitFunc refused (the scheduler's queue was full)
	NumCounters
)

var counterNames = [NumCounters]string{
	"packets", "sent", "lost", "duplicated", "reordered", "corrupted",
	"resegmented", "pieces", "mss_clamped", "eno_stripped", "syn_dropped",
	"fin_forged", "queue_full",
}

func (c Counter) String() string {
	if c < 0 || c >= NumCounters {
		return fmt.Sprintf("Counter(%d)", int(c))
	}
	return counterNames[c]
}

type counters [NumCounters]atomic.Uint64

func (c *counters) add(k Counter) { c[k].Add(1) }

// DirStats are the counts of one direction.
type DirStats struct {
	Name   string
	Counts [NumCounters]uint64
}

// Stats returns the counts of every direction, the default last.
func (im *Impairer) Stats() []DirStats {
	out := make([]DirStats, len(im.dirs))
	for i := range im.dirs {
		out[i].Name = im.dirs[i].name
		for k := range out[i].Counts {
			out[i].Counts[k] = im.dirs[i].counters[k].Load()
		}
	}
	return out
}

// String formats the counts as one line: "dir=NAME packets=N sent=N ...".
func (s DirStats) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "dir=%s", s.Name)
	for k, v := range s.Counts {
		fmt.Fprintf(&b, " %s=%d", Counter(k), v)
	}
	return b.String()
}

// WriteStats writes one line per direction, each prefixed with "stats ".
func WriteStats(w io.Writer, stats []DirStats) error {
	for _, s := range stats {
		if _, err := fmt.Fprintf(w, "stats %s\n", s); err != nil {
			return err
		}
	}
	return nil
}

// ParseStatsLine parses a line written by WriteStats, for tools and tests
// that read the command's output.
func ParseStatsLine(line string) (DirStats, error) {
	var s DirStats
	rest, ok := strings.CutPrefix(strings.TrimSpace(line), "stats ")
	if !ok {
		return s, fmt.Errorf("impair: not a stats line: %q", line)
	}
	fields := strings.Fields(rest)
	if len(fields) != 1+int(NumCounters) {
		return s, fmt.Errorf("impair: stats line has %d fields, want %d", len(fields), 1+NumCounters)
	}
	name, ok := strings.CutPrefix(fields[0], "dir=")
	if !ok {
		return s, fmt.Errorf("impair: stats line does not start with dir=: %q", line)
	}
	s.Name = name
	for k := range s.Counts {
		want := Counter(k).String() + "="
		v, ok := strings.CutPrefix(fields[1+k], want)
		if !ok {
			return s, fmt.Errorf("impair: stats field %q does not start with %s", fields[1+k], want)
		}
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return s, fmt.Errorf("impair: stats field %q: %w", fields[1+k], err)
		}
		s.Counts[k] = n
	}
	return s, nil
}
