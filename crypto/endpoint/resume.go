// Resumption in the TCP-ENO handshake (RFC 8548 §3.5).
//
// Each host names the cached ss[i] by the half of resume[i] that matches
// the role it played in the ORIGINAL session (the one that produced
// ss[0]), followed by a resumption nonce of 0 to 8 bytes:
//
//	originally A: TEP|v=1 | resume[i]{0..8}  | nonce_a     (Figure 2)
//	originally B: TEP|v=1 | resume[i]{9..17} | nonce_b     (Figure 3)
//
//	active opener:  SYN      its suboption                   (OfferResume)
//	passive opener: SYN-ACK  its own half and nonce, if the  (AcceptResume, AnswerResume)
//	                         offered half names a cached ss[i]
//	active opener:  checks the other half                    (ResumeAnswerMatches)
//
// Both then use sn[i] = nonce_a | nonce_b (SessionNonce) and keep sealing
// with the traffic keys of their original role, whatever role they play
// now.

package endpoint

import (
	"crypto/rand"
	"crypto/subtle"

	"tcpcrypt-gw/crypto/tcpcrypt"
	"tcpcrypt-gw/eno"
)

// ownHalf and peerHalf are the halves of resume[i] this host and its peer
// send for e (RFC 8548 §3.5: "according to the role it played in the
// original session").
func ownHalf(e Entry, id *[tcpcrypt.ResumeIDLen]byte) []byte {
	if e.OriginalRole == eno.RoleA {
		return id[:resumeHalfLen]
	}
	return id[resumeHalfLen:]
}

func peerHalf(e Entry, id *[tcpcrypt.ResumeIDLen]byte) []byte {
	if e.OriginalRole == eno.RoleA {
		return id[resumeHalfLen:]
	}
	return id[:resumeHalfLen]
}

// NewResumeNonce returns a random resumption nonce of n bytes, n clamped
// to 0..8 (RFC 8548 §3.5: "chosen randomly"; at most eight bytes).
func NewResumeNonce(n int) []byte {
	b := make([]byte, min(max(n, 0), tcpcrypt.MaxResumeNonceLen))
	rand.Read(b)
	return b
}

// resumeSuboption is TEP|v=1 | this host's half of resume[i] | nonce.
func resumeSuboption(e Entry, nonce []byte) eno.Suboption {
	data := append(append(make([]byte, 0, resumeHalfLen+len(nonce)), ownHalf(e, e.resume())...), nonce...)
	return eno.Suboption{TEP: byte(e.TEP), Data: data, HasData: true}
}

// OfferResume is the active opener's SYN suboption asking to resume e.
func OfferResume(e Entry, nonce []byte) eno.Suboption { return resumeSuboption(e, nonce) }

// AnswerResume is the passive opener's SYN-ACK suboption agreeing to
// resume e.
func AnswerResume(e Entry, nonce []byte) eno.Suboption { return resumeSuboption(e, nonce) }

// splitResume splits resumption suboption data into the identifier half and
// the nonce; ok is false unless it holds 9 to 17 bytes (RFC 8548 §3.5).
func splitResume(s eno.Suboption) (half, nonce []byte, ok bool) {
	if !s.HasData || len(s.Data) < resumeHalfLen || len(s.Data) > resumeHalfLen+tcpcrypt.MaxResumeNonceLen {
		return nil, nil, false
	}
	return s.Data[:resumeHalfLen], s.Data[resumeHalfLen:], true
}

// AcceptResume is the passive opener's test of one offered suboption: if
// its half names a secret the cache holds for peer under the same TEP, the
// entry is taken out of the cache (single use) and returned with the
// peer's nonce. Suboption data of fewer than 9 bytes is an offer of fresh
// key exchange (RFC 8548 §3.5), never a resumption.
func AcceptResume(c *Cache, peer string, offered eno.Suboption) (Entry, []byte, bool) {
	half, nonce, ok := splitResume(offered)
	if !ok {
		return Entry{}, nil, false
	}
	e, ok := c.TakeByResumeID(peer, half)
	if !ok {
		return Entry{}, nil, false
	}
	if byte(e.TEP) != offered.TEP {
		// RFC 8548 §3.5: resume only "if ... the suboption's TEP matches
		// the TEP used in the previous session". The entry is spent
		// anyway; a secret is never offered twice.
		return Entry{}, nil, false
	}
	return e, append([]byte(nil), nonce...), true
}

// ResumeAnswerMatches is the active opener's check of the passive opener's
// answer: same TEP, and the other half of resume[i], compared in constant
// time. It returns the peer's nonce. An answer that does not match must be
// ignored (RFC 8548 §3.5).
func ResumeAnswerMatches(e Entry, answered eno.Suboption) ([]byte, bool) {
	half, nonce, ok := splitResume(answered)
	if !ok || answered.TEP != byte(e.TEP) {
		return nil, false
	}
	if subtle.ConstantTimeCompare(peerHalf(e, e.resume()), half) != 1 {
		return nil, false
	}
	return append([]byte(nil), nonce...), true
}

// SessionNonce is sn[i] = nonce_a | nonce_b (RFC 8548 §3.5), nonce_a being
// the nonce sent with resume[i]{0..8}, by the host that was A in the
// original session (Figure 2), whatever roles the hosts play now.
func SessionNonce(e Entry, own, peer []byte) []byte {
	a, b := own, peer
	if e.OriginalRole != eno.RoleA {
		a, b = peer, own
	}
	return append(append(make([]byte, 0, len(a)+len(b)), a...), b...)
}
