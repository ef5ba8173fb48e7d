// Package gsotest does, for tests, what the kernel does with a packet the
// gateway writes with a virtio-net header (packet.Offload): it finishes a
// partial checksum and cuts a GSO super-packet into the segments it stands
// for (net/ipv4/tcp_offload.c: every segment gets the headers of the
// first with its own sequence number, lengths, IPv4 ID and checksums; PSH
// and FIN only on the last, CWR only on the first).
package gsotest

import (
	"encoding/binary"
	"fmt"

	"tcpcrypt-gw/gateway/packet"
)

// Segments returns the packets pkt with header o stands for, each with a
// complete checksum.
func Segments(pkt []byte, o packet.Offload) ([][]byte, error) {
	p, err := packet.Parse(pkt)
	if err != nil {
		return nil, err
	}
	hdr := p.IPLen + p.TCPLen
	if o.Flags&packet.OffloadNeedsCsum != 0 && (int(o.CsumStart) != p.IPLen || o.CsumOffset != 16) {
		return nil, fmt.Errorf("csum_start %d csum_offset %d, want %d 16", o.CsumStart, o.CsumOffset, p.IPLen)
	}
	if o.GSOType == packet.GSONone {
		b := append([]byte(nil), p.Buf...)
		if o.Flags&packet.OffloadNeedsCsum != 0 {
			finish(b, p.IPLen)
		}
		return [][]byte{b}, nil
	}
	if want := uint8(packet.GSOTCPv4); p.V6 {
		want = packet.GSOTCPv6
		if o.GSOType != want {
			return nil, fmt.Errorf("gso type %d for IPv6", o.GSOType)
		}
	} else if o.GSOType != want {
		return nil, fmt.Errorf("gso type %d for IPv4", o.GSOType)
	}
	if o.Flags&packet.OffloadNeedsCsum == 0 || o.GSOSize == 0 {
		return nil, fmt.Errorf("GSO without NEEDS_CSUM or gso_size: %+v", o)
	}
	pay := p.Payload()
	size := int(o.GSOSize)
	if len(pay) <= size {
		return nil, fmt.Errorf("super-packet of %d bytes with gso_size %d", len(pay), size)
	}
	var segs [][]byte
	for i := 0; len(pay) > 0; i++ {
		n := min(size, len(pay))
		b := make([]byte, hdr+n)
		copy(b, p.Buf[:hdr])
		copy(b[hdr:], pay[:n])
		t := b[p.IPLen:]
		binary.BigEndian.PutUint32(t[4:8], p.Seq+uint32(i*size))
		flags := p.Flags
		if n != len(pay) {
			flags &^= packet.FlagPSH | packet.FlagFIN
		}
		if i > 0 {
			flags &^= packet.FlagCWR
		}
		t[13] = flags
		if p.V6 {
			binary.BigEndian.PutUint16(b[4:6], uint16(len(b)-40))
		} else {
			binary.BigEndian.PutUint16(b[2:4], uint16(len(b)))
			binary.BigEndian.PutUint16(b[4:6], p.IPID+uint16(i))
			b[10], b[11] = 0, 0
			binary.BigEndian.PutUint16(b[10:12], ^fold(sum(b[:20], 0)))
		}
		finish(b, p.IPLen)
		segs = append(segs, b)
		pay = pay[n:]
	}
	return segs, nil
}

// finish writes the complete TCP checksum of b.
func finish(b []byte, ipl int) {
	t := b[ipl:]
	t[16], t[17] = 0, 0
	var ps uint64
	if ipl == 20 {
		ps = sum(b[12:20], 0)
	} else {
		ps = sum(b[8:40], 0)
	}
	ps += packet.ProtoTCP + uint64(len(t))
	binary.BigEndian.PutUint16(t[16:18], ^fold(sum(t, ps)))
}

func sum(b []byte, s uint64) uint64 {
	for ; len(b) >= 2; b = b[2:] {
		s += uint64(binary.BigEndian.Uint16(b))
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
