// The encrypting direction (encState), LAN to WAN: plaintext segments
// from the LAN host become frames on the WAN (RFC 8548 §3.6, §4.2), and the
// WAN peer's acknowledgments of those frames are mapped back into P. Its
// two halves, in the order lanSegment and wanSegment (dispatch.go) use
// them:
//
// Data from the LAN host (dataFromLAN), after the decrypting direction has
// taken the segment's ACK:
//  1. Bytes before the next expected P byte are a retransmission: the frames
//     that cover them are re-sent exactly as first sent (same key, offset,
//     boundaries), from the ring of unacknowledged ciphertext.
//  2. New bytes become new frames, one per segment (MSS clamping makes them
//     fit), each recorded with its P and C ranges until the WAN acknowledges
//     it. Before the keys exist they are held instead (hold; the key
//     exchange frames them once the keys exist: keyexchange.go, flushHeld);
//     beyond a hole in the LAN host's stream they wait for it.
//  3. A segment with nothing to frame (pure ACK, window update, keep-alive)
//     is translated and sent as it is.
//  4. Rekeying: the own direction by bytes or time (rekeyOut). The
//     answers to the peer's rekeys, empty frames of the gateway's own, are
//     a job of their own between the directions (rekey.go).
//
// ACKs from the WAN peer (ackFromWAN): a C acknowledgment releases the
// frames it covers whole, and their P end becomes the acknowledgment the
// LAN host gets; SACK blocks map to whole frames (emit.go: sackToLAN, the
// option the ACK passed on to the LAN host carries).

package engine

import (
	"tcpcrypt-gw/crypto/tcpcrypt"
	"tcpcrypt-gw/gateway/packet"
	"time"
)

// dataFromLAN takes the data of a LAN segment (after its ACK: lanSegment):
// new bytes become frames, bytes before the next expected one re-send the
// frames first sent, bytes beyond a hole wait, and a segment with nothing
// to frame is translated as it is. ackNews: the segment's ACK or window
// told the WAN peer something new.
func (en *encState) dataFromLAN(c *pkt, f *Flow, s *segment, ackNews bool) {
	pay := s.Payload()
	fin := s.has(packet.FlagFIN)
	if len(pay) == 0 && !fin {
		c.toWAN(f, en.pToC(pSeq(s.Seq)), s.Flags&(packet.FlagACK|packet.FlagECE|packet.FlagCWR), nil, s.TOS)
		return
	}
	keyed := en.sealer != nil
	expect := en.pNxt
	if !keyed {
		expect = en.held.end()
		if en.heldFIN {
			expect++
		}
	}
	seq := pSeq(s.Seq)
	end := seq.add(len(pay))
	if seq.gt(expect) {
		// A hole in the LAN host's own stream: the C position of these
		// bytes is unknown until the hole is filled, so they wait for it
		// (queueBeyondLANHole). The ACK they carry goes on only if it says
		// something new: a copy of the last one would be a duplicate ACK
		// to the WAN peer.
		if keyed {
			en.queueBeyondLANHole(c, seq, pay, fin)
		}
		if !keyed || ackNews {
			c.toWAN(f, en.pToC(expect), packet.FlagACK, nil, s.TOS)
		}
		return
	}
	sent := false
	if seq.lt(expect) && keyed {
		oldEnd := end.add(b2i(fin))
		if oldEnd.gt(expect) {
			oldEnd = expect
		}
		sent = en.retransmit(c, f, seq, oldEnd)
	}
	if end.gt(expect) || fin && end == expect && !(keyed && en.finSent) && !(!keyed && en.heldFIN) {
		at := len(s.Buf) - len(pay) + expect.since(seq) // fresh = s.Buf[at:], behind the TCP header
		fresh := s.Buf[at:]
		f.Stats.PlainBytesOut += uint64(len(fresh))
		if !keyed {
			en.hold(c, f, fresh, fin)
			return
		}
		if en.frame(c, f, s.Buf, at, fin, s.has(packet.FlagPSH)) {
			sent = true
		}
		if en.ooo.len() > 0 && en.pNxt.lt(end) {
			// The hole's repair could not be framed whole (the budget is
			// spent): what waits beyond it must not keep the budget the
			// repair needs, or flows whose queues hold all of it would
			// wait for each other.
			en.dropQueued(c)
		}
	}
	if keyed && en.ooo.len() > 0 && en.frameQueued(c, f) {
		sent = true
	}
	if !sent && keyed {
		// Everything in it was acknowledged already (a keep-alive probe at
		// snd_una-1, RFC 9293 §3.8.4): translate the numbers, no payload.
		c.toWAN(f, en.pToC(seq), packet.FlagACK, nil, s.TOS)
	}
}

// queueBeyondLANHole keeps LAN bytes that arrived beyond a hole in the LAN
// host's stream until the hole is filled (frameQueued). Such a hole is
// mostly reordering on the way from the LAN host: a veth device queues
// each packet on the backlog of the CPU that sent it, so a sender that
// moves between CPUs can overtake its own super-packets. Dropping what
// arrived early would lose every byte sent after it, and the LAN host,
// whose ACKs stop at the hole, would recover only by a retransmission
// timeout and a slow start. A hole that is a real loss (the TUN queue, the
// budget) costs the LAN host one timeout, after which its retransmission
// fills the hole and everything queued leaves with it.
// Only the bytes the queue does not hold yet are reserved.
func (en *encState) queueBeyondLANHole(c *pkt, seq pSeq, data []byte, fin bool) {
	if n, ok := en.ooo.fits(seq, len(data)); !ok || n > 0 && !en.admit(c, n) {
		c.stats.BufferDrops.Add(1)
		return
	}
	en.ooo.insert(seq, data, fin)
	c.stats.LANReordered.Add(1)
}

// frameQueued frames the queued LAN bytes the hole no longer separates
// from the stream, in order. Their reservation passes to the frames (as in
// flushHeld); what cannot be framed within the limits is dropped, and the
// LAN host, which never had it acknowledged, sends it again. It reports
// whether it sent a frame.
func (en *encState) frameQueued(c *pkt, f *Flow) bool {
	q := &en.ooo
	sent := false
	for q.len() > 0 && !q.first().seq.gt(en.pNxt) {
		s := q.first()
		c.table.Release(len(s.data))
		en.reserved -= len(s.data)
		if s.end().gt(en.pNxt) || s.fin && s.end() == en.pNxt && !en.finSent {
			fresh := s.data[en.pNxt.since(s.seq):]
			f.Stats.PlainBytesOut += uint64(len(fresh))
			if en.frame(c, f, fresh, 0, s.fin, true) {
				sent = true
			}
			if en.pNxt != s.end().add(b2i(s.fin)) { // cut short by the limits
				q.pop()
				en.dropQueued(c)
				return sent
			}
		}
		q.pop()
	}
	return sent
}

// dropQueued gives up the queued LAN bytes (the LAN host sends them again).
func (en *encState) dropQueued(c *pkt) {
	if n := en.ooo.bytes; n > 0 {
		c.table.Release(n)
		en.reserved -= n
		c.stats.BufferDrops.Add(1)
	}
	en.ooo.clear()
}

// admit reserves n bytes for this direction against its limit and the
// global budget before they are kept (budget.go: reserve, then store);
// false means the bytes must not be kept.
func (en *encState) admit(c *pkt, n int) bool {
	if en.reserved+n > c.dirLimit || !c.table.Reserve(n) {
		return false
	}
	en.reserved += n
	return true
}

// hold keeps LAN plaintext until the keys exist.
func (en *encState) hold(c *pkt, f *Flow, data []byte, fin bool) {
	if len(data) > 0 && !en.admit(c, len(data)) {
		return // not acknowledged: the LAN host sends it again
	}
	en.held.appendStream(data)
	en.heldTOS = c.tosToWAN
	if fin {
		en.heldFIN = true
	}
}

// frame seals data = buf[at:] as new frames at the next P and C positions
// and sends them. The last of them carries PSH if psh (the LAN segment had
// it): PSH only where it means something, so that the TUN device can
// coalesce runs of frames into super-packets (GRO). A frame whose data has
// a byte of buf in front of it (at > 0, or the frames after the first) is
// sealed straight from buf into the ring, that byte lent for the frame's
// flags (tcpcrypt.Sealer.SealFrameAfter). It reports false if nothing
// could be framed (buffer limits).
func (en *encState) frame(c *pkt, f *Flow, buf []byte, at int, fin, psh bool) bool {
	maxData := f.maxFrameData()
	framed := false
	for first := true; first || at < len(buf); first = false {
		n := min(len(buf)-at, maxData)
		last := at+n == len(buf)
		if !en.admit(c, n+tcpcrypt.FrameOverhead) {
			c.stats.BufferDrops.Add(1)
			return framed
		}
		var flags byte
		if last && fin {
			flags = tcpcrypt.FlagFIN
		}
		t := en.ring.tail(n+tcpcrypt.FrameOverhead, en.reserved)
		if en.sealer.RekeyPending() { // the first frame under the new key carries rekey = 1
			f.Stats.RekeysOut++
			c.stats.RekeysOut.Add(1)
		}
		var fr []byte
		if at > 0 {
			fr = en.sealer.SealFrameAfter(t, en.offNxt, flags, buf[at-1:at+n])
		} else {
			fr = en.sealer.SealFrame(t, en.offNxt, flags, 0, buf[at:at+n])
		}
		en.ring.commit(len(fr))
		r := frameRec{cStart: en.cNxt, cEnd: en.cNxt.add(len(fr)), pStart: en.pNxt, pEnd: en.pNxt.add(n), fin: flags != 0, psh: last && (psh || fin)}
		en.recs.push(r)
		en.cNxt, en.pNxt = r.cAfter(), r.pAfter()
		en.offNxt += uint64(len(fr))
		en.sendFrame(c, f, &r)
		f.Stats.CipherBytesOut += uint64(len(fr))
		framed = true
		if r.fin {
			en.finSent = true
		}
		en.sinceRekey += int64(n)
		en.framesThisKey++
		if c.cfg.RekeyBytes > 0 && en.sinceRekey >= c.cfg.RekeyBytes || en.framesThisKey >= tcpcrypt.SafeFramesPerKey ||
			c.cfg.RekeyInterval > 0 && c.now.Sub(en.lastRekey) >= c.cfg.RekeyInterval {
			en.rekeyOut(c.now)
		}
		at += n
	}
	return framed
}

// rekeyOut increments our local generation (RFC 8548 §3.8): the next frame
// uses the next key set and carries rekey = 1; retransmissions keep the
// bytes first sent. The receiver counts one generation per rekey = 1
// frame, so while no frame has used the new generation this does nothing
// (Sealer.Rekey).
func (en *encState) rekeyOut(now time.Time) {
	if en.sealer == nil || !en.sealer.Rekey() {
		return
	}
	en.sinceRekey, en.framesThisKey = 0, 0
	en.lastRekey = now
}

// sendFrame sends one recorded frame, exactly as first sent.
func (en *encState) sendFrame(c *pkt, f *Flow, r *frameRec) {
	flags := packet.FlagACK | c.ecnToWAN
	if r.psh {
		flags |= packet.FlagPSH
	}
	if r.fin {
		flags |= packet.FlagFIN
	}
	c.lendFrom(&en.ring.pin, en.ring.buf())
	c.toWAN(f, r.cStart, flags, en.ring.slice(r.cStart, r.cEnd), c.tosToWAN)
	c.lendFrom(nil, nil)
}

// retransmit re-sends the frames that cover the P range [from, to).
func (en *encState) retransmit(c *pkt, f *Flow, from, to pSeq) bool {
	if !en.initAcked {
		c.sendInit(f)
	}
	sent := false
	// The first frame that reaches past from, or an empty frame of ours
	// (answerRekey) that sits exactly at from.
	i := en.recs.search(func(r *frameRec) bool { return r.pAfter().gt(from) || r.rekeyAnswer() && r.pStart == from })
	for ; i < en.recs.len(); i++ {
		r := en.recs.at(i)
		if !r.pStart.lt(to) {
			break
		}
		if r.init {
			continue
		}
		en.sendFrame(c, f, r)
		sent = true
	}
	return sent
}

// pToC maps a P sequence number of the LAN host's stream to C.
func (en *encState) pToC(p pSeq) cSeq {
	if p == en.pNxt || en.sealer == nil {
		return en.cNxt
	}
	cUna := en.cNxt
	for i := 0; i < en.recs.len(); i++ {
		if r := en.recs.at(i); !r.init {
			cUna = r.cStart
			break
		}
	}
	if p.lt(en.pAcked) { // keep-alive probes sit just before snd_una
		return cUna.add(-en.pAcked.since(p))
	}
	i := en.recs.search(func(r *frameRec) bool { return !r.pStart.lt(p) })
	if i < en.recs.len() && en.recs.at(i).pStart == p && !en.recs.at(i).init {
		return en.recs.at(i).cStart
	}
	return en.cNxt
}

// ackFromWAN applies an acknowledgment from the WAN (C space) to our frames:
// frames wholly acknowledged are forgotten and their P end becomes the
// acknowledgment the LAN host sees. A partly acknowledged frame counts as
// not acknowledged.
func (en *encState) ackFromWAN(ack cSeq) {
	if ack.gt(en.cNxt) {
		return // acknowledges what was never sent
	}
	en.cAckSeen = en.cAckSeen.max(ack)
	for en.recs.len() > 0 {
		r := en.recs.first()
		if !r.cAfter().leq(ack) {
			break
		}
		if r.init {
			en.initAcked = true
		}
		en.pAcked = en.pAcked.max(r.pAfter())
		en.recs.pop()
	}
	if en.recs.len() > 0 {
		en.ring.trim(en.recs.first().cStart)
	} else {
		en.ring.trim(en.ring.end())
	}
}
