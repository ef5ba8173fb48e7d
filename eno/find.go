// This file locates the ENO option in a TCP options area.
//
// The options area is the bytes after the fixed 20-byte TCP header, up to
// the data offset: a sequence of one-byte EOL (0) and NOP (1) options and
// kind|len|value TLVs (RFC 9293 §3.1). FindOption walks the whole area,
// so a malformed TLV anywhere, or a second ENO option, is reported rather
// than silently ignored. It allocates nothing: it runs on every SYN.

package eno

const (
	tcpOptionEOL = 0 // end of option list (RFC 9293 §3.2)
	tcpOptionNOP = 1 // no-operation (RFC 9293 §3.2)

	// maxTCPOptionsLen is the most option bytes a TCP header can carry:
	// data offset 15 words minus the 20-byte fixed header.
	maxTCPOptionsLen = 40
)

// enoOptionsAllowed is how many ENO options one segment may carry. Two
// would make the negotiation transcript (RFC 8547 §4.6) ambiguous, so a
// segment with more is treated as malformed.
const enoOptionsAllowed = 1

var (
	errOptionsTooLong    error = malformedError("TCP options area longer than 40 bytes")
	errOptionNoLength    error = malformedError("TCP option without a length byte")
	errOptionBadLength   error = malformedError("TCP option length below 2")
	errOptionPastEnd     error = malformedError("TCP option runs past the options area")
	errDuplicateENOption error = malformedError("more than one ENO option")
)

// FindOption scans a TCP options area for the ENO option (kind 69) and
// returns it whole, kind and length bytes included, as a sub-slice of
// tcpOptions. Scanning stops at EOL; bytes after it are padding. A
// malformed options area or more than one ENO option returns an error
// matching ErrMalformed and found=false.
func FindOption(tcpOptions []byte) (opt []byte, found bool, err error) {
	if len(tcpOptions) > maxTCPOptionsLen {
		return nil, false, errOptionsTooLong
	}
	seen := 0
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
			seen++
			if seen > enoOptionsAllowed {
				return nil, false, errDuplicateENOption
			}
			opt = tcpOptions[i : i+n : i+n]
		}
		i += n
	}
	return opt, seen > 0, nil
}
