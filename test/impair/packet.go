// The small IPv4/IPv6 + TCP codec of the impairment tool.
//
// Every packet the impairer rewrites goes through parseTCP first:
//  1. The IP header is checked against the buffer (version, header length,
//     total or payload length); trailing bytes beyond the IP length are cut.
//  2. Only unfragmented TCP is a segment: IPv4 fragments and IPv6 packets
//     with extension headers are not parsed further (they pass unchanged).
//  3. The TCP header length must fit the IP payload.
//
// Anything that fails a check is "not a segment" and is impaired only by the
// content-blind steps (loss, delay, reordering, duplication). Nothing here
// allocates or panics on malformed input.

package impair

import (
	"encoding/binary"
	"net/netip"
)

// TCP header flags (RFC 9293 §3.1).
const (
	flagFIN = 0x01
	flagSYN = 0x02
	flagRST = 0x04
	flagPSH = 0x08
	flagACK = 0x10
	flagURG = 0x20
)

// TCP option kinds.
const (
	optEOL = 0 // RFC 9293 §3.1: end of option list
	optNOP = 1 // RFC 9293 §3.1: no-operation, the filler that replaces stripped options
	optMSS = 2 // RFC 9293 §3.2: maximum segment size, 4 bytes, SYN only
	// OptionENO is the TCP-ENO option kind (RFC 8547 §4.1).
	OptionENO = 69
)

const (
	ipv4MinHeader = 20
	ipv6Header    = 40
	tcpMinHeader  = 20
	protoTCP      = 6
	// MaxPacket is the largest IP packet the tool handles (the IPv4 total
	// length and IPv6 payload length are 16-bit fields).
	MaxPacket = 65535 + ipv6Header
)

// segment is a parsed TCP segment: offsets into pkt, no copies.
type segment struct {
	pkt    []byte // the IP packet, cut to its IP length
	v6     bool
	tcpOff int // offset of the TCP header (the IP header length)
	payOff int // offset of the TCP payload
}

// parseIP returns pkt cut to the length its IP header states, its IP header
// length and the protocol of the next header, or ok=false for a packet that
// is not a well-formed IPv4 or IPv6 packet.
func parseIP(pkt []byte) (ip []byte, hdrLen int, proto byte, v6 bool, ok bool) {
	if len(pkt) < 1 {
		return nil, 0, 0, false, false
	}
	switch pkt[0] >> 4 {
	case 4:
		if len(pkt) < ipv4MinHeader {
			return nil, 0, 0, false, false
		}
		hdrLen = int(pkt[0]&0x0f) * 4
		total := int(binary.BigEndian.Uint16(pkt[2:4]))
		if hdrLen < ipv4MinHeader || total < hdrLen || total > len(pkt) {
			return nil, 0, 0, false, false
		}
		return pkt[:total], hdrLen, pkt[9], false, true
	case 6:
		if len(pkt) < ipv6Header {
			return nil, 0, 0, false, false
		}
		total := ipv6Header + int(binary.BigEndian.Uint16(pkt[4:6]))
		if total > len(pkt) {
			return nil, 0, 0, false, false
		}
		return pkt[:total], ipv6Header, pkt[6], true, true
	}
	return nil, 0, 0, false, false
}

// parseTCP parses pkt as an unfragmented IPv4 or IPv6 packet carrying TCP
// directly after the fixed IP header.
func parseTCP(pkt []byte) (segment, bool) {
	ip, hdrLen, proto, v6, ok := parseIP(pkt)
	if !ok || proto != protoTCP {
		return segment{}, false
	}
	if !v6 && binary.BigEndian.Uint16(ip[6:8])&0x3fff != 0 {
		return segment{}, false // MF set or a fragment offset: not a whole segment
	}
	if len(ip) < hdrLen+tcpMinHeader {
		return segment{}, false
	}
	tcpLen := int(ip[hdrLen+12]>>4) * 4
	if tcpLen < tcpMinHeader || hdrLen+tcpLen > len(ip) {
		return segment{}, false
	}
	return segment{pkt: ip, v6: v6, tcpOff: hdrLen, payOff: hdrLen + tcpLen}, true
}

// dstAddr returns the destination address of an IPv4 or IPv6 packet.
func dstAddr(pkt []byte) (netip.Addr, bool) {
	if len(pkt) < 1 {
		return netip.Addr{}, false
	}
	switch pkt[0] >> 4 {
	case 4:
		if len(pkt) >= ipv4MinHeader {
			return netip.AddrFrom4([4]byte(pkt[16:20])), true
		}
	case 6:
		if len(pkt) >= ipv6Header {
			return netip.AddrFrom16([16]byte(pkt[24:40])), true
		}
	}
	return netip.Addr{}, false
}

func (s *segment) flags() byte     { return s.pkt[s.tcpOff+13] }
func (s *segment) setFlags(f byte) { s.pkt[s.tcpOff+13] = f }
func (s *segment) seq() uint32     { return binary.BigEndian.Uint32(s.pkt[s.tcpOff+4:]) }
func (s *segment) setSeq(v uint32) { binary.BigEndian.PutUint32(s.pkt[s.tcpOff+4:], v) }
func (s *segment) srcPort() uint16 { return binary.BigEndian.Uint16(s.pkt[s.tcpOff:]) }
func (s *segment) dstPort() uint16 { return binary.BigEndian.Uint16(s.pkt[s.tcpOff+2:]) }
func (s *segment) payload() []byte { return s.pkt[s.payOff:] }
func (s *segment) options() []byte { return s.pkt[s.tcpOff+tcpMinHeader : s.payOff] }
func (s *segment) addrs() (src, dst []byte) {
	if s.v6 {
		return s.pkt[8:24], s.pkt[24:40]
	}
	return s.pkt[12:16], s.pkt[16:20]
}

// setLength rewrites the IP length fields for a packet of n bytes, and the
// IPv4 header checksum.
func (s *segment) setLength(n int) {
	if s.v6 {
		binary.BigEndian.PutUint16(s.pkt[4:6], uint16(n-ipv6Header))
		return
	}
	binary.BigEndian.PutUint16(s.pkt[2:4], uint16(n))
	s.fixIPv4Checksum()
}

// ipv4ID and setIPv4ID access the IPv4 identification field (RFC 791 §3.1).
func (s *segment) ipv4ID() uint16      { return binary.BigEndian.Uint16(s.pkt[4:6]) }
func (s *segment) setIPv4ID(id uint16) { binary.BigEndian.PutUint16(s.pkt[4:6], id) }

func (s *segment) fixIPv4Checksum() {
	h := s.pkt[:s.tcpOff]
	h[10], h[11] = 0, 0
	binary.BigEndian.PutUint16(h[10:12], ^fold(sum16(h, 0)))
}

// tcpSum is the one's complement sum of the TCP pseudo header (RFC 9293
// §3.1 for IPv4, RFC 8200 §8.1 for IPv6) and the whole TCP segment.
func (s *segment) tcpSum() uint64 {
	src, dst := s.addrs()
	sum := sum16(src, 0)
	sum = sum16(dst, sum)
	sum += protoTCP + uint64(len(s.pkt)-s.tcpOff)
	return sum16(s.pkt[s.tcpOff:], sum)
}

// fixTCPChecksum recomputes the TCP checksum.
func (s *segment) fixTCPChecksum() {
	c := s.pkt[s.tcpOff+16 : s.tcpOff+18]
	c[0], c[1] = 0, 0
	binary.BigEndian.PutUint16(c, ^fold(s.tcpSum()))
}

// wordsSum is the sum of the 16-bit words covering pkt[from:to], taken
// before and after a change of those bytes to adjust the checksum for it
// (RFC 1624). Words are aligned to the packet start, which is aligned to the
// TCP header (IP header lengths are even).
func (s *segment) wordsSum(from, to int) uint64 {
	from &^= 1
	if (to-from)%2 == 1 && to < len(s.pkt) {
		to++
	}
	return sum16(s.pkt[from:to], 0)
}

// adjustTCPChecksum updates the TCP checksum for a change of bytes whose
// word sums were before and after (RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m')).
// Unlike fixTCPChecksum it keeps a wrong checksum wrong.
func (s *segment) adjustTCPChecksum(before, after uint64) {
	c := s.pkt[s.tcpOff+16 : s.tcpOff+18]
	sum := uint64(^binary.BigEndian.Uint16(c)) + uint64(^fold(before)) + uint64(fold(after))
	binary.BigEndian.PutUint16(c, ^fold(sum))
}

// tcpChecksumOK reports whether the TCP checksum verifies.
func (s *segment) tcpChecksumOK() bool {
	return fold(s.tcpSum()) == 0xffff
}

// sum16 adds b as big-endian 16-bit words to sum (RFC 1071).
func sum16(b []byte, sum uint64) uint64 {
	for len(b) >= 8 {
		sum += uint64(binary.BigEndian.Uint16(b)) + uint64(binary.BigEndian.Uint16(b[2:])) +
			uint64(binary.BigEndian.Uint16(b[4:])) + uint64(binary.BigEndian.Uint16(b[6:]))
		b = b[8:]
	}
	for len(b) >= 2 {
		sum += uint64(binary.BigEndian.Uint16(b))
		b = b[2:]
	}
	if len(b) == 1 {
		sum += uint64(b[0]) << 8
	}
	return sum
}

func fold(sum uint64) uint16 {
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	return uint16(sum)
}

// nextOption returns the option starting at opts[i]: its kind and the end
// of its bytes. ok is false at the end of the list (EOL or no bytes left)
// and for a malformed length, which also ends the walk.
func nextOption(opts []byte, i int) (kind byte, end int, ok bool) {
	if i >= len(opts) || opts[i] == optEOL {
		return 0, 0, false
	}
	if opts[i] == optNOP {
		return optNOP, i + 1, true
	}
	if i+1 >= len(opts) {
		return 0, 0, false
	}
	n := int(opts[i+1])
	if n < 2 || i+n > len(opts) {
		return 0, 0, false
	}
	return opts[i], i + n, true
}

// hasOption reports whether the segment carries an option of the kind.
func (s *segment) hasOption(kind byte) bool {
	opts := s.options()
	for i := 0; ; {
		k, end, ok := nextOption(opts, i)
		if !ok {
			return false
		}
		if k == kind {
			return true
		}
		i = end
	}
}

// replaceOption overwrites every option of the kind with NOPs, keeping the
// header length (and so every other offset) unchanged. It reports whether
// it changed anything; the caller fixes the checksum.
func (s *segment) replaceOption(kind byte) bool {
	opts := s.options()
	changed := false
	for i := 0; ; {
		k, end, ok := nextOption(opts, i)
		if !ok {
			return changed
		}
		if k == kind {
			for j := i; j < end; j++ {
				opts[j] = optNOP
			}
			changed = true
		}
		i = end
	}
}

// clampMSS lowers the MSS option to max if it is larger and reports whether
// it changed it. A SYN without an MSS option is left alone: adding one would
// grow the header.
func (s *segment) clampMSS(max uint16) bool {
	opts := s.options()
	for i := 0; ; {
		k, end, ok := nextOption(opts, i)
		if !ok {
			return false
		}
		if k == optMSS && end-i == 4 {
			if binary.BigEndian.Uint16(opts[i+2:]) > max {
				binary.BigEndian.PutUint16(opts[i+2:], max)
				return true
			}
			return false
		}
		i = end
	}
}
