// Emission: every packet the engine sends goes through this file into the
// Output batch (output.go).
//
//  1. forward copies a packet as it came in, with the offload header it
//     came with (a super-packet stays one); emit builds a packet from a
//     Header and, when the device takes offload headers, leaves the TCP
//     checksum to the kernel (NEEDS_CSUM) and appends a packet that
//     continues the previous one (the next segment of the same flow, same
//     headers) to it: one frame per segment still, many segments per write
//     (packet.Coalescer). A payload sent from a flow's ring (lendFrom:
//     frames, kept plaintext) is lent to a batch that lends
//     (Output.Lend): emitLent writes the headers only.
//
// The segments the engine sends on a flow's behalf, in both directions,
// carry the flow's current acknowledgment, window and options for the side
// it goes to:
//
//  2. toWAN: from the LAN host's side to the WAN peer, in C: the
//     acknowledgment the decrypting direction has earned (dec.cAcked), the
//     LAN host's window capped to what the flow can hold (winToWAN), the
//     LAN host's timestamps, the non-SYN ENO option while it must ride
//     along (RFC 8547 §4.6), SACK blocks for bytes held beyond a hole
//     once the hole is reportable (sackToWAN, holeReportable: when the WAN
//     peer hears of a hole, and how). What a segment to the WAN may carry
//     follows from those options (maxSegment; maxFrameData for a frame):
//     the frames (encrypt.go) and the Init messages (keyexchange.go) are
//     cut to it.
//  3. toLAN: from the WAN peer's side to the LAN host, in P: the
//     acknowledgment of whole frames the WAN has acknowledged (enc.pAcked),
//     the WAN peer's window scaled for the framing overhead (winToLAN), its
//     timestamps, SACK blocks mapped to whole frames (sackToLAN).
//  4. Both go through emit, which joins runs of them into super-packets.
//  5. The window a segment carries (winToWAN, winToLAN) is the other
//     host's, capped to what the flow can still hold of that direction
//     (room: its reservation plus what its limit and the global budget
//     still allow, budget.go's point 4).

package engine

import (
	"tcpcrypt-gw/crypto/tcpcrypt"
	"tcpcrypt-gw/eno"
	"tcpcrypt-gw/gateway/packet"
)

// toWAN sends a segment from the LAN host's side of f to the WAN peer, with
// the current acknowledgment and window of the decrypting direction.
func (c *pkt) toWAN(f *Flow, seq cSeq, flags uint8, payload []byte, tos uint8) {
	w := &c.optWriter
	w.Reset()
	if f.enoPending {
		w.Raw(eno.NonSYNOption[:])
	}
	if f.tsOK {
		w.Timestamp(f.lanTSval, f.lanTSecr)
	}
	if f.sackOK && flags&packet.FlagRST == 0 {
		// SACK blocks only where the segment still fits the path: a full
		// frame leaves room for the timestamp option alone.
		w.SACK(f.dec.sackToWAN(c.sack[:0]), f.peerMSS-len(payload)-w.Len())
	}
	h := packet.Header{V6: f.V6, Src: f.LAN.Addr(), Dst: f.WAN.Addr(), SrcPort: f.LAN.Port(), DstPort: f.WAN.Port(),
		Seq: uint32(seq), Ack: uint32(f.dec.cAcked), Flags: flags, Window: c.winToWAN(f), TOS: segmentTOS(tos, payload), TTL: 64, Options: w.Bytes(), Payload: payload}
	if flags&packet.FlagACK == 0 {
		h.Ack = 0
	} else {
		f.dec.initAckOwed = false // this segment acknowledges B's Init2 (gotInit2)
	}
	c.emit(&h)
}

// maxFrameData is the most plaintext one frame may carry so that the frame
// fits the peer's MSS with the timestamp option.
func (f *Flow) maxFrameData() int {
	return max(f.maxSegment()-tcpcrypt.FrameOverhead, 1)
}

// maxSegment is the most C bytes one segment to the WAN may carry: the
// peer's MSS less the options toWAN always adds (SACK blocks go only where
// room is left).
func (f *Flow) maxSegment() int {
	n := f.peerMSS
	if f.tsOK {
		n -= 12
	}
	if f.enoPending {
		// The non-SYN ENO option (padded to 4 bytes) rides on every segment
		// until B has sent one (RFC 8547 §4.6): a resumed flow sends frames
		// before that, and they must still fit the path.
		n -= 4
	}
	return max(n, tcpcrypt.FrameOverhead+1)
}

// holeReportable reports whether the gateway may tell the WAN peer about a
// hole (a duplicate ACK with SACK): only once the LAN host has acknowledged
// every frame delivered before it. Until then the cumulative ACK the peer
// would see stops at what the LAN host acknowledged, the hole looks as wide
// as all the frames in front of it, and the sender retransmits them; those
// retransmissions turn out spurious, Linux undoes its recovery and the one
// segment really lost waits for a 200 ms timeout (measured under 1 % loss).
// The delivered bytes cannot be SACKed instead: Linux discards a SACK
// block that starts at its snd_una. The LAN host's next ACK, translated,
// carries the hole exactly and the SACK blocks (toWAN adds sackToWAN).
func (d *decState) holeReportable() bool { return d.lanCaughtUp() }

// sackToWAN describes, in C, the bytes the gateway holds past a hole, the
// island of the segment that arrived last first (oooQueue.blocks), once the
// hole is reportable (holeReportable).
func (d *decState) sackToWAN(dst []packet.SACKBlock) []packet.SACKBlock {
	if d.ooo.len() == 0 || !d.holeReportable() {
		return nil
	}
	return d.ooo.blocks(dst, 3)
}

// ackWAN sends the WAN peer an ACK of our own: after consuming its Init, or
// as a duplicate ACK with SACK when its bytes arrive beyond a hole.
func (c *pkt) ackWAN(f *Flow) {
	c.toWAN(f, f.enc.cNxt, packet.FlagACK, nil, 0)
}

// toLAN sends a segment from the WAN peer's side of f to the LAN host, with
// the acknowledgment the encrypting direction has earned (enc.pAcked).
func (c *pkt) toLAN(f *Flow, seq pSeq, flags uint8, payload []byte, tos uint8) {
	c.toLANOpts(f, seq, flags, payload, nil, tos)
}

// toLANAck sends the LAN host an acknowledgment without data; wan, the
// options of the WAN segment whose ACK it passes on (or nil), gives its
// SACK blocks, mapped to whole frames (sackToLAN), as toWAN finds its own
// (sackToWAN).
func (c *pkt) toLANAck(f *Flow, flags uint8, wan *packet.Options, tos uint8) {
	var sack []packet.SACKBlock
	if wan != nil {
		sack = f.enc.sackToLAN(c.sack[:0], wan)
	}
	c.toLANOpts(f, f.dec.pRcv, flags, nil, sack, tos)
}

// sackToLAN maps the WAN's SACK blocks (C) to whole frames in P.
func (en *encState) sackToLAN(blocks []packet.SACKBlock, o *packet.Options) []packet.SACKBlock {
	for _, b := range o.SACK[:o.NSACK] {
		i := en.recs.search(func(r *frameRec) bool { return !r.cStart.lt(cSeq(b.Left)) })
		j := en.recs.search(func(r *frameRec) bool { return r.cAfter().gt(cSeq(b.Right)) }) - 1
		if i > j || i >= en.recs.len() || j < 0 {
			continue
		}
		l, r := en.recs.at(i), en.recs.at(j)
		if l.pStart.lt(r.pAfter()) {
			blocks = append(blocks, packet.SACKBlock{Left: uint32(l.pStart), Right: uint32(r.pAfter())})
		}
	}
	return blocks
}

func (c *pkt) toLANOpts(f *Flow, seq pSeq, flags uint8, payload []byte, sack []packet.SACKBlock, tos uint8) {
	w := &c.optWriter
	w.Reset()
	if f.tsOK {
		w.Timestamp(f.wanTSval, f.wanTSecr)
	}
	if f.sackOK && len(sack) > 0 {
		w.SACK(sack, f.lanMSS-len(payload)-w.Len())
	}
	h := packet.Header{V6: f.V6, Src: f.WAN.Addr(), Dst: f.LAN.Addr(), SrcPort: f.WAN.Port(), DstPort: f.LAN.Port(),
		Seq: uint32(seq), Ack: uint32(f.enc.pAcked), Flags: flags, Window: c.winToLAN(f), TOS: segmentTOS(tos, payload), TTL: 64, Options: w.Bytes(), Payload: payload}
	c.emit(&h)
	if flags&packet.FlagACK != 0 {
		f.lanSynAcked = true
	}
}

// forward puts the packet being processed into the output unchanged, with
// the offload header it came with: from its read buffer when the caller
// lent that (ProcessBuffer), else as a copy.
func (c *pkt) forward(b []byte) {
	if len(b) > MaxPacket+40 {
		c.stats.Malformed.Add(1)
		return
	}
	if off := c.out.Offset; len(b) > 0 && len(c.rxBuf) > off && &b[0] == &c.rxBuf[off] {
		c.out.borrow(c.rxBuf[:off+len(b)], c.rxOffload)
		c.out.co.Reset()
		c.stats.PacketsOut.Add(c.rxSegs)
		return
	}
	dst := c.out.next(len(b))
	c.out.commit(copy(dst, b), c.rxOffload)
	c.out.co.Reset()
	c.stats.PacketsOut.Add(c.rxSegs)
}

// emit builds one packet from h into the output, or appends it to the
// super-packet being built (Output.Offload).
func (c *pkt) emit(h *packet.Header) {
	if h.Len() > MaxPacket {
		// Every sender cuts payloads to an MSS; a longer one is a bug,
		// never worth a panic.
		c.stats.Malformed.Add(1)
		return
	}
	c.stats.PacketsOut.Add(1)
	if c.lendPin != nil && c.out.Lend && c.out.Offload && len(h.Payload) > 0 && (c.lendPin.out == nil || c.lendPin.out == c.out) {
		// (A ring still lent into another batch, not yet written, would
		// need two pins: never with the dataplane, which writes each
		// batch before the lock goes; such a payload is copied.)
		c.emitLent(h)
		return
	}
	if !c.out.Offload {
		c.out.commit(len(packet.Build(c.out.next(h.Len()), h)), packet.Offload{})
		return
	}
	h.PartialChecksum = true
	if c.out.N > 0 {
		last := c.out.Bufs[c.out.N-1]
		if grown, meta, ok := c.out.co.Append(last[c.out.Offset:], h, min(MaxPacket, cap(last)-c.out.Offset)); ok {
			c.out.Bufs[c.out.N-1] = last[:c.out.Offset+len(grown)]
			c.out.Meta[c.out.N-1] = meta
			return
		}
	}
	n := h.Len()
	if packet.MayCoalesce(h) {
		n = MaxPacket
	}
	pkt := packet.Build(c.out.next(n), h)
	c.out.commit(len(pkt), packet.OffloadOf(pkt))
	c.out.co.Start(pkt, h)
}

// emitLent is emit for a payload from a ring (lendFrom): the packet's
// headers go into the output, the payload is lent (Output.Lend), and a
// super-packet grows by its headers alone (Coalescer.AppendHeaders).
func (c *pkt) emitLent(h *packet.Header) {
	o := c.out
	h.PartialChecksum = true
	if o.N > 0 {
		last := o.Bufs[o.N-1]
		total := len(last) - o.Offset
		for _, t := range o.tail(o.N - 1) {
			total += len(t)
		}
		if meta, ok := o.co.AppendHeaders(last[o.Offset:], total, h, min(MaxPacket, cap(last)-o.Offset)); ok {
			o.Meta[o.N-1] = meta
			c.lendPin.lend(o, c.lendBuf, h.Payload)
			return
		}
	}
	n := h.Len()
	if packet.MayCoalesce(h) {
		n = MaxPacket
	}
	hdr := packet.BuildHeaders(o.next(n), h) // room for the whole packet: Packets joins it there
	o.commit(len(hdr), packet.OffloadOf(hdr))
	o.co.StartHeaders(hdr, h)
	c.lendPin.lend(o, c.lendBuf, h.Payload)
}

// lendFrom makes the segments sent until lendFrom(nil, nil) lend their
// payload from the ring with pin p and buffer buf (emitLent).
func (c *pkt) lendFrom(p *ringPin, buf []byte) { c.lendPin, c.lendBuf = p, buf }

// segmentTOS is the TOS byte of a segment the engine builds: a segment
// without data is never ECN-capable (RFC 3168 §6.1.1, §6.1.4: SYNs, pure
// ACKs and the like are sent not-ECT), whatever the segment it answers
// carried; DSCP stays.
func segmentTOS(tos uint8, payload []byte) uint8 {
	if len(payload) == 0 {
		return tos &^ ecnMask
	}
	return tos
}

// The windows (point 5).

// winToWAN is the window the WAN peer gets: the LAN host's (P bytes, which
// the peer's C bytes can only undershoot) and at most what the gateway can
// hold of it: delivered plaintext stays in the flow's ring until the LAN
// host acknowledges it (redelivery on a WAN retransmission).
func (c *pkt) winToWAN(f *Flow) uint16 {
	return c.cappedWindow(f.lanWin, f.lanWS, c.room(f.dec.reserved), 1, 1)
}

// winToLAN is the window the LAN host gets: the WAN peer's window (C bytes)
// scaled to P so that it cannot be overrun once 20 bytes of framing are
// added to each segment, and at most what the gateway can hold of it.
// Every frame the LAN host sends stays in the flow's ring until the WAN
// acknowledges it (RFC 8548 §3.6: retransmissions resend the same bytes),
// so a window beyond the flow's buffer would make the gateway drop
// segments and the LAN host time c.out. The cap is relative to the
// acknowledgment the LAN host has, so its right edge moves back only when
// the global budget shrinks under it (budget.go).
func (c *pkt) winToLAN(f *Flow) uint16 {
	m := uint64(f.maxFrameData())
	return c.cappedWindow(f.wanWin, f.wanWS, c.room(f.enc.reserved), m, m+tcpcrypt.FrameOverhead)
}

// cappedWindow is the raw window win (in scale ws), at most room (what the
// direction may hold, budget.go), times num/den, in the same scale.
func (c *pkt) cappedWindow(win uint16, ws uint8, room int, num, den uint64) uint16 {
	w := uint64(win) << ws
	w = min(w, uint64(room)) * num / den
	return uint16(min(w>>ws, 0xffff))
}

// room is how many bytes a direction that has reserved `reserved` may hold
// in all, as far as its limit and the global budget allow now: the window
// its sender is given.
func (c *pkt) room(reserved int) int {
	free := c.table.MaxBytesTotal() - c.table.BytesInUse()
	return reserved + int(max(0, min(int64(c.dirLimit-reserved), free)))
}
