// TCP options (RFC 9293 §3.2): the engine reads MSS, window scale,
// SACK-permitted, timestamps, SACK blocks and TCP-ENO, and rewrites the
// options of the packets it forwards through an OptionWriter that keeps
// every other option as it was.

package packet

import (
	"encoding/binary"
	"errors"
)

// Option kinds.
const (
	OptEOL       = 0
	OptNOP       = 1
	OptMSS       = 2
	OptWScale    = 3
	OptSACKPerm  = 4
	OptSACK      = 5
	OptTimestamp = 8
	OptMPTCP     = 30
	OptFastOpen  = 34
	OptENO       = 69  // RFC 8547 §4.1
	OptExp       = 253 // RFC 6994 experimental option with a 16-bit ExID
	expIDENO     = 0x454E
)

var ErrBadOptions = errors.New("packet: malformed TCP options")

// SACKBlock is one SACK block [Left, Right) (RFC 2018).
type SACKBlock struct{ Left, Right uint32 }

// Options is what the engine needs to know of a segment's options.
type Options struct {
	MSS       uint16
	HasMSS    bool
	WScale    uint8
	HasWScale bool
	SACKPerm  bool
	HasTS     bool
	TSval     uint32
	TSecr     uint32
	NSACK     int
	SACK      [4]SACKBlock
	ENO       []byte // the first ENO option (kind, length, contents) or nil
	ENOCount  int    // how many ENO options: more than one in a SYN means no ENO (RFC 8547 §4.1)
	LegacyENO bool   // option 253 with ExID 0x454E: a pre-RFC ENO implementation (RFC 8547 §11)
	FastOpen  bool   // a TCP Fast Open option (RFC 7413), empty or not
	TFOCookie bool   // the Fast Open option carries a cookie (is non-empty)
	MPTCP     bool
}

// ParseOptions reads a TCP options area. It does not allocate; ENO aliases opts.
func ParseOptions(opts []byte) (Options, error) {
	var o Options
	for i := 0; i < len(opts); {
		kind := opts[i]
		if kind == OptEOL {
			break
		}
		if kind == OptNOP {
			i++
			continue
		}
		if i+1 >= len(opts) {
			return o, ErrBadOptions
		}
		l := int(opts[i+1])
		if l < 2 || i+l > len(opts) {
			return o, ErrBadOptions
		}
		v := opts[i+2 : i+l]
		switch kind {
		case OptMSS:
			if len(v) == 2 {
				o.MSS, o.HasMSS = binary.BigEndian.Uint16(v), true
			}
		case OptWScale:
			if len(v) == 1 {
				o.WScale, o.HasWScale = v[0], true
			}
		case OptSACKPerm:
			o.SACKPerm = true
		case OptTimestamp:
			if len(v) == 8 {
				o.HasTS = true
				o.TSval = binary.BigEndian.Uint32(v[0:4])
				o.TSecr = binary.BigEndian.Uint32(v[4:8])
			}
		case OptSACK:
			for j := 0; j+8 <= len(v) && o.NSACK < len(o.SACK); j += 8 {
				o.SACK[o.NSACK] = SACKBlock{binary.BigEndian.Uint32(v[j:]), binary.BigEndian.Uint32(v[j+4:])}
				o.NSACK++
			}
		case OptENO:
			if o.ENO == nil {
				o.ENO = opts[i : i+l]
			}
			o.ENOCount++
		case OptFastOpen:
			o.FastOpen = true
			o.TFOCookie = o.TFOCookie || l > 2
		case OptMPTCP:
			o.MPTCP = true
		case OptExp:
			if len(v) >= 2 && binary.BigEndian.Uint16(v) == expIDENO {
				o.LegacyENO = true
			}
		}
		i += l
	}
	return o, nil
}

// OptionWriter builds a new options area into a fixed array (no allocation).
type OptionWriter struct {
	buf [MaxTCPOption + 8]byte
	n   int
}

// Reset empties the writer.
func (w *OptionWriter) Reset() { w.n = 0 }

// Room is how many bytes can still be added within the 40-byte limit.
func (w *OptionWriter) Room() int { return MaxTCPOption - w.n }

// Raw appends an option as given; false if it does not fit.
func (w *OptionWriter) Raw(opt []byte) bool {
	if w.n+len(opt) > MaxTCPOption {
		return false
	}
	w.n += copy(w.buf[w.n:], opt)
	return true
}

// CopyExcept appends every option of opts except NOPs and those whose kind
// is in drop, and rewrites MSS to mss when mss != 0. Options that no longer
// fit are left out. NOPs only align what follows them (RFC 9293 §3.1), and
// a SYN's options are read once: packing them leaves room for ENO, whose
// tcpcrypt resumption suboptions need up to 21 of the 40 bytes
// (RFC 8548 §3.5).
func (w *OptionWriter) CopyExcept(opts []byte, mss uint16, drop ...byte) {
	for i := 0; i < len(opts); {
		kind := opts[i]
		if kind == OptEOL {
			return
		}
		if kind == OptNOP {
			i++
			continue
		}
		if i+1 >= len(opts) {
			return
		}
		l := int(opts[i+1])
		if l < 2 || i+l > len(opts) {
			return
		}
		skip := false
		for _, d := range drop {
			if kind == d {
				skip = true
			}
		}
		if !skip && w.Raw(opts[i:i+l]) && kind == OptMSS && l == 4 && mss != 0 {
			binary.BigEndian.PutUint16(w.buf[w.n-2:], mss)
		}
		i += l
	}
}

// Timestamp appends a timestamp option (NOP, NOP, TS) if it fits.
func (w *OptionWriter) Timestamp(val, ecr uint32) bool {
	if w.Room() < 12 {
		return false
	}
	b := w.buf[w.n:]
	b[0], b[1], b[2], b[3] = OptNOP, OptNOP, OptTimestamp, 10
	binary.BigEndian.PutUint32(b[4:], val)
	binary.BigEndian.PutUint32(b[8:], ecr)
	w.n += 12
	return true
}

// Len is the length of the options written so far (before padding).
func (w *OptionWriter) Len() int { return w.n }

// SACK appends as many of the blocks as fit in the 40-byte option space and
// in limit more bytes (NOP, NOP, SACK).
func (w *OptionWriter) SACK(blocks []SACKBlock, limit int) {
	k := min(len(blocks), (min(w.Room(), limit)-4)/8)
	if k <= 0 {
		return
	}
	b := w.buf[w.n:]
	b[0], b[1], b[2], b[3] = OptNOP, OptNOP, OptSACK, uint8(2+8*k)
	for i := 0; i < k; i++ {
		binary.BigEndian.PutUint32(b[4+8*i:], blocks[i].Left)
		binary.BigEndian.PutUint32(b[8+8*i:], blocks[i].Right)
	}
	w.n += 4 + 8*k
}

// Bytes returns the options padded with EOL to a multiple of 4.
func (w *OptionWriter) Bytes() []byte {
	for w.n%4 != 0 {
		w.buf[w.n] = OptEOL
		w.n++
	}
	return w.buf[:w.n]
}
