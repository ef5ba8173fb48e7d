// A packet's entry into the engine and its dispatch by its flow's state.
//
//  0. Process, ProcessOffload, ProcessBuffer: the packet gets its context
//     (ctx, a pkt: the batch's configuration and clock, the output batch,
//     its offload metadata). process: the packet is parsed, its flow key
//     found (KeyOf) and its flow looked up; what is not TCP between the
//     LAN and the WAN passes, and a rewritten flow's segment with a bad
//     checksum is dropped.
//  1. fromLAN / fromWAN: no flow yet: a SYN starts one (syn.go: newOutbound,
//     newInbound; its place in the table: table.go); any other segment of
//     an unknown flow is answered with RST (resetUnknown), never passed: it
//     could carry ciphertext to a LAN host or plaintext of an encrypted
//     flow to the WAN.
//  2. A flow in the SYN exchange: syn.go. In the key exchange or encrypted:
//     lanSegment and wanSegment hand the segment to the two directions the
//     way TCP hands one to its receiver, then its sender: a LAN segment is
//     the decrypting direction learning the LAN host's ACK (decrypt.go),
//     then the encrypting direction taking its data (encrypt.go); a WAN
//     segment the other way round. Plain: forwarded as it is.
//  3. After the packet: what the flow no longer holds goes back to the
//     budget (budget.go), and its expiry moves by its state (touch).

package engine

import (
	"fmt"
	"net/netip"
	"time"

	"tcpcrypt-gw/crypto/tcpcrypt"
	"tcpcrypt-gw/flowtable"
	"tcpcrypt-gw/gateway/packet"
)

// Process handles one packet read from the TUN device, with a complete
// checksum and no offload header. It never keeps b.
func (l *Locked) Process(b []byte) { l.ProcessOffload(b, packet.Offload{}) }

// ProcessOffload handles one packet read from the TUN device with its
// virtio-net header: a GSO super-packet is handled as one segment whose
// payload is all of its segments', and a checksum the kernel vouches for is
// not verified again. It never keeps b.
func (l *Locked) ProcessOffload(b []byte, off packet.Offload) {
	c := l.ctx()
	c.rxOffload, c.rxSegs = off, 1
	c.process(b)
}

// ProcessBuffer is ProcessOffload for the packet at buf[Offset:] of the
// output batch's Offset, in a buffer whose headroom the caller lends: a
// packet forwarded unchanged (pass-through flows, non-TCP) goes into the
// output batch as buf itself, not copied. buf must then stay untouched
// until the output batch has been written (Engine.Flush or the caller).
func (l *Locked) ProcessBuffer(buf []byte, off packet.Offload) {
	c := l.ctx()
	c.rxOffload, c.rxSegs, c.rxBuf = off, 1, buf
	c.process(buf[l.out.Offset:])
}

// ctx is the context of one packet (or Tick, or ResetAll) of the batch.
func (l *Locked) ctx() pkt {
	return pkt{Engine: l.e, cfg: l.cfg, dirLimit: l.dirLimit, now: l.now, out: l.out}
}

// process handles the packet b in its context.
func (c *pkt) process(b []byte) {
	c.stats.PacketsIn.Add(1)
	p, err := packet.Parse(b)
	if err != nil {
		// Not TCP, a fragment, or an IPv6 extension header: not ours to
		// rewrite. A packet too broken to parse is dropped.
		if err == packet.ErrNotTCP || err == packet.ErrFragment || err == packet.ErrExtHeader {
			c.stats.PassedUnparsable.Add(1)
			c.forward(b)
		} else {
			c.stats.Malformed.Add(1)
		}
		return
	}
	if off := c.rxOffload; off.GSOType != packet.GSONone && off.GSOSize > 0 {
		// Counters count segments: a super-packet counts as the
		// segments it stands for.
		c.rxSegs = uint64(max(1, (len(p.Payload())+int(off.GSOSize)-1)/int(off.GSOSize)))
		c.stats.PacketsIn.Add(c.rxSegs - 1)
	}
	key, fromLAN, ok := KeyOf(c.cfg, &p)
	if !ok {
		c.forward(p.Buf)
		return
	}
	opts, err := packet.ParseOptions(p.Options())
	entry, found := c.table.Get(c.shard, key)
	var f *Flow
	if found {
		f = entry.Value
	}
	if err != nil {
		c.stats.Malformed.Add(1)
		if f == nil || f.State == StatePassthrough {
			c.forward(p.Buf)
		}
		return
	}
	if f != nil && f.rewrites() && !c.rxOffload.ChecksumTrusted() && !p.VerifyChecksum() {
		// A segment TCP itself would discard: never encrypt or
		// authenticate it (line noise must not reset the connection).
		c.stats.BadChecksum.Add(1)
		return
	}
	seg := segment{Packet: &p, opts: &opts}
	if fromLAN {
		c.tosToWAN, c.ecnToWAN = p.TOS, p.Flags&ecnFlags
		c.fromLAN(key, entry, f, &seg)
	} else {
		c.tosToLAN, c.ecnToLAN = p.TOS, p.Flags&ecnFlags
		c.fromWAN(key, entry, f, &seg)
	}
}

// KeyOf returns the flow key and whether the packet goes LAN to WAN, or
// ok=false if it is not a packet between the LAN and the WAN.
func KeyOf(cfg *Config, p *packet.Packet) (k flowtable.Key, fromLAN bool, ok bool) {
	sl, dl := cfg.IsLAN(p.Src), cfg.IsLAN(p.Dst)
	switch {
	case sl && !dl:
		return flowtable.Key{LAN: netip.AddrPortFrom(p.Src, p.SrcPort), WAN: netip.AddrPortFrom(p.Dst, p.DstPort)}, true, true
	case dl && !sl:
		return flowtable.Key{LAN: netip.AddrPortFrom(p.Dst, p.DstPort), WAN: netip.AddrPortFrom(p.Src, p.SrcPort)}, false, true
	}
	return k, false, false
}

// rewrites reports whether the engine rewrites this flow's packets (rather
// than passing them).
func (f *Flow) rewrites() bool {
	return f.State == StateKeyExchange || f.State == StateEncrypted
}

// fromLAN handles a packet from a LAN host.
func (c *pkt) fromLAN(key flowtable.Key, entry *flowtable.Entry[*Flow], f *Flow, s *segment) {
	if s.has(packet.FlagSYN) && !s.has(packet.FlagACK) {
		if c.lanSYN(key, entry, f, s) {
			c.touch(entry)
		}
		return
	}
	if f == nil {
		c.resetUnknown(s)
		return
	}
	f.Stats.PacketsOut++
	switch f.State {
	case StateReset:
		return // the gateway reset this flow: nothing more from it
	case StateSYNReceived, StateSYNACKSent:
		if s.has(packet.FlagSYN) {
			c.lanSYNACK(f, s)
		} else {
			c.forwardPlain(f, s)
		}
	case StateACKPending:
		if s.has(packet.FlagRST) || s.has(packet.FlagSYN) {
			c.forwardPlain(f, s)
			break
		}
		switch c.startA(f, s) {
		case segPlain:
			c.forwardPlain(f, s)
		case segKeyed:
			c.lanSegment(f, s)
		}
	case StateKeyExchange, StateEncrypted:
		c.lanSegment(f, s)
	default:
		c.forwardPlain(f, s)
	}
	if !f.established {
		f.trackOpen(s, true)
	}
	c.returnUnheld(f)
	c.touch(entry)
}

// fromWAN handles a packet from a WAN host.
func (c *pkt) fromWAN(key flowtable.Key, entry *flowtable.Entry[*Flow], f *Flow, s *segment) {
	if s.has(packet.FlagSYN) && !s.has(packet.FlagACK) {
		if c.wanSYN(key, entry, f, s) {
			c.touch(entry)
		}
		return
	}
	if f == nil {
		c.resetUnknown(s)
		return
	}
	f.Stats.PacketsIn++
	switch f.State {
	case StateReset:
		return
	case StateSYNSent:
		if s.has(packet.FlagSYN) {
			c.wanSYNACK(f, s)
		} else {
			c.forwardPlain(f, s)
		}
	case StateACKPending:
		if s.has(packet.FlagSYN) { // retransmitted SYN-ACK
			c.emitSYN(s, nil, f.peerMSS-tcpcrypt.FrameOverhead)
		} else {
			c.forwardPlain(f, s)
		}
	case StateSYNACKSent:
		if s.has(packet.FlagSYN) || s.has(packet.FlagRST) {
			c.forwardPlain(f, s)
			break
		}
		switch c.startB(f, s) {
		case segPlain:
			c.forwardPlain(f, s)
		case segKeyed:
			c.wanSegment(f, s)
		}
	case StateKeyExchange, StateEncrypted:
		if s.has(packet.FlagSYN) {
			if f.Role == RoleA { // our ACK or Init1 was lost: the LAN host answers again
				c.emitSYN(s, nil, f.peerMSS-tcpcrypt.FrameOverhead)
			}
			break
		}
		c.wanSegment(f, s)
	default:
		if f.handshake != nil && f.fellBack && s.has(packet.FlagSYN) {
			c.fallbackAnswered(f, s) // fallback.go
		}
		c.forwardPlain(f, s)
	}
	if !f.established {
		f.trackOpen(s, false)
	}
	c.returnUnheld(f)
	c.touch(entry)
}

// trackOpen follows the three-way handshake (RFC 9293 §3.5) of a flow not
// yet established: the responder's SYN-ACK, then the opener's ACK of it.
// Until then the flow lives on the handshake timeout, whatever its state,
// so that half-open flows a SYN flood creates (the LAN server answers each
// spoofed SYN, the spoofed source never acknowledges) leave the table soon.
// Only an ACK of the real ISN counts: a blind ACK cannot extend a flow.
// Only a SYN-ACK that acknowledges the opener's SYN counts (RFC 9293
// §3.10.7.3), so the ISN recorded is the one the handshake code takes too.
func (f *Flow) trackOpen(s *segment, fromLAN bool) {
	opener := fromLAN == (f.Role == RoleA)
	isn, openerISN := &f.lanISN, f.wanISN // role B: the LAN server responds
	if f.Role == RoleA {
		isn, openerISN = &f.wanISN, f.lanISN
	}
	switch {
	case s.has(packet.FlagSYN) && s.has(packet.FlagACK) && !opener && s.Ack == openerISN+1:
		*isn, f.synAckSeen = s.Seq, true
	case !s.has(packet.FlagSYN) && s.has(packet.FlagACK) && opener && f.synAckSeen && s.Ack == *isn+1:
		f.established = true
	}
}

// resetUnknown answers a mid-connection segment of a flow the gateway has
// no state for (it started, restarted or expired the flow since) with a
// RST, the way a closed port does (RFC 9293 §3.10.7.1). Passing it would be
// unsafe: the connection may have been encrypted, and then its plaintext
// would reach the WAN or its ciphertext a LAN host.
func (c *pkt) resetUnknown(s *segment) {
	c.stats.UnknownResets.Add(1)
	if s.has(packet.FlagRST) {
		return
	}
	h := packet.Header{V6: s.V6, Src: s.Dst, Dst: s.Src, SrcPort: s.DstPort, DstPort: s.SrcPort, TTL: 64}
	if s.has(packet.FlagACK) {
		h.Seq, h.Flags = s.Ack, packet.FlagRST
	} else {
		h.Ack, h.Flags = s.Seq+s.SeqLen(), packet.FlagRST|packet.FlagACK
	}
	c.emit(&h)
}

// forwardPlain forwards a packet of a flow unchanged and notes an RST.
func (c *pkt) forwardPlain(f *Flow, s *segment) {
	if n := uint64(len(s.Payload())); s.SrcPort == f.LAN.Port() && s.Src == f.LAN.Addr() {
		f.Stats.PlainBytesOut += n
	} else {
		f.Stats.PlainBytesIn += n
	}
	if s.has(packet.FlagRST) && f.State != StatePassthrough {
		f.State = StateClosed
	} else if s.has(packet.FlagRST) {
		f.Reason = f.Reason + "; reset"
	}
	c.forward(s.Buf)
}

// lanSegment handles a LAN segment of a flow in key exchange or encrypted,
// the way TCP hands a segment to its receiver, then to its sender: the
// decrypting direction learns the LAN host's ACK (ackFromLAN), then the
// encrypting direction takes its data (dataFromLAN).
func (c *pkt) lanSegment(f *Flow, s *segment) {
	ackBefore, winBefore := f.dec.cAcked, f.lanWin
	if s.opts.HasTS {
		f.lanTSval, f.lanTSecr = s.opts.TSval, s.opts.TSecr
	}
	f.lanWin = s.Window
	if s.has(packet.FlagRST) {
		c.pathFailure(f, "the LAN host reset the connection", false)
		c.toWAN(f, f.enc.pToC(pSeq(s.Seq)), s.Flags&(packet.FlagRST|packet.FlagACK), nil, s.TOS)
		f.State = StateClosed
		return
	}
	if f.startStalled(s, c.now) { // rare: the path may drop ciphertext (fallback.go)
		c.pathFailure(f, fmt.Sprintf("nothing acknowledged by the peer %v after the key exchange", c.now.Sub(f.Stats.HandshakeDone).Round(time.Second)), false)
	}
	if s.has(packet.FlagACK) {
		f.dec.ackFromLAN(pSeq(s.Ack))
	}
	f.enc.dataFromLAN(c, f, s, f.dec.cAcked != ackBefore || f.lanWin != winBefore)
}

// startStalled reports a LAN segment of an encrypted outbound flow that
// retransmits data stallAfter after the key exchange while the peer has
// acknowledged nothing: a type-2 failure of the path (fallback.go). The
// progress check is here, before the caller formats its reason, so that an
// ordinary retransmission later in a flow allocates nothing. Kept
// here, not in fallback.go, so that a data packet's path stays in its files.
func (f *Flow) startStalled(s *segment, now time.Time) bool {
	return f.Role == RoleA && !f.pathFailed && f.State == StateEncrypted && len(s.Payload()) > 0 &&
		pSeq(s.Seq).lt(f.enc.pNxt) && now.Sub(f.Stats.HandshakeDone) >= stallAfter && f.noPeerProgress()
}

// wanSegment handles a WAN segment of a flow in key exchange or encrypted:
// the encrypting direction learns the WAN peer's ACK (ackFromWAN), then the
// decrypting direction takes its data (dataFromWAN); an ACK that carried no
// plaintext to the LAN host goes on to it if it tells it something.
func (c *pkt) wanSegment(f *Flow, s *segment) {
	f.enoPending = false // RFC 8547 §4.6: B has sent a non-SYN segment
	if s.opts.HasTS {
		f.wanTSval, f.wanTSecr = s.opts.TSval, s.opts.TSecr
	}
	f.wanWin = s.Window
	oldUna, oldSeen := f.enc.pAcked, f.enc.cAckSeen
	if s.has(packet.FlagACK) {
		f.enc.ackFromWAN(cSeq(s.Ack))
	}
	if s.has(packet.FlagRST) {
		c.pathFailure(f, "the peer reset the connection", false)
		c.toLAN(f, f.dec.pRcv, s.Flags&(packet.FlagRST|packet.FlagACK), nil, s.TOS)
		f.State = StateClosed
		return
	}
	delivered := f.dec.dataFromWAN(c, f, s)
	if f.State != StateEncrypted || delivered {
		return
	}
	// Pass the acknowledgment on when it tells the LAN host something: a
	// new P ack, or a pure ACK that did not move the C ack (a duplicate
	// ACK, a loss signal, or a window update). A pure ACK that moved the C
	// ack but not the P ack covered only bytes the LAN host never sent
	// (our Init, our own rekey frames) or part of a frame: passed on, it
	// would look like a duplicate ACK to the LAN host.
	if len(s.Payload()) == 0 && !s.has(packet.FlagFIN) && f.enc.cAckSeen == oldSeen || f.enc.pAcked != oldUna {
		c.toLANAck(f, s.Flags&(packet.FlagACK|packet.FlagECE|packet.FlagCWR), s.opts, s.TOS)
	}
}

// touch refreshes a flow's expiry deadline according to its state.
func (c *pkt) touch(entry *flowtable.Entry[*Flow]) {
	f := entry.Value
	d := c.cfg.IdleTimeout
	switch f.State {
	case StateSYNSent, StateSYNReceived, StateSYNACKSent, StateACKPending, StateKeyExchange:
		d = c.cfg.HandshakeTimeout
	case StateClosed, StateReset:
		d = c.cfg.ClosingTimeout
	case StatePassthrough:
		if !f.established { // half-open (trackOpen)
			d = c.cfg.HandshakeTimeout
		}
	}
	if f.State == StateEncrypted && f.enc.finSent && f.dec.finDelivered {
		d = c.cfg.ClosingTimeout
	}
	entry.Touch(c.now, c.now.Add(d))
}
