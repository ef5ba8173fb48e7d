// Output: the packets one batch of Process and Tick calls sends, in the
// order the engine sends them, ready for the TUN device.
//
//  1. forward copies a packet as it came in, with the offload header it
//     came with (a super-packet stays one).
//  2. emit builds a packet from a Header. When the device takes offload
//     headers (Output.Offload), the TCP checksum is left to the kernel
//     (NEEDS_CSUM), and a packet that continues the previous one (the next
//     segment of the same flow, same headers) is appended to it instead:
//     one frame per segment still, many segments per write (packet.Coalescer).
//  3. The dataplane writes the batch (EncodeOffloads puts each packet's
//     header into its headroom) and Resets it; buffers are kept.

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

// commit records that the packet just built in next() is n bytes long.
func (o *Output) commit(n int, meta packet.Offload) {
	o.Bufs[o.N] = o.Bufs[o.N][:o.Offset+n]
	o.Meta[o.N] = meta
	o.N++
}

// Reset empties the batch, keeping its buffers.
func (o *Output) Reset() {
	for i := 0; i < o.N; i++ {
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

// forward copies the packet being processed to the output unchanged, with
// the offload header it came with.
func (e *Engine) forward(b []byte, out *Output) {
	if len(b) > MaxPacket+40 {
		e.stats.Malformed.Add(1)
		return
	}
	dst := out.next(len(b))
	out.commit(copy(dst, b), e.rxOffload)
	out.co.Reset()
	e.stats.PacketsOut.Add(e.rxSegs)
}

// emit builds one packet from h into the output, or appends it to the
// super-packet being built (Output.Offload).
func (e *Engine) emit(h *packet.Header, out *Output) {
	if h.Len() > MaxPacket {
		// Every sender cuts payloads to an MSS; a longer one is a bug,
		// never worth a panic.
		e.stats.Malformed.Add(1)
		return
	}
	e.stats.PacketsOut.Add(1)
	if !out.Offload {
		out.commit(len(packet.Build(out.next(h.Len()), h)), packet.Offload{})
		return
	}
	h.PartialChecksum = true
	if out.N > 0 {
		last := out.Bufs[out.N-1]
		if grown, meta, ok := out.co.Append(last[out.Offset:], h, min(MaxPacket, cap(last)-out.Offset)); ok {
			out.Bufs[out.N-1] = last[:out.Offset+len(grown)]
			out.Meta[out.N-1] = meta
			return
		}
	}
	n := h.Len()
	if packet.MayCoalesce(h) {
		n = MaxPacket
	}
	pkt := packet.Build(out.next(n), h)
	out.commit(len(pkt), packet.OffloadOf(pkt))
	out.co.Start(pkt, h)
}

// spill hands out to e.Flush once it holds SpillAt packets (long loops).
func (e *Engine) spill(out *Output) {
	if out.N >= SpillAt && e.Flush != nil {
		e.Flush(out)
	}
}
