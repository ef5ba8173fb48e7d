// When TCP-ENO or tcpcrypt fails on the path to a peer: RFC 8547 §9's two
// kinds of failure, what the gateway remembers of each per peer
// (downgrade.Paths, /api/paths) and what it does about them
// (docs/security.md, "SYN fallback" and "Broken paths").
//
//  1. Type 1, the SYN exchange: after tcpcrypt.syn_fallback_retries
//     unanswered ENO SYNs the SYN goes without ENO (RFC 8547 §4.6 lets an
//     active opener remove ENO between retransmissions to get past
//     middleboxes), unless the flow must be encrypted, the peer is in
//     downgrade.no_syn_fallback, it is a remembered tcpcrypt peer under
//     the block policy, or the flow table was full within fullHold (a
//     flood: the loss may be the gateway's own; the next retransmission
//     asks again): a decision about going plain, made with the
//     others in refuse.go (synFallback, which lanSYNAgain in syn.go asks).
//     Every fallback is flagged on the flow ("syn_fallback: ..."),
//     counted, and, when the plain SYN is answered (fallbackAnswered: the
//     path dropped ENO, not SYNs), recorded per peer with its evidence.
//  2. Type 2, after the SYN exchange (pathFailure): an outbound flow that
//     negotiated ENO dies without progress of the peer's frames (a reset
//     from either side, a LAN retransmission with nothing acknowledged for
//     stallAfter (startStalled, dispatch.go), an Init timeout, a frame failing authentication). Enough
//     of them within a window mark the path broken.
//  3. A new outbound flow to a broken path (brokenPath) goes plain with
//     the reason, unless it must be encrypted or its peer is under the
//     block policy; the mark expires, so a repaired path is tried again.

package engine

import (
	"fmt"
	"time"
)

// stallAfter: a LAN host that retransmits data this long after the key
// exchange, the peer having acknowledged none of it, is on a path that
// drops ciphertext. Linux retransmits data after 200 ms at the least, so
// this is several retransmissions; the peer's TCP acknowledges at once.
const stallAfter = 3 * time.Second

// failAfter: a connection reset sooner than this after its key exchange
// is no failure of the path: the peer may not have had the time to
// acknowledge anything (a LAN host that gives up on a request at once, a
// long round trip).
const failAfter = time.Second

// fullHold: for this long after the flow table was last full (a SYN flood
// fills it), an unanswered ENO SYN is no evidence against the path: the
// gateway itself was overloaded and may have lost the SYN or its answer,
// so synFallback keeps ENO (a flood must not send LAN connections plain).
const fullHold = 10 * time.Second

// reasonStopped is the reason of flows reset at shutdown (ResetAll): not a
// failure of the path.
const reasonStopped = "gateway stopped"

// fallbackAnswered notes the SYN-ACK of a flow whose SYN fell back: the
// peer answered the SYN without ENO where the ENO SYNs were not, which
// is evidence that the path drops ENO (RFC 8547 §9 type 1). A SYN-ACK
// with ENO answers an earlier SYN that was only slow: no evidence.
func (c *pkt) fallbackAnswered(f *Flow, s *segment) {
	f.fellBack = false
	if s.opts.ENO != nil {
		return
	}
	c.stats.ENOFailuresType1.Add(1)
	c.cfg.Paths.Fallback(f.WAN.Addr(), c.now, fmt.Sprintf("%d SYNs with ENO unanswered over %v; the SYN without ENO answered",
		f.synRetries, c.now.Sub(f.Stats.Started).Round(time.Millisecond)))
}

// brokenPath reports why a new outbound flow to f's peer goes plain, or ""
// when it tries ENO: a path where encryption failed after the handshake,
// unless the flow must be encrypted or its peer is under the block policy.
func (c *pkt) brokenPath(f *Flow) string {
	if c.cfg.Paths == nil {
		return ""
	}
	p, ok := c.cfg.Paths.Broken(f.WAN.Addr(), c.now)
	if !ok || mustEncrypt(c.cfg, f) || c.cfg.BlockDowngrade != nil && c.cfg.BlockDowngrade(f.WAN.Addr()) {
		return ""
	}
	c.stats.BrokenPathPlain.Add(1)
	return fmt.Sprintf("broken_path: encryption failed after the handshake on this path %d times since %s (last: %s); plain until %s",
		p.RecentFails, p.WindowStart.UTC().Format(time.RFC3339), p.FailureProof, p.BrokenUntil.UTC().Format(time.RFC3339))
}

// pathFailure records a type-2 failure (RFC 8547 §9) of an outbound flow,
// once per flow: ENO was negotiated, then the flow died (why) without
// progress of the peer's frames, or a frame failed authentication (always
// counted: ciphertext was modified on the way).
func (c *pkt) pathFailure(f *Flow, why string, always bool) {
	if f.Role != RoleA || f.pathFailed || why == reasonStopped || f.connParams == nil || f.streams == nil {
		return
	}
	if !always {
		since := f.Stats.HandshakeDone
		if since.IsZero() {
			since = f.Stats.Started
		}
		if c.now.Sub(since) < failAfter || !f.noPeerProgress() {
			return
		}
	}
	f.pathFailed = true
	c.stats.ENOFailuresType2.Add(1)
	if c.cfg.Paths.Failure(f.WAN.Addr(), c.now, why) && c.cfg.Warn != nil {
		c.cfg.Warn("encryption fails on the path to a peer: its next connections go plain until the memory expires",
			"wan", f.WAN.Addr().String(), "why", why)
	}
}

// noPeerProgress: the LAN host sent data and the peer acknowledged none of
// it nor delivered any of its own. A connection that ends before either
// side sent anything says nothing about the path.
func (f *Flow) noPeerProgress() bool {
	p0, _ := f.encStart()
	_, q0 := f.decStart()
	return f.enc.pNxt != p0 && f.enc.pAcked == p0 && f.dec.pRcv == q0
}
