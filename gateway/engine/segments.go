// The segments the engine sends on a flow's behalf, in both directions:
// each carries the flow's current acknowledgment, window and options for
// the side it goes to.
//
//  1. toWAN: from the LAN host's side to the WAN peer, in C: the
//     acknowledgment the decrypting direction has earned (dec.cAcked), the
//     LAN host's window capped to what the flow can hold (winToWAN), the
//     LAN host's timestamps, the non-SYN ENO option while it must ride
//     along (RFC 8547 §4.6), SACK blocks for bytes held beyond a hole.
//  2. toLAN: from the WAN peer's side to the LAN host, in P: the
//     acknowledgment of whole frames the WAN has acknowledged (enc.pAcked),
//     the WAN peer's window scaled for the framing overhead (winToLAN), its
//     timestamps, SACK blocks mapped to whole frames.
//  3. Both go through emit (output.go), which joins runs of them into
//     super-packets.

package engine

import (
	"tcpcrypt-gw/crypto/tcpcrypt"
	"tcpcrypt-gw/eno"
	"tcpcrypt-gw/gateway/packet"
)

// toWAN sends a segment from the LAN host's side of f to the WAN peer, with
// the current acknowledgment and window of the decrypting direction.
func (e *Engine) toWAN(f *Flow, seq uint32, flags uint8, payload []byte, tos uint8, out *Output) {
	ow := &e.ow
	ow.Reset()
	if f.enoPending {
		ow.Raw(eno.NonSYNOption[:])
	}
	if f.tsOK {
		ow.Timestamp(f.lanTSval, f.lanTSecr)
	}
	if f.sackOK && flags&packet.FlagRST == 0 {
		// SACK blocks only where the segment still fits the path: a full
		// frame leaves room for the timestamp option alone.
		ow.SACK(e.sackToWAN(f), f.peerMSS-len(payload)-ow.Len())
	}
	h := packet.Header{V6: f.V6, Src: f.LAN.Addr(), Dst: f.WAN.Addr(), SrcPort: f.LAN.Port(), DstPort: f.WAN.Port(),
		Seq: seq, Ack: f.dec.cAcked, Flags: flags, Window: e.winToWAN(f), TOS: segmentTOS(tos, payload), TTL: 64, Options: ow.Bytes(), Payload: payload}
	if flags&packet.FlagACK == 0 {
		h.Ack = 0
	}
	e.emit(&h, out)
}

// winToWAN is the window the WAN peer gets: the LAN host's (P bytes, which
// the peer's C bytes can only undershoot) and at most what the gateway can
// hold of it: delivered plaintext stays in the flow's ring until the LAN
// host acknowledges it (redelivery on a WAN retransmission).
func (e *Engine) winToWAN(f *Flow) uint16 {
	return e.cappedWindow(f.lanWin, f.lanWS, e.room(f.dec.reserved), 1, 1)
}

// ackWAN sends the WAN peer an ACK of our own: after consuming its Init, or
// as a duplicate ACK with SACK when its bytes arrive beyond a hole.
func (e *Engine) ackWAN(f *Flow, out *Output) {
	e.toWAN(f, f.enc.cNxt, packet.FlagACK, nil, 0, out)
}

// toLAN sends a segment from the WAN peer's side of f to the LAN host.
func (e *Engine) toLAN(f *Flow, seq, ack uint32, flags uint8, payload []byte, tos uint8, out *Output) {
	e.toLANOpts(f, seq, ack, flags, payload, nil, tos, out)
}

func (e *Engine) toLANAck(f *Flow, flags uint8, sack []packet.SACKBlock, tos uint8, out *Output) {
	e.toLANOpts(f, f.dec.pRcv, f.enc.pAcked, flags, nil, sack, tos, out)
}

func (e *Engine) toLANOpts(f *Flow, seq, ack uint32, flags uint8, payload []byte, sack []packet.SACKBlock, tos uint8, out *Output) {
	ow := &e.ow
	ow.Reset()
	if f.tsOK {
		ow.Timestamp(f.wanTSval, f.wanTSecr)
	}
	if f.sackOK && len(sack) > 0 {
		ow.SACK(sack, f.lanMSS-len(payload)-ow.Len())
	}
	h := packet.Header{V6: f.V6, Src: f.WAN.Addr(), Dst: f.LAN.Addr(), SrcPort: f.WAN.Port(), DstPort: f.LAN.Port(),
		Seq: seq, Ack: ack, Flags: flags, Window: e.winToLAN(f), TOS: segmentTOS(tos, payload), TTL: 64, Options: ow.Bytes(), Payload: payload}
	e.emit(&h, out)
	if flags&packet.FlagACK != 0 {
		f.lanSynAcked = true
	}
}

// winToLAN is the window the LAN host gets: the WAN peer's window (C bytes)
// scaled to P so that it cannot be overrun once 20 bytes of framing are
// added to each segment, and at most what the gateway can hold of it.
// Every frame the LAN host sends stays in the flow's ring until the WAN
// acknowledges it (RFC 8548 §3.6: retransmissions resend the same bytes),
// so a window beyond the flow's buffer would make the gateway drop
// segments and the LAN host time out. The cap is relative to the
// acknowledgment the LAN host has, so its right edge moves back only when
// the global budget shrinks under it (budget.go).
func (e *Engine) winToLAN(f *Flow) uint16 {
	m := uint64(f.maxFrameData())
	return e.cappedWindow(f.wanWin, f.wanWS, e.room(f.enc.reserved), m, m+tcpcrypt.FrameOverhead)
}

// cappedWindow is the raw window win (in scale ws), at most room (what the
// direction may hold, budget.go), times num/den, in the same scale.
func (e *Engine) cappedWindow(win uint16, ws uint8, room int, num, den uint64) uint16 {
	w := uint64(win) << ws
	w = min(w, uint64(room)) * num / den
	return uint16(min(w>>ws, 0xffff))
}
