// Resumption in the TCP-ENO handshake (RFC 8548 §3.5; digest §2.7).
//
//	A: SYN      TEP suboption, v=1, data = resume[i][:9]   (OfferResume)
//	B: SYN-ACK  TEP suboption, v=1, data = resume[i][9:]   (AcceptResume, AnswerResume)
//	A:          check B's 9 bytes                          (ResumeAnswerMatches)
//
// Then both run Handshake with Config.Resume = the entry's secret: no Init
// messages, keys k_ab[i]/k_ba[i], session id sid[i].

package endpoint

import (
	"crypto/subtle"

	"tcpcrypt-gw/eno"
)

// OfferResume is A's SYN suboption asking to resume e: its TEP with the
// first half of resume[i] as data.
func OfferResume(e Entry) eno.Suboption {
	id := e.Secret.ResumeID()
	return eno.Suboption{TEP: byte(e.TEP), Data: append([]byte(nil), id[:resumeHalfLen]...), HasData: true}
}

// AcceptResume is B's test of one offered suboption: if it asks to resume
// a secret the cache holds for peer under the same TEP, the entry is taken
// out of the cache (single use) and returned.
func AcceptResume(c *Cache, peer string, offered eno.Suboption) (Entry, bool) {
	if !offered.HasData || len(offered.Data) != resumeHalfLen {
		return Entry{}, false
	}
	e, ok := c.TakeByResumeID(peer, offered.Data)
	if !ok {
		return Entry{}, false
	}
	if byte(e.TEP) != offered.TEP {
		// The id matched under another TEP: not a resumption A asked for.
		// The entry is spent anyway; a secret is never offered twice.
		return Entry{}, false
	}
	return e, true
}

// AnswerResume is B's SYN-ACK suboption accepting resumption of e: its
// TEP with the second half of resume[i] as data.
func AnswerResume(e Entry) eno.Suboption {
	id := e.Secret.ResumeID()
	return eno.Suboption{TEP: byte(e.TEP), Data: append([]byte(nil), id[resumeHalfLen:]...), HasData: true}
}

// ResumeAnswerMatches is A's check of B's answer: same TEP, and data equal
// to the second half of resume[i], compared in constant time.
func ResumeAnswerMatches(e Entry, answered eno.Suboption) bool {
	if !answered.HasData || answered.TEP != byte(e.TEP) {
		return false
	}
	id := e.Secret.ResumeID()
	return subtle.ConstantTimeCompare(id[resumeHalfLen:], answered.Data) == 1
}
