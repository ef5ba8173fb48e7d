// Package eno implements TCP-ENO (RFC 8547): the encoding of the ENO TCP
// option and the negotiation of a TCP Encryption Protocol (TEP) between
// the two roles A and B.
//
// This file is the SYN-form codec. A SYN or SYN-ACK carries
//
//	kind=69 | len=N+2 | suboption... (N <= 38 bytes)
//
// and each suboption begins with one byte, v (bit 7) | glt (bits 6..0):
//
//	v=0, glt 0x00-0x1f  global suboption  0 0 0 z z a a b
//	v=1, glt 0x00-0x1f  length byte: the next suboption carries nlen+1 data bytes
//	v=0, glt 0x20-0x7f  TEP without data
//	v=1, glt 0x20-0x7f  TEP with data (to the end of the option unless a
//	                    length byte precedes it)
//
// ParseSYNOption validates the whole option before returning anything:
// a malformed option means "no ENO" (RFC 8547 §4.1), so callers fall back
// to plain TCP instead of acting on part of it.
package eno

import "errors"

// Option framing, RFC 8547 §4.1.
const (
	// OptionKind is the TCP option kind assigned to TCP-ENO (RFC 8547 §4.1).
	OptionKind = 69

	// MaxOptionLen bounds a whole ENO option, kind and length bytes
	// included: TCP has 40 bytes of option space (RFC 8547 §4.1).
	MaxOptionLen = 40

	// MaxSYNContents bounds the suboption bytes of the SYN form.
	MaxSYNContents = MaxOptionLen - 2

	// MinTEP and MaxTEP bound the glt values that identify a TEP
	// (RFC 8547 §4.1); glt below MinTEP is a global suboption or, with v
	// set, a length byte.
	MinTEP byte = 0x20
	MaxTEP byte = 0x7f

	// MaxLengthPrefixedData is the most data a length byte can announce:
	// nlen is 5 bits and counts data bytes minus one (RFC 8547 §4.5).
	MaxLengthPrefixedData = lengthByteNLen + 1
)

// NonSYNOption is the non-SYN form of the option, sent on the segments
// after the SYNs to announce that encryption is enabled (RFC 8547 §4.1,
// §4.3). Its contents are empty; a receiver ignores any contents.
var NonSYNOption = [2]byte{OptionKind, 2}

// Global suboption bits, RFC 8547 §4.4: 0 0 0 z z a a b.
//
// [check] The positions of the aa and z bits could not be checked against
// the published RFC text (digest §1.2). They live here and nowhere else;
// docs/protocol.md states the same choice.
const (
	// GlobalB is the passive-role bit b: "I am B" (RFC 8547 §4.2, §4.4).
	GlobalB byte = 0x01
	// GlobalAAMask covers the two application-aware bits aa
	// (RFC 8547 §4.4). [check: bits 2..1]
	GlobalAAMask byte = 0x06
	// GlobalAAShift moves aa down to a value 0..3.
	GlobalAAShift = 1
	// GlobalZMask covers the reserved bits z: sent as zero, ignored on
	// receipt (RFC 8547 §4.4). [check: bits 4..3]
	GlobalZMask byte = 0x18
)

// Suboption byte layout, RFC 8547 §4.1 and §4.5.
const (
	suboptionV     byte = 0x80 // v: the suboption carries data
	suboptionGLT   byte = 0x7f // glt: global, length byte or TEP id
	lengthByteNLen      = 0x1f // nlen: data length - 1 (RFC 8547 §4.5)
)

// Suboption is one TEP suboption of the SYN form.
type Suboption struct {
	TEP     byte   // TEP identifier, MinTEP..MaxTEP
	Data    []byte // suboption data; only with HasData
	HasData bool   // the v bit: the TEP carries data (possibly empty, if last)
}

// SYNOption is the decoded SYN form of the ENO option.
type SYNOption struct {
	Global    byte // global suboption 0x00..0x1f; implicitly 0 when absent
	HasGlobal bool // whether the global suboption is present on the wire
	TEPs      []Suboption
}

// Passive reports the b bit: the sender plays role B (RFC 8547 §4.2).
func (o *SYNOption) Passive() bool {
	return o.Global&GlobalB != 0
}

// ApplicationAware returns the aa bits as a value 0..3 (RFC 8547 §4.4).
func (o *SYNOption) ApplicationAware() byte {
	return (o.Global & GlobalAAMask) >> GlobalAAShift
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
	errTruncated       error = malformedError("truncated")
	errTrailing        error = malformedError("bytes beyond the length byte")
	errWrongKind       error = malformedError("not kind 69")
	errBadOptionLen    error = malformedError("length byte below 2")
	errSYNTooLong      error = malformedError("SYN form longer than 40 bytes")
	errLengthAtEnd     error = malformedError("length byte not followed by a TEP")
	errLengthNotTEP    error = malformedError("length byte followed by a non-TEP suboption")
	errDataPastEnd     error = malformedError("suboption data runs past the option")
	errDuplicateGlobal error = malformedError("more than one global suboption")
)

// Encoding errors.
var (
	ErrInvalidTEP    = errors.New("eno: TEP identifier outside 0x20..0x7f")
	ErrInvalidGlobal = errors.New("eno: global suboption outside 0x00..0x1f")
	ErrInvalidData   = errors.New("eno: suboption data without the v bit, or empty data not last")
	ErrDataTooLong   = errors.New("eno: suboption data longer than a length byte can announce")
	ErrOptionTooLong = errors.New("eno: option longer than 40 bytes")
)

// globalSuboptionsAllowed is how many global suboptions a SYN-form option
// may hold. RFC 8547 §4.4 describes a single global suboption (absent
// means 0x00) and does not fix its position; two would leave the b bit
// ambiguous, so a second one makes the option malformed. Position is not
// checked: the Linux tcpinc implementation also reads it anywhere.
const globalSuboptionsAllowed = 1

// ParseSYNOption decodes a whole SYN-form option, opt[0] being the kind
// (69) and opt[1] the length, which must equal len(opt). Any malformation
// returns an error matching ErrMalformed, meaning "no ENO". TEP ids unknown
// to the caller are kept; callers skip them (RFC 8547 §4.3). The result
// does not alias opt, which may be a reused packet buffer.
func ParseSYNOption(opt []byte) (SYNOption, error) {
	if len(opt) < 2 {
		return SYNOption{}, errTruncated
	}
	if opt[0] != OptionKind {
		return SYNOption{}, errWrongKind
	}
	n := int(opt[1])
	switch {
	case n < 2:
		return SYNOption{}, errBadOptionLen
	case n > MaxOptionLen:
		return SYNOption{}, errSYNTooLong
	case n > len(opt):
		return SYNOption{}, errTruncated
	case n < len(opt):
		return SYNOption{}, errTrailing
	}
	contents := opt[2:]

	// First pass validates and counts, so the result is allocated once
	// and only for a well-formed option.
	count, err := walkSuboptions(contents, nil)
	if err != nil {
		return SYNOption{}, err
	}
	o := SYNOption{}
	if count > 0 {
		buf := make([]byte, len(contents))
		copy(buf, contents)
		o.TEPs = make([]Suboption, 0, count)
		walkSuboptions(buf, &o)
	} else {
		walkSuboptions(contents, &o)
	}
	return o, nil
}

// walkSuboptions checks the suboption sequence c (RFC 8547 §4.1, §4.4,
// §4.5) and returns the number of TEP suboptions. With o non-nil it also
// records the global suboption and appends the TEPs, whose Data alias c.
func walkSuboptions(c []byte, o *SYNOption) (int, error) {
	teps, globals := 0, 0
	for i := 0; i < len(c); {
		b := c[i]
		glt, v := b&suboptionGLT, b&suboptionV != 0
		switch {
		case glt < MinTEP && !v: // global suboption
			globals++
			if globals > globalSuboptionsAllowed {
				return 0, errDuplicateGlobal
			}
			if o != nil {
				o.Global, o.HasGlobal = b, true
			}
			i++
		case glt < MinTEP: // length byte, then TEP with v=1, then nlen+1 data bytes
			if i+1 >= len(c) {
				return 0, errLengthAtEnd
			}
			tep := c[i+1]
			if tep&suboptionV == 0 || tep&suboptionGLT < MinTEP {
				return 0, errLengthNotTEP
			}
			start, end := i+2, i+2+int(glt&lengthByteNLen)+1
			if end > len(c) {
				return 0, errDataPastEnd
			}
			if o != nil {
				o.TEPs = append(o.TEPs, Suboption{TEP: tep & suboptionGLT, Data: c[start:end:end], HasData: true})
			}
			teps++
			i = end
		case v: // TEP whose data runs to the end of the option
			if o != nil {
				o.TEPs = append(o.TEPs, Suboption{TEP: glt, Data: c[i+1 : len(c) : len(c)], HasData: true})
			}
			teps++
			i = len(c)
		default: // TEP without data
			if o != nil {
				o.TEPs = append(o.TEPs, Suboption{TEP: glt})
			}
			teps++
			i++
		}
	}
	return teps, nil
}

// AppendSYNOption appends o, encoded as a whole SYN-form option, to dst.
// The global suboption, if present, comes first (RFC 8547 §4.4); TEPs
// follow in o's order. A TEP with data that is not the last suboption is
// preceded by a length byte (RFC 8547 §4.5); the last one's data runs to
// the end of the option. On error dst is returned unchanged.
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
		if o.Global >= MinTEP {
			return 0, ErrInvalidGlobal
		}
		n++
	} else if o.Global != 0 {
		// A non-zero global cannot be omitted (RFC 8547 §4.4).
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
