// This file locates the ENO option in a TCP options area.
//
// The options area is the bytes after the fixed 20-byte TCP header, up to
// the data offset: a sequence of one-byte EOL (0) and NOP (1) options and
// kind|len|value TLVs (RFC 9293 §3.1). Both finders walk the whole area,
// so a malformed TLV anywhere is reported rather than silently ignored.
// They allocate nothing: they run on every segment.
//
// RFC 8547 §4.1 treats the two segment kinds differently:
//
//   - A SYN segment MUST contain at most one ENO option; a receiver of
//     more than one MUST behave as though there were none and disable
//     encryption. FindOption is for SYN and SYN-ACK segments.
//   - In a non-SYN segment ENO only distinguishes presence from absence:
//     several ENO options count as one, and their contents are ignored.
//     FindNonSYNOption is for every other segment.

package eno

const (
	tcpOptionEOL = 0 // end of option list (RFC 9293 §3.2)
	tcpOptionNOP = 1 // no-operation (RFC 9293 §3.2)

	// maxTCPOptionsLen is the most option bytes a TCP header can carry:
	// data offset 15 words minus the 20-byte fixed header.
	maxTCPOptionsLen = 40
)

var (
	errOptionsTooLong    error = malformedError("TCP options area longer than 40 bytes")
	errOptionNoLength    error = malformedError("TCP option without a length byte")
	errOptionBadLength   error = malformedError("TCP option length below 2")
	errOptionPastEnd     error = malformedError("TCP option runs past the options area")
	errDuplicateENOption error = malformedError("more than one ENO option in a SYN segment")
)

// FindOption scans the TCP options area of a SYN or SYN-ACK segment for
// the ENO option (kind 69) and returns it whole, kind and length bytes
// included, as a sub-slice of tcpOptions; that is the form ParseSYNOption
// and the negotiation transcript (RFC 8547 §4.8) take. Scanning stops at
// EOL; bytes after it are padding. A malformed options area, or more than
// one ENO option (RFC 8547 §4.1: the segment then counts as carrying no
// ENO option and encryption is disabled), returns an error matching
// ErrMalformed and found=false.
//
// Do not use it on non-SYN segments, where several ENO options are
// legitimate: see FindNonSYNOption.
func FindOption(tcpOptions []byte) (opt []byte, found bool, err error) {
	return findOption(tcpOptions, true)
}

// FindNonSYNOption scans the TCP options area of a non-SYN segment for an
// ENO option and returns the first one whole, as a sub-slice of
// tcpOptions. RFC 8547 §4.1: in a non-SYN segment ENO only distinguishes
// the presence of ENO options from their absence, multiple ENO options
// mean the same as one, and the contents (of any length, N may be 0) are
// ignored unless the negotiated TEP gives them a meaning (tcpcrypt gives
// none); so neither a second ENO option nor SYN-form-looking contents are
// an error. Only a malformed options area is (ErrMalformed).
func FindNonSYNOption(tcpOptions []byte) (opt []byte, found bool, err error) {
	return findOption(tcpOptions, false)
}

func findOption(tcpOptions []byte, syn bool) (opt []byte, found bool, err error) {
	if len(tcpOptions) > maxTCPOptionsLen {
		return nil, false, errOptionsTooLong
	}
	for i := 0; i < len(tcpOptions); {
		kind := tcpOptions[i]
		if kind == tcpOptionEOL {
			break
		}
		if kind == tcpOptionNOP {
			i++
			continue
		}
		if i+1 >= len(tcpOptions) {
			return nil, false, errOptionNoLength
		}
		n := int(tcpOptions[i+1])
		if n < 2 {
			return nil, false, errOptionBadLength
		}
		if i+n > len(tcpOptions) {
			return nil, false, errOptionPastEnd
		}
		if kind == OptionKind {
			switch {
			case !found:
				opt, found = tcpOptions[i:i+n:i+n], true
			case syn: // RFC 8547 §4.1: at most one in a SYN segment
				return nil, false, errDuplicateENOption
			}
		}
		i += n
	}
	return opt, found, nil
}
