// The decrypting direction (decState), WAN to LAN: the peer's ciphertext
// stream is reassembled and its frames authenticated and delivered as
// plaintext (RFC 8548 §3.6, §4.2), and the LAN host's acknowledgments of
// that plaintext are mapped back into C. Its two halves, in the order
// lanSegment and wanSegment (dispatch.go) use them:
//
// Data from the WAN peer (dataFromWAN), after the encrypting direction has
// taken the segment's ACK:
//  1. Before the keys exist, its payload is the peer's Init message, which
//     the gateway consumes and acknowledges itself (keyexchange.go).
//  2. Bytes the frame parser already has are a retransmission: the frames
//     they cover are delivered again from the plaintext kept until the LAN
//     host acknowledges it.
//  3. Bytes beyond a hole wait in a bounded queue (ooo.go); the gateway
//     tells the sender with a duplicate ACK carrying SACK (in C) so it
//     repairs the hole quickly, once the hole is reportable.
//  4. In-order bytes feed the frame parser: a frame is opened only when all
//     of it is present, in place when one segment holds it whole. Each
//     authenticated frame goes to the LAN host as one segment at the next P
//     position. A frame that fails authentication resets both sides; no byte
//     of it is delivered.
//  5. The TCP FIN is delivered only after a frame with the FIN flag; a bare
//     FIN is a truncation attack and resets the flow.
//
// ACKs from the LAN host (ackFromLAN): only C bytes of frames whose whole
// plaintext the LAN host has acknowledged are acknowledged to the WAN (and
// the bytes of a frame still being gathered, ackPartial); bytes beyond a
// hole are reported as SACK blocks in C, which the segments to the WAN
// carry (emit.go: holeReportable, sackToWAN).

package engine

import (
	"tcpcrypt-gw/crypto/tcpcrypt"
	"tcpcrypt-gw/gateway/packet"
)

// dataFromWAN takes the data of a WAN segment (after its ACK:
// wanSegment): first the peer's Init message, then the C stream, whose
// whole frames are authenticated and delivered. It reports whether
// plaintext went to the LAN host (it carries the acknowledgment then).
func (d *decState) dataFromWAN(c *pkt, f *Flow, s *segment) bool {
	seq, data := cSeq(s.Seq), s.Payload()
	fin := s.has(packet.FlagFIN)
	f.Stats.CipherBytesIn += uint64(len(data))
	if !d.keyed {
		if len(data) > 0 {
			seq, data = c.consumeInit(f, seq, data)
		}
		if f.State != StateEncrypted && f.State != StateKeyExchange {
			return false
		}
		if !f.lanSynAcked && s.has(packet.FlagACK) {
			// Role B: the LAN server still waits for the ACK of its
			// SYN-ACK; it gets it without the Init bytes.
			c.toLANAck(f, packet.FlagACK, nil, s.TOS)
		}
		if !d.keyed {
			return false // no data for the LAN host before the keys exist
		}
	}
	delivered := false
	if len(data) > 0 || fin {
		delivered = d.receive(c, f, seq, data, fin, s.has(packet.FlagPSH))
	}
	if len(data) > 0 && !delivered && s.TOS&ecnMask == ecnCE {
		// The bytes of a CE-marked segment wait (a frame cut across
		// segments, or a hole before them): the mark goes with the next
		// plaintext the LAN host gets (sendPlain), not with an ACK.
		d.pendingCE = true
	}
	return delivered
}

// receive takes the C bytes [seq, seq+len(data)) (and a FIN after them);
// psh is the segment's PSH flag, passed on with the plaintext of the last
// frame it completes.
func (d *decState) receive(c *pkt, f *Flow, seq cSeq, data []byte, fin, psh bool) bool {
	end := seq.add(len(data))
	delivered := false
	if seq.lt(d.cRcv) {
		oldEnd := end.add(b2i(fin))
		if oldEnd.gt(d.cRcv) {
			oldEnd = d.cRcv
		}
		delivered = d.redeliver(c, f, seq, oldEnd)
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
		d.queueBeyondHole(c, seq, data, fin)
		if d.holeReportable() {
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
		d.queueBeyondHole(c, seq.add(cut), data[cut:], fin)
		data, fin = data[:cut], false
	}
	if !d.admit(c, len(data)) {
		// The LAN host has not acknowledged enough of what it was given,
		// or the global budget is spent: refuse the bytes; the sender
		// retransmits them later. (Reserved here for all the bytes can
		// become, a frame being gathered or plaintext for the LAN host;
		// returnUnheld returns the rest.)
		c.stats.BufferDrops.Add(1)
		return delivered
	}
	if d.feed(c, f, data, psh) {
		delivered = true
	}
	if fin && f.State == StateEncrypted {
		d.wanFIN(c, f, seq.add(len(data)))
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
		if len(qdata) > 0 && d.feed(c, f, qdata, true) {
			delivered = true
		}
		if qfin && qEnd == d.cRcv && f.State == StateEncrypted && !d.finDelivered {
			d.wanFIN(c, f, qEnd)
		}
		d.ooo.pop()
	}
	if d.ooo.len() > 0 && f.State == StateEncrypted {
		if d.holeReportable() {
			c.ackWAN(f)
		}
	} else if !delivered && f.State == StateEncrypted && d.ackPartial() {
		c.ackWAN(f)
	}
	return delivered
}

// queueBeyondHole keeps C bytes that arrived beyond a hole; only the bytes
// the queue does not hold yet are reserved.
func (d *decState) queueBeyondHole(c *pkt, seq cSeq, data []byte, fin bool) {
	if n, ok := d.ooo.fits(seq, len(data)); !ok || n > 0 && !d.admit(c, n) {
		c.stats.BufferDrops.Add(1)
		return
	}
	d.ooo.insert(seq, data, fin)
}

// admit reserves n bytes for this direction against its limit and the
// global budget before they are kept (budget.go: reserve, then store);
// false means the bytes must not be kept. A direction holding nothing but
// a frame being gathered may gather it whole (budget.go, point 2).
func (d *decState) admit(c *pkt, n int) bool {
	limit := c.dirLimit
	if d.ring.len() == 0 && d.ooo.bytes == 0 && len(d.partial)+n <= maxFrameLen {
		limit = max(limit, maxFrameLen)
	}
	if d.reserved+n > limit || !c.table.Reserve(n) {
		return false
	}
	d.reserved += n
	return true
}

// feed parses in-order C bytes into frames and delivers each authenticated
// frame; the last frame to end with data gets PSH if psh. It reports
// whether anything was delivered.
func (d *decState) feed(c *pkt, f *Flow, data []byte, psh bool) bool {
	delivered := false
	for len(data) > 0 && f.State == StateEncrypted {
		if len(d.partial) == 0 && len(data) >= tcpcrypt.FrameHeaderLen {
			n, _, err := tcpcrypt.FrameLen(data)
			if err != nil {
				d.authFailed(c, f, "malformed frame header")
				return delivered
			}
			if n <= len(data) { // the whole frame is here: open it in place
				start := d.cRcv
				d.cRcv = d.cRcv.add(n)
				if !d.openAndDeliver(c, f, data[:n], start, psh && n == len(data)) {
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
				d.authFailed(c, f, "malformed frame header")
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
			ok := d.openAndDeliver(c, f, d.partial, start, psh && len(data) == 0)
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
func (d *decState) openAndDeliver(c *pkt, f *Flow, frame []byte, cStart cSeq, psh bool) bool {
	if d.finFrame {
		d.authFailed(c, f, "data after the FIN frame")
		return false
	}
	gen := d.opener.Generation()
	flags, _, pt, err := d.opener.OpenFrame(frame, d.offRcv)
	if err != nil {
		d.authFailed(c, f, "frame failed authentication")
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
		if kept := d.ring.slice(r.pStart, r.pEnd); len(kept) == len(pt) && len(pt) > 0 {
			// Sent from the ring, which keeps it: lent (Output.Lend).
			c.lendFrom(&d.ring.pin, d.ring.buf())
			d.sendPlain(c, f, d.pRcv, kept, false, psh)
			c.lendFrom(nil, nil)
		} else {
			d.sendPlain(c, f, d.pRcv, pt, false, psh)
		}
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
		// host's data keeps its order (rekey.go).
		f.Stats.RekeysIn++
		c.stats.RekeysIn.Add(1)
		f.enc.answerRekey(c, f, d.opener.Generation())
	}
	return true
}

// authFailed resets the flow after a frame failed authentication (RFC 8548
// §4.6): nothing of the frame, nor anything after it, reaches the LAN host.
func (d *decState) authFailed(c *pkt, f *Flow, why string) {
	c.stats.AuthFailures.Add(1)
	f.Reason = why
	c.pathFailure(f, why, true) // modified on the way: RFC 8547 §9 type 2
	c.abort(f)
}

// sendPlain sends P bytes starting at seq to the LAN host, cut to its MSS,
// the last segment with PSH if psh or fin.
func (d *decState) sendPlain(c *pkt, f *Flow, seq pSeq, pt []byte, fin, psh bool) {
	maxSeg := f.lanMSS
	if f.tsOK {
		maxSeg -= 12
	}
	maxSeg = max(maxSeg, 1)
	for first := true; first || len(pt) > 0; first = false {
		n := min(len(pt), maxSeg)
		flags := packet.FlagACK | c.ecnToLAN
		tos := c.tosToLAN
		if d.pendingCE && tos&ecnMask != 0 { // CE only on an ECN-capable packet (RFC 3168 §5)
			tos |= ecnCE
			d.pendingCE = false
		}
		if n == len(pt) && (psh || fin) {
			flags |= packet.FlagPSH
		}
		if n == len(pt) && fin {
			flags |= packet.FlagFIN
		}
		c.toLAN(f, seq, flags, pt[:n], tos)
		seq = seq.add(n)
		pt = pt[n:]
	}
}

// wanFIN handles a TCP FIN at C sequence finSeq, reached in order.
func (d *decState) wanFIN(c *pkt, f *Flow, finSeq cSeq) {
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
	d.sendPlain(c, f, d.pRcv, nil, true, true)
	d.pRcv++
	d.cRcv++
	d.finDelivered = true
}

// redeliver sends again, from the kept plaintext, the frames that cover the
// C range [from, to): the LAN host lost them or the sender retransmits.
func (d *decState) redeliver(c *pkt, f *Flow, from, to cSeq) bool {
	sent := false
	i := d.recs.search(func(r *frameRec) bool { return r.cAfter().gt(from) })
	for ; i < d.recs.len(); i++ {
		r := d.recs.at(i)
		if !r.cStart.lt(to) {
			break
		}
		c.lendFrom(&d.ring.pin, d.ring.buf())
		d.sendPlain(c, f, r.pStart, d.ring.slice(r.pStart, r.pEnd), r.fin, true)
		c.lendFrom(nil, nil)
		sent = true
	}
	return sent
}

// ackFromLAN applies the LAN host's acknowledgment (P) to the frames delivered
// to it: C bytes are acknowledged to the WAN only for frames whose whole
// plaintext the LAN host has acknowledged (the peer's Init, which the
// gateway consumed itself, it acknowledged itself: keysReady).
func (d *decState) ackFromLAN(ack pSeq) {
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
	d.ackPartial()
	if d.pAck.gt(d.ring.seq) {
		d.ring.trim(d.pAck.min(d.ring.end()))
	}
}

// lanCaughtUp reports whether the LAN host has acknowledged every frame
// delivered to it.
func (d *decState) lanCaughtUp() bool { return d.recs.len() == 0 }

// ackPartial acknowledges to the WAN the bytes of a frame still being
// gathered, once every frame before it is acknowledged by the LAN host. A
// peer may send frames larger than its congestion window (RFC 8548 §3.6
// allows up to 64 KiB); without an acknowledgment it would wait for one
// that never comes. The frame's last byte is never acknowledged early: it
// completes the frame, so its segment stays the sender's to retransmit,
// and a retransmission makes the gateway deliver the whole frame again
// (redeliver) if the LAN host lost it. It reports whether cAcked moved.
func (d *decState) ackPartial() bool {
	if len(d.partial) == 0 || !d.lanCaughtUp() || !d.cRcv.gt(d.cAcked) {
		return false
	}
	d.cAcked = d.cRcv
	return true
}
