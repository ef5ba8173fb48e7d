// Output: the packets one batch of Process and Tick calls sends, in the
// order the engine sends them, ready for the TUN device.
//
//  1. The engine fills it (forward and emit, emit.go): next gives room for
//     a packet, commit records it; a super-packet may still grow.
//  2. The dataplane writes the batch (EncodeOffloads puts each packet's
//     header into its headroom) and Resets it; buffers are kept.
//
// A packet forwarded unchanged from a read buffer the caller lent
// (Locked.ProcessBuffer) is not copied: its slot points at the read buffer
// itself until Reset gives the slot its own buffer back (borrow), so the
// read buffer must stay untouched until the batch is written.

package engine

import "tcpcrypt-gw/gateway/packet"

// Output collects the packets an engine sends. Each buffer has Offset bytes
// of headroom (the TUN device's virtio-net header) before the IP packet.
type Output struct {
	Bufs   [][]byte
	Meta   []packet.Offload // per packet, with Offload
	N      int
	Offset int
	// Offload: the device takes virtio-net headers (Offset >=
	// packet.OffloadLen): build partial checksums and super-packets.
	Offload bool

	co packet.Coalescer // the super-packet Bufs[N-1] may still grow

	// own[i] is slot i's buffer while Bufs[i] is a borrowed read
	// buffer (borrowed[i]); Reset puts it back.
	own      [][]byte
	borrowed []bool
}

// MaxPacket is the largest packet the engine builds, and the largest it
// reads (an IPv4 super-packet; an IPv6 one may have 40 bytes more).
const MaxPacket = 65535

// Output buffers are sized by their use: a packet that may grow into a
// super-packet gets room for one, anything else (ACKs, SYNs, RSTs) a small
// buffer. A slot keeps its buffer for the next batch and grows when a
// bigger packet needs it.
const smallPacketBuf = 2048

// SpillAt is how many packets a batch holds before the engine hands it to
// Engine.Flush in the middle of a long loop (ResetAll, Tick): the output of
// a shutdown with 100,000 flows must not be held at once.
const SpillAt = 256

// next returns room for one more packet of up to n bytes.
func (o *Output) next(n int) []byte {
	if o.N == len(o.Bufs) {
		o.Bufs = append(o.Bufs, nil)
		o.Meta = append(o.Meta, packet.Offload{})
	}
	b := o.Bufs[o.N]
	if cap(b) < o.Offset+n {
		b = make([]byte, o.Offset+max(n, smallPacketBuf))
		o.Bufs[o.N] = b
	}
	return b[o.Offset:cap(b)]
}

// borrow adds buf (Offset bytes of headroom, then the packet) to the batch
// as it is, no copy; the slot's own buffer waits in own until Reset.
func (o *Output) borrow(buf []byte, meta packet.Offload) {
	if o.N == len(o.Bufs) {
		o.Bufs = append(o.Bufs, nil)
		o.Meta = append(o.Meta, packet.Offload{})
	}
	for len(o.own) < len(o.Bufs) {
		o.own = append(o.own, nil)
		o.borrowed = append(o.borrowed, false)
	}
	o.own[o.N], o.borrowed[o.N] = o.Bufs[o.N], true
	o.Bufs[o.N] = buf
	o.Meta[o.N] = meta
	o.N++
}

// commit records that the packet just built in next() is n bytes long.
func (o *Output) commit(n int, meta packet.Offload) {
	o.Bufs[o.N] = o.Bufs[o.N][:o.Offset+n]
	o.Meta[o.N] = meta
	o.N++
}

// Reset empties the batch, keeping its buffers.
func (o *Output) Reset() {
	for i := 0; i < o.N; i++ {
		if i < len(o.borrowed) && o.borrowed[i] {
			o.Bufs[i], o.own[i], o.borrowed[i] = o.own[i], nil, false
		}
		o.Bufs[i] = o.Bufs[i][:cap(o.Bufs[i])]
	}
	o.N = 0
	o.co.Reset()
}

// Packets returns the packets of the batch (with headroom).
func (o *Output) Packets() [][]byte { return o.Bufs[:o.N] }

// EncodeOffloads writes each packet's virtio-net header into the last
// packet.OffloadLen bytes of its headroom.
func (o *Output) EncodeOffloads() {
	for i := 0; i < o.N; i++ {
		o.Meta[i].Encode(o.Bufs[i][o.Offset-packet.OffloadLen:])
	}
}

// flushIfFull hands the output batch to Engine.Flush once it holds SpillAt packets (long loops).
func (c *pkt) flushIfFull() {
	if c.out.N >= SpillAt && c.Flush != nil {
		c.Flush(c.out)
	}
}
