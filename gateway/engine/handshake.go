// The handshake of a flow: TCP-ENO negotiation on the SYN exchange (RFC 8547
// §4) and the tcpcrypt key exchange that follows it (RFC 8548 §3.3, §4.1).
//
// Outbound (the gateway is role A):
//  1. LAN SYN: add our ENO offer (TEPs in preference order), remember it as
//     the first half of the transcript. No room, SYN data, Fast Open, MPTCP,
//     a bypass rule, or a LAN host that sends ENO itself: plain for good.
//  2. WAN SYN-ACK: take B's answer (the last TEP in it that we offered),
//     strip ENO, clamp the MSS to the LAN host by the framing overhead. No
//     valid answer: plain.
//  3. The LAN host's ACK: send Init1 (with the non-SYN ENO option) as the
//     first bytes of our C stream; hold LAN data until the keys exist.
//  4. Init2 from the WAN: derive the keys, send the held data as frames.
//
// Inbound (the gateway is role B):
//  1. WAN SYN with an ENO offer we accept: remember it, strip it, clamp MSS.
//  2. LAN SYN-ACK: add our answer (global b=1 and the chosen TEP).
//  3. The first non-SYN segment from A carries ENO: encryption is on; its
//     payload starts Init1. Without ENO: plain.
//  4. All of Init1: choose the cipher, send Init2, derive the keys.
//
// The gateway's own Init bytes exist only between the two encrypting ends,
// so it retransmits them itself (Tick) and acknowledges the peer's.

package engine

import (
	"fmt"
	"net/netip"
	"time"

	"tcpcrypt-gw/crypto/endpoint"
	"tcpcrypt-gw/crypto/tcpcrypt"
	"tcpcrypt-gw/eno"
	"tcpcrypt-gw/flowtable"
	"tcpcrypt-gw/gateway/packet"
)

const initialInitRTO = 300 * time.Millisecond

// fromLAN handles a packet from a LAN host.
func (e *Engine) fromLAN(cfg *Config, key flowtable.Key, entry *flowtable.Entry[*Flow], f *Flow, s *segment, out *Output) {
	if s.has(packet.FlagSYN) && !s.has(packet.FlagACK) {
		if f != nil && f.Role == RoleA && s.Seq == f.lanISN && (f.State == StateSYNSent || f.State == StatePassthrough) {
			e.lanSYNAgain(cfg, f, s, out)
			e.touch(cfg, entry)
			return
		}
		if entry != nil {
			e.remove(entry)
		}
		e.newOutbound(cfg, key, s, out)
		return
	}
	if f == nil {
		e.resetUnknown(s, out)
		return
	}
	f.Stats.PacketsOut++
	switch f.State {
	case StateReset:
		return // the gateway reset this flow: nothing more from it
	case StateSYNReceived, StateSYNACKSent:
		if s.has(packet.FlagSYN) {
			e.lanSYNACK(cfg, f, s, out)
		} else {
			e.forwardPlain(f, s, out)
		}
	case StateACKPending:
		if s.has(packet.FlagRST) || s.has(packet.FlagSYN) {
			e.forwardPlain(f, s, out)
			break
		}
		if f.resume != nil {
			// Resumed (RFC 8548 §3.5): no Init messages; the keys exist now.
			f.initDirections()
			f.enoPending = true
			if err := e.resumeKeys(cfg, f); err != nil {
				f.Reason = "resumption: " + err.Error()
				e.abort(f, out)
				break
			}
			e.lanSegment(cfg, f, s, out)
			break
		}
		if !e.startInit(cfg, f, s, out) {
			e.forwardPlain(f, s, out)
			break
		}
		if len(s.Payload()) > 0 || s.has(packet.FlagFIN) {
			e.lanSegment(cfg, f, s, out)
		}
	case StateKeyExchange, StateEncrypted:
		e.lanSegment(cfg, f, s, out)
	default:
		e.forwardPlain(f, s, out)
	}
	e.settle(f)
	e.touch(cfg, entry)
}

// fromWAN handles a packet from a WAN host.
func (e *Engine) fromWAN(cfg *Config, key flowtable.Key, entry *flowtable.Entry[*Flow], f *Flow, s *segment, out *Output) {
	if s.has(packet.FlagSYN) && !s.has(packet.FlagACK) {
		if f != nil && f.Role == RoleB && s.Seq == f.wanISN {
			switch {
			case f.State == StateSYNReceived || f.State == StateSYNACKSent:
				e.emitSYN(s, nil, f.peerMSS-tcpcrypt.FrameOverhead, out)
			case synENOWithData(s):
				e.emitSYN(s, nil, 0, out) // as the first SYN (newInbound)
			default:
				e.forwardPlain(f, s, out)
			}
			e.touch(cfg, entry)
			return
		}
		if entry != nil {
			e.remove(entry)
		}
		e.newInbound(cfg, key, s, out)
		return
	}
	if f == nil {
		e.resetUnknown(s, out)
		return
	}
	f.Stats.PacketsIn++
	switch f.State {
	case StateReset:
		return
	case StateSYNSent:
		if s.has(packet.FlagSYN) {
			e.wanSYNACK(cfg, f, s, out)
		} else {
			e.forwardPlain(f, s, out)
		}
	case StateACKPending:
		if s.has(packet.FlagSYN) { // retransmitted SYN-ACK
			e.emitSYN(s, nil, f.peerMSS-tcpcrypt.FrameOverhead, out)
		} else {
			e.forwardPlain(f, s, out)
		}
	case StateSYNACKSent:
		if s.has(packet.FlagSYN) || s.has(packet.FlagRST) {
			e.forwardPlain(f, s, out)
			break
		}
		if s.opts.ENO == nil && mustEncrypt(cfg, f) {
			e.refuseUnconfirmed(f, s, "encryption required: peer did not confirm ENO", out)
			break
		}
		if s.opts.ENO == nil {
			// RFC 8547 §4.6: B's first non-SYN segment from A lacks ENO:
			// negotiation failed, plain TCP.
			e.plain(f, "peer did not confirm ENO")
			e.forwardPlain(f, s, out)
			break
		}
		e.startKeyExchange(f)
		if f.resume != nil {
			if err := e.resumeKeys(cfg, f); err != nil {
				f.Reason = "resumption: " + err.Error()
				e.abort(f, out)
				break
			}
		}
		e.wanSegment(cfg, f, s, out)
	case StateKeyExchange, StateEncrypted:
		if s.has(packet.FlagSYN) {
			if f.Role == RoleA { // our ACK or Init1 was lost: the LAN host answers again
				e.emitSYN(s, nil, f.peerMSS-tcpcrypt.FrameOverhead, out)
			}
			break
		}
		e.wanSegment(cfg, f, s, out)
	default:
		e.forwardPlain(f, s, out)
	}
	e.settle(f)
	e.touch(cfg, entry)
}

// resetUnknown answers a mid-connection segment of a flow the gateway has
// no state for (it started, restarted or expired the flow since) with a
// RST, the way a closed port does (RFC 9293 §3.10.7.1). Passing it would be
// unsafe: the connection may have been encrypted, and then its plaintext
// would reach the WAN or its ciphertext a LAN host.
func (e *Engine) resetUnknown(s *segment, out *Output) {
	e.stats.UnknownResets.Add(1)
	if s.has(packet.FlagRST) {
		return
	}
	h := packet.Header{V6: s.V6, Src: s.Dst, Dst: s.Src, SrcPort: s.DstPort, DstPort: s.SrcPort, TTL: 64}
	if s.has(packet.FlagACK) {
		h.Seq, h.Flags = s.Ack, packet.FlagRST
	} else {
		h.Ack, h.Flags = s.Seq+s.SeqLen(), packet.FlagRST|packet.FlagACK
	}
	e.emit(&h, out)
}

// forwardPlain forwards a packet of a flow unchanged and notes an RST.
func (e *Engine) forwardPlain(f *Flow, s *segment, out *Output) {
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
	e.forward(s.Buf, out)
}

func (e *Engine) plain(f *Flow, why string) {
	f.State = StatePassthrough
	f.Reason = why
	e.stats.FlowsPlain.Add(1)
}

func (e *Engine) remove(entry *flowtable.Entry[*Flow]) {
	entry.Value.release(e.table)
	e.table.Delete(e.shard, entry)
}

func (e *Engine) insert(cfg *Config, key flowtable.Key, f *Flow) *flowtable.Entry[*Flow] {
	entry, err := e.table.Insert(e.shard, key, f, e.now)
	if err != nil {
		// Under a flood, make room by dropping the oldest half-open flow.
		if v := e.table.Evict(e.shard, func(en *flowtable.Entry[*Flow]) bool { return en.Value.embryonic() }); v != nil {
			v.Value.release(e.table)
			entry, err = e.table.Insert(e.shard, key, f, e.now)
		}
	}
	if err != nil {
		e.stats.TableFull.Add(1)
		return nil
	}
	f.Stats.Started = e.now
	// A new flow has seen only its SYN: it is half-open, whatever state the
	// caller then gives it, until its next packet touches it by state. (The
	// state is not set yet here, so touch would give it idle_timeout and a
	// SYN flood would stay in the table for hours.)
	entry.Touch(e.now, e.now.Add(cfg.HandshakeTimeout))
	return entry
}

// embryonic: a flow that has not completed its three-way handshake.
func (f *Flow) embryonic() bool {
	switch f.State {
	case StateSYNSent, StateSYNReceived, StateSYNACKSent, StateACKPending:
		return true
	}
	return false
}

func mssOf(s *segment) int {
	if s.opts.HasMSS {
		return int(s.opts.MSS)
	}
	if s.V6 { // RFC 9293 §3.7.1 defaults
		return 1220
	}
	return 536
}

// newOutbound starts a flow for a SYN from the LAN (role A).
func (e *Engine) newOutbound(cfg *Config, key flowtable.Key, s *segment, out *Output) {
	f := &Flow{handshake: new(handshake), Role: RoleA, V6: s.V6, LAN: key.LAN, WAN: key.WAN, lanISN: s.Seq,
		lanMSS: mssOf(s), sackOK: s.opts.SACKPerm, tsOK: s.opts.HasTS, lanTSval: s.opts.TSval}
	if s.opts.HasWScale {
		f.lanWS = s.opts.WScale
	}
	entry := e.insert(cfg, key, f)
	if entry == nil {
		// Table full (a flood): drop the SYN, the host tries again. A
		// connection without a flow would be reset at its next segment.
		return
	}
	why := ""
	mayPass := false // plain by the LAN host's or the policy's choice: passes even when encryption is required
	switch {
	case cfg.Bypass != nil && cfg.Bypass(key.LAN, key.WAN):
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
	if why == "" && cfg.AppAware != nil {
		f.appAware, f.appMandatory = cfg.AppAware(key.LAN, key.WAN)
	}
	if why == "" {
		// RFC 8548 §3.5: offer the cached secret, the lowest unused i of
		// its chain (the cache hands each ss[i] out once).
		if cfg.Cache != nil {
			if ent, ok := cfg.Cache.TakeForPeer(peerKey(key.WAN)); ok && containsTEP(cfg.TEPs, ent.TEP) && containsAEAD(cfg.Ciphers, ent.AEAD) {
				f.resume = &ent
				f.resumeNonce = endpoint.NewResumeNonce(cfg.ResumeNonceLen)
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
			opt, err := eno.AppendSYNOption(nil, e.offer(cfg, f, try.teps))
			if err != nil {
				why = "ENO offer: " + err.Error()
				break
			}
			if e.emitSYN(s, opt, 0, out) {
				f.offer = opt
				f.State = StateSYNSent
				if f.resume != nil {
					e.stats.ResumeOffered.Add(1)
				}
				return
			}
			why = "no TCP option space for ENO"
		}
	}
	if !mayPass && mustEncrypt(cfg, f) {
		e.refuseLANSYN(f, s, "encryption required: "+why, out)
		return
	}
	e.plain(f, why)
	e.forward(s.Buf, out)
}

// offer lists the suboptions of our SYN's ENO option: the configured TEPs in
// preference order and, when resuming, the resumption suboption last, where
// its data needs no length byte (RFC 8547 §4.4). The resumed TEP is not
// listed again without data: a resumption suboption already offers a fresh
// key exchange with its TEP (RFC 8548 §3.2), and RFC 8548 defines no
// meaning for the same TEP twice. withTEPs false leaves only the
// resumption suboption.
func (e *Engine) offer(cfg *Config, f *Flow, withTEPs bool) eno.SYNOption {
	subs := make([]eno.Suboption, 0, len(cfg.TEPs)+1)
	for _, t := range cfg.TEPs {
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
func (e *Engine) lanSYNAgain(cfg *Config, f *Flow, s *segment, out *Output) {
	f.synRetries++
	if f.State == StateSYNSent && cfg.SYNFallbackRetries > 0 && f.synRetries >= cfg.SYNFallbackRetries && !mustEncrypt(cfg, f) {
		why := fmt.Sprintf("SYN fallback: sent without ENO after %d retransmissions", f.synRetries)
		if when, ok := e.rememberedPeer(cfg, f); ok {
			// SYNs with ENO dropped on the way to a peer that speaks it:
			// an attacker may be forcing the fallback (refuse.go). Under
			// the block policy the SYN keeps its ENO.
			block := cfg.BlockDowngrade != nil && cfg.BlockDowngrade(f.WAN.Addr())
			if !f.Downgrade {
				why = e.downgrade(cfg, f, why, when, block)
			}
			if !block {
				e.stats.SYNFallbacks.Add(1)
				e.plain(f, why)
			}
		} else {
			e.stats.SYNFallbacks.Add(1)
			e.plain(f, why)
		}
	}
	if f.State == StateSYNSent && e.emitSYN(s, f.offer, 0, out) {
		return
	}
	e.forward(s.Buf, out)
}

// wanSYNACK takes B's answer to our offer (RFC 8547 §4.5, §4.6).
func (e *Engine) wanSYNACK(cfg *Config, f *Flow, s *segment, out *Output) {
	if s.Ack != f.lanISN+1 {
		e.forward(s.Buf, out)
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
		e.noENO(cfg, f, s, "peer did not answer ENO", false, out)
		return
	}
	if s.opts.ENOCount > 1 {
		// RFC 8547 §4.1: more than one ENO option in a SYN segment is
		// invalid, which means no ENO.
		e.noENO(cfg, f, s, "ENO negotiation failed: more than one ENO option", true, out)
		return
	}
	chosen, err := e.negotiated(f, s.opts.ENO)
	if err != nil {
		e.noENO(cfg, f, s, "ENO negotiation failed: "+err.Error(), true, out)
		return
	}
	if f.appMandatory && !f.PeerAppAware {
		// RFC 8547 §4.2: "a mandatory application-aware mode in which
		// TCP-ENO is automatically disabled if the remote host does not set
		// a = 1". Our ACK will carry no ENO, so the peer falls back too.
		e.noENO(cfg, f, s, "peer is not application-aware (mandatory application-aware port)", true, out)
		return
	}
	f.tep = tcpcrypt.TEP(chosen.TEP)
	f.answer = append([]byte(nil), s.opts.ENO...)
	f.State = StateACKPending
	f.lanSynAcked = true // role A: the LAN host is the one that acknowledges
	e.emitSYN(s, nil, f.peerMSS-tcpcrypt.FrameOverhead, out)
}

// negotiated is A's reading of B's answer (RFC 8547 §4.5; RFC 8548 §3.2,
// §3.5): the last TEP in B's SYN-ACK that we offered, whatever its v bit;
// with v = 1 it counts only as the matching other half of our resumption
// identifier, and a non-matching one is ignored. A resumption answer also
// fixes sn[i].
func (e *Engine) negotiated(f *Flow, answerOpt []byte) (eno.Suboption, error) {
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
			e.stats.ResumeMisses.Add(1)
		}
		f.resumeNonce = nil
	}
	if !tcpcrypt.TEP(chosen.TEP).Valid() {
		return chosen, fmt.Errorf("unsupported TEP 0x%02x", chosen.TEP)
	}
	return chosen, nil
}

// newInbound starts a flow for a SYN from the WAN (role B).
func (e *Engine) newInbound(cfg *Config, key flowtable.Key, s *segment, out *Output) {
	f := &Flow{handshake: new(handshake), Role: RoleB, V6: s.V6, LAN: key.LAN, WAN: key.WAN, wanISN: s.Seq,
		peerMSS: mssOf(s), sackOK: s.opts.SACKPerm, tsOK: s.opts.HasTS,
		wanTSval: s.opts.TSval}
	if s.opts.HasWScale {
		f.wanWS = min(s.opts.WScale, 14)
	}
	why := ""
	var chosen eno.Suboption
	var resume *endpoint.Entry
	var peerNonce []byte
	switch {
	case cfg.Bypass != nil && cfg.Bypass(key.LAN, key.WAN):
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
		offer, err := eno.ParseSYNOption(s.opts.ENO)
		if err != nil {
			why = "malformed ENO offer: " + err.Error()
			break
		}
		if offer.Passive() { // RFC 8547 §4.3: a SYN claiming role B is a simultaneous open we do not play
			why = "peer claims the passive role"
			break
		}
		f.PeerAppAware = offer.ApplicationAware()
		if cfg.AppAware != nil {
			f.appAware, f.appMandatory = cfg.AppAware(key.LAN, key.WAN)
		}
		if f.appMandatory && !f.PeerAppAware {
			why = "peer is not application-aware (mandatory application-aware port)" // RFC 8547 §4.2
			break
		}
		// RFC 8548 §3.5: resume when A names a secret we cached under the
		// same TEP ("it SHOULD ... agree to resume"); each is taken once.
		var ok bool
		if cfg.Cache != nil {
			chosen, ok = eno.Choose(offer, func(sub eno.Suboption) bool {
				if !sub.HasData || !containsTEP(cfg.TEPs, tcpcrypt.TEP(sub.TEP)) {
					return false
				}
				ent, n, hit := endpoint.AcceptResume(cfg.Cache, peerKey(key.WAN), sub)
				if hit && containsAEAD(cfg.Ciphers, ent.AEAD) {
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
			for _, t := range cfg.TEPs {
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
	if e.insert(cfg, key, f) == nil {
		return // table full: dropped, see newOutbound
	}
	if why != "" && why != "bypass rule" && mustEncrypt(cfg, f) {
		e.refuseWANSYN(f, s, "encryption required: "+why, out)
		return
	}
	if why != "" {
		e.plain(f, why)
		if synENOWithData(s) {
			e.emitSYN(s, nil, 0, out) // without its data, TFO and ENO
			return
		}
		e.forward(s.Buf, out)
		return
	}
	f.offer = append([]byte(nil), s.opts.ENO...)
	f.tep = tcpcrypt.TEP(chosen.TEP)
	f.chosen = chosen
	if resume != nil {
		f.resume = resume
		f.resumeNonce = endpoint.NewResumeNonce(cfg.ResumeNonceLen)
		f.sessionNonce = endpoint.SessionNonce(*resume, f.resumeNonce, peerNonce)
		f.chosen = endpoint.AnswerResume(*resume, f.resumeNonce) // our half of resume[i]
	}
	f.State = StateSYNReceived
	e.emitSYN(s, nil, f.peerMSS-tcpcrypt.FrameOverhead, out)
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
func (e *Engine) lanSYNACK(cfg *Config, f *Flow, s *segment, out *Output) {
	if s.Ack != f.wanISN+1 {
		e.forward(s.Buf, out)
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
		e.plain(f, "LAN host speaks ENO itself")
		e.forward(s.Buf, out)
		return
	}
	if f.answer == nil {
		ans := eno.Answer(f.chosen)
		if f.appAware {
			ans.Global |= eno.GlobalA // RFC 8547 §4.2
		}
		opt, err := eno.AppendSYNOption(nil, ans)
		if err != nil {
			e.lanSYNACKPlain(cfg, f, s, "ENO answer: "+err.Error(), out)
			return
		}
		f.answer = opt
	}
	if !e.emitSYN(s, f.answer, 0, out) {
		e.lanSYNACKPlain(cfg, f, s, "no TCP option space for ENO", out)
		return
	}
	f.State = StateSYNACKSent
}

// lanSYNACKPlain passes the LAN server's SYN-ACK without our ENO answer, or
// refuses a flow that must be encrypted (refuse.go).
func (e *Engine) lanSYNACKPlain(cfg *Config, f *Flow, s *segment, why string, out *Output) {
	if mustEncrypt(cfg, f) {
		e.refuseLANSYNACK(f, s, "encryption required: "+why, out)
		return
	}
	e.plain(f, why)
	e.forward(s.Buf, out)
}

// emitSYN rewrites a SYN or SYN-ACK of a flow the gateway negotiates ENO
// for: every option but ENO and Fast Open is kept (NOPs are packed away),
// enoOpt (if any) is added, and the MSS is clamped to clamp (if > 0). SYN
// data is not forwarded. It reports false, sending nothing, when enoOpt
// does not fit. Fast Open goes because a SYN+ENO must not carry a non-empty
// TFO option (RFC 8547 §4.7): a LAN host that never gets a cookie never
// sends SYN data, so its later connections stay encryptable.
func (e *Engine) emitSYN(s *segment, enoOpt []byte, clamp int, out *Output) bool {
	ow := &e.ow
	ow.Reset()
	mss := uint16(0)
	if clamp > 0 {
		mss = uint16(min(clamp, int(^uint16(0))))
		if !s.opts.HasMSS {
			ow.Raw([]byte{packet.OptMSS, 4, byte(mss >> 8), byte(mss)})
		} else if int(s.opts.MSS) < clamp {
			mss = s.opts.MSS
		}
	}
	ow.CopyExcept(s.Options(), mss, packet.OptENO, packet.OptFastOpen)
	if enoOpt != nil && !ow.Raw(enoOpt) {
		return false
	}
	h := packet.HeaderFrom(s.Packet)
	h.Options = ow.Bytes()
	e.emit(&h, out)
	return true
}

// initDirections sets both directions at the start of the key exchange:
// P and C spaces start at the same initial sequence numbers.
func (f *Flow) initDirections() {
	en, d := &f.enc, &f.dec
	s := f.lanISN + 1
	en.pNxt, en.cNxt, en.pUna = s, s, s
	en.ring.reset(s)
	en.held.reset(s)
	en.recs.reset()
	w := f.wanISN + 1
	d.cRcv, d.pRcv, d.pAck, d.cAck = w, w, w, w
	d.ring.reset(w)
	d.recs.reset()
}

// startKeyExchange: role B saw ENO on A's first non-SYN segment (RFC 8547 §4.6).
func (e *Engine) startKeyExchange(f *Flow) {
	f.initDirections()
	f.State = StateKeyExchange
}

// startInit sends Init1 as role A (RFC 8548 §3.3, §4.1) on the LAN host's ACK of
// the SYN-ACK. It returns false when no key pair could be had: the ACK then
// goes without ENO and both ends fall back to plain TCP.
func (e *Engine) startInit(cfg *Config, f *Flow, s *segment, out *Output) bool {
	kp, err := cfg.Keys.Get(f.tep)
	if err != nil {
		e.plain(f, "no key pair: "+err.Error())
		return false
	}
	f.initDirections()
	f.keyPair = kp
	randomNonce(f.nonce[:])
	m := tcpcrypt.Init1{Ciphers: cfg.Ciphers, NonceA: f.nonce, PublicKey: kp.PublicKey()}
	f.ownInit = m.Append(nil) // kept for the key schedule: the WAN may acknowledge it first
	e.queueInit(f, f.ownInit)
	f.enoPending = true
	f.State = StateKeyExchange
	if s.opts.HasTS {
		f.lanTSval, f.lanTSecr = s.opts.TSval, s.opts.TSecr
	}
	f.lanWin = s.Window
	e.sendInit(f, out)
	return true
}

// queueInit places our Init message at the start of our C stream.
func (e *Engine) queueInit(f *Flow, msg []byte) {
	en := &f.enc
	en.ring.append(msg)
	start := f.lanISN + 1
	en.recs.push(frameRec{cStart: start, cEnd: start + uint32(len(msg)), pStart: start, pEnd: start, init: true})
	en.cNxt = start + uint32(len(msg))
	en.offNxt = uint64(len(msg))
	en.initLen = len(msg)
	en.initStart = e.now
	en.rto = initialInitRTO
	en.retxAt = e.now.Add(en.rto)
	e.pending = append(e.pending, f)
}

// sendInit (re)sends our Init message as first sent.
func (e *Engine) sendInit(f *Flow, out *Output) {
	en := &f.enc
	if en.recs.len() == 0 || !en.recs.first().init {
		return
	}
	r := en.recs.first()
	e.toWAN(f, r.cStart, packet.FlagACK|packet.FlagPSH, en.ring.slice(r.cStart, r.cEnd), 0, out)
}

// consumeInit takes the bytes of the peer's Init message from the start of
// its C stream, acknowledging them itself. It returns what follows the
// message in this segment.
func (e *Engine) consumeInit(cfg *Config, f *Flow, seq uint32, data []byte, out *Output) (uint32, []byte) {
	d := &f.dec
	pos := f.wanISN + 1 + uint32(len(d.initBuf))
	if seqGT(seq, pos) || len(data) == 0 {
		return seq, nil // a hole before the Init completes: the peer retransmits
	}
	skip := int(pos - seq)
	if skip >= len(data) {
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
				e.initFailed(f, "bad Init message: "+err.Error(), out)
				return seq, nil
			}
			need = n
		}
		take := min(need-len(d.initBuf), len(data))
		d.initBuf = append(d.initBuf, data[:take]...)
		data, seq = data[take:], seq+uint32(take)
		if len(d.initBuf) < need {
			return seq, nil
		}
		if need > 8 || len(d.initBuf) > 8 {
			break
		}
	}
	var err error
	if f.Role == RoleA {
		err = e.gotInit2(cfg, f, out)
	} else {
		err = e.gotInit1(cfg, f, out)
	}
	if err != nil {
		e.initFailed(f, err.Error(), out)
		return seq, nil
	}
	return seq, data
}

func (e *Engine) initFailed(f *Flow, why string, out *Output) {
	f.Reason = why
	e.abort(f, out)
}

// gotInit2 completes role A's key exchange (RFC 8548 §3.3, §4.1).
func (e *Engine) gotInit2(cfg *Config, f *Flow, out *Output) error {
	m, err := tcpcrypt.ParseInit2(f.tep, f.dec.initBuf)
	if err != nil {
		return err
	}
	// RFC 8548 §3.3: a sym_cipher "not present in the sym_cipher_list it
	// previously transmitted in Init1" aborts: checked against Init1 as
	// sent, whatever a reload has changed since.
	sent, err := tcpcrypt.ParseInit1(f.tep, f.ownInit)
	if err != nil || !containsAEAD(sent.Ciphers, m.Cipher) {
		return fmt.Errorf("peer chose cipher %v, which our Init1 did not offer", m.Cipher)
	}
	es, err := f.keyPair.SharedSecret(m.PublicKey)
	if err != nil {
		return err
	}
	ss := tcpcrypt.FullHandshakeSecret(f.tep, eno.Transcript(f.offer, f.answer), f.ownInit, f.dec.initBuf, es, f.nonce[:])
	if err := e.keysReady(f, m.Cipher, ss); err != nil {
		return err
	}
	f.enc.initAcked = true // B answered, so it has all of Init1
	e.cacheNext(cfg, f, ss)
	e.flushHeld(cfg, f, out)
	e.ackWAN(f, out)
	return nil
}

// gotInit1 answers A's Init1 with Init2 as role B (RFC 8548 §3.3, §4.1).
func (e *Engine) gotInit1(cfg *Config, f *Flow, out *Output) error {
	m, err := tcpcrypt.ParseInit1(f.tep, f.dec.initBuf)
	if err != nil {
		return err
	}
	aead, ok := tcpcrypt.ChooseCipher(m.Ciphers, cfg.Ciphers)
	if !ok {
		return fmt.Errorf("no common cipher")
	}
	kp, err := cfg.Keys.Get(f.tep)
	if err != nil {
		return err
	}
	es, err := kp.SharedSecret(m.PublicKey)
	if err != nil {
		return err
	}
	m2 := tcpcrypt.Init2{Cipher: aead, PublicKey: kp.PublicKey()}
	randomNonce(m2.NonceB[:])
	init2 := m2.Append(nil)
	ss := tcpcrypt.FullHandshakeSecret(f.tep, eno.Transcript(f.offer, f.answer), f.dec.initBuf, init2, es, m.NonceA[:])
	if err := e.keysReady(f, aead, ss); err != nil {
		return err
	}
	e.cacheNext(cfg, f, ss)
	e.queueInit(f, init2)
	e.sendInit(f, out)
	e.flushHeld(cfg, f, out)
	return nil
}

func containsAEAD(as []tcpcrypt.AEADID, a tcpcrypt.AEADID) bool {
	for _, x := range as {
		if x == a {
			return true
		}
	}
	return false
}

// resumeKeys starts a flow from the cached secret ss[i] (RFC 8548 §3.5):
// keys and session ID from ss[i] and sn[i] directly, the first frame at
// offset 0.
func (e *Engine) resumeKeys(cfg *Config, f *Flow) error {
	ent := f.resume
	ss := ent.Secret
	if err := e.keysReady(f, ent.AEAD, ss); err != nil {
		return err
	}
	f.enc.initAcked = true
	f.Resumed = true
	f.resume = nil
	e.stats.Resumptions.Add(1)
	e.cacheNext(cfg, f, ss)
	return nil
}

// cacheNext keeps ss[i+1] for the next connection to the same peer, with
// the role we played in the original session; both ends do the same, so
// they agree on it (RFC 8548 §3.5: "compute and cache ss[i+1]").
func (e *Engine) cacheNext(cfg *Config, f *Flow, ss tcpcrypt.SessionSecret) {
	if cfg.Cache != nil {
		cfg.Cache.Put(peerKey(f.WAN), endpoint.Entry{TEP: f.tep, AEAD: f.aead, Secret: ss.Next(), OriginalRole: f.originalRole})
	}
}

// keysReady switches the flow to encrypted under ss. We seal with k_ab if
// we played A in the original session (this one when fresh, the cached
// entry's when resumed: RFC 8548 §3.3, §3.5), and the session ID starts
// with B's TEP byte, v = 1 when resumed (§3.4). The peer's Init becomes a
// pseudo-frame of the C stream that the gateway itself acknowledges.
func (e *Engine) keysReady(f *Flow, aead tcpcrypt.AEADID, ss tcpcrypt.SessionSecret) error {
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
	f.enc.lastRekey = e.now
	d := &f.dec
	start := f.wanISN + 1
	n := uint32(len(d.initBuf))
	d.recs.push(frameRec{cStart: start, cEnd: start + n, pStart: start, pEnd: start, init: true})
	d.cRcv = start + n
	d.offRcv = uint64(n)
	d.keyed = true
	d.initBuf = nil
	f.keyPair, f.ownInit = nil, nil
	e.lanAck(f, d.pAck)
	f.State = StateEncrypted
	f.Stats.HandshakeDone = e.now
	if f.Role == RoleA {
		// A peer we connected to speaks tcpcrypt: a later answer without
		// ENO from it is a suspected downgrade (refuse.go).
		e.cfg.Load().Peers.Remember(f.WAN.Addr(), e.now)
	}
	e.stats.FlowsEncrypted.Add(1)
	e.stats.observeHandshake(e.now.Sub(f.Stats.Started))
	return nil
}

// abort resets both ends of an encrypted flow (RFC 8548 §3.6, §3.7: fail closed
// once encryption is on): RST to the LAN host at the P sequence it expects,
// and to the WAN peer at the C sequence it expects.
func (e *Engine) abort(f *Flow, out *Output) {
	if f.State == StateReset {
		return
	}
	e.toLAN(f, f.dec.pRcv, f.enc.pUna, packet.FlagRST|packet.FlagACK, nil, 0, out)
	e.toWAN(f, f.enc.cNxt, packet.FlagRST|packet.FlagACK, nil, 0, out)
	f.State = StateReset
}
