// This file implements the TCP-ENO handshake (RFC 8547 §4.3, §4.5, §4.6;
// examples in §6):
//
//	A: SYN      ENO = [global] TEP...                          Offer
//	B: SYN-ACK  ENO = global(b=1) chosenTEP                    Choose, Answer
//	A:          negotiated = last valid TEP in B's option      Negotiated
//	A: ACK      ENO = 69 02 (non-SYN form) until B's first non-SYN segment
//
// B enables encryption only once a non-SYN segment from A carries ENO
// (RFC 8547 §4.6); that bookkeeping lives in the packet engine, which
// knows segments. Every failure before encryption is enabled means plain
// TCP.

package eno

import (
	"errors"
	"slices"
)

// Role is one of TCP-ENO's two abstract roles (RFC 8547 §4.3).
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

// Offer builds A's SYN option: the TEPs A supports, each optionally with
// data (for example a tcpcrypt resumption suboption, RFC 8548 §3.5). The
// order carries no meaning in RFC 8547 (§4.5: "host A does not influence
// TEP priority"); this implementation lists A's preference first and its
// Choose honours that order. The global suboption is omitted: an active
// opener's b defaults to 0 and a to 0, so it would be 0x00, which is
// implicit (RFC 8547 §4.2). teps is copied.
func Offer(teps []Suboption) SYNOption {
	return SYNOption{TEPs: slices.Clone(teps)}
}

// Choose is B's side of the handshake (RFC 8547 §4.5): B SHOULD answer
// with one TEP that is valid. It returns the first suboption of A's
// offer, in A's order, that accept says B supports (a local policy: the
// RFC lets B pick any valid TEP). TEP ids B does not know are simply not
// accepted. An offer with b=1 would give both hosts b = 1, an
// incompatible global suboption, so nothing is chosen (RFC 8547 §4.3,
// §4.6 item 3).
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

// Answer builds B's SYN-ACK option: an explicit global suboption with b=1
// (a passive opener MUST include one, RFC 8547 §4.2, §4.6) followed by
// exactly the chosen TEP suboption (RFC 8547 §4.5), e.g. 69 04 01 23.
func Answer(chosen Suboption) SYNOption {
	return SYNOption{Global: GlobalB, HasGlobal: true, TEPs: []Suboption{chosen}}
}

// answerGlobalValid reports whether B's global suboption gives B the
// role B: it must be explicit and have b = 1. An answer without a global
// suboption has the implicit 0x00, b = 0, the same b as A's: the global
// suboptions are incompatible and ENO fails (RFC 8547 §4.2, §4.3, §4.6
// item 3). Passive already treats a missing global suboption as b = 0.
func answerGlobalValid(answer *SYNOption) bool {
	return answer.HasGlobal && answer.Passive()
}

// Negotiated is A's validation of B's answer. The negotiated TEP is the
// LAST valid TEP identifier in B's SYN-form option (RFC 8547 §4.5), and
// it is determined without reference to the v bits (RFC 8548 §3.2): a TEP
// is valid if A also sent a suboption for it (RFC 8547 §4.5 item 1) and
// the suboption data is acceptable (item 2). Negotiated walks B's TEP
// suboptions from last to first:
//
//   - a TEP that A's offer does not contain is skipped;
//   - a suboption without data (v = 0) is the negotiated TEP, whatever
//     the v bits of A's suboptions for it: for tcpcrypt that means fresh
//     key agreement even if A offered resumption with that TEP (RFC 8548
//     §3.2);
//   - a suboption with data (v = 1, HasData) is the negotiated TEP only if
//     acceptData(offered, answered) returns true for one of A's
//     suboptions with the same TEP id (tried in A's order, each with its
//     own HasData and Data); otherwise it MUST be ignored (RFC 8548 §3.5:
//     a resumption suboption whose identifier-half does not match) and
//     the walk goes on with B's earlier suboptions. A nil acceptData
//     accepts no suboption with data.
//
// It returns B's suboption, with B's data and v bit. If no suboption is
// left, ErrNoCommonTEP. B's option is not a valid answer
// (ErrInvalidAnswer) if its global suboption is not explicit with b = 1,
// or if A's offer has b = 1 (both hosts would be B, RFC 8547 §4.3), or if
// it is vacuous, with no TEP (RFC 8547 §4.6).
//
// The function makes no check of its own on repeated TEP ids: whether a
// repetition is well-defined is the TEP's business (RFC 8547 §4.5 item 3),
// which acceptData can enforce for suboptions with data.
func Negotiated(offer, answer SYNOption, acceptData func(offered, answered Suboption) bool) (Suboption, error) {
	if offer.Passive() || !answerGlobalValid(&answer) || len(answer.TEPs) == 0 {
		return Suboption{}, ErrInvalidAnswer
	}
	for i := len(answer.TEPs) - 1; i >= 0; i-- {
		got := answer.TEPs[i]
		if !got.HasData {
			if offered(&offer, got.TEP) {
				return got, nil
			}
			continue
		}
		if acceptData == nil {
			continue
		}
		for _, sent := range offer.TEPs {
			if sent.TEP == got.TEP && acceptData(sent, got) {
				return got, nil
			}
		}
	}
	return Suboption{}, ErrNoCommonTEP
}

// offered reports whether o has a suboption, with or without data, for
// the TEP id tep (RFC 8547 §4.5 item 1).
func offered(o *SYNOption, tep byte) bool {
	for _, s := range o.TEPs {
		if s.TEP == tep {
			return true
		}
	}
	return false
}

// SimultaneousRoles assigns roles in a simultaneous open (RFC 8547 §4.3):
// the host whose SYN has b=1 is B. If both or neither SYN sets b (an
// absent global suboption is b = 0, RFC 8547 §4.2), negotiation fails.
func SimultaneousRoles(local, remote SYNOption) (Role, error) {
	switch l, r := local.Passive(), remote.Passive(); {
	case l && !r:
		return RoleB, nil
	case !l && r:
		return RoleA, nil
	}
	return 0, ErrRoleConflict
}

// Transcript returns eno_transcript (RFC 8547 §4.8): A's SYN ENO option
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
