// Answers to the peer's rekeys (RFC 8548 §3.8): the one job that spans
// both directions, kept apart from both of them.
//
//  1. The decrypting direction opens a frame of a new generation
//     (decrypt.go, openAndDeliver) and calls answerRekey at once: RFC 8548
//     §3.8 wants the answer then, between that frame's plaintext and the
//     next.
//  2. answerRekey catches the encrypting direction's generation up with
//     the peer's, one empty frame of the gateway's own per step (framed by
//     encrypt.go's frame).
//  3. While such a frame is the unacknowledged tail no LAN retransmission
//     reaches it: Tick re-sends it (ownTailUnacked, resendOwnTail).
//
// The own direction's rekeying by bytes, time and frame count is the
// encrypting direction's (encrypt.go, rekeyOut).

package engine

// answerRekey catches our local generation up with the peer's, one frame
// per step (tcpcrypt.Sealer.CatchUp, RFC 8548 §3.8), unless our FIN frame
// is sent. The LAN host has nothing to do with it, so the frames are empty
// and the gateway's own: they have no P bytes, LAN retransmissions that
// reach their P position re-send them, and Tick re-sends them while they
// are the unacknowledged tail.
func (en *encState) answerRekey(c *pkt, f *Flow, remote uint32) {
	if en.sealer == nil || en.finSent {
		return
	}
	sent := false
	for gen := en.sealer.Generation(); en.sealer.CatchUp(remote); gen = en.sealer.Generation() {
		if en.sealer.Generation() != gen {
			en.sinceRekey, en.framesThisKey, en.lastRekey = 0, 0, c.now
		}
		if !en.frame(c, f, nil, 0, false, true) {
			return // buffer limits: the next data frame carries the rekey
		}
		sent = true
	}
	if sent && en.retxAt.IsZero() {
		en.rto = initialInitRTO
		en.retxAt = c.now.Add(en.rto)
		c.pending = append(c.pending, f)
	}
}

// ownTailUnacked reports whether the last unacknowledged frame is one of
// the gateway's own empty frames (answerRekey): no LAN retransmission will
// ever reach it, so Tick re-sends it.
func (en *encState) ownTailUnacked() bool {
	return en.recs.len() > 0 && en.recs.at(en.recs.len()-1).rekeyAnswer()
}

// resendOwnTail re-sends the gateway's own empty frames at the end of the
// unacknowledged ones, exactly as first sent.
func (en *encState) resendOwnTail(c *pkt, f *Flow) {
	i := en.recs.len()
	for i > 0 && en.recs.at(i-1).rekeyAnswer() {
		i--
	}
	for ; i < en.recs.len(); i++ {
		en.sendFrame(c, f, en.recs.at(i))
	}
}
