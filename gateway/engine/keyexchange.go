// The tcpcrypt key exchange of a flow (RFC 8548 §3.3, §4.1), once TCP-ENO
// has negotiated its TEP (syn.go), or its resumption (RFC 8548 §3.5).
//
//  1. Role A, on the LAN host's ACK of the SYN-ACK (startA): send Init1
//     (with the non-SYN ENO option) as the first bytes of our C stream;
//     hold LAN data until the keys exist. Role B, on A's first non-SYN
//     segment with ENO (startB): wait for Init1.
//  2. Role B, all of Init1: choose the cipher, send Init2, derive the keys.
//  3. Role A, Init2: derive the keys, send the held data as frames
//     (flushHeld: the first of them acknowledges Init2).
//  4. Resumed: keys and session ID from the cached secret, no Init messages.
//
// The gateway's own Init bytes exist only between the two encrypting ends,
// so it retransmits them itself (Tick) and acknowledges the peer's. abort
// resets both ends once encryption has failed.

package engine

import (
	"crypto/rand"
	"fmt"
	"slices"
	"time"

	"tcpcrypt-gw/crypto/endpoint"
	"tcpcrypt-gw/crypto/tcpcrypt"
	"tcpcrypt-gw/eno"
	"tcpcrypt-gw/gateway/packet"
)

const initialInitRTO = 300 * time.Millisecond

// What becomes of the segment that starts the key exchange (startA,
// startB).
const (
	segDone  = iota // nothing more: the flow was reset, or the segment carried nothing for the other side
	segPlain        // the flow went plain: the segment passes as it is
	segKeyed        // the flow is in the key exchange or encrypted: the segment goes on to lanSegment or wanSegment
)

// startA starts role A's key exchange on the LAN host's ACK of the
// SYN-ACK: resumed (RFC 8548 §3.5), the keys exist at once and there are no
// Init messages; otherwise Init1 goes out (startInit).
func (c *pkt) startA(f *Flow, s *segment) int {
	if mustPostQuantum(c.cfg, f) && !f.tep.PostQuantum() {
		c.refuseClassical(f, s)
		return segDone
	}
	if f.resume != nil {
		f.initDirections()
		f.enoPending = true
		if err := c.resumeKeys(f); err != nil {
			f.Reason = "resumption: " + err.Error()
			c.abort(f)
			return segDone
		}
		return segKeyed
	}
	if !c.startInit(f, s) {
		if f.State == StateReset { // required, refused (noKeyPair)
			return segDone
		}
		return segPlain
	}
	if len(s.Payload()) > 0 || s.has(packet.FlagFIN) {
		return segKeyed
	}
	return segDone
}

// startB starts role B's key exchange on A's first non-SYN segment, if it
// carries ENO (RFC 8547 §4.6): without it the negotiation failed and the
// flow is plain, or refused if it must be encrypted (refuseUnconfirmed).
// Resumed (RFC 8548 §3.5), the keys exist at once.
func (c *pkt) startB(f *Flow, s *segment) int {
	if s.opts.ENO == nil {
		if mustEncrypt(c.cfg, f) {
			c.refuseUnconfirmed(f, s, "encryption required: peer did not confirm ENO")
			return segDone
		}
		c.plain(f, "peer did not confirm ENO")
		return segPlain
	}
	c.expandSYN(f)
	if mustPostQuantum(c.cfg, f) && !f.tep.PostQuantum() {
		c.refuseClassical(f, s)
		return segDone
	}
	f.initDirections()
	f.State = StateKeyExchange
	if f.resume != nil {
		if err := c.resumeKeys(f); err != nil {
			f.Reason = "resumption: " + err.Error()
			c.abort(f)
			return segDone
		}
	}
	return segKeyed
}

// refuseClassical resets a flow that must be keyed by a post-quantum TEP
// when TCP-ENO has negotiated a classical one (or a resumption of a
// classical session), before any Init byte or data: the ENO negotiation
// itself succeeded (RFC 8547 §4.6 leaves the choice of TEP to B), so the
// policy is the gateway's, like require_encryption. Role A decides on the
// LAN host's ACK of the SYN-ACK: the LAN host (established) gets a RST at
// the sequence it expects, the peer (SYN-RECEIVED) one at the ACK's
// sequence; role B on the peer's first non-SYN segment (refuseUnconfirmed).
func (c *pkt) refuseClassical(f *Flow, s *segment) {
	why := "post-quantum required: negotiated " + f.tep.String()
	if f.Role == RoleB {
		c.refuseUnconfirmed(f, s, why)
		return
	}
	c.stats.RequiredResets.Add(1)
	c.rst(f, true, s.Ack, 0, false)
	c.rst(f, false, s.Seq, 0, false)
	c.refused(f, why)
}

// refuseUnconfirmed resets an inbound required flow whose peer's first
// non-SYN segment lacks ENO (RFC 8547 §4.6: the negotiation failed): the
// LAN server (which sent its SYN-ACK) and the peer both get a RST in their
// windows; the segment, and any data in it, goes nowhere.
func (c *pkt) refuseUnconfirmed(f *Flow, s *segment, why string) {
	c.stats.RequiredResets.Add(1)
	c.rst(f, true, s.Seq, 0, false)
	c.rst(f, false, s.Ack, 0, false)
	c.refused(f, why)
}

// expandSYN turns role B's SYN record into the handshake state and the
// connection parameters when the key exchange starts, on A's first
// non-SYN segment with ENO (RFC 8547 §4.6).
func (c *pkt) expandSYN(f *Flow) {
	r := f.syn
	if r == nil {
		return
	}
	if f.handshake == nil { // a resumption has it already
		f.handshake = c.newHandshake()
	}
	f.connParams = c.newConnParams(connParams{tep: r.tep, peerMSS: int(r.peerMSS), lanMSS: int(r.lanMSS),
		sackOK: r.has(synSACK), tsOK: r.has(synTS), lanTSval: r.lanTSval, lanTSecr: r.lanTSecr, wanTSval: r.wanTSval,
		lanWin: r.lanWin, lanWS: r.lanWS, wanWS: r.wanWS, appAware: r.has(synAppAware), PeerAppAware: r.has(synPeerAppAware)})
	f.offer = append([]byte(nil), r.offer[:r.offer[1]]...)
	// Cannot fail: the same answer went out in the SYN-ACK (lanSYNACK).
	f.answer, _ = f.synAnswer(nil)
	f.syn, c.spare.synRecord = nil, r
}

// startInit sends Init1 as role A (RFC 8548 §3.3, §4.1) on the LAN host's ACK of
// the SYN-ACK. It returns false when no key pair could be had: the ACK then
// goes without ENO and both ends fall back to plain TCP, or, when the flow
// must be encrypted, both are reset (noKeyPair).
func (c *pkt) startInit(f *Flow, s *segment) bool {
	kp, err := c.cfg.Keys.Get(f.tep)
	if err != nil {
		c.noKeyPair(f, s, "no key pair: "+err.Error())
		return false
	}
	f.initDirections()
	f.keyPair = kp
	randomNonce(f.nonce[:])
	m := tcpcrypt.Init1{Ciphers: c.cfg.Ciphers, NonceA: f.nonce, PublicKey: kp.PublicKey()}
	f.ownInit = m.Append(nil) // kept for the key schedule: the WAN may acknowledge it first
	c.queueInit(f, f.ownInit)
	f.enoPending = true
	f.State = StateKeyExchange
	if s.opts.HasTS {
		f.lanTSval, f.lanTSecr = s.opts.TSval, s.opts.TSecr
	}
	f.lanWin = s.Window
	c.sendInit(f)
	return true
}

// noKeyPair decides the fate of an outbound flow whose key pair cannot be
// had at the LAN host's ACK of the SYN-ACK: plain (the ACK goes without
// ENO, so the peer falls back too, RFC 8547 §4.6), or, when encryption is
// required, both ends reset: the WAN peer (SYN-RECEIVED) at the sequence
// the ACK carries, the LAN host (ESTABLISHED) at the one it acknowledged.
// The ACK, and any data in it, goes nowhere.
func (c *pkt) noKeyPair(f *Flow, s *segment, why string) {
	if !mustEncrypt(c.cfg, f) {
		c.plain(f, why)
		return
	}
	c.stats.RequiredResets.Add(1)
	c.rst(f, false, s.Seq, 0, false)
	c.rst(f, true, s.Ack, 0, false)
	c.refused(f, "encryption required: "+why)
}

// initDirections sets both directions at the start of the key exchange:
// P and C spaces start at the same initial sequence numbers.
func (f *Flow) initDirections() {
	if f.streams == nil {
		f.streams = new(streams)
	}
	en, d := &f.enc, &f.dec
	p, c := f.encStart()
	en.pNxt, en.cNxt, en.pAcked, en.cAckSeen = p, c, p, c
	en.ring.reset(c)
	en.held.reset(p)
	en.recs.reset()
	c, p = f.decStart()
	d.cRcv, d.pRcv, d.pAck, d.cAcked = c, p, p, c
	d.ring.reset(p)
	d.recs.reset()
}

// encStart and decStart are the first sequence numbers of each direction's
// data, in both spaces: P and C start at the same initial sequence number,
// the offset between them at zero (the Init message, the frames' framing
// and the gateway's own frames then move C ahead).
func (f *Flow) encStart() (pSeq, cSeq) { s := f.lanISN + 1; return pSeq(s), cSeq(s) }

func (f *Flow) decStart() (cSeq, pSeq) { s := f.wanISN + 1; return cSeq(s), pSeq(s) }

// queueInit places our Init message at the start of our C stream.
func (c *pkt) queueInit(f *Flow, msg []byte) {
	en := &f.enc
	en.ring.append(msg, 0)
	p0, c0 := f.encStart()
	en.recs.push(frameRec{cStart: c0, cEnd: c0.add(len(msg)), pStart: p0, pEnd: p0, init: true})
	en.cNxt = c0.add(len(msg))
	en.offNxt = uint64(len(msg))
	en.initLen = len(msg)
	en.initStart = c.now
	en.rto = initialInitRTO
	en.retxAt = c.now.Add(en.rto)
	c.pending = append(c.pending, f)
}

// sendInit (re)sends our Init message as first sent, from the first byte
// the peer has not acknowledged (all of it the first time): cut into
// segments that fit the peer's MSS with the options toWAN adds, PSH on the
// segment with its last byte only (RFC 8548 §3.3: Init messages "MAY span
// multiple TCP segments ... the segment containing the last byte ... MUST
// have TCP's push flag (PSH) set"). The hybrid TEP's Init1 (about 1.3 KB)
// takes three segments at an MSS of 536.
func (c *pkt) sendInit(f *Flow) {
	en := &f.enc
	if en.recs.len() == 0 || !en.recs.first().init {
		return
	}
	r := en.recs.first()
	from := r.cStart
	if en.cAckSeen.gt(from) && en.cAckSeen.lt(r.cEnd) {
		from = en.cAckSeen // ackFromWAN keeps the record until the ACK covers cEnd
	}
	maxSeg := f.maxSegment()
	for from.lt(r.cEnd) {
		b := en.ring.slice(from, from.add(min(maxSeg, r.cEnd.since(from))))
		if len(b) == 0 {
			return
		}
		end := from.add(len(b))
		flags := uint8(packet.FlagACK)
		if end == r.cEnd {
			flags |= packet.FlagPSH
		}
		c.toWAN(f, from, flags, b, 0)
		from = end
	}
}

// consumeInit takes the bytes of the peer's Init message from the start of
// its C stream, acknowledging them itself (the Init exists only between
// the two encrypting ends). An Init that spans segments (RFC 8548 §3.3) is
// gathered in order and its in-order part acknowledged at once, so that
// the sender resends only what is missing; a segment beyond a hole is
// dropped and answered with a duplicate ACK of that part (RFC 5681 §4.2):
// the sender's timer resends from there. It returns what follows the
// message in this segment.
func (c *pkt) consumeInit(f *Flow, seq cSeq, data []byte) (cSeq, []byte) {
	d := &f.dec
	c0, _ := f.decStart()
	pos := c0.add(len(d.initBuf))
	if len(data) == 0 {
		return seq, nil
	}
	if seq.gt(pos) {
		c.ackInitPart(f) // a hole before the Init completes
		return seq, nil
	}
	skip := pos.since(seq)
	if skip >= len(data) {
		c.ackInitPart(f) // all of it had come: our ACK was lost
		return seq, nil
	}
	data, seq = data[skip:], pos
	magic := tcpcrypt.Init2Magic
	if f.Role == RoleB {
		magic = tcpcrypt.Init1Magic
	}
	for {
		need := 8
		if len(d.initBuf) >= 8 {
			n, _, err := tcpcrypt.InitMessageLen(magic, f.tep, d.initBuf)
			if err != nil {
				c.initFailed(f, "bad Init message: "+err.Error())
				return seq, nil
			}
			need = n
		}
		take := min(need-len(d.initBuf), len(data))
		d.initBuf = append(d.initBuf, data[:take]...)
		data, seq = data[take:], seq.add(take)
		if len(d.initBuf) < need {
			c.ackInitPart(f)
			return seq, nil
		}
		if need > 8 || len(d.initBuf) > 8 {
			break
		}
	}
	var err error
	if f.Role == RoleA {
		err = c.gotInit2(f)
	} else {
		err = c.gotInit1(f)
	}
	if err != nil {
		c.initFailed(f, err.Error())
		return seq, nil
	}
	return seq, data
}

// ackInitPart acknowledges the part of the peer's Init gathered so far
// (nothing if none: the ACK would tell the peer nothing).
func (c *pkt) ackInitPart(f *Flow) {
	d := &f.dec
	if len(d.initBuf) == 0 {
		return
	}
	c0, _ := f.decStart()
	d.cAcked = d.cAcked.max(c0.add(len(d.initBuf)))
	c.ackWAN(f)
}

func (c *pkt) initFailed(f *Flow, why string) {
	f.Reason = why
	c.abort(f)
}

// gotInit2 completes role A's key exchange (RFC 8548 §3.3, §4.1).
func (c *pkt) gotInit2(f *Flow) error {
	m, err := tcpcrypt.ParseInit2(f.tep, f.dec.initBuf)
	if err != nil {
		return err
	}
	// RFC 8548 §3.3: a sym_cipher "not present in the sym_cipher_list it
	// previously transmitted in Init1" aborts: checked against Init1 as
	// sent, whatever a reload has changed since.
	sent, err := tcpcrypt.ParseInit1(f.tep, f.ownInit)
	if err != nil || !slices.Contains(sent.Ciphers, m.Cipher) {
		return fmt.Errorf("peer chose cipher %v, which our Init1 did not offer", m.Cipher)
	}
	es, err := f.keyPair.SharedSecret(m.PublicKey)
	if err != nil {
		return err
	}
	ss := tcpcrypt.FullHandshakeSecret(f.tep, eno.Transcript(f.offer, f.answer), f.ownInit, f.dec.initBuf, es, f.nonce[:])
	if err := c.keysReady(f, m.Cipher, ss); err != nil {
		return err
	}
	f.enc.initAcked = true // B answered, so it has all of Init1
	c.cacheNext(f, ss)
	if !f.enc.flushHeld(c, f) {
		// B's Init2 is acknowledged by the first frame: the LAN host's
		// data usually follows its ACK within microseconds, often just
		// after Init2 (the ACK alone was a packet each way for 46 % of
		// the connections of `make bench`'s latency runs). Tick
		// acknowledges it if nothing has by then (tickEvery, 50 ms; RFC
		// 9293 §3.8.6.3 lets an ACK wait up to 0.5 s, and B resends
		// Init2 only after 300 ms, initialInitRTO).
		f.dec.initAckOwed = true
	}
	return nil
}

// gotInit1 answers A's Init1 with Init2 as role B (RFC 8548 §3.3, §4.1).
func (c *pkt) gotInit1(f *Flow) error {
	m, err := tcpcrypt.ParseInit1(f.tep, f.dec.initBuf)
	if err != nil {
		return err
	}
	aead, ok := tcpcrypt.ChooseCipher(m.Ciphers, c.cfg.Ciphers)
	if !ok {
		return fmt.Errorf("no common cipher")
	}
	kp, err := c.cfg.Keys.Get(f.tep)
	if err != nil {
		return err
	}
	pubB, es, err := kp.Respond(m.PublicKey) // Pub_B depends on Pub_A for a KEM TEP
	if err != nil {
		return err
	}
	m2 := tcpcrypt.Init2{Cipher: aead, PublicKey: pubB}
	randomNonce(m2.NonceB[:])
	init2 := m2.Append(nil)
	ss := tcpcrypt.FullHandshakeSecret(f.tep, eno.Transcript(f.offer, f.answer), f.dec.initBuf, init2, es, m.NonceA[:])
	if err := c.keysReady(f, aead, ss); err != nil {
		return err
	}
	c.cacheNext(f, ss)
	c.queueInit(f, init2)
	c.sendInit(f)
	f.enc.flushHeld(c, f)
	return nil
}

// flushHeld frames the plaintext held during the key exchange. It reports
// whether it sent a frame (which carries the acknowledgment too).
func (en *encState) flushHeld(c *pkt, f *Flow) bool {
	if en.held.len() == 0 && !en.heldFIN {
		return false
	}
	data := en.held.slice(en.held.seq, en.held.end())
	// The held bytes become frames: their reservation passes to them.
	c.table.Release(len(data))
	en.reserved -= len(data)
	// The held data leaves with the marks its segment had, not those of
	// the segment that completed the key exchange: in a context of its own.
	held := *c
	held.tosToWAN, held.ecnToWAN = en.heldTOS, 0
	sent := en.frame(&held, f, data, 0, en.heldFIN, true)
	en.held.free()
	en.heldFIN = false
	return sent
}

// resumeKeys starts a flow from the cached secret ss[i] (RFC 8548 §3.5):
// keys and session ID from ss[i] and sn[i] directly, the first frame at
// offset 0.
func (c *pkt) resumeKeys(f *Flow) error {
	ent := f.resume
	ss := ent.Secret
	if err := c.keysReady(f, ent.AEAD, ss); err != nil {
		return err
	}
	f.enc.initAcked = true
	f.Resumed = true
	f.resume = nil
	c.stats.Resumptions.Add(1)
	c.cacheNext(f, ss)
	return nil
}

// cacheNext keeps ss[i+1] for the next connection to the same peer, with
// the role we played in the original session; both ends do the same, so
// they agree on it (RFC 8548 §3.5: "compute and cache ss[i+1]").
func (c *pkt) cacheNext(f *Flow, ss tcpcrypt.SessionSecret) {
	if c.cfg.Cache != nil {
		c.cfg.Cache.Put(peerKey(f.WAN), endpoint.Entry{TEP: f.tep, AEAD: f.aead, Secret: ss.Next(), OriginalRole: f.originalRole})
	}
}

// keysReady switches the flow to encrypted under ss. We seal with k_ab if
// we played A in the original session (this one when fresh, the cached
// entry's when resumed: RFC 8548 §3.3, §3.5), and the session ID starts
// with B's TEP byte, v = 1 when resumed (§3.4). The peer's Init, which
// the gateway consumed itself, is acknowledged whole (ackInitPart
// acknowledged it as it came, all but its last part).
func (c *pkt) keysReady(f *Flow, aead tcpcrypt.AEADID, ss tcpcrypt.SessionSecret) error {
	f.originalRole = eno.RoleA
	if f.Role == RoleB {
		f.originalRole = eno.RoleB
	}
	if f.resume != nil {
		f.originalRole = f.resume.OriginalRole
	}
	sealer, opener, err := tcpcrypt.NewSession(ss, aead, f.sessionNonce, f.originalRole == eno.RoleA)
	if err != nil {
		return err
	}
	f.aead = aead
	f.sessionID = ss.SessionID(endpoint.SessionIDTEPByte(f.tep, f.resume != nil), f.sessionNonce)
	f.enc.sealer, f.dec.opener = sealer, opener
	f.enc.lastRekey = c.now
	d := &f.dec
	c0, _ := f.decStart()
	n := len(d.initBuf)
	d.cRcv = c0.add(n)
	d.cAcked = d.cAcked.max(d.cRcv) // the LAN host never sees the peer's Init: the gateway acknowledges it
	d.offRcv = uint64(n)
	d.keyed = true
	d.initBuf = nil
	f.keyPair, f.ownInit = nil, nil
	f.State = StateEncrypted
	f.Stats.HandshakeDone = c.now
	if f.Role == RoleA {
		// A peer we connected to speaks tcpcrypt: a later answer without
		// ENO from it is a suspected downgrade (refuse.go).
		c.cfg.Peers.Remember(f.WAN.Addr(), c.now)
	}
	c.stats.FlowsEncrypted.Add(1)
	if f.tep.PostQuantum() {
		c.stats.FlowsPostQuantum.Add(1)
	}
	c.stats.observeHandshake(c.now.Sub(f.Stats.Started))
	return nil
}

// abort resets both ends of an encrypted flow (RFC 8548 §3.6, §3.7: fail closed
// once encryption is on): RST to the LAN host at the P sequence it expects,
// and to the WAN peer at the C sequence it expects.
func (c *pkt) abort(f *Flow) {
	if f.State == StateReset {
		return
	}
	// A type-2 failure of the path when nothing progressed (fallback.go).
	c.pathFailure(f, f.Reason, false)
	if f.streams == nil { // no data was rewritten: nothing to fail closed on
		f.State = StateReset
		return
	}
	c.toLAN(f, f.dec.pRcv, packet.FlagRST|packet.FlagACK, nil, 0)
	c.toWAN(f, f.enc.cNxt, packet.FlagRST|packet.FlagACK, nil, 0)
	f.State = StateReset
}

// randomNonce fills n from the OS CSPRNG (RFC 8548 §8).
func randomNonce(n []byte) {
	if _, err := rand.Read(n); err != nil {
		panic("engine: no randomness: " + err.Error())
	}
}
