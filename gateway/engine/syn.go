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
//  2. LAN SYN-ACK: add our answer (global b=1 and the chosen TEP).
//  3. The first non-SYN segment from A carries ENO (RFC 8547 §4.6):
//     encryption is on, its payload starts Init1. Without ENO: plain.

package engine

import (
	"fmt"
	"net/netip"

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
	if entry != nil {
		c.remove(entry)
	}
	c.newOutbound(key, s)
	return false
}

// wanSYN handles a SYN from the WAN: a retransmission keeps the flow (it
// reports true) and goes on as the first did; any other SYN starts a new
// flow.
func (c *pkt) wanSYN(key flowtable.Key, entry *flowtable.Entry[*Flow], f *Flow, s *segment) bool {
	if f != nil && f.Role == RoleB && s.Seq == f.wanISN {
		switch {
		case f.State == StateSYNReceived || f.State == StateSYNACKSent:
			c.emitSYN(s, nil, f.peerMSS-tcpcrypt.FrameOverhead)
		case synENOWithData(s):
			c.emitSYN(s, nil, 0) // as the first SYN (newInbound)
		default:
			c.forwardPlain(f, s)
		}
		return true
	}
	if entry != nil {
		c.remove(entry)
	}
	c.newInbound(key, s)
	return false
}

// newOutbound starts a flow for a SYN from the LAN (role A).
func (c *pkt) newOutbound(key flowtable.Key, s *segment) {
	cp := connParams{lanMSS: mssOf(s), sackOK: s.opts.SACKPerm, tsOK: s.opts.HasTS, lanTSval: s.opts.TSval}
	if s.opts.HasWScale {
		cp.lanWS = s.opts.WScale
	}
	f := c.newFlow()
	f.Role, f.V6, f.LAN, f.WAN, f.lanISN = RoleA, s.V6, key.LAN, key.WAN, s.Seq
	f.handshake, f.connParams = c.newHandshake(), c.newConnParams(cp)
	entry := c.insert(key, f)
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
	if why == "" && c.cfg.AppAware != nil {
		f.appAware, f.appMandatory = c.cfg.AppAware(key.LAN, key.WAN)
	}
	if why == "" {
		// RFC 8548 §3.5: offer the cached secret, the lowest unused i of
		// its chain (the cache hands each ss[i] out once).
		if c.cfg.Cache != nil {
			// Not a classical session for a flow that must be
			// post-quantum (refuse.go): it would be reset.
			if ent, ok := c.cfg.Cache.TakeForPeer(peerKey(key.WAN)); ok && containsTEP(c.cfg.TEPs, ent.TEP) && containsAEAD(c.cfg.Ciphers, ent.AEAD) &&
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
// goes plain).
func (c *pkt) lanSYNAgain(f *Flow, s *segment) {
	f.synRetries++
	if f.State == StateSYNSent && c.cfg.SYNFallbackRetries > 0 && f.synRetries >= c.cfg.SYNFallbackRetries && !mustEncrypt(c.cfg, f) {
		why := fmt.Sprintf("SYN fallback: sent without ENO after %d retransmissions", f.synRetries)
		if when, ok := c.rememberedPeer(f); ok {
			// SYNs with ENO dropped on the way to a peer that speaks it:
			// an attacker may be forcing the fallback (refuse.go). Under
			// the block policy the SYN keeps its ENO.
			block := c.cfg.BlockDowngrade != nil && c.cfg.BlockDowngrade(f.WAN.Addr())
			if !f.Downgrade {
				why = c.downgrade(f, why, when, block)
			}
			if !block {
				c.stats.SYNFallbacks.Add(1)
				c.plain(f, why)
			}
		} else {
			c.stats.SYNFallbacks.Add(1)
			c.plain(f, why)
		}
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

// newInbound starts a flow for a SYN from the WAN (role B).
func (c *pkt) newInbound(key flowtable.Key, s *segment) {
	// The flow's parameters are gathered on the stack and allocated only
	// if it is to be negotiated: a plain inbound flow, what a SYN flood
	// creates, is only forwarded and needs neither them nor handshake
	// state (BenchmarkHalfOpenFlowMemory).
	f := c.newFlow()
	f.Role, f.V6, f.LAN, f.WAN, f.wanISN = RoleB, s.V6, key.LAN, key.WAN, s.Seq
	cp := connParams{peerMSS: mssOf(s), sackOK: s.opts.SACKPerm, tsOK: s.opts.HasTS, wanTSval: s.opts.TSval}
	if s.opts.HasWScale {
		cp.wanWS = min(s.opts.WScale, 14)
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
		cp.PeerAppAware = offer.ApplicationAware()
		if c.cfg.AppAware != nil {
			cp.appAware, cp.appMandatory = c.cfg.AppAware(key.LAN, key.WAN)
		}
		if cp.appMandatory && !cp.PeerAppAware {
			why = "peer is not application-aware (mandatory application-aware port)" // RFC 8547 §4.2
			break
		}
		// RFC 8548 §3.5: resume when A names a secret we cached under the
		// same TEP ("it SHOULD ... agree to resume"); each is taken once.
		var ok bool
		if c.cfg.Cache != nil {
			chosen, ok = eno.Choose(offer, func(sub eno.Suboption) bool {
				if !sub.HasData || !containsTEP(c.cfg.TEPs, tcpcrypt.TEP(sub.TEP)) {
					return false
				}
				ent, n, hit := endpoint.AcceptResume(c.cfg.Cache, peerKey(key.WAN), sub)
				if hit && containsAEAD(c.cfg.Ciphers, ent.AEAD) {
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
	if c.insert(key, f) == nil {
		return // table full: dropped, see newOutbound
	}
	if why != "" && why != "bypass rule" && mustEncrypt(c.cfg, f) {
		c.refuseWANSYN(f, s, "encryption required: "+why)
		return
	}
	if why != "" {
		c.plain(f, why)
		if synENOWithData(s) {
			c.emitSYN(s, nil, 0) // without its data, TFO and ENO
			return
		}
		c.forward(s.Buf)
		return
	}
	f.handshake, f.connParams = c.newHandshake(), c.newConnParams(cp)
	f.offer = append([]byte(nil), s.opts.ENO...)
	f.tep = tcpcrypt.TEP(chosen.TEP)
	f.chosen = chosen
	if resume != nil {
		f.resume = resume
		f.resumeNonce = endpoint.NewResumeNonce(c.cfg.ResumeNonceLen)
		f.sessionNonce = endpoint.SessionNonce(*resume, f.resumeNonce, peerNonce)
		f.chosen = endpoint.AnswerResume(*resume, f.resumeNonce) // our half of resume[i]
	}
	f.State = StateSYNReceived
	c.emitSYN(s, nil, f.peerMSS-tcpcrypt.FrameOverhead)
}

// synENOWithData reports a WAN SYN+ENO with data or a Fast Open option:
// RFC 8547 §4.7 has its data discarded when the TEP does not define SYN
// data (tcpcrypt does not) and when ENO fails, "even when ENO has been
// disabled by configuration", so it never reaches the LAN host as it is.
func synENOWithData(s *segment) bool {
	return s.opts.ENO != nil && (len(s.Payload()) > 0 || s.opts.FastOpen)
}

func containsTEP(ts []tcpcrypt.TEP, t tcpcrypt.TEP) bool {
	for _, x := range ts {
		if x == t {
			return true
		}
	}
	return false
}

// lanSYNACK adds our answer to the LAN server's SYN-ACK (RFC 8547 §4.6:
// global suboption with b=1, then the chosen TEP).
func (c *pkt) lanSYNACK(f *Flow, s *segment) {
	if s.Ack != f.wanISN+1 {
		c.forward(s.Buf)
		return
	}
	f.lanISN = s.Seq
	f.lanMSS = mssOf(s)
	f.sackOK = f.sackOK && s.opts.SACKPerm
	f.tsOK = f.tsOK && s.opts.HasTS
	f.lanTSval, f.lanTSecr = s.opts.TSval, s.opts.TSecr
	if s.opts.HasWScale {
		f.lanWS = s.opts.WScale
	} else {
		f.wanWS = 0 // window scaling is off: the LAN server did not answer it
	}
	f.lanWin = s.Window >> f.lanWS
	if s.opts.ENO != nil || s.opts.LegacyENO {
		// The LAN server speaks ENO itself (option 69 or the pre-RFC 253):
		// one ENO option per SYN segment (RFC 8547 §4.1, §11).
		c.plain(f, "LAN host speaks ENO itself")
		c.forward(s.Buf)
		return
	}
	if f.answer == nil {
		ans := eno.Answer(f.chosen)
		if f.appAware {
			ans.Global |= eno.GlobalA // RFC 8547 §4.2
		}
		opt, err := eno.AppendSYNOption(nil, ans)
		if err != nil {
			c.lanSYNACKPlain(f, s, "ENO answer: "+err.Error())
			return
		}
		f.answer = opt
	}
	if !c.emitSYN(s, f.answer, 0) {
		c.lanSYNACKPlain(f, s, "no TCP option space for ENO")
		return
	}
	f.State = StateSYNACKSent
}

// lanSYNACKPlain passes the LAN server's SYN-ACK without our ENO answer, or
// refuses a flow that must be encrypted (refuse.go).
func (c *pkt) lanSYNACKPlain(f *Flow, s *segment, why string) {
	if mustEncrypt(c.cfg, f) {
		c.refuseLANSYNACK(f, s, "encryption required: "+why)
		return
	}
	c.plain(f, why)
	c.forward(s.Buf)
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

func (c *pkt) plain(f *Flow, why string) {
	f.State = StatePassthrough
	f.Reason = why
	c.stats.FlowsPlain.Add(1)
}

func containsAEAD(as []tcpcrypt.AEADID, a tcpcrypt.AEADID) bool {
	for _, x := range as {
		if x == a {
			return true
		}
	}
	return false
}
