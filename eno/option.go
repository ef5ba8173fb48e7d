// Package eno implements TCP-ENO (RFC 8547): the encoding of the ENO TCP
// option and the negotiation of a TCP Encryption Protocol (TEP) between
// the two roles A and B.
//
// This file is the SYN-form codec (RFC 8547 §4.1, Figures 2 and 4,
// Table 1). A SYN or SYN-ACK carries
//
//	kind=69 | len=N+2 | suboption... (N <= 38 bytes)
//
// and each suboption begins with one byte, v (bit 7) | glt (bits 6..0):
//
//	v=0, glt 0x00-0x1f  global suboption  0 0 0 z1 z2 z3 a b   (§4.2)
//	v=1, glt 0x00-0x1f  length byte 1 0 0 nnnnn: the next suboption
//	                    is a TEP with v=1 and nnnnn+1 data bytes  (§4.4)
//	v=0, glt 0x20-0x7f  TEP without data
//	v=1, glt 0x20-0x7f  TEP with data (to the end of the option unless a
//	                    length byte precedes it, §4.4)
//
// ParseSYNOption validates the whole option before returning anything:
// an ill-formed SYN-form option means "no ENO" (RFC 8547 §4.4, §4.6 item
// 1), so callers fall back to plain TCP instead of acting on part of it.
package eno

import "errors"

// Option framing, RFC 8547 §4.1.
const (
	// OptionKind is the TCP option kind assigned to TCP-ENO (RFC 8547 §4.1).
	OptionKind = 69

	// MaxOptionLen bounds a whole ENO option, kind and length bytes
	// included: the TCP header holds at most 40 bytes of options
	// (RFC 8547 §4.4; RFC 9293 §3.1).
	MaxOptionLen = 40

	// MaxSYNContents bounds the suboption bytes of the SYN form.
	MaxSYNContents = MaxOptionLen - 2

	// MinTEP and MaxTEP bound the glt values that identify a TEP
	// (RFC 8547 §4.1, Table 1); glt below MinTEP is a global suboption
	// or, with v set, a length byte.
	MinTEP byte = 0x20
	MaxTEP byte = 0x7f

	// MaxLengthPrefixedData is the most data a length byte can announce:
	// nnnnn is 5 bits and counts data bytes minus one, so 1 to 32 bytes
	// (RFC 8547 §4.4, Figure 6).
	MaxLengthPrefixedData = lengthByteNLen + 1
)

// NonSYNOption is the non-SYN form of the option, sent on the segments
// after the SYNs until a non-SYN segment has been received (RFC 8547
// §4.6). Its contents are zero bytes: a TEP that assigns them no meaning
// (tcpcrypt assigns none) MUST send N = 0, and a receiver MUST ignore any
// contents (RFC 8547 §4.1, Figure 3).
var NonSYNOption = [2]byte{OptionKind, 2}

// Global suboption bits, RFC 8547 §4.2, Figure 5:
//
//	bit  7 6 5  4  3  2  1 0
//	     0 0 0 z1 z2 z3  a b
const (
	// GlobalB is the passive role bit b: the sender plays role B
	// (RFC 8547 §4.2, §4.3). A passive opener MUST set it.
	GlobalB byte = 0x01
	// GlobalA is the application-aware bit a, a single bit
	// (RFC 8547 §4.2, §8.4). It is zero by default.
	GlobalA byte = 0x02
	// GlobalZMask covers the reserved bits z1 z2 z3: they MUST be sent
	// as zero and MUST be ignored on receipt (RFC 8547 §4.2).
	GlobalZMask byte = 0x1c
)

// Suboption byte layout, RFC 8547 §4.1 (Figure 4) and §4.4 (Figure 6).
const (
	suboptionV     byte = 0x80 // v: the suboption carries data
	suboptionGLT   byte = 0x7f // glt: global, length byte or TEP id
	lengthByteNLen      = 0x1f // nnnnn: data length - 1 (RFC 8547 §4.4)
)

// Suboption is one TEP suboption of the SYN form.
type Suboption struct {
	TEP     byte   // TEP identifier, MinTEP..MaxTEP
	Data    []byte // suboption data; only with HasData
	HasData bool   // the v bit: the TEP carries data (possibly empty, if last)
}

// SYNOption is the decoded SYN form of the ENO option.
//
// Global is the first global suboption on the wire (RFC 8547 §4.2: a
// receiver MUST ignore all but the first), with the reserved z bits
// cleared by ParseSYNOption since they MUST be ignored on receipt. When
// HasGlobal is false the global suboption is the implicit 0x00 (RFC 8547
// §4.2), whatever Global holds.
type SYNOption struct {
	Global    byte // global suboption: GlobalB | GlobalA, z bits zero
	HasGlobal bool // whether the global suboption is present on the wire
	TEPs      []Suboption
}

// global returns the effective global suboption: the explicit one, or
// the implicit 0x00 when there is none (RFC 8547 §4.2), z bits ignored.
func (o *SYNOption) global() byte {
	if !o.HasGlobal {
		return 0
	}
	return o.Global &^ GlobalZMask
}

// Passive reports the passive role bit b: the sender plays role B
// (RFC 8547 §4.2, §4.3). Without an explicit global suboption b is 0.
func (o *SYNOption) Passive() bool {
	return o.global()&GlobalB != 0
}

// ApplicationAware reports the application-aware bit a (RFC 8547 §4.2,
// §8.4). Without an explicit global suboption a is 0. A host in mandatory
// application-aware mode disables ENO when the peer's SYN has a = 0
// (RFC 8547 §4.6 item 3).
func (o *SYNOption) ApplicationAware() bool {
	return o.global()&GlobalA != 0
}

// ErrMalformed is matched (errors.Is) by every error ParseSYNOption and
// FindOption return: the bytes are not a well-formed option or options
// area, which a caller treats as "no ENO".
var ErrMalformed = errors.New("eno: malformed option")

type malformedError string

func (e malformedError) Error() string        { return "eno: malformed option: " + string(e) }
func (e malformedError) Is(target error) bool { return target == ErrMalformed }

// Decoding errors. Static values: a flood of bad SYNs allocates nothing.
var (
	errTruncated    error = malformedError("truncated")
	errTrailing     error = malformedError("bytes beyond the option length")
	errWrongKind    error = malformedError("not kind 69")
	errBadOptionLen error = malformedError("length byte below 2")
	errSYNTooLong   error = malformedError("SYN form longer than 40 bytes")
	errLengthAtEnd  error = malformedError("length byte not followed by a TEP")
	errLengthNotTEP error = malformedError("length byte not followed by a TEP with v = 1 (octet 0x00-0x9f)")
	errDataPastEnd  error = malformedError("suboption data runs past the option")
)

// Encoding errors.
var (
	ErrInvalidTEP    = errors.New("eno: TEP identifier outside 0x20..0x7f")
	ErrInvalidGlobal = errors.New("eno: global suboption with bits other than a and b set")
	ErrInvalidData   = errors.New("eno: suboption data without the v bit, or empty data not last")
	ErrDataTooLong   = errors.New("eno: suboption data longer than a length byte can announce")
	ErrOptionTooLong = errors.New("eno: option longer than 40 bytes")
)

// ParseSYNOption decodes a whole SYN-form option, opt[0] being the kind
// (69) and opt[1] the length, which must equal len(opt). Any malformation
// returns an error matching ErrMalformed, meaning "no ENO" (RFC 8547 §4.4,
// §4.6 item 1). TEP ids unknown to the caller are kept; they are simply
// never valid (RFC 8547 §4.5). The result does not alias opt, which may be
// a reused packet buffer.
//
// Global suboptions (RFC 8547 §4.2): a sender MUST send at most one, but
// a receiver MUST ignore all but the first, wherever it stands (the RFC
// fixes no position); so a second one is skipped, not an error. The z
// bits of the first are cleared (ignored on receipt). A vacuous option,
// with no TEP (RFC 8547 §4.6), is well-formed.
//
// Call it on the ENO option of a SYN or SYN-ACK only: a non-SYN segment's
// ENO option is never SYN form, its contents are ignored (RFC 8547 §4.1).
func ParseSYNOption(opt []byte) (SYNOption, error) {
	contents, err := synContents(opt)
	if err != nil {
		return SYNOption{}, err
	}
	// First pass validates and counts, so the result is allocated once
	// and only for a well-formed option.
	_, count, err := walkSuboptions(contents, nil, false)
	if err != nil || count == 0 {
		o, _, err := walkSuboptions(contents, nil, true)
		return o, err
	}
	buf := make([]byte, len(contents))
	copy(buf, contents)
	o, _, _ := walkSuboptions(buf, make([]Suboption, 0, count), true)
	return o, nil
}

// ParseSYNOptionInto is ParseSYNOption without allocating: the TEPs are
// appended to teps[:0] (which may be an array on the caller's stack) and
// their Data alias opt. It is for a caller that is done with the result
// before opt changes: a gateway reading the offer of a WAN SYN, where
// anything allocated per SYN is garbage under a SYN flood with ENO
// options, and garbage lets the heap grow to the GC's goal.
func ParseSYNOptionInto(opt []byte, teps []Suboption) (SYNOption, error) {
	contents, err := synContents(opt)
	if err != nil {
		return SYNOption{}, err
	}
	o, _, err := walkSuboptions(contents, teps[:0], true)
	return o, err
}

// synContents checks the kind and length bytes of a SYN-form option (RFC
// 8547 §4.1, at most 40 bytes, §4.4) and returns its suboption bytes.
func synContents(opt []byte) ([]byte, error) {
	if len(opt) < 2 {
		return nil, errTruncated
	}
	if opt[0] != OptionKind {
		return nil, errWrongKind
	}
	n := int(opt[1])
	switch {
	case n < 2:
		return nil, errBadOptionLen
	case n > MaxOptionLen:
		return nil, errSYNTooLong
	case n > len(opt):
		return nil, errTruncated
	case n < len(opt):
		return nil, errTrailing
	}
	return opt[2:], nil
}

// walkSuboptions checks the suboption sequence c (RFC 8547 §4.1, §4.2,
// §4.4) and returns the number of TEP suboptions. With record it also
// returns the option: the first global suboption, and the TEPs, whose
// Data alias c, appended to tepBuf. (It returns the option rather than
// fill one through a pointer, so that a tepBuf on the caller's stack can
// stay there.) An option is returned only with a nil error.
func walkSuboptions(c []byte, tepBuf []Suboption, record bool) (o SYNOption, teps int, err error) {
	o.TEPs = tepBuf
	globals := 0
	for i := 0; i < len(c); {
		b := c[i]
		glt, v := b&suboptionGLT, b&suboptionV != 0
		switch {
		case glt < MinTEP && !v: // global suboption (RFC 8547 §4.2)
			// Only the first counts; later ones MUST be ignored. Its z
			// bits MUST be ignored too: they are cleared here.
			globals++
			if globals == 1 && record {
				o.Global, o.HasGlobal = b&^GlobalZMask, true
			}
			i++
		case glt < MinTEP: // length byte 1 0 0 nnnnn (RFC 8547 §4.4)
			// It MUST be followed by a TEP with v = 1 (an octet 0xa0 or
			// above) and then nnnnn+1 data bytes inside the option;
			// otherwise the option is ignored and ENO disabled (§4.4
			// items 1 and 2). A length byte as the last octet announces
			// data past the end.
			if i+1 >= len(c) {
				return SYNOption{}, 0, errLengthAtEnd
			}
			tep := c[i+1]
			if tep&suboptionV == 0 || tep&suboptionGLT < MinTEP {
				return SYNOption{}, 0, errLengthNotTEP
			}
			start, end := i+2, i+2+int(glt&lengthByteNLen)+1
			if end > len(c) {
				return SYNOption{}, 0, errDataPastEnd
			}
			if record {
				o.TEPs = append(o.TEPs, Suboption{TEP: tep & suboptionGLT, Data: c[start:end:end], HasData: true})
			}
			teps++
			i = end
		case v: // TEP whose data runs to the end of the option (RFC 8547 §4.4)
			if record {
				o.TEPs = append(o.TEPs, Suboption{TEP: glt, Data: c[i+1 : len(c) : len(c)], HasData: true})
			}
			teps++
			i = len(c)
		default: // TEP without data
			if record {
				o.TEPs = append(o.TEPs, Suboption{TEP: glt})
			}
			teps++
			i++
		}
	}
	return o, teps, nil
}

// AppendSYNOption appends o, encoded as a whole SYN-form option, to dst.
// The global suboption, if present, comes first (the RFC fixes no
// position, RFC 8547 §4.2; first is what every receiver reads); TEPs
// follow in o's order. A TEP with data that is not the last suboption is
// preceded by a length byte (RFC 8547 §4.4); the last one's data runs to
// the end of the option. A global suboption with a z bit set is refused
// (ErrInvalidGlobal): z MUST be sent as zero (RFC 8547 §4.2). On error
// dst is returned unchanged.
func AppendSYNOption(dst []byte, o SYNOption) ([]byte, error) {
	n, err := encodedLen(o)
	if err != nil {
		return dst, err
	}
	dst = append(dst, OptionKind, byte(n))
	if o.HasGlobal {
		dst = append(dst, o.Global)
	}
	for i, s := range o.TEPs {
		switch {
		case !s.HasData:
			dst = append(dst, s.TEP)
		case i == len(o.TEPs)-1:
			dst = append(dst, suboptionV|s.TEP)
			dst = append(dst, s.Data...)
		default:
			dst = append(dst, suboptionV|byte(len(s.Data)-1), suboptionV|s.TEP)
			dst = append(dst, s.Data...)
		}
	}
	return dst, nil
}

// EncodedLen returns the length of o's whole SYN-form option as
// AppendSYNOption would write it, or the error it would return. Callers
// use it to check that the option fits next to the other SYN options.
func EncodedLen(o SYNOption) (int, error) {
	return encodedLen(o)
}

func encodedLen(o SYNOption) (int, error) {
	n := 2
	if o.HasGlobal {
		// Only a and b may be set: bits 7..5 would make it no global
		// suboption and z MUST be sent as zero (RFC 8547 §4.2).
		if o.Global&^(GlobalA|GlobalB) != 0 {
			return 0, ErrInvalidGlobal
		}
		n++
	} else if o.Global != 0 {
		// Only an all-zero global may be left implicit (RFC 8547 §4.2).
		return 0, ErrInvalidGlobal
	}
	for i, s := range o.TEPs {
		if s.TEP < MinTEP || s.TEP > MaxTEP {
			return 0, ErrInvalidTEP
		}
		last := i == len(o.TEPs)-1
		switch {
		case !s.HasData:
			if len(s.Data) != 0 {
				return 0, ErrInvalidData
			}
			n++
		case last:
			n += 1 + len(s.Data)
		case len(s.Data) == 0:
			return 0, ErrInvalidData
		case len(s.Data) > MaxLengthPrefixedData:
			return 0, ErrDataTooLong
		default:
			n += 2 + len(s.Data)
		}
		if n > MaxOptionLen {
			return 0, ErrOptionTooLong
		}
	}
	if n > MaxOptionLen {
		return 0, ErrOptionTooLong
	}
	return n, nil
}
