// The SYN exchange of a flow: TCP-ENO negotiation (RFC 8547 §4).
//
// Outbound (the gateway is role A):
//  1. LAN SYN (lanSYN; a retransmission keeps the flow): add our ENO offer
//     (TEPs in preference order), remember it as the first half of the
//     transcript. No room, SYN data, Fast Open, MPTCP, a bypass rule, or a
//     LAN host that sends ENO itself: plain for good.
//  2. WAN SYN-ACK: take B's answer (the last TEP in it that we offered),
//     strip ENO, clamp the MSS to the LAN host by the framing overhead. No
//     valid answer: plain.
//  3. The LAN host's ACK: the key exchange starts (keyexchange.go).
//
// Inbound (the gateway is role B):
//  1. WAN SYN (wanSYN; a retransmission keeps the flow) with an ENO offer
//     we accept: remember it, strip it, clamp MSS.
//     Until step 3 the flow keeps only a compact record (synRecord).
//  2. LAN SYN-ACK: add our answer (global b=1 and the chosen TEP).
//  3. The first non-SYN segment from A carries ENO (RFC 8547 §4.6):
//     encryption is on (the record becomes the handshake state,
//     keyexchange.go: startB, expandSYN), its payload starts Init1.
//     Without ENO: plain.

package engine

import (
	"fmt"
	"net/netip"
	"slices"

	"tcpcrypt-gw/crypto/endpoint"
	"tcpcrypt-gw/crypto/tcpcrypt"
	"tcpcrypt-gw/eno"
	"tcpcrypt-gw/flowtable"
	"tcpcrypt-gw/gateway/packet"
)

func mssOf(s *segment) int {
	if s.opts.HasMSS {
		return int(s.opts.MSS)
	}
	if s.V6 { // RFC 9293 §3.7.1 defaults
		return 1220
	}
	return 536
}

// lanSYN handles a SYN from the LAN host. A retransmission, also after the
// peer's SYN-ACK if that was lost on its way to the LAN host, keeps the
// flow (it reports true): the peer's answer belongs to our first offer, so
// the flow and its offer stay (a new flow would offer the next cached
// secret, RFC 8548 §3.5, and fail to match the peer's answer to the
// first). Any other SYN starts a new flow.
func (c *pkt) lanSYN(key flowtable.Key, entry *flowtable.Entry[*Flow], f *Flow, s *segment) bool {
	if f != nil && f.Role == RoleA && s.Seq == f.lanISN && (f.State == StateSYNSent || f.State == StateACKPending || f.State == StatePassthrough) {
		c.lanSYNAgain(f, s)
		return true
	}
	if crossing(f, true) {
		c.lanSYNCrossing(f, s)
		return true
	}
	c.newOutbound(key, entry, s)
	return false
}

// wanSYN handles a SYN from the WAN: a retransmission keeps the flow (it
// reports true) and goes on as the first did; any other SYN starts a new
// flow.
func (c *pkt) wanSYN(key flowtable.Key, entry *flowtable.Entry[*Flow], f *Flow, s *segment) bool {
	if f != nil && f.Role == RoleB && s.Seq == f.wanISN {
		switch {
		case f.State == StateSYNReceived || f.State == StateSYNACKSent:
			c.emitSYN(s, nil, int(f.syn.peerMSS)-tcpcrypt.FrameOverhead)
		case synENOWithData(s):
			c.emitSYN(s, nil, 0) // as the first SYN (newInbound)
		default:
			c.forwardPlain(f, s)
		}
		return true
	}
	if crossing(f, false) {
		c.wanSYNCrossing(f, s)
		return true
	}
	c.newInbound(key, entry, s)
	return false
}

// crossing reports whether a SYN-only segment from the LAN (fromLAN) or
// the WAN is a simultaneous open (RFC 9293 §3.5; RFC 8547 §3
// "Simultaneous open"): f was opened from the other end, its three-way
// handshake is not complete and no RST ended it. (A new SYN from the end
// that opened f is a new connection, as before.) The flow is kept (it was replaced before, so that a SYN
// with a guessed address and port could take the flow over); the
// decision is in docs/conformance.md ("Simultaneous open").
func crossing(f *Flow, fromLAN bool) bool {
	return f != nil && (f.Role == RoleB) == fromLAN && !f.established && f.State != StateClosed && f.State != StateReset
}

// wanSYNCrossing handles the WAN peer's SYN crossing the LAN host's (role
// A) by the roles RFC 8547 §4.3 gives the two SYNs' b bits:
//   - a flow already plain passes it, as its other segments; after the
//     peer's SYN-ACK (which decided the negotiation) it is dropped;
//   - b = 1 (the peer explicitly plays B): dropped, as if lost. The peer,
//     which has our SYN (b = 0) or gets its retransmission, answers it with
//     a SYN-ACK carrying the same option (§4.6), and the negotiation goes
//     on as for any SYN-ACK, with the gateway as A; the LAN host sees an
//     ordinary open.
//   - b = 0, or no valid ENO option: the negotiation has failed (§4.6
//     rules 1 and 3, §4.3: "if both sides use the default b = 0 ... TCP-ENO
//     will fail"): the flow goes plain, the SYN reaches the LAN host
//     without ENO (and without SYN data, §4.7), whose SYN-ACK then goes
//     without ENO too (§4.6's second exception). A flow that must be
//     encrypted is reset instead, and a remembered tcpcrypt peer flagged
//     (a SYN with the flow's address and ports could be an attacker's).
func (c *pkt) wanSYNCrossing(f *Flow, s *segment) {
	if f.State == StateACKPending {
		return // the peer's SYN-ACK decided the negotiation; the LAN host has it
	}
	if f.State == StatePassthrough {
		if synENOWithData(s) {
			c.emitSYN(s, nil, 0)
		} else {
			c.forward(s.Buf)
		}
		return
	}
	why := "simultaneous open: the peer's SYN has no ENO"
	if s.opts.ENO != nil && s.opts.ENOCount == 1 {
		var tepBuf [8]eno.Suboption
		offer, err := eno.ParseSYNOptionInto(s.opts.ENO, tepBuf[:0])
		switch {
		case err != nil:
			why = "simultaneous open: malformed ENO: " + err.Error()
		case offer.Passive():
			return // dropped: the peer's SYN-ACK carries on the negotiation
		default:
			why = "simultaneous open: both ends play role A (b = 0)"
		}
	}
	block := mustEncrypt(c.cfg, f)
	if block {
		c.stats.RequiredResets.Add(1)
		why = "encryption required: " + why
	} else if when, ok := c.rememberedPeer(f); ok {
		block = c.cfg.BlockDowngrade != nil && c.cfg.BlockDowngrade(f.WAN.Addr())
		why = c.downgrade(f, why, when, block)
	}
	if block {
		// Both ends are in SYN-SENT, or SYN-RECEIVED if the other's SYN
		// reached them: a RST that acknowledges their SYN and sits at the
		// sequence the other's SYN started is acceptable in either
		// (RFC 9293 §3.10.7.3, §3.10.7.4).
		c.rst(f, true, s.Seq+1, f.lanISN+1, true)
		c.rst(f, false, f.lanISN+1, s.Seq+1, true)
		c.refused(f, why)
		return
	}
	c.plain(f, why)
	c.emitSYN(s, nil, 0)
}

// lanSYNCrossing handles the LAN host's SYN crossing the WAN peer's (role
// B): a flow already plain passes it; otherwise it is dropped, as if lost.
// The LAN host, in SYN-SENT, has the peer's SYN (or gets its
// retransmission) and answers it with a SYN-ACK, which gets our answer
// (lanSYNACK): the peer sees an ordinary open with the gateway as B (RFC
// 8547 §4.3), and the LAN host a simultaneous open whose own SYN was lost.
// Passing the SYN instead would need ENO with b = 1 in it (the same option
// as our SYN-ACK's, §4.6), which the peer, an active opener with b = 0,
// may not accept.
func (c *pkt) lanSYNCrossing(f *Flow, s *segment) {
	if f.State == StatePassthrough {
		c.forward(s.Buf)
	}
}

// newOutbound starts a flow for a SYN from the LAN (role A), in place of
// old if the table holds one for its key.
func (c *pkt) newOutbound(key flowtable.Key, old *flowtable.Entry[*Flow], s *segment) {
	cp := connParams{lanMSS: mssOf(s), sackOK: s.opts.SACKPerm, tsOK: s.opts.HasTS, lanTSval: s.opts.TSval}
	if s.opts.HasWScale {
		cp.lanWS = s.opts.WScale
	}
	f := c.newFlow()
	f.Role, f.V6, f.LAN, f.WAN, f.lanISN = RoleA, s.V6, key.LAN, key.WAN, s.Seq
	f.handshake, f.connParams = c.newHandshake(), c.newConnParams(cp)
	entry := c.insert(key, f, old)
	if entry == nil {
		// Table full (a flood): drop the SYN, the host tries again. A
		// connection without a flow would be reset at its next segment.
		return
	}
	why := ""
	mayPass := false // plain by the LAN host's or the policy's choice: passes even when encryption is required
	switch {
	case c.cfg.Bypass != nil && c.cfg.Bypass(key.LAN, key.WAN):
		why, mayPass = "bypass rule", true
	case s.opts.ENO != nil:
		why, mayPass = "LAN host speaks ENO itself", true
	case s.opts.LegacyENO:
		// RFC 8547 §11: a host must not carry both option 69 and the
		// experimental option 253 with ExID 0x454E.
		why, mayPass = "LAN host speaks a pre-RFC ENO (option 253) itself", true
	case len(s.Payload()) > 0 || s.opts.TFOCookie:
		// RFC 8547 §4.7: a SYN+ENO segment MUST NOT carry data the SYN TEP
		// does not define (tcpcrypt defines none) nor a non-empty TFO
		// option. Dropping the data would change what the LAN host's TCP
		// sent; passing the SYN without ENO keeps it exactly.
		why = "SYN carries data or a Fast Open cookie"
	case s.opts.MPTCP:
		why = "MPTCP"
	case s.has(packet.FlagURG):
		why = "urgent data"
	}
	if why == "" {
		why = c.brokenPath(f) // fallback.go: RFC 8547 §9 type-2 failures before
	}
	if why == "" && c.cfg.AppAware != nil {
		f.appAware, f.appMandatory = c.cfg.AppAware(key.LAN, key.WAN)
	}
	if why == "" {
		// RFC 8548 §3.5: offer the cached secret, the lowest unused i of
		// its chain (the cache hands each ss[i] out once).
		if c.cfg.Cache != nil {
			// Not a classical session for a flow that must be
			// post-quantum (refuse.go): it would be reset.
			if ent, ok := c.cfg.Cache.TakeForPeer(peerKey(key.WAN)); ok && slices.Contains(c.cfg.TEPs, ent.TEP) && slices.Contains(c.cfg.Ciphers, ent.AEAD) &&
				(ent.TEP.PostQuantum() || c.cfg.RequirePostQuantum == nil || !c.cfg.RequirePostQuantum(key.LAN, key.WAN)) {
				f.resume = &ent
				f.resumeNonce = endpoint.NewResumeNonce(c.cfg.ResumeNonceLen)
			}
		}
		// Try the offer with every TEP, then the resumption suboption
		// alone (it also offers a fresh key exchange with its TEP, RFC
		// 8548 §3.2), then the TEPs without resumption: the first that
		// fits beside the host's own options goes.
		for _, try := range [...]struct{ teps, resume bool }{{true, true}, {false, true}, {true, false}} {
			if try.resume && f.resume == nil {
				continue
			}
			if !try.resume {
				f.resume, f.resumeNonce = nil, nil
			}
			opt, err := eno.AppendSYNOption(nil, c.offer(f, try.teps))
			if err != nil {
				why = "ENO offer: " + err.Error()
				break
			}
			if c.emitSYN(s, opt, 0) {
				f.offer = opt
				f.State = StateSYNSent
				if f.resume != nil {
					c.stats.ResumeOffered.Add(1)
				}
				return
			}
			why = "no TCP option space for ENO"
		}
	}
	if !mayPass && mustEncrypt(c.cfg, f) {
		c.refuseLANSYN(f, s, "encryption required: "+why)
		return
	}
	c.plain(f, why)
	c.forward(s.Buf)
}

// refuseLANSYN answers a LAN host's SYN that cannot go out with ENO: a RST
// acknowledging it, as a closed port would. Nothing reaches the WAN.
func (c *pkt) refuseLANSYN(f *Flow, s *segment, why string) {
	c.stats.RequiredResets.Add(1)
	c.rst(f, true, 0, s.Seq+s.SeqLen(), true)
	c.refused(f, why)
}

// offer lists the suboptions of our SYN's ENO option: the configured TEPs in
// preference order and, when resuming, the resumption suboption last, where
// its data needs no length byte (RFC 8547 §4.4). The resumed TEP is not
// listed again without data: a resumption suboption already offers a fresh
// key exchange with its TEP (RFC 8548 §3.2), and RFC 8548 defines no
// meaning for the same TEP twice. withTEPs false leaves only the
// resumption suboption.
func (c *pkt) offer(f *Flow, withTEPs bool) eno.SYNOption {
	subs := make([]eno.Suboption, 0, len(c.cfg.TEPs)+1)
	for _, t := range c.cfg.TEPs {
		if withTEPs && (f.resume == nil || t != f.resume.TEP) {
			subs = append(subs, eno.Suboption{TEP: byte(t)})
		}
	}
	if f.resume != nil {
		subs = append(subs, endpoint.OfferResume(*f.resume, f.resumeNonce))
	}
	o := eno.Offer(subs)
	if f.appAware {
		o.Global, o.HasGlobal = eno.GlobalA, true // RFC 8547 §4.2
	}
	return o
}

// peerKey names a peer in the resumption cache: its address (with NAT in
// front of it, the address of its gateway, which is the other end).
func peerKey(wan netip.AddrPort) string { return wan.Addr().String() }

// lanSYNAgain handles a retransmitted LAN SYN (RFC 8547 §4.6, §9: a
// middlebox may drop SYNs with unknown options, so after some tries the SYN
// may go plain: synFallback, refuse.go).
func (c *pkt) lanSYNAgain(f *Flow, s *segment) {
	f.synRetries++
	if f.State == StateSYNSent && c.cfg.SYNFallbackRetries > 0 && f.synRetries >= c.cfg.SYNFallbackRetries {
		c.synFallback(f) // refuse.go
	}
	if (f.State == StateSYNSent || f.State == StateACKPending) && c.emitSYN(s, f.offer, 0) {
		return
	}
	c.forward(s.Buf)
}

// wanSYNACK takes B's answer to our offer (RFC 8547 §4.5, §4.6).
func (c *pkt) wanSYNACK(f *Flow, s *segment) {
	if s.Ack != f.lanISN+1 {
		c.forward(s.Buf)
		return
	}
	f.wanISN = s.Seq
	f.peerMSS = mssOf(s)
	f.sackOK = f.sackOK && s.opts.SACKPerm
	f.tsOK = f.tsOK && s.opts.HasTS
	f.wanTSval, f.wanTSecr = s.opts.TSval, s.opts.TSecr
	if s.opts.HasWScale { // RFC 7323 §2.2: only sent when the SYN had it
		f.wanWS = min(s.opts.WScale, 14)
	} else {
		f.lanWS = 0
	}
	// Each failure below is plain TCP by RFC 8547 §4.6, unless the flow
	// must be encrypted or the peer is known to speak tcpcrypt (noENO). A
	// stripped ENO is never passed to the LAN host, which never offered it.
	if s.opts.ENO == nil {
		c.noENO(f, s, "peer did not answer ENO", false)
		return
	}
	if s.opts.ENOCount > 1 {
		// RFC 8547 §4.1: more than one ENO option in a SYN segment is
		// invalid, which means no ENO.
		c.noENO(f, s, "ENO negotiation failed: more than one ENO option", true)
		return
	}
	chosen, err := c.negotiated(f, s.opts.ENO)
	if err != nil {
		c.noENO(f, s, "ENO negotiation failed: "+err.Error(), true)
		return
	}
	if f.appMandatory && !f.PeerAppAware {
		// RFC 8547 §4.2: "a mandatory application-aware mode in which
		// TCP-ENO is automatically disabled if the remote host does not set
		// a = 1". Our ACK will carry no ENO, so the peer falls back too.
		c.noENO(f, s, "peer is not application-aware (mandatory application-aware port)", true)
		return
	}
	f.tep = tcpcrypt.TEP(chosen.TEP)
	f.answer = append([]byte(nil), s.opts.ENO...)
	f.State = StateACKPending
	f.lanSynAcked = true // role A: the LAN host is the one that acknowledges
	c.emitSYN(s, nil, f.peerMSS-tcpcrypt.FrameOverhead)
}

// negotiated is A's reading of B's answer (RFC 8547 §4.5; RFC 8548 §3.2,
// §3.5): the last TEP in B's SYN-ACK that we offered, whatever its v bit;
// with v = 1 it counts only as the matching other half of our resumption
// identifier, and a non-matching one is ignored. A resumption answer also
// fixes sn[i].
func (c *pkt) negotiated(f *Flow, answerOpt []byte) (eno.Suboption, error) {
	offer, err := eno.ParseSYNOption(f.offer)
	if err != nil {
		return eno.Suboption{}, err
	}
	answer, err := eno.ParseSYNOption(answerOpt)
	if err != nil {
		return eno.Suboption{}, err
	}
	f.PeerAppAware = answer.ApplicationAware()
	var peerNonce []byte
	chosen, err := eno.Negotiated(offer, answer, func(offered, answered eno.Suboption) bool {
		if f.resume == nil || !offered.HasData {
			return false
		}
		n, ok := endpoint.ResumeAnswerMatches(*f.resume, answered)
		peerNonce = n
		return ok
	})
	if err != nil {
		return chosen, err
	}
	if f.resume != nil {
		if chosen.HasData {
			f.sessionNonce = endpoint.SessionNonce(*f.resume, f.resumeNonce, peerNonce)
		} else {
			f.resume = nil // the peer did not hold the secret: full handshake
			c.stats.ResumeMisses.Add(1)
		}
		f.resumeNonce = nil
	}
	if !tcpcrypt.TEP(chosen.TEP).Valid() {
		return chosen, fmt.Errorf("unsupported TEP 0x%02x", chosen.TEP)
	}
	return chosen, nil
}

// newInbound starts a flow for a SYN from the WAN (role B), in place of old
// if the table holds one for its key.
func (c *pkt) newInbound(key flowtable.Key, old *flowtable.Entry[*Flow], s *segment) {
	// The flow's parameters are gathered on the stack and allocated only
	// if it is to be negotiated, and then as a compact record (synRecord):
	// a plain inbound flow, what a SYN flood creates, is only forwarded and
	// needs neither them nor handshake state; a flood of ENO SYNs costs
	// one record each (BenchmarkHalfOpenFlowMemory).
	f := c.newFlow()
	f.Role, f.V6, f.LAN, f.WAN, f.wanISN = RoleB, s.V6, key.LAN, key.WAN, s.Seq
	r := synRecord{peerMSS: uint16(mssOf(s)), wanTSval: s.opts.TSval}
	r.set(synSACK, s.opts.SACKPerm)
	r.set(synTS, s.opts.HasTS)
	if s.opts.HasWScale {
		r.wanWS = min(s.opts.WScale, 14)
	}
	why := ""
	var chosen eno.Suboption
	var resume *endpoint.Entry
	var peerNonce []byte
	switch {
	case c.cfg.Bypass != nil && c.cfg.Bypass(key.LAN, key.WAN):
		why = "bypass rule"
	case s.opts.ENO == nil:
		why = "peer did not offer ENO"
	case s.opts.ENOCount > 1:
		why = "malformed ENO offer: more than one ENO option" // RFC 8547 §4.1
	case s.opts.MPTCP:
		why = "MPTCP"
	case s.has(packet.FlagURG):
		why = "urgent data"
	default:
		// SYN data and a Fast Open option of a SYN+ENO are dropped on the
		// way to the LAN host (emitSYN forwards neither): RFC 8547 §4.7
		// requires discarding SYN data the negotiated TEP does not define,
		// and acknowledging only the peer's ISN.
		// Parsed on the stack, its data aliasing the packet: nothing of it
		// outlives this call, and a flood of ENO SYNs makes no garbage,
		// which would let the heap grow to twice the table's size.
		var tepBuf [8]eno.Suboption
		offer, err := eno.ParseSYNOptionInto(s.opts.ENO, tepBuf[:0])
		if err != nil {
			why = "malformed ENO offer: " + err.Error()
			break
		}
		if offer.Passive() { // RFC 8547 §4.3: a SYN claiming role B is a simultaneous open we do not play
			why = "peer claims the passive role"
			break
		}
		r.set(synPeerAppAware, offer.ApplicationAware())
		appMandatory := false
		if c.cfg.AppAware != nil {
			var appAware bool
			appAware, appMandatory = c.cfg.AppAware(key.LAN, key.WAN)
			r.set(synAppAware, appAware)
		}
		if appMandatory && !r.has(synPeerAppAware) {
			why = "peer is not application-aware (mandatory application-aware port)" // RFC 8547 §4.2
			break
		}
		// RFC 8548 §3.5: resume when A names a secret we cached under the
		// same TEP ("it SHOULD ... agree to resume"); each is taken once.
		var ok bool
		if c.cfg.Cache != nil {
			chosen, ok = eno.Choose(offer, func(sub eno.Suboption) bool {
				if !sub.HasData || !slices.Contains(c.cfg.TEPs, tcpcrypt.TEP(sub.TEP)) {
					return false
				}
				ent, n, hit := endpoint.AcceptResume(c.cfg.Cache, peerKey(key.WAN), sub)
				if hit && slices.Contains(c.cfg.Ciphers, ent.AEAD) {
					resume, peerNonce = &ent, n
					return true
				}
				return false
			})
		}
		if !ok {
			// A fresh key exchange with the TEP we prefer among A's ("host A
			// does not influence TEP priority", RFC 8547 §4.5), whatever its
			// v bit: a resumption suboption we do not hold, or one with
			// fewer than 9 data bytes, offers a fresh key exchange too (RFC
			// 8548 §3.2, §3.5).
			for _, t := range c.cfg.TEPs {
				if _, ok = eno.Choose(offer, func(sub eno.Suboption) bool { return sub.TEP == byte(t) }); ok {
					chosen = eno.Suboption{TEP: byte(t)}
					break
				}
			}
		}
		if !ok {
			why = "no common TEP"
		}
	}
	if c.insert(key, f, old) == nil {
		return // table full: dropped, see newOutbound
	}
	if why != "" {
		if why != "bypass rule" && mustEncrypt(c.cfg, f) {
			c.refuseWANSYN(f, s, "encryption required: "+why)
			return
		}
		c.plain(f, why)
		if synENOWithData(s) {
			c.emitSYN(s, nil, 0) // without its data, TFO and ENO
			return
		}
		c.forward(s.Buf)
		return
	}
	r.tep = tcpcrypt.TEP(chosen.TEP)
	copy(r.offer[:], s.opts.ENO) // at most the 40 bytes of a TCP options area
	f.syn = c.newSYNRecord(&r)
	if resume != nil {
		// The cached secret is taken out now (it is handed out once): a
		// resumption keeps the handshake state from the SYN on.
		f.handshake = c.newHandshake()
		f.resume = resume
		f.resumeNonce = endpoint.NewResumeNonce(c.cfg.ResumeNonceLen)
		f.sessionNonce = endpoint.SessionNonce(*resume, f.resumeNonce, peerNonce)
		f.chosen = endpoint.AnswerResume(*resume, f.resumeNonce) // our half of resume[i]
	}
	f.State = StateSYNReceived
	c.emitSYN(s, nil, int(r.peerMSS)-tcpcrypt.FrameOverhead)
}

// refuseWANSYN answers an inbound SYN of a required flow that offers no
// usable ENO like a closed port; the LAN server never sees it.
func (c *pkt) refuseWANSYN(f *Flow, s *segment, why string) {
	c.stats.RequiredResets.Add(1)
	c.rst(f, false, 0, s.Seq+s.SeqLen(), true)
	c.refused(f, why)
}

// synAnswer appends our SYN-ACK's ENO option to dst (RFC 8547 §4.6: the
// global suboption with b = 1, and a = 1 when application-aware, §4.2;
// then the chosen TEP, or our half of the resumption identifier, RFC 8548
// §3.5). It depends only on what the flow holds since A's SYN, so every
// SYN-ACK carries the same answer and expandSYN rebuilds it for the
// transcript.
func (f *Flow) synAnswer(dst []byte) ([]byte, error) {
	sub := eno.Suboption{TEP: byte(f.syn.tep)}
	if f.handshake != nil && f.resume != nil {
		sub = f.chosen
	}
	ans := eno.Answer(sub)
	if f.syn.has(synAppAware) {
		ans.Global |= eno.GlobalA
	}
	return eno.AppendSYNOption(dst, ans)
}

// synENOWithData reports a WAN SYN+ENO with data or a Fast Open option:
// RFC 8547 §4.7 has its data discarded when the TEP does not define SYN
// data (tcpcrypt does not) and when ENO fails, "even when ENO has been
// disabled by configuration", so it never reaches the LAN host as it is.
func synENOWithData(s *segment) bool {
	return s.opts.ENO != nil && (len(s.Payload()) > 0 || s.opts.FastOpen)
}

// lanSYNACK adds our answer to the LAN server's SYN-ACK (RFC 8547 §4.6:
// global suboption with b=1, then the chosen TEP).
func (c *pkt) lanSYNACK(f *Flow, s *segment) {
	if s.Ack != f.wanISN+1 {
		c.forward(s.Buf)
		return
	}
	f.lanISN = s.Seq
	r := f.syn
	r.lanMSS = uint16(mssOf(s))
	r.set(synSACK, r.has(synSACK) && s.opts.SACKPerm)
	r.set(synTS, r.has(synTS) && s.opts.HasTS)
	r.lanTSval, r.lanTSecr = s.opts.TSval, s.opts.TSecr
	if s.opts.HasWScale {
		r.lanWS = s.opts.WScale
	} else {
		r.wanWS = 0 // window scaling is off: the LAN server did not answer it
	}
	r.lanWin = s.Window >> r.lanWS
	if s.opts.ENO != nil || s.opts.LegacyENO {
		// The LAN server speaks ENO itself (option 69 or the pre-RFC 253):
		// one ENO option per SYN segment (RFC 8547 §4.1, §11).
		c.plain(f, "LAN host speaks ENO itself")
		c.forward(s.Buf)
		return
	}
	var buf [eno.MaxOptionLen]byte
	answer, err := f.synAnswer(buf[:0])
	if err != nil {
		c.lanSYNACKPlain(f, s, "ENO answer: "+err.Error())
		return
	}
	if !c.emitSYN(s, answer, 0) {
		c.lanSYNACKPlain(f, s, "no TCP option space for ENO")
		return
	}
	f.State = StateSYNACKSent
}

// lanSYNACKPlain passes the LAN server's SYN-ACK without our ENO answer, or
// refuses a flow that must be encrypted (refuseLANSYNACK, below).
func (c *pkt) lanSYNACKPlain(f *Flow, s *segment, why string) {
	if mustEncrypt(c.cfg, f) {
		c.refuseLANSYNACK(f, s, "encryption required: "+why)
		return
	}
	c.plain(f, why)
	c.forward(s.Buf)
}

// refuseLANSYNACK resets an inbound required flow whose LAN server's
// SYN-ACK cannot carry our ENO answer: the server (SYN-RECEIVED) gets a RST
// at the sequence it expects, the peer (SYN-SENT) one acknowledging its SYN.
func (c *pkt) refuseLANSYNACK(f *Flow, s *segment, why string) {
	c.stats.RequiredResets.Add(1)
	c.rst(f, true, s.Ack, 0, false)
	c.rst(f, false, 0, s.Ack, true)
	c.refused(f, why)
}

// emitSYN rewrites a SYN or SYN-ACK of a flow the gateway negotiates ENO
// for: every option but ENO and Fast Open is kept (NOPs are packed away),
// enoOpt (if any) is added, and the MSS is clamped to clamp (if > 0). SYN
// data is not forwarded. It reports false, sending nothing, when enoOpt
// does not fit. Fast Open goes because a SYN+ENO must not carry a non-empty
// TFO option (RFC 8547 §4.7): a LAN host that never gets a cookie never
// sends SYN data, so its later connections stay encryptable.
func (c *pkt) emitSYN(s *segment, enoOpt []byte, clamp int) bool {
	w := &c.optWriter
	w.Reset()
	mss := uint16(0)
	if clamp > 0 {
		mss = uint16(min(clamp, int(^uint16(0))))
		if !s.opts.HasMSS {
			w.Raw([]byte{packet.OptMSS, 4, byte(mss >> 8), byte(mss)})
		} else if int(s.opts.MSS) < clamp {
			mss = s.opts.MSS
		}
	}
	w.CopyExcept(s.Options(), mss, packet.OptENO, packet.OptFastOpen)
	if enoOpt != nil && !w.Raw(enoOpt) {
		return false
	}
	h := packet.HeaderFrom(s.Packet)
	h.Options = w.Bytes()
	c.emit(&h)
	return true
}

// The parts of a new flow (newOutbound, newInbound, expandSYN), taken from
// an evicted flow's when there is one (table.go: recycle).

// newFlow returns a zero Flow, the spare one if there is one.
func (e *Engine) newFlow() *Flow {
	f := e.spare.flow
	if f == nil {
		return new(Flow)
	}
	e.spare.flow = nil
	*f = Flow{}
	return f
}

// newHandshake returns a zero handshake, the spare one if there is one.
func (e *Engine) newHandshake() *handshake {
	h := e.spare.handshake
	if h == nil {
		return new(handshake)
	}
	e.spare.handshake = nil
	*h = handshake{}
	return h
}

// newConnParams returns cp in a connParams of its own, the spare one if
// there is one.
func (e *Engine) newConnParams(cp connParams) *connParams {
	p := e.spare.connParams
	if p == nil {
		p = new(connParams)
	} else {
		e.spare.connParams = nil
	}
	*p = cp
	return p
}

// newSYNRecord returns r in a synRecord of its own, the spare one if
// there is one.
func (e *Engine) newSYNRecord(r *synRecord) *synRecord {
	p := e.spare.synRecord
	if p == nil {
		p = new(synRecord)
	} else {
		e.spare.synRecord = nil
	}
	*p = *r
	return p
}

func (r *synRecord) has(flag uint8) bool { return r.flags&flag != 0 }

func (r *synRecord) set(flag uint8, on bool) {
	if on {
		r.flags |= flag
	} else {
		r.flags &^= flag
	}
}
