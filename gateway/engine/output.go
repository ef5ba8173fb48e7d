// Output: the packets one batch of Process and Tick calls sends, in the
// order the engine sends them, ready for the TUN device.
//
//  1. The engine fills it (forward and emit, emit.go): next gives room for
//     a packet, commit records it; a super-packet may still grow.
//  2. The dataplane writes the batch (EncodeOffloads puts each packet's
//     header into its headroom; Vec gives a packet's slices) and Resets
//     it, before the shard's lock goes (Lend, below); buffers are kept.
//
// A packet forwarded unchanged from a read buffer the caller lent
// (Locked.ProcessBuffer) is not copied: its slot points at the read buffer
// itself until Reset gives the slot its own buffer back (borrow), so the
// read buffer must stay untouched until the batch is written.
//
// With Lend (the dataplane's own writev path, gateway/vnet.go) a frame sent
// from a flow's ring is not copied either: the packet is its headers (in
// its slot's buffer) followed by slices of the ring (Vec), and the ring is
// pinned (ringPin, ring.go) until Reset: it neither reuses the lent bytes
// nor gives their buffer back to a pool; a buffer it drops meanwhile waits
// in the Output (park) and goes back to the pool at Reset. So the batch
// must be written and Reset while the shard's lock is still held.
// Packets joins each such packet into its slot's buffer (the copying path:
// the tun package's Write, and the tests).

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

	// Lend: frames from a flow's ring are lent, not copied (see above).
	Lend bool
	// iovs holds the lent slices of every packet, in order; tails[i] is
	// where packet i's begin (its end is where packet i+1's begin).
	iovs   [][]byte
	tails  []int32
	pins   []*ringPin // rings lent into this batch, unpinned at Reset
	parked []*[]byte  // buffers pinned rings dropped, to the pool at Reset
	vec    [][]byte   // Vec's result
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
	o.grow()
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
	o.grow()
	o.tails[o.N] = int32(len(o.iovs))
	for len(o.own) < len(o.Bufs) {
		o.own = append(o.own, nil)
		o.borrowed = append(o.borrowed, false)
	}
	o.own[o.N], o.borrowed[o.N] = o.Bufs[o.N], true
	o.Bufs[o.N] = buf
	o.Meta[o.N] = meta
	o.N++
}

// grow makes room for slot N.
func (o *Output) grow() {
	if o.N == len(o.Bufs) {
		o.Bufs = append(o.Bufs, nil)
		o.Meta = append(o.Meta, packet.Offload{})
	}
	for len(o.tails) < len(o.Bufs) {
		o.tails = append(o.tails, 0)
	}
}

// commit records that the packet just built in next() is n bytes long.
func (o *Output) commit(n int, meta packet.Offload) {
	o.tails[o.N] = int32(len(o.iovs))
	o.Bufs[o.N] = o.Bufs[o.N][:o.Offset+n]
	o.Meta[o.N] = meta
	o.N++
}

// lend appends b, bytes of a ring pinned into this batch (ringPin.lend),
// to the last packet, after its headers or its other lent bytes.
func (o *Output) lend(b []byte) {
	if k := len(o.iovs); k > int(o.tails[o.N-1]) {
		if last := o.iovs[k-1]; cap(last) > len(last) && &last[:len(last)+1][len(last)] == &b[0] {
			o.iovs[k-1] = last[:len(last)+len(b)] // the next frame in the ring
			return
		}
	}
	o.iovs = append(o.iovs, b)
}

// tail returns packet i's lent slices.
func (o *Output) tail(i int) [][]byte {
	end := len(o.iovs)
	if i+1 < o.N {
		end = int(o.tails[i+1])
	}
	return o.iovs[o.tails[i]:end]
}

// Vec returns packet i as the slices to write one after the other: its
// virtio-net header (EncodeOffloads) and headers, then any lent bytes. The
// result is valid until the next call.
func (o *Output) Vec(i int) [][]byte {
	o.vec = append(o.vec[:0], o.Bufs[i][o.Offset-packet.OffloadLen:])
	o.vec = append(o.vec, o.tail(i)...)
	return o.vec
}

// flatten joins every lent slice into its packet's buffer (whose room
// next reserved for the whole packet): the batch is then whole packets.
func (o *Output) flatten() {
	if len(o.iovs) == 0 {
		return
	}
	for i := 0; i < o.N; i++ {
		for _, t := range o.tail(i) {
			b := o.Bufs[i]
			o.Bufs[i] = b[:len(b)+len(t)]
			copy(o.Bufs[i][len(b):], t)
		}
	}
	for i := 0; i < o.N; i++ {
		o.tails[i] = 0
	}
	clear(o.iovs)
	o.iovs = o.iovs[:0]
}

// Reset empties the batch, keeping its buffers, and releases what it
// pinned: the batch has been written.
func (o *Output) Reset() {
	for _, p := range o.pins {
		p.out = nil
	}
	clear(o.pins)
	o.pins = o.pins[:0]
	for _, b := range o.parked {
		bufPool.put(b)
	}
	clear(o.parked)
	o.parked = o.parked[:0]
	clear(o.iovs)
	o.iovs = o.iovs[:0]
	for i := 0; i < o.N; i++ {
		if i < len(o.borrowed) && o.borrowed[i] {
			o.Bufs[i], o.own[i], o.borrowed[i] = o.own[i], nil, false
		}
		o.Bufs[i] = o.Bufs[i][:cap(o.Bufs[i])]
	}
	o.N = 0
	o.co.Reset()
}

// Packets returns the packets of the batch (with headroom), whole: lent
// bytes are copied into their packets (flatten).
func (o *Output) Packets() [][]byte {
	o.flatten()
	return o.Bufs[:o.N]
}

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
