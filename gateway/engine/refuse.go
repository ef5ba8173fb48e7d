// What happens when a flow cannot be encrypted but must not go plain, or
// should not have been plain: required encryption (config
// require_encryption) and suspected downgrades (a WAN peer that completed
// tcpcrypt before answers without TCP-ENO).
//
// TCP-ENO falls back to plain TCP whenever negotiation fails (RFC 8547
// §4.6), so an active attacker who strips or corrupts the ENO option gets
// plain TCP without anyone noticing (RFC 8547 §10: ENO "can provide no
// protection" against an active attacker on its own). The gateway adds two
// defences:
//  1. A flow matched by require_encryption never goes plain: when the LAN
//     host's SYN cannot carry ENO, when the peer does not answer (or confirm)
//     ENO, or when the negotiation fails, the gateway resets the LAN host's
//     connection (and the WAN peer's half of it) with the reason on the
//     flow. The SYN fallback without ENO never applies to it.
//  2. A peer remembered (package downgrade) as having completed tcpcrypt
//     with the gateway that now answers without ENO is a suspected
//     downgrade: the flow says so, a counter and a log warning record it,
//     and under the block policy the connection is reset like a required
//     one. Either way no byte of the LAN host's data has been sent yet: the
//     decision falls on the SYN-ACK, before the LAN host's ACK.

package engine

import (
	"time"

	"tcpcrypt-gw/gateway/packet"
)

// mustEncrypt reports whether a flow is matched by require_encryption.
func mustEncrypt(cfg *Config, f *Flow) bool {
	return cfg.RequireEncryption != nil && cfg.RequireEncryption(f.LAN, f.WAN)
}

// rememberedPeer reports whether the flow's WAN peer completed tcpcrypt
// with the gateway (as role A) within the memory's TTL, and when.
func (e *Engine) rememberedPeer(cfg *Config, f *Flow) (time.Time, bool) {
	if f.Role != RoleA || cfg.Peers == nil {
		return time.Time{}, false
	}
	return cfg.Peers.Seen(f.WAN.Addr(), e.now)
}

// noENO decides the fate of an outbound flow whose SYN-ACK came without a
// usable ENO answer (why says how): required flows and blocked downgrades
// are refused; a remembered peer is flagged; otherwise the flow goes plain.
// strip: the SYN-ACK carries an ENO option the LAN host must not see.
func (e *Engine) noENO(cfg *Config, f *Flow, s *segment, why string, strip bool, out *Output) {
	if mustEncrypt(cfg, f) {
		e.stats.RequiredResets.Add(1)
		e.refuseSYNACK(f, s, "encryption required: "+why, out)
		return
	}
	if when, ok := e.rememberedPeer(cfg, f); ok {
		block := cfg.BlockDowngrade != nil && cfg.BlockDowngrade(f.WAN.Addr())
		reason := e.downgrade(cfg, f, why, when, block)
		if block {
			e.refuseSYNACK(f, s, reason, out)
			return
		}
		e.plain(f, reason)
	} else {
		e.plain(f, why)
	}
	if strip {
		e.emitSYN(s, nil, 0, out)
		return
	}
	e.forward(s.Buf, out)
}

// downgrade flags a suspected downgrade on f, counts and logs it, and
// returns the flow's reason.
func (e *Engine) downgrade(cfg *Config, f *Flow, why string, when time.Time, block bool) string {
	f.Downgrade = true
	e.stats.DowngradesSuspected.Add(1)
	action := "passed plain (policy warn)"
	if block {
		e.stats.DowngradesBlocked.Add(1)
		action = "connection reset (policy block)"
	}
	if cfg.Warn != nil {
		cfg.Warn("downgrade suspected: a peer that completed tcpcrypt before now answers without it",
			"lan", f.LAN.String(), "wan", f.WAN.String(), "why", why,
			"last_encrypted", when.UTC().Format(time.RFC3339), "action", action)
	}
	return "downgrade suspected: " + why + " (completed tcpcrypt " + when.UTC().Format(time.RFC3339) + "); " + action
}

// refuseSYNACK resets both halves of an outbound connection at the peer's
// SYN-ACK: the LAN host (in SYN-SENT) gets a RST acknowledging its SYN, the
// WAN peer (in SYN-RECEIVED) a RST at the sequence its SYN-ACK acknowledged
// (RFC 9293 §3.10.7.3, §3.10.7.4). The SYN-ACK itself goes nowhere.
func (e *Engine) refuseSYNACK(f *Flow, s *segment, why string, out *Output) {
	e.rst(f, true, s.Seq+1, f.lanISN+1, true, out)
	e.rst(f, false, s.Ack, 0, false, out)
	e.refused(f, why)
}

// refuseLANSYN answers a LAN host's SYN that cannot go out with ENO: a RST
// acknowledging it, as a closed port would. Nothing reaches the WAN.
func (e *Engine) refuseLANSYN(f *Flow, s *segment, why string, out *Output) {
	e.stats.RequiredResets.Add(1)
	e.rst(f, true, 0, s.Seq+s.SeqLen(), true, out)
	e.refused(f, why)
}

// refuseWANSYN answers an inbound SYN of a required flow that offers no
// usable ENO like a closed port; the LAN server never sees it.
func (e *Engine) refuseWANSYN(f *Flow, s *segment, why string, out *Output) {
	e.stats.RequiredResets.Add(1)
	e.rst(f, false, 0, s.Seq+s.SeqLen(), true, out)
	e.refused(f, why)
}

// refuseUnconfirmed resets an inbound required flow whose peer's first
// non-SYN segment lacks ENO (RFC 8547 §4.6: the negotiation failed): the
// LAN server (which sent its SYN-ACK) and the peer both get a RST in their
// windows; the segment, and any data in it, goes nowhere.
func (e *Engine) refuseUnconfirmed(f *Flow, s *segment, why string, out *Output) {
	e.stats.RequiredResets.Add(1)
	e.rst(f, true, s.Seq, 0, false, out)
	e.rst(f, false, s.Ack, 0, false, out)
	e.refused(f, why)
}

// refuseLANSYNACK resets an inbound required flow whose LAN server's
// SYN-ACK cannot carry our ENO answer: the server (SYN-RECEIVED) gets a RST
// at the sequence it expects, the peer (SYN-SENT) one acknowledging its SYN.
func (e *Engine) refuseLANSYNACK(f *Flow, s *segment, why string, out *Output) {
	e.stats.RequiredResets.Add(1)
	e.rst(f, true, s.Ack, 0, false, out)
	e.rst(f, false, 0, s.Ack, true, out)
	e.refused(f, why)
}

func (e *Engine) refused(f *Flow, why string) {
	f.State = StateReset
	f.Reason = why
}

// rst sends a RST (with ACK when withAck) to the LAN host (toLAN) or to the
// WAN peer, from the other end of the flow.
func (e *Engine) rst(f *Flow, toLAN bool, seq, ack uint32, withAck bool, out *Output) {
	h := packet.Header{V6: f.V6, Src: f.LAN.Addr(), Dst: f.WAN.Addr(), SrcPort: f.LAN.Port(), DstPort: f.WAN.Port(),
		Seq: seq, Flags: packet.FlagRST, TTL: 64}
	if toLAN {
		h.Src, h.Dst, h.SrcPort, h.DstPort = h.Dst, h.Src, h.DstPort, h.SrcPort
	}
	if withAck {
		h.Ack, h.Flags = ack, packet.FlagRST|packet.FlagACK
	}
	e.emit(&h, out)
}
