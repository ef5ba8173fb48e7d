// Offloads: the virtio-net header a TUN device opened with IFF_VNET_HDR puts
// before every packet (include/uapi/linux/virtio_net.h). It says what the
// kernel left undone, so that the gateway does not do it at all:
//
//   - Read: a GSO super-packet (GSOType TCPv4/TCPv6) is up to 64 KiB of
//     segments of one flow under one header; the gateway takes it whole,
//     like one segment with a large payload. NEEDS_CSUM means the TCP
//     checksum field holds only the pseudo-header sum (the packet was built
//     on this machine); DATA_VALID means the kernel has verified the
//     checksum. Either way there is nothing to verify again.
//   - Write: the gateway builds its packets with the pseudo-header sum only
//     (NEEDS_CSUM) and joins runs of segments of one flow into super-packets
//     (Coalescer); the kernel or the NIC finishes both where it must, on
//     veth not at all.

package packet

import (
	"encoding/binary"
	"net/netip"
)

// OffloadLen is the length of the virtio-net header (struct virtio_net_hdr).
const OffloadLen = 10

// virtio-net header flags and GSO types.
const (
	OffloadNeedsCsum = 1 // VIRTIO_NET_HDR_F_NEEDS_CSUM
	OffloadDataValid = 2 // VIRTIO_NET_HDR_F_DATA_VALID

	GSONone  = 0 // VIRTIO_NET_HDR_GSO_NONE
	GSOTCPv4 = 1 // VIRTIO_NET_HDR_GSO_TCPV4
	GSOTCPv6 = 4 // VIRTIO_NET_HDR_GSO_TCPV6
)

// Offload is a decoded virtio-net header. Its zero value is a packet with
// a complete checksum and no segmentation.
type Offload struct {
	Flags      uint8
	GSOType    uint8
	HdrLen     uint16
	GSOSize    uint16
	CsumStart  uint16
	CsumOffset uint16
}

// DecodeOffload reads a virtio-net header from b[:OffloadLen].
func DecodeOffload(b []byte) Offload {
	return Offload{Flags: b[0], GSOType: b[1], HdrLen: hostEndian.Uint16(b[2:]), GSOSize: hostEndian.Uint16(b[4:]),
		CsumStart: hostEndian.Uint16(b[6:]), CsumOffset: hostEndian.Uint16(b[8:])}
}

// Encode writes o as a virtio-net header into b[:OffloadLen].
func (o *Offload) Encode(b []byte) {
	b[0], b[1] = o.Flags, o.GSOType
	hostEndian.PutUint16(b[2:], o.HdrLen)
	hostEndian.PutUint16(b[4:], o.GSOSize)
	hostEndian.PutUint16(b[6:], o.CsumStart)
	hostEndian.PutUint16(b[8:], o.CsumOffset)
}

// ChecksumTrusted reports whether the kernel vouches for the packet's TCP
// checksum: it built the packet itself (NEEDS_CSUM, the field holds only
// the pseudo-header sum) or it verified it (DATA_VALID).
func (o *Offload) ChecksumTrusted() bool { return o.Flags&(OffloadNeedsCsum|OffloadDataValid) != 0 }

// hostEndian is the byte order of the virtio-net header: the host's own,
// as for the "legacy" headers a TUN device uses unless TUNSETVNETLE or
// TUNSETVNETBE asks otherwise (the tun package asks neither), so a
// big-endian MIPS router reads them big-endian.
var hostEndian = binary.NativeEndian

// partialOffload is the header of a packet Build wrote with
// PartialChecksum: the kernel adds the TCP header and payload to the
// pseudo-header sum in the checksum field.
func partialOffload(ipl, tcpl int) Offload {
	return Offload{Flags: OffloadNeedsCsum, HdrLen: uint16(ipl + tcpl), CsumStart: uint16(ipl), CsumOffset: 16}
}

// OffloadOf returns the virtio-net header for p as Build wrote it with
// PartialChecksum.
func OffloadOf(p []byte) Offload {
	ipl := ipv4MinLen
	if p[0]>>4 == 6 {
		ipl = ipv6HdrLen
	}
	return partialOffload(ipl, int(p[ipl+12]>>4)*4)
}

// Coalescer joins packets that Build writes one after another into GSO
// super-packets (the kernel's GRO rules, in the order of emission rather
// than by lookup): consecutive segments of one flow, contiguous in
// sequence, with the same headers except the sequence number, each as long
// as the first except the last. PSH or FIN end a super-packet (the kernel
// puts them on its last segment); SYN, RST, URG and CWR never join one
// (CWR belongs to the first segment only, RFC 3168 §6.1.2).
type Coalescer struct {
	open    bool
	h       Header // of the super-packet, without payload
	opts    [MaxTCPOption]byte
	seqNext uint32
	size    int // payload length of each segment (gso_size)
	total   int // bytes of the super-packet
	hdrLen  int
}

// Reset forgets the open super-packet.
func (c *Coalescer) Reset() { c.open = false }

// Append adds h's payload to the open super-packet pkt (the whole packet,
// whose buffer has room up to cap) if h may join it, and returns the grown
// packet. ok is false if h cannot join; the caller then builds h on its
// own and calls Start.
func (c *Coalescer) Append(pkt []byte, h *Header, max int) (grown []byte, o Offload, ok bool) {
	if !c.joins(h, len(pkt), max) {
		return nil, Offload{}, false
	}
	grown = pkt[:c.total+len(h.Payload)]
	copy(grown[c.total:], h.Payload)
	return grown, c.extend(grown, len(h.Payload), h.Flags), true
}

// AppendHeaders is Append for a super-packet whose payload lies elsewhere
// (written after the headers from an iovec): hdr is its headers, total
// its whole length so far. Only the headers change; the caller adds h's
// payload after the super-packet's.
func (c *Coalescer) AppendHeaders(hdr []byte, total int, h *Header, max int) (o Offload, ok bool) {
	if len(hdr) != c.hdrLen || !c.joins(h, total, max) {
		return Offload{}, false
	}
	return c.extend(hdr, len(h.Payload), h.Flags), true
}

// joins reports whether h may join the open super-packet of length total.
func (c *Coalescer) joins(h *Header, total, max int) bool {
	n := len(h.Payload)
	if !c.open || n == 0 || n > c.size || h.Seq != c.seqNext || c.total+n > max || total != c.total ||
		h.Flags&^(FlagPSH|FlagFIN) != c.h.Flags || h.Ack != c.h.Ack || h.Window != c.h.Window ||
		h.SrcPort != c.h.SrcPort || h.DstPort != c.h.DstPort || h.Src != c.h.Src || h.Dst != c.h.Dst ||
		h.V6 != c.h.V6 || h.TOS != c.h.TOS || h.TTL != c.h.TTL || h.Flow != c.h.Flow || h.Urgent != 0 ||
		string(h.Options) != string(c.opts[:len(c.h.Options)]) {
		return false
	}
	return !h.V6 || c.total-ipv6HdrLen+n <= 0xffff
}

// extend grows the super-packet by n payload bytes (flags: the joining
// segment's): it writes only the headers, grown[:hdrLen].
func (c *Coalescer) extend(grown []byte, n int, flags uint8) (o Offload) {
	c.total += n
	c.seqNext += uint32(n)
	ipl := ipv4MinLen
	if c.h.V6 {
		ipl = ipv6HdrLen
	}
	if fl := flags & (FlagPSH | FlagFIN); fl != 0 || n < c.size {
		grown[ipl+13] |= fl
		c.open = false
	}
	o = partialOffload(ipl, c.hdrLen-ipl)
	if c.h.V6 {
		o.GSOType = GSOTCPv6
		binary.BigEndian.PutUint16(grown[4:6], uint16(c.total-ipv6HdrLen))
	} else {
		o.GSOType = GSOTCPv4
		binary.BigEndian.PutUint16(grown[2:4], uint16(c.total))
		grown[10], grown[11] = 0, 0
		binary.BigEndian.PutUint16(grown[10:12], ^fold(sum(grown[:ipv4MinLen])))
	}
	o.GSOSize = uint16(c.size)
	binary.BigEndian.PutUint16(grown[ipl+16:], fold(pseudoSum(c.h.Src, c.h.Dst, c.total-ipl)))
	return o
}

// MayCoalesce reports whether later segments may join a packet built from
// h (Coalescer.Start).
func MayCoalesce(h *Header) bool {
	return len(h.Payload) > 0 && h.Flags&(FlagSYN|FlagRST|FlagURG|FlagCWR|FlagPSH|FlagFIN) == 0 && h.Urgent == 0 &&
		len(h.Options) <= MaxTCPOption
}

// Start opens a super-packet with pkt, which Build just wrote from h, if
// later segments may join it.
func (c *Coalescer) Start(pkt []byte, h *Header) {
	c.open = MayCoalesce(h)
	if !c.open {
		return
	}
	c.h = *h
	c.h.Payload = nil
	copy(c.opts[:], h.Options)
	c.h.Options = c.opts[:len(h.Options)]
	c.size = len(h.Payload)
	c.total = len(pkt)
	c.hdrLen = len(pkt) - len(h.Payload)
	c.seqNext = h.Seq + uint32(len(h.Payload))
}

// StartHeaders is Start for a packet whose payload lies elsewhere:
// BuildHeaders just wrote hdr from h.
func (c *Coalescer) StartHeaders(hdr []byte, h *Header) {
	c.Start(hdr, h)
	if c.open {
		c.total, c.hdrLen = len(hdr)+len(h.Payload), len(hdr)
	}
}

// PseudoSum returns the folded pseudo-header sum of a TCP segment of
// tcpLen bytes: what the checksum field holds with OffloadNeedsCsum.
func PseudoSum(src, dst netip.Addr, tcpLen int) uint16 { return fold(pseudoSum(src, dst, tcpLen)) }
