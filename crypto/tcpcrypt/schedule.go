// Key schedule (RFC 8548 §3.3, §3.4, §3.5, §3.8; digest §2.4, §2.6, §2.7).
//
//	PRK     = Extract(N_A, eno_transcript | Init1 | Init2 | ES)
//	ss[0]   = PRK
//	ss[i]   = CPRF(ss[i-1], CONST_NEXTK, K_LEN)
//	sid[i]  = TEP | CPRF(ss[i], CONST_SESSID, K_LEN)
//	k_ab[i] = CPRF(ss[i], CONST_KEY_A, key_len), k_ba[i] = CPRF(ss[i], CONST_KEY_B, key_len)
//	resume[i] = CPRF(ss[i], CONST_RESUME, 18)
//	k_next  = CPRF(k, CONST_REKEY, key_len)                 (rekey, frame.go)
//
// Extract is HKDF-Extract and CPRF is HKDF-Expand with a one-byte info, both
// with SHA-256 (RFC 8548 §3.1, §5). Every output here is at most one
// SHA-256 block long, so CPRF is a single HMAC.
package tcpcrypt

import (
	"crypto/hmac"
	"crypto/sha256"
	"fmt"
)

// ResumeIDLen is the length of resume[i]; A sends the first half in its SYN,
// B answers with the second (RFC 8548 §3.5).
const ResumeIDLen = 18

// SessionSecret is ss[i] together with its index i. It is a value type;
// copies are independent. It never prints its bytes (Format).
//
// The bytes are hidden (hidden.go) and never modified after creation, so
// copies may share them.
type SessionSecret struct {
	ss    hidden[[KeyLen]byte] // empty: invalid
	index uint32
}

// extractPRK computes PRK = HKDF-Extract(salt = N_A, IKM = eno_transcript |
// Init1 | Init2 | ES). The order of the IKM parts is a [check] item of the
// digest (§2.4); this function is the one place that fixes it
// (RFC 8548 §3.3).
func extractPRK(nonceA, transcript, init1, init2, es []byte) [KeyLen]byte {
	mac := hmac.New(sha256.New, nonceA)
	mac.Write(transcript)
	mac.Write(init1)
	mac.Write(init2)
	mac.Write(es)
	var prk [KeyLen]byte
	mac.Sum(prk[:0])
	return prk
}

// cprf is CPRF(K, CONST, L) = HKDF-Expand(K, info = CONST, L) for L <= 32
// (RFC 8548 §3.1): the first L bytes of HMAC-SHA256(K, CONST | 0x01).
// Every caller asks for L <= 32 (K_LEN, key_len, 18), one HKDF block.
func cprf(dst, key []byte, constant byte) {
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte{constant, 0x01})
	var out [sha256.Size]byte
	copy(dst, mac.Sum(out[:0]))
}

// FullHandshakeSecret computes ss[0] for a full handshake (RFC 8548 §3.3):
// init1 and init2 are the messages exactly as sent (ignored bytes
// included), transcript is eno_transcript (RFC 8547 §4.7; digest §1.5), es
// the ECDH result and nonceA is N_A. tep selects the PRF; every TEP of RFC
// 8548 §5 uses HKDF-SHA256, so an invalid TEP yields an invalid secret
// (Valid false) rather than a guess.
func FullHandshakeSecret(tep TEP, transcript, init1, init2, es []byte, nonceA []byte) SessionSecret {
	if !tep.Valid() {
		return SessionSecret{}
	}
	return firstSessionSecret(extractPRK(nonceA, transcript, init1, init2, es))
}

// firstSessionSecret fixes ss[0] = PRK, a [check] item of the digest
// (§2.4): the PRK is used as ss[0] directly, not expanded first
// (RFC 8548 §3.3).
func firstSessionSecret(prk [KeyLen]byte) SessionSecret {
	return SessionSecret{ss: hide(&prk), index: 0}
}

// SessionSecretFromBytes rebuilds ss[index] from Bytes, for the resumption
// cache. ss must be KeyLen bytes; otherwise the result is invalid (Valid
// false) and derives no keys, so that NewSealer/NewOpener refuse it.
func SessionSecretFromBytes(index uint32, ss []byte) SessionSecret {
	if len(ss) != KeyLen {
		return SessionSecret{}
	}
	b := new([KeyLen]byte)
	copy(b[:], ss)
	return SessionSecret{ss: hide(b), index: index}
}

// Valid reports whether s holds a secret (the zero SessionSecret does not).
func (s SessionSecret) Valid() bool { return s.ss.ok() }

// Index is i in ss[i].
func (s SessionSecret) Index() uint32 { return s.index }

// Bytes returns a copy of ss[i], for the in-memory resumption cache only;
// nil for an invalid secret.
func (s SessionSecret) Bytes() []byte {
	if !s.Valid() {
		return nil
	}
	return append([]byte(nil), s.ss.get()[:]...)
}

// Next is ss[i+1] = CPRF(ss[i], CONST_NEXTK, K_LEN) (RFC 8548 §3.3).
func (s SessionSecret) Next() SessionSecret {
	if !s.Valid() {
		return s
	}
	b := new([KeyLen]byte)
	cprf(b[:], s.ss.get()[:], constNextK)
	return SessionSecret{ss: hide(b), index: s.index + 1}
}

// SessionID is sid[i] = TEP | CPRF(ss[i], CONST_SESSID, K_LEN), 33 bytes
// (RFC 8548 §3.4; RFC 8547 §5.1 requires the TEP byte first).
func (s SessionSecret) SessionID(tep TEP) []byte {
	if !s.Valid() {
		return nil
	}
	sid := make([]byte, 1+KeyLen)
	sid[0] = byte(tep)
	cprf(sid[1:], s.ss.get()[:], constSessID)
	return sid
}

// KeyAB is k_ab[i] = CPRF(ss[i], CONST_KEY_A, key_len), the key of the
// A-to-B direction (RFC 8548 §3.3); nil for an unknown AEAD.
func (s SessionSecret) KeyAB(aead AEADID) []byte { return s.directionKey(aead, constKeyA) }

// KeyBA is k_ba[i] = CPRF(ss[i], CONST_KEY_B, key_len), B to A.
func (s SessionSecret) KeyBA(aead AEADID) []byte { return s.directionKey(aead, constKeyB) }

func (s SessionSecret) directionKey(aead AEADID, constant byte) []byte {
	if !s.Valid() || !aead.Valid() {
		return nil
	}
	k := make([]byte, aead.KeyLen())
	cprf(k, s.ss.get()[:], constant)
	return k
}

// ResumeID is resume[i] = CPRF(ss[i], CONST_RESUME, 18) (RFC 8548 §3.5): A
// sends [:9] in its SYN, B answers with [9:]. All zero for an invalid
// secret.
func (s SessionSecret) ResumeID() [ResumeIDLen]byte {
	var r [ResumeIDLen]byte
	if s.Valid() {
		cprf(r[:], s.ss.get()[:], constResume)
	}
	return r
}

// Format prints the index only; the secret never reaches a log.
func (s SessionSecret) Format(f fmt.State, _ rune) {
	if !s.Valid() {
		fmt.Fprint(f, "SessionSecret(invalid)")
		return
	}
	fmt.Fprintf(f, "SessionSecret(index %d)", s.index)
}

// NewSession returns the sealer and opener of one end of a session keyed by
// ss (RFC 8548 §3.3): A sends with k_ab and receives with k_ba, B the other
// way round. The key bytes derived on the way are cleared.
func NewSession(ss SessionSecret, aead AEADID, roleA bool) (*Sealer, *Opener, error) {
	kab, kba := ss.KeyAB(aead), ss.KeyBA(aead)
	defer clear(kab)
	defer clear(kba)
	send, recv := kab, kba
	if !roleA {
		send, recv = kba, kab
	}
	sealer, err := NewSealer(aead, send)
	if err != nil {
		return nil, nil, err
	}
	opener, err := NewOpener(aead, recv)
	if err != nil {
		return nil, nil, err
	}
	return sealer, opener, nil
}
