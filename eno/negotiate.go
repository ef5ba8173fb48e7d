// This file implements the TCP-ENO handshake (RFC 8547 §4.2, §4.3):
//
//	A: SYN      ENO = [global] TEP... (preference order)      Offer
//	B: SYN-ACK  ENO = global(b=1) chosenTEP                   Choose, Answer
//	A:          negotiated = last TEP in B's option A offered Negotiated
//	A: ACK      ENO = 69 02 (non-SYN form) until B's first non-SYN segment
//
// B enables encryption only once a non-SYN segment from A carries ENO;
// that bookkeeping lives in the packet engine, which knows segments. Every
// failure before encryption is enabled means plain TCP.

package eno

import (
	"errors"
	"slices"
)

// Role is one of TCP-ENO's two abstract roles (RFC 8547 §4.2).
type Role uint8

const (
	RoleA Role = 1 // the active opener, or the simultaneous opener with b=0
	RoleB Role = 2 // the passive opener, or the simultaneous opener with b=1
)

func (r Role) String() string {
	switch r {
	case RoleA:
		return "A"
	case RoleB:
		return "B"
	}
	return "invalid"
}

// Negotiation errors. Each means the connection falls back to plain TCP.
var (
	ErrNoCommonTEP   = errors.New("eno: no TEP offered by A in B's answer")
	ErrInvalidAnswer = errors.New("eno: B's option is not a valid answer")
	ErrRoleConflict  = errors.New("eno: both or neither SYN set the b bit")
)

// Offer builds A's SYN option: the TEPs in A's preference order, most
// preferred first (RFC 8547 §4.3), each optionally with data (for example
// a tcpcrypt resumption identifier, RFC 8548). The global suboption is
// omitted: A's would be all zero (RFC 8547 §4.4). teps is copied.
func Offer(teps []Suboption) SYNOption {
	return SYNOption{TEPs: slices.Clone(teps)}
}

// Choose is B's side of the handshake (RFC 8547 §4.3): the first
// suboption of A's offer, in A's preference order, that accept says B
// supports. TEP ids B does not know are simply not accepted. An offer with
// b=1 claims role B for A as well, so nothing is chosen (RFC 8547 §4.2).
func Choose(offer SYNOption, accept func(Suboption) bool) (Suboption, bool) {
	if offer.Passive() {
		return Suboption{}, false
	}
	for _, s := range offer.TEPs {
		if accept(s) {
			return s, true
		}
	}
	return Suboption{}, false
}

// Answer builds B's SYN-ACK option: a global suboption with b=1 followed
// by exactly the chosen TEP suboption (RFC 8547 §4.3), e.g. 69 04 01 23.
func Answer(chosen Suboption) SYNOption {
	return SYNOption{Global: GlobalB, HasGlobal: true, TEPs: []Suboption{chosen}}
}

// answerGlobalValid reports whether B's global suboption is acceptable to
// A. A accepts an answer without a global suboption; a present one must
// set b, since B is the passive role (RFC 8547 §4.2, §4.3).
func answerGlobalValid(answer *SYNOption) bool {
	return !answer.HasGlobal || answer.Passive()
}

// Negotiated is A's validation of B's answer (RFC 8547 §4.3): the
// negotiated TEP is the LAST TEP suboption in B's option that A also
// offered. A suboption pair in which either side carries data matches
// only if acceptData(offered, answered) says so (a nil acceptData accepts
// no data); pairs without data match on the TEP id alone. It returns B's
// suboption, with B's data.
//
// B's option is not a valid answer (ErrInvalidAnswer) if it has no TEP or
// its global suboption lacks b; A's offer with b set is not A's.
func Negotiated(offer, answer SYNOption, acceptData func(offered, answered Suboption) bool) (Suboption, error) {
	if offer.Passive() || !answerGlobalValid(&answer) || len(answer.TEPs) == 0 {
		return Suboption{}, ErrInvalidAnswer
	}
	for i := len(answer.TEPs) - 1; i >= 0; i-- {
		got := answer.TEPs[i]
		for _, sent := range offer.TEPs {
			if sent.TEP != got.TEP {
				continue
			}
			if !sent.HasData && !got.HasData {
				return got, nil
			}
			if acceptData != nil && acceptData(sent, got) {
				return got, nil
			}
		}
	}
	return Suboption{}, ErrNoCommonTEP
}

// SimultaneousRoles assigns roles in a simultaneous open (RFC 8547 §4.2):
// the host whose SYN has b=1 is B. If both or neither SYN sets b,
// negotiation fails.
func SimultaneousRoles(local, remote SYNOption) (Role, error) {
	switch l, r := local.Passive(), remote.Passive(); {
	case l && !r:
		return RoleB, nil
	case !l && r:
		return RoleA, nil
	}
	return 0, ErrRoleConflict
}

// Transcript returns eno_transcript (RFC 8547 §4.6): A's SYN ENO option
// followed by B's SYN-ACK ENO option, each exactly as sent, kind and
// length bytes included. TEPs bind it into their keys.
func Transcript(aOption, bOption []byte) []byte {
	return AppendTranscript(make([]byte, 0, len(aOption)+len(bOption)), aOption, bOption)
}

// AppendTranscript appends eno_transcript to dst, for callers that keep
// it in a buffer of their own.
func AppendTranscript(dst, aOption, bOption []byte) []byte {
	return append(append(dst, aOption...), bOption...)
}
