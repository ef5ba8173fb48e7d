// The fate of a flow TCP-ENO fails for: plain, or refused when it must not
// go plain (required encryption, config require_encryption) or should not
// have been plain (suspected downgrades: a WAN peer that completed
// tcpcrypt before answers without TCP-ENO). The policies are here
// (mustEncrypt, mustPostQuantum, rememberedPeer, downgrade), with the
// decisions that weigh them against each other (noENO at the peer's
// SYN-ACK, synFallback) and the two fates (plain, refused; rst). Where a
// stage only asks mustEncrypt, it refuses in its own file, by the TCP
// states its packet leaves both ends in: syn.go (refuseLANSYN,
// refuseWANSYN, lanSYNACKPlain), keyexchange.go (refuseUnconfirmed,
// refuseClassical, noKeyPair).
//
// TCP-ENO falls back to plain TCP whenever negotiation fails (RFC 8547
// §4.6), so an active attacker who strips or corrupts the ENO option gets
// plain TCP without anyone noticing (RFC 8547 §10: ENO "can provide no
// protection" against an active attacker on its own). The gateway adds two
// defences:
//  1. A flow matched by require_encryption never goes plain: when the LAN
//     host's SYN cannot carry ENO, when the peer does not answer (or confirm)
//     ENO, when the negotiation fails, or when our key pair cannot be had,
//     the gateway resets the LAN host's connection (and the WAN peer's
//     half of it) with the reason on the flow. The SYN fallback without
//     ENO never applies to it (synFallback). A flow matched by
//     require_encryption.post_quantum is required too, and is reset when
//     the negotiated TEP is classical (keyexchange.go, refuseClassical).
//  2. A peer remembered (package downgrade) as having completed tcpcrypt
//     with the gateway that now answers without ENO is a suspected
//     downgrade: the flow says so, a counter and a log warning record it,
//     and under the block policy the connection is reset like a required
//     one. Either way no byte of the LAN host's data has been sent yet: the
//     decision falls on the SYN-ACK, before the LAN host's ACK. SYNs with
//     ENO that go unanswered towards such a peer may be an attacker forcing
//     the SYN fallback: under the block policy the SYN keeps its ENO.
//  3. The SYN fallback (RFC 8547 §9 type 1: a middlebox may drop SYNs with
//     unknown options): after tcpcrypt.syn_fallback_retries unanswered ENO
//     SYNs the next goes without ENO, unless 1. or 2. forbid it, the peer
//     is in downgrade.no_syn_fallback, or the flow table was full within
//     fullHold (fallback.go: a flood, the loss may be the gateway's own);
//     every fallback is flagged and counted, and its evidence recorded
//     when answered (fallback.go).

package engine

import (
	"fmt"
	"time"

	"tcpcrypt-gw/gateway/packet"
)

// mustEncrypt reports whether a flow is matched by require_encryption
// (post_quantum included: a flow that must be post-quantum must not be
// plain either).
func mustEncrypt(cfg *Config, f *Flow) bool {
	return cfg.RequireEncryption != nil && cfg.RequireEncryption(f.LAN, f.WAN) || mustPostQuantum(cfg, f)
}

// mustPostQuantum reports whether a flow is matched by
// require_encryption.post_quantum.
func mustPostQuantum(cfg *Config, f *Flow) bool {
	return cfg.RequirePostQuantum != nil && cfg.RequirePostQuantum(f.LAN, f.WAN)
}

// rememberedPeer reports whether the flow's WAN peer completed tcpcrypt
// with the gateway (as role A) within the memory's TTL, and when.
func (c *pkt) rememberedPeer(f *Flow) (time.Time, bool) {
	if f.Role != RoleA || c.cfg.Peers == nil {
		return time.Time{}, false
	}
	return c.cfg.Peers.Seen(f.WAN.Addr(), c.now)
}

// noENO decides the fate of an outbound flow whose SYN-ACK came without a
// usable ENO answer (why says how): required flows and blocked downgrades
// are refused; a remembered peer is flagged; otherwise the flow goes plain.
// strip: the SYN-ACK carries an ENO option the LAN host must not see.
func (c *pkt) noENO(f *Flow, s *segment, why string, strip bool) {
	if mustEncrypt(c.cfg, f) {
		c.stats.RequiredResets.Add(1)
		c.refuseSYNACK(f, s, "encryption required: "+why)
		return
	}
	if when, ok := c.rememberedPeer(f); ok {
		block := c.cfg.BlockDowngrade != nil && c.cfg.BlockDowngrade(f.WAN.Addr())
		reason := c.downgrade(f, why, when, block)
		if block {
			c.refuseSYNACK(f, s, reason)
			return
		}
		c.plain(f, reason)
	} else {
		c.plain(f, why)
	}
	if strip {
		c.emitSYN(s, nil, 0)
		return
	}
	c.forward(s.Buf)
}

// synFallback decides, at a retransmission of the LAN host's SYN that
// reached the fallback count, whether this SYN goes without ENO; when it
// does, the flow is plain and flagged.
func (c *pkt) synFallback(f *Flow) {
	if mustEncrypt(c.cfg, f) {
		return // never (point 1)
	}
	if c.cfg.NoSYNFallback != nil && c.cfg.NoSYNFallback(f.WAN.Addr()) {
		c.stats.SYNFallbacksRefused.Add(1)
		return
	}
	if !c.fullAt.IsZero() && c.now.Sub(c.fullAt) < fullHold {
		c.stats.SYNFallbacksDeferred.Add(1) // asked again at the next retransmission
		return
	}
	why := fmt.Sprintf("syn_fallback: SYN sent without ENO after %d retransmissions with ENO went unanswered", f.synRetries)
	if when, ok := c.rememberedPeer(f); ok {
		// SYNs with ENO dropped on the way to a peer that speaks it: an
		// attacker may be forcing the fallback (point 2). Under the
		// block policy the SYN keeps its ENO.
		block := c.cfg.BlockDowngrade != nil && c.cfg.BlockDowngrade(f.WAN.Addr())
		if !f.Downgrade {
			why = c.downgrade(f, why, when, block)
		}
		if block {
			return
		}
	} else if c.cfg.Warn != nil {
		c.cfg.Warn("SYN fallback: ENO SYNs unanswered, retrying without ENO (a middlebox, or an attacker dropping them)",
			"lan", f.LAN.String(), "wan", f.WAN.String(), "retransmissions", f.synRetries)
	}
	c.stats.SYNFallbacks.Add(1)
	f.fellBack = true
	c.plain(f, why)
}

// downgrade flags a suspected downgrade on f, counts and logs it, and
// returns the flow's reason.
func (c *pkt) downgrade(f *Flow, why string, when time.Time, block bool) string {
	f.Downgrade = true
	c.stats.DowngradesSuspected.Add(1)
	action := "passed plain (policy warn)"
	if block {
		c.stats.DowngradesBlocked.Add(1)
		action = "connection reset (policy block)"
	}
	if c.cfg.Warn != nil {
		c.cfg.Warn("downgrade suspected: a peer that completed tcpcrypt before now answers without it",
			"lan", f.LAN.String(), "wan", f.WAN.String(), "why", why,
			"last_encrypted", when.UTC().Format(time.RFC3339), "action", action)
	}
	return "downgrade suspected: " + why + " (completed tcpcrypt " + when.UTC().Format(time.RFC3339) + "); " + action
}

// refuseSYNACK resets both halves of an outbound connection at the peer's
// SYN-ACK: the LAN host (in SYN-SENT) gets a RST acknowledging its SYN, the
// WAN peer (in SYN-RECEIVED) a RST at the sequence its SYN-ACK acknowledged
// (RFC 9293 §3.10.7.3, §3.10.7.4). The SYN-ACK itself goes nowhere.
func (c *pkt) refuseSYNACK(f *Flow, s *segment, why string) {
	c.rst(f, true, s.Seq+1, f.lanISN+1, true)
	c.rst(f, false, s.Ack, 0, false)
	c.refused(f, why)
}

// plain lets f pass as plain TCP from now on, for the reason why.
func (c *pkt) plain(f *Flow, why string) {
	f.State = StatePassthrough
	f.syn = nil
	f.Reason = why
	c.stats.FlowsPlain.Add(1)
}

func (c *pkt) refused(f *Flow, why string) {
	f.State = StateReset
	f.syn = nil
	f.Reason = why
}

// rst sends a RST (with ACK when withAck) to the LAN host (toLAN) or to the
// WAN peer, from the other end of the flow.
func (c *pkt) rst(f *Flow, toLAN bool, seq, ack uint32, withAck bool) {
	h := packet.Header{V6: f.V6, Src: f.LAN.Addr(), Dst: f.WAN.Addr(), SrcPort: f.LAN.Port(), DstPort: f.WAN.Port(),
		Seq: seq, Flags: packet.FlagRST, TTL: 64}
	if toLAN {
		h.Src, h.Dst, h.SrcPort, h.DstPort = h.Dst, h.Src, h.DstPort, h.SrcPort
	}
	if withAck {
		h.Ack, h.Flags = ack, packet.FlagRST|packet.FlagACK
	}
	c.emit(&h)
}
