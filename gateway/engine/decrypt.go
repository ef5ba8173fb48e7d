// WAN to LAN: the peer's ciphertext stream is reassembled and its frames
// authenticated and delivered as plaintext (RFC 8548 §3.6, §4.2); the WAN's
// acknowledgments of our frames are mapped back into the P space.
//
// For each WAN segment of an encrypted flow:
//  1. Its ACK (C space) releases our whole acknowledged frames and gives the
//     LAN host the P end of the last of them.
//  2. Before the keys exist, its payload is the peer's Init message, which
//     the gateway consumes and acknowledges itself.
//  3. Bytes the frame parser already has are a retransmission: the frames
//     they cover are delivered again from the plaintext kept until the LAN
//     host acknowledges it.
//  4. Bytes beyond a hole wait in a bounded queue; the gateway tells the
//     sender with a duplicate ACK carrying SACK (in C) so it repairs the hole
//     quickly.
//  5. In-order bytes feed the frame parser: a frame is opened only when all
//     of it is present, in place when one segment holds it whole. Each
//     authenticated frame goes to the LAN host as one segment at the next P
//     position. A frame that fails authentication resets both sides; no byte
//     of it is delivered.
//  6. The TCP FIN is delivered only after a frame with the FIN flag; a bare
//     FIN is a truncation attack and resets the flow.

package engine

import (
	"tcpcrypt-gw/crypto/tcpcrypt"
	"tcpcrypt-gw/gateway/packet"
)

// wanSegment handles a WAN segment of a flow in key exchange or encrypted.
func (c *pkt) wanSegment(f *Flow, s *segment) {
	d := &f.dec
	f.enoPending = false // RFC 8547 §4.6: B has sent a non-SYN segment
	if s.opts.HasTS {
		f.wanTSval, f.wanTSecr = s.opts.TSval, s.opts.TSecr
	}
	f.wanWin = s.Window
	oldUna, oldSeen := f.enc.pAcked, f.enc.cAckSeen
	if s.has(packet.FlagACK) {
		c.wanAck(f, cSeq(s.Ack))
	}
	if s.has(packet.FlagRST) {
		c.toLAN(f, d.pRcv, f.enc.pAcked, s.Flags&(packet.FlagRST|packet.FlagACK), nil, s.TOS)
		f.State = StateClosed
		return
	}
	seq, data := cSeq(s.Seq), s.Payload()
	fin := s.has(packet.FlagFIN)
	f.Stats.CipherBytesIn += uint64(len(data))
	if !d.keyed {
		if len(data) > 0 {
			seq, data = c.consumeInit(f, seq, data)
		}
		if f.State != StateEncrypted && f.State != StateKeyExchange {
			return
		}
		if !f.lanSynAcked && s.has(packet.FlagACK) {
			// Role B: the LAN server still waits for the ACK of its
			// SYN-ACK; it gets it without the Init bytes.
			c.toLANAck(f, packet.FlagACK, nil, s.TOS)
		}
		if !d.keyed {
			return // no data for the LAN host before the keys exist
		}
	}
	delivered := false
	if len(data) > 0 || fin {
		delivered = c.receive(f, seq, data, fin, s.has(packet.FlagPSH))
	}
	if len(data) > 0 && !delivered && s.TOS&ecnMask == ecnCE {
		// The bytes of a CE-marked segment wait (a frame cut across
		// segments, or a hole before them): the mark goes with the next
		// plaintext the LAN host gets (sendPlain), not with an ACK.
		d.pendingCE = true
	}
	if f.State != StateEncrypted || delivered {
		return
	}
	// Pass the acknowledgment on when it tells the LAN host something: a
	// new P ack, or a pure ACK that did not move the C ack (a duplicate
	// ACK, a loss signal, or a window update). A pure ACK that moved the C
	// ack but not the P ack covered only bytes the LAN host never sent
	// (our Init, our own rekey frames) or part of a frame: passed on, it
	// would look like a duplicate ACK to the LAN host.
	if len(s.Payload()) == 0 && !fin && f.enc.cAckSeen == oldSeen || f.enc.pAcked != oldUna {
		blocks := c.sackToLAN(f, s.opts)
		c.toLANAck(f, s.Flags&(packet.FlagACK|packet.FlagECE|packet.FlagCWR), blocks, s.TOS)
	}
}

// receive takes the C bytes [seq, seq+len(data)) (and a FIN after them);
// psh is the segment's PSH flag, passed on with the plaintext of the last
// frame it completes.
func (c *pkt) receive(f *Flow, seq cSeq, data []byte, fin, psh bool) bool {
	d := &f.dec
	end := seq.add(len(data))
	delivered := false
	if seq.lt(d.cRcv) {
		oldEnd := end.add(b2i(fin))
		if oldEnd.gt(d.cRcv) {
			oldEnd = d.cRcv
		}
		delivered = c.redeliver(f, seq, oldEnd)
		if end.gt(d.cRcv) {
			data, seq = data[d.cRcv.since(seq):], d.cRcv
		} else {
			data, seq = nil, end
			if end.lt(d.cRcv) || d.finDelivered {
				fin = false
			}
		}
		if !delivered && len(data) == 0 && !fin {
			c.ackWAN(f) // already delivered and acknowledged: tell the sender again
			return false
		}
	}
	if len(data) == 0 && !fin {
		return delivered
	}
	if seq.gt(d.cRcv) {
		c.queueBeyondHole(f, seq, data, fin)
		if f.holeReportable() {
			c.ackWAN(f)
		}
		return delivered
	}
	if d.ooo.len() > 0 && end.gt(d.ooo.first().seq) {
		// The segment fills the hole and runs on into bytes already
		// queued beyond it (a retransmitted super-packet): what lies
		// beyond the hole joins the queue, where only bytes not held
		// yet are reserved. Reserving it all again here could exceed
		// the direction's limit and drop the hole's only repair, for
		// good.
		cut := d.ooo.first().seq.since(seq)
		c.queueBeyondHole(f, seq.add(cut), data[cut:], fin)
		data, fin = data[:cut], false
	}
	if !c.admitIn(f, len(data)) {
		// The LAN host has not acknowledged enough of what it was given,
		// or the global budget is spent: refuse the bytes; the sender
		// retransmits them later. (Reserved here for all the bytes can
		// become, a frame being gathered or plaintext for the LAN host;
		// returnUnheld returns the rest.)
		c.stats.BufferDrops.Add(1)
		return delivered
	}
	if c.feed(f, data, psh) {
		delivered = true
	}
	if fin && f.State == StateEncrypted {
		c.wanFIN(f, seq.add(len(data)))
	}
	for d.ooo.len() > 0 && f.State == StateEncrypted {
		q := d.ooo.first()
		qEnd := q.seq.add(len(q.data))
		if q.seq.gt(d.cRcv) {
			break
		}
		qdata, qfin := q.data, q.fin
		if qEnd.gt(d.cRcv) {
			qdata = qdata[d.cRcv.since(q.seq):]
		} else {
			qdata = nil
		}
		if len(qdata) > 0 && c.feed(f, qdata, true) {
			delivered = true
		}
		if qfin && qEnd == d.cRcv && f.State == StateEncrypted && !d.finDelivered {
			c.wanFIN(f, qEnd)
		}
		d.ooo.pop()
	}
	if d.ooo.len() > 0 && f.State == StateEncrypted {
		if f.holeReportable() {
			c.ackWAN(f)
		}
	} else if !delivered && f.State == StateEncrypted && f.ackPartial() {
		c.ackWAN(f)
	}
	return delivered
}

// queueBeyondHole keeps C bytes that arrived beyond a hole (enqueue).
func (c *pkt) queueBeyondHole(f *Flow, seq cSeq, data []byte, fin bool) {
	enqueue(c, f, &f.dec.ooo, true, seq, data, fin)
}

// ackPartial acknowledges to the WAN the bytes of a frame still being
// gathered, once every frame before it is acknowledged by the LAN host. A
// peer may send frames larger than its congestion window (RFC 8548 §3.6
// allows up to 64 KiB); without an acknowledgment it would wait for one
// that never comes. The frame's last byte is never acknowledged early: it
// completes the frame, so its segment stays the sender's to retransmit,
// and a retransmission makes the gateway deliver the whole frame again
// (redeliver) if the LAN host lost it. It reports whether cAcked moved.
func (f *Flow) ackPartial() bool {
	d := &f.dec
	if len(d.partial) == 0 || !f.lanCaughtUp() || !d.cRcv.gt(d.cAcked) {
		return false
	}
	d.cAcked = d.cRcv
	return true
}

// feed parses in-order C bytes into frames and delivers each authenticated
// frame; the last frame to end with data gets PSH if psh. It reports
// whether anything was delivered.
func (c *pkt) feed(f *Flow, data []byte, psh bool) bool {
	d := &f.dec
	delivered := false
	for len(data) > 0 && f.State == StateEncrypted {
		if len(d.partial) == 0 && len(data) >= tcpcrypt.FrameHeaderLen {
			n, _, err := tcpcrypt.FrameLen(data)
			if err != nil {
				c.authFailed(f, "malformed frame header")
				return delivered
			}
			if n <= len(data) { // the whole frame is here: open it in place
				start := d.cRcv
				d.cRcv = d.cRcv.add(n)
				if !c.openAndDeliver(f, data[:n], start, psh && n == len(data)) {
					return delivered
				}
				delivered = true
				data = data[n:]
				continue
			}
		}
		// A frame cut across segments: gather it.
		need := tcpcrypt.FrameHeaderLen
		if len(d.partial) >= tcpcrypt.FrameHeaderLen {
			n, _, err := tcpcrypt.FrameLen(d.partial)
			if err != nil {
				c.authFailed(f, "malformed frame header")
				return delivered
			}
			need = n
		}
		take := min(need-len(d.partial), len(data))
		d.partial = append(d.partial, data[:take]...)
		data = data[take:]
		d.cRcv = d.cRcv.add(take)
		if len(d.partial) == need && need > tcpcrypt.FrameHeaderLen {
			start := d.cRcv.add(-need)
			ok := c.openAndDeliver(f, d.partial, start, psh && len(data) == 0)
			d.partial = d.partial[:0]
			if !ok {
				return delivered
			}
			delivered = true
		}
	}
	return delivered
}

// openAndDeliver authenticates one whole frame that starts at C sequence
// cStart and sends its plaintext to the LAN host, the last segment with PSH
// if psh.
func (c *pkt) openAndDeliver(f *Flow, frame []byte, cStart cSeq, psh bool) bool {
	d := &f.dec
	if d.finFrame {
		c.authFailed(f, "data after the FIN frame")
		return false
	}
	gen := d.opener.Generation()
	flags, _, pt, err := d.opener.OpenFrame(frame, d.offRcv)
	if err != nil {
		c.authFailed(f, "frame failed authentication")
		return false
	}
	rekeyed := d.opener.Generation() != gen
	d.offRcv += uint64(len(frame))
	cEnd := cStart.add(len(frame))
	r := frameRec{cStart: cStart, cEnd: cEnd, pStart: d.pRcv, pEnd: d.pRcv.add(len(pt))}
	d.ring.append(pt, d.reserved) // reserved by receive
	d.recs.push(r)
	if len(pt) > 0 || flags&tcpcrypt.FlagFIN == 0 {
		// An empty FIN frame has nothing for the LAN host: the TCP FIN
		// after it (wanFIN) is the segment that tells it the stream
		// ended, one packet less per connection.
		c.sendPlain(f, d.pRcv, pt, false, psh)
	}
	d.pRcv = r.pEnd
	f.Stats.PlainBytesIn += uint64(len(pt))
	if flags&tcpcrypt.FlagFIN != 0 {
		d.finFrame, d.finC = true, cEnd
	}
	if rekeyed {
		// RFC 8548 §3.8, §3.9: the peer's new generation is answered at
		// once with ours, which also makes a rekey an authenticated
		// keep-alive. After the frame's plaintext, so that the LAN
		// host's data keeps its order.
		f.Stats.RekeysIn++
		c.stats.RekeysIn.Add(1)
		c.answerRekey(f, d.opener.Generation())
	}
	return true
}

// sendPlain sends P bytes starting at seq to the LAN host, cut to its MSS,
// the last segment with PSH if psh or fin.
func (c *pkt) sendPlain(f *Flow, seq pSeq, pt []byte, fin, psh bool) {
	maxSeg := f.lanMSS
	if f.tsOK {
		maxSeg -= 12
	}
	maxSeg = max(maxSeg, 1)
	for first := true; first || len(pt) > 0; first = false {
		n := min(len(pt), maxSeg)
		flags := packet.FlagACK | c.ecnToLAN
		tos := c.tosToLAN
		if f.dec.pendingCE && tos&ecnMask != 0 { // CE only on an ECN-capable packet (RFC 3168 §5)
			tos |= ecnCE
			f.dec.pendingCE = false
		}
		if n == len(pt) && (psh || fin) {
			flags |= packet.FlagPSH
		}
		if n == len(pt) && fin {
			flags |= packet.FlagFIN
		}
		c.toLAN(f, seq, f.enc.pAcked, flags, pt[:n], tos)
		seq = seq.add(n)
		pt = pt[n:]
	}
}

// wanFIN handles a TCP FIN at C sequence finSeq, reached in order.
func (c *pkt) wanFIN(f *Flow, finSeq cSeq) {
	d := &f.dec
	if d.finDelivered {
		return
	}
	if !d.finFrame || finSeq != d.finC || len(d.partial) != 0 {
		// RFC 8548 §3.7: a FIN without an authenticated FIN
		// frame is a truncation attack; never turn it into an end of stream.
		c.stats.Truncations.Add(1)
		f.Reason = "TCP FIN without a FIN frame (truncation)"
		c.abort(f)
		return
	}
	d.recs.push(frameRec{cStart: finSeq, cEnd: finSeq, pStart: d.pRcv, pEnd: d.pRcv, fin: true})
	c.sendPlain(f, d.pRcv, nil, true, true)
	d.pRcv++
	d.cRcv++
	d.finDelivered = true
}

// redeliver sends again, from the kept plaintext, the frames that cover the
// C range [from, to): the LAN host lost them or the sender retransmits.
func (c *pkt) redeliver(f *Flow, from, to cSeq) bool {
	d := &f.dec
	sent := false
	i := d.recs.search(func(r *frameRec) bool { return r.cAfter().gt(from) })
	for ; i < d.recs.len(); i++ {
		r := d.recs.at(i)
		if !r.cStart.lt(to) {
			break
		}
		if r.init {
			continue
		}
		c.sendPlain(f, r.pStart, d.ring.slice(r.pStart, r.pEnd), r.fin, true)
		sent = true
	}
	return sent
}

// lanAck applies the LAN host's acknowledgment (P) to the frames delivered
// to it: C bytes are acknowledged to the WAN only for frames whose whole
// plaintext the LAN host has acknowledged (and the peer's Init, which the
// gateway consumed itself).
func (c *pkt) lanAck(f *Flow, ack pSeq) {
	d := &f.dec
	if ack.gt(d.pRcv) {
		ack = d.pRcv
	}
	if ack.gt(d.pAck) {
		d.pAck = ack
	}
	for d.recs.len() > 0 {
		r := d.recs.first()
		if !r.pAfter().leq(d.pAck) {
			break
		}
		d.cAcked = d.cAcked.max(r.cAfter())
		d.recs.pop()
	}
	f.ackPartial()
	if d.pAck.gt(d.ring.seq) {
		d.ring.trim(d.pAck.min(d.ring.end()))
	}
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
func (f *Flow) holeReportable() bool { return f.lanCaughtUp() }

// lanCaughtUp reports whether the LAN host has acknowledged every frame
// delivered to it.
func (f *Flow) lanCaughtUp() bool { return f.dec.recs.len() == 0 }

// sackToWAN describes, in C, the bytes the gateway holds past a hole, the
// island of the segment that arrived last first (oooQueue.blocks), once the
// hole is reportable (holeReportable).
func (c *pkt) sackToWAN(f *Flow) []packet.SACKBlock {
	d := &f.dec
	if d.ooo.len() == 0 || !f.holeReportable() {
		return nil
	}
	return d.ooo.blocks(c.sack[:0], 3)
}

// authFailed resets the flow after a frame failed authentication (RFC 8548
// §4.6): nothing of the frame, nor anything after it, reaches the LAN host.
func (c *pkt) authFailed(f *Flow, why string) {
	c.stats.AuthFailures.Add(1)
	f.Reason = why
	c.abort(f)
}
