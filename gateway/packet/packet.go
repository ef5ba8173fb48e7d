// Package packet parses and builds the IPv4/IPv6 + TCP packets the engine
// rewrites.
//
// The flow of one packet through this package:
//  1. Parse reads the IP and TCP headers of a packet in place (no copy, no
//     allocation) and reports where the options and the payload are. A
//     packet it cannot handle (not TCP, a fragment, an IPv6 extension
//     header, bad lengths) is reported with an error; the engine passes such
//     packets on unchanged or drops them, it never panics on them.
//  2. The engine decides what the packet becomes and describes each packet
//     it sends with a Header: addresses, ports, numbers, flags, options and
//     payload.
//  3. Build writes the Header into a caller-provided buffer with fresh
//     checksums (RFC 791, RFC 8200, RFC 9293 §3.1).
package packet

import (
	"encoding/binary"
	"errors"
	"net/netip"
)

// TCP flags (RFC 9293 §3.1, RFC 3168 for ECE/CWR).
const (
	FlagFIN = 0x01
	FlagSYN = 0x02
	FlagRST = 0x04
	FlagPSH = 0x08
	FlagACK = 0x10
	FlagURG = 0x20
	FlagECE = 0x40
	FlagCWR = 0x80
)

const (
	ProtoTCP     = 6
	ipv4MinLen   = 20
	ipv6HdrLen   = 40
	tcpMinLen    = 20
	MaxTCPOption = 40
)

var (
	ErrShort       = errors.New("packet: truncated")
	ErrVersion     = errors.New("packet: not IPv4 or IPv6")
	ErrNotTCP      = errors.New("packet: not TCP")
	ErrFragment    = errors.New("packet: IP fragment")
	ErrExtHeader   = errors.New("packet: IPv6 extension header")
	ErrBadLength   = errors.New("packet: bad length field")
	ErrBadChecksum = errors.New("packet: bad checksum")
)

// Packet is a parsed view of one IP+TCP packet. Its slices alias the
// buffer given to Parse.
type Packet struct {
	Buf     []byte // the whole IP packet (trimmed to the IP length)
	V6      bool
	IPLen   int // IP header length
	TCPLen  int // TCP header length incl. options
	Src     netip.Addr
	Dst     netip.Addr
	SrcPort uint16
	DstPort uint16
	Seq     uint32
	Ack     uint32
	Flags   uint8
	Window  uint16
	Urgent  uint16
	TOS     uint8 // IPv4 TOS or IPv6 traffic class (DSCP+ECN)
	TTL     uint8
	IPID    uint16 // IPv4 only
	Flow    uint32 // IPv6 flow label
}

// Options returns the TCP options area.
func (p *Packet) Options() []byte { return p.Buf[p.IPLen+tcpMinLen : p.IPLen+p.TCPLen] }

// Payload returns the TCP payload.
func (p *Packet) Payload() []byte { return p.Buf[p.IPLen+p.TCPLen:] }

// SeqLen is the sequence space the segment occupies (payload, SYN, FIN).
func (p *Packet) SeqLen() uint32 {
	n := uint32(len(p.Buf) - p.IPLen - p.TCPLen)
	if p.Flags&FlagSYN != 0 {
		n++
	}
	if p.Flags&FlagFIN != 0 {
		n++
	}
	return n
}

// Parse reads b as an IP packet carrying TCP.
func Parse(b []byte) (Packet, error) {
	var p Packet
	if len(b) < 1 {
		return p, ErrShort
	}
	switch b[0] >> 4 {
	case 4:
		if len(b) < ipv4MinLen {
			return p, ErrShort
		}
		ihl := int(b[0]&0x0f) * 4
		total := int(binary.BigEndian.Uint16(b[2:4]))
		if ihl < ipv4MinLen || total < ihl || total > len(b) {
			return p, ErrBadLength
		}
		if b[9] != ProtoTCP {
			return p, ErrNotTCP
		}
		if frag := binary.BigEndian.Uint16(b[6:8]); frag&0x3fff != 0 { // MF or offset
			return p, ErrFragment
		}
		p.Buf = b[:total]
		p.IPLen = ihl
		p.TOS = b[1]
		p.TTL = b[8]
		p.IPID = binary.BigEndian.Uint16(b[4:6])
		p.Src = netip.AddrFrom4([4]byte(b[12:16]))
		p.Dst = netip.AddrFrom4([4]byte(b[16:20]))
	case 6:
		if len(b) < ipv6HdrLen {
			return p, ErrShort
		}
		plen := int(binary.BigEndian.Uint16(b[4:6]))
		if ipv6HdrLen+plen > len(b) || plen == 0 {
			return p, ErrBadLength
		}
		switch b[6] {
		case ProtoTCP:
		case 0, 43, 44, 50, 51, 60, 135, 139, 140:
			return p, ErrExtHeader
		default:
			return p, ErrNotTCP
		}
		p.Buf = b[:ipv6HdrLen+plen]
		p.V6 = true
		p.IPLen = ipv6HdrLen
		vtf := binary.BigEndian.Uint32(b[0:4])
		p.TOS = uint8(vtf >> 20)
		p.Flow = vtf & 0xfffff
		p.TTL = b[7]
		p.Src = netip.AddrFrom16([16]byte(b[8:24]))
		p.Dst = netip.AddrFrom16([16]byte(b[24:40]))
	default:
		return p, ErrVersion
	}
	t := p.Buf[p.IPLen:]
	if len(t) < tcpMinLen {
		return p, ErrShort
	}
	off := int(t[12]>>4) * 4
	if off < tcpMinLen || off > len(t) {
		return p, ErrBadLength
	}
	p.TCPLen = off
	p.SrcPort = binary.BigEndian.Uint16(t[0:2])
	p.DstPort = binary.BigEndian.Uint16(t[2:4])
	p.Seq = binary.BigEndian.Uint32(t[4:8])
	p.Ack = binary.BigEndian.Uint32(t[8:12])
	p.Flags = t[13]
	p.Window = binary.BigEndian.Uint16(t[14:16])
	p.Urgent = binary.BigEndian.Uint16(t[18:20])
	return p, nil
}

// VerifyChecksum reports whether the TCP checksum of p is correct.
func (p *Packet) VerifyChecksum() bool {
	seg := p.Buf[p.IPLen:]
	return fold(pseudoSum(p.Src, p.Dst, len(seg))+sum(seg)) == 0xffff
}

// Header describes a packet to build.
type Header struct {
	V6       bool
	Src, Dst netip.Addr
	SrcPort  uint16
	DstPort  uint16
	Seq, Ack uint32
	Flags    uint8
	Window   uint16
	Urgent   uint16
	TOS      uint8
	TTL      uint8
	IPID     uint16
	Flow     uint32
	Options  []byte // TCP options, already padded to a multiple of 4
	Payload  []byte
	// PartialChecksum: write only the pseudo-header sum into the TCP
	// checksum field, for the kernel to finish (OffloadNeedsCsum).
	PartialChecksum bool
}

// HeaderFrom copies the IP and TCP fields of p into a Header (no options, no payload).
func HeaderFrom(p *Packet) Header {
	return Header{V6: p.V6, Src: p.Src, Dst: p.Dst, SrcPort: p.SrcPort, DstPort: p.DstPort,
		Seq: p.Seq, Ack: p.Ack, Flags: p.Flags, Window: p.Window, Urgent: p.Urgent,
		TOS: p.TOS, TTL: p.TTL, IPID: p.IPID, Flow: p.Flow}
}

// Len is the length of the packet Build writes for h.
func (h *Header) Len() int {
	n := ipv4MinLen
	if h.V6 {
		n = ipv6HdrLen
	}
	return n + tcpMinLen + len(h.Options) + len(h.Payload)
}

// Build writes h into dst (which must have room for h.Len() bytes) and
// returns the packet. Payload may alias dst at the payload position (the
// engine seals in place); Build then does not copy it.
func Build(dst []byte, h *Header) []byte { return build(dst, h, true) }

// BuildHeaders writes h's headers into dst as Build would, for a packet
// whose payload is written from elsewhere right after them (an iovec):
// only with PartialChecksum, the one checksum that does not cover the
// payload. dst must have room for h.Len() bytes, as for Build.
func BuildHeaders(dst []byte, h *Header) []byte {
	if !h.PartialChecksum {
		panic("packet: BuildHeaders without PartialChecksum") // a caller's bug: the sum would need the payload
	}
	return build(dst, h, false)[:h.Len()-len(h.Payload)]
}

func build(dst []byte, h *Header, withPayload bool) []byte {
	n := h.Len()
	b := dst[:n]
	ipl := ipv4MinLen
	if h.V6 {
		ipl = ipv6HdrLen
	}
	t := b[ipl:]
	binary.BigEndian.PutUint16(t[0:2], h.SrcPort)
	binary.BigEndian.PutUint16(t[2:4], h.DstPort)
	binary.BigEndian.PutUint32(t[4:8], h.Seq)
	binary.BigEndian.PutUint32(t[8:12], h.Ack)
	t[12] = uint8((tcpMinLen+len(h.Options))/4) << 4
	t[13] = h.Flags
	binary.BigEndian.PutUint16(t[14:16], h.Window)
	t[16], t[17] = 0, 0
	binary.BigEndian.PutUint16(t[18:20], h.Urgent)
	copy(t[tcpMinLen:], h.Options)
	pay := t[tcpMinLen+len(h.Options):]
	if withPayload && len(h.Payload) > 0 && &pay[0] != &h.Payload[0] {
		copy(pay, h.Payload)
	}
	if h.V6 {
		binary.BigEndian.PutUint32(b[0:4], 6<<28|uint32(h.TOS)<<20|h.Flow&0xfffff)
		binary.BigEndian.PutUint16(b[4:6], uint16(n-ipv6HdrLen))
		b[6] = ProtoTCP
		b[7] = h.TTL
		a16 := h.Src.As16()
		copy(b[8:24], a16[:])
		a16 = h.Dst.As16()
		copy(b[24:40], a16[:])
	} else {
		b[0] = 0x45
		b[1] = h.TOS
		binary.BigEndian.PutUint16(b[2:4], uint16(n))
		binary.BigEndian.PutUint16(b[4:6], h.IPID)
		binary.BigEndian.PutUint16(b[6:8], 0x4000) // DF
		b[8] = h.TTL
		b[9] = ProtoTCP
		b[10], b[11] = 0, 0
		a4 := h.Src.As4()
		copy(b[12:16], a4[:])
		a4 = h.Dst.As4()
		copy(b[16:20], a4[:])
		binary.BigEndian.PutUint16(b[10:12], ^fold(sum(b[:ipv4MinLen])))
	}
	seg := b[ipl:]
	if h.PartialChecksum {
		binary.BigEndian.PutUint16(t[16:18], fold(pseudoSum(h.Src, h.Dst, len(seg))))
	} else {
		binary.BigEndian.PutUint16(t[16:18], ^fold(pseudoSum(h.Src, h.Dst, len(seg))+sum(seg)))
	}
	return b
}

// pseudoSum is the unfolded sum of the TCP pseudo header (RFC 9293 §3.1, RFC 8200 §8.1).
func pseudoSum(src, dst netip.Addr, tcpLen int) uint64 {
	var s uint64
	if src.Is4() {
		a, b := src.As4(), dst.As4()
		s += uint64(binary.BigEndian.Uint16(a[0:2])) + uint64(binary.BigEndian.Uint16(a[2:4]))
		s += uint64(binary.BigEndian.Uint16(b[0:2])) + uint64(binary.BigEndian.Uint16(b[2:4]))
	} else {
		a, b := src.As16(), dst.As16()
		for i := 0; i < 16; i += 2 {
			s += uint64(binary.BigEndian.Uint16(a[i:])) + uint64(binary.BigEndian.Uint16(b[i:]))
		}
	}
	return s + ProtoTCP + uint64(tcpLen)
}

// sum adds b as big-endian 16-bit words, 8 bytes at a time.
func sum(b []byte) uint64 {
	var s uint64
	for len(b) >= 8 {
		v := binary.BigEndian.Uint64(b)
		s += v >> 32
		s += v & 0xffffffff
		b = b[8:]
	}
	for len(b) >= 2 {
		s += uint64(binary.BigEndian.Uint16(b))
		b = b[2:]
	}
	if len(b) == 1 {
		s += uint64(b[0]) << 8
	}
	return s
}

func fold(s uint64) uint16 {
	for s>>16 != 0 {
		s = s&0xffff + s>>16
	}
	return uint16(s)
}
