// Key schedule (RFC 8548 §3.3, §3.4, §3.5, §3.8).
//
//	PRK       = Extract(N_A, eno_transcript | Init1 | Init2 | ES)
//	ss[0]     = PRK
//	ss[i]     = CPRF(ss[i-1], CONST_NEXTK, K_LEN)
//	sid[i]    = TEP-byte | CPRF(ss[i], CONST_SESSID | sn[i], K_LEN)
//	mk[0]     = CPRF(ss[i], CONST_REKEY | sn[i], K_LEN)
//	mk[j]     = CPRF(mk[j-1], CONST_REKEY, K_LEN)                  (generation j)
//	k_ab[j]   = CPRF(mk[j], CONST_KEY_A, ae_key_len + ae_nonce_len) = K | NR
//	k_ba[j]   = CPRF(mk[j], CONST_KEY_B, ae_key_len + ae_nonce_len)
//	resume[i] = CPRF(ss[i], CONST_RESUME, 18)
//
// sn[i] is the session nonce: empty for a fresh session, nonce_a | nonce_b
// for a resumed one (§3.5). Extract is HKDF-Extract and CPRF is
// HKDF-Expand, both with SHA-256 (§3.1 Figure 1, §5); CONST | sn is the
// HKDF info, followed by the one-byte block counter.
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
// Init1 | Init2 | ES) (RFC 8548 §3.3).
//
// The HMAC (RFC 2104) is written out as cprf's is, with one SHA-256 state
// for the long inner hash (the Init messages, 2.4 KB with the hybrid TEP)
// and sha256.Sum256 for the outer: crypto/hmac's set-up per call cost more
// than the hashing. A salt longer than a block (never: N_A is 32 bytes)
// takes crypto/hmac.
func extractPRK(nonceA, transcript, init1, init2, es []byte) [KeyLen]byte {
	var prk [KeyLen]byte
	if len(nonceA) > sha256.BlockSize {
		mac := hmac.New(sha256.New, nonceA)
		for _, m := range [][]byte{transcript, init1, init2, es} {
			mac.Write(m)
		}
		mac.Sum(prk[:0])
		return prk
	}
	var pad [sha256.BlockSize]byte
	var outer [sha256.BlockSize + sha256.Size]byte // K^opad | H(K^ipad | m)
	for i := range sha256.BlockSize {
		var k byte
		if i < len(nonceA) {
			k = nonceA[i]
		}
		pad[i], outer[i] = k^0x36, k^0x5c
	}
	h := sha256.New()
	h.Write(pad[:])
	for _, m := range [][]byte{transcript, init1, init2, es} {
		h.Write(m)
	}
	h.Sum(outer[sha256.BlockSize:sha256.BlockSize])
	prk = sha256.Sum256(outer[:])
	clear(pad[:])
	clear(outer[:])
	return prk
}

// cprf fills dst with CPRF(key, constant | info, len(dst)): HKDF-Expand
// with SHA-256 (RFC 8548 §3.1 Figure 1):
//
//	T(n) = HMAC-SHA256(key, T(n-1) | constant | info | n),  OKM = T(1) | T(2) | ...
//
// Traffic keys need up to 44 bytes, two blocks. len(dst) <= 255*32.
//
// Every key here is a 32-byte secret and every info a short nonce, so the
// HMAC (RFC 2104: H(K^opad | H(K^ipad | m))) is computed over stack buffers
// with sha256.Sum256: each connection derives about six of these, and
// crypto/hmac's per-call state (two digests, their marshalled pads, a
// dozen allocations) cost more than the hashing (docs/performance.md,
// "The connection path"). A longer key or info takes cprfHMAC.
func cprf(dst, key []byte, constant byte, info []byte) {
	if len(key) > sha256.BlockSize || len(info) > cprfMaxInfo {
		cprfHMAC(dst, key, constant, info)
		return
	}
	var inner [sha256.BlockSize + sha256.Size + 1 + cprfMaxInfo + 1]byte // K^ipad | T(n-1) | constant | info | n
	var outer [sha256.BlockSize + sha256.Size]byte                       // K^opad | H(inner)
	for i := range sha256.BlockSize {
		var k byte
		if i < len(key) {
			k = key[i]
		}
		inner[i], outer[i] = k^0x36, k^0x5c
	}
	var t [sha256.Size]byte
	for n := byte(1); len(dst) > 0; n++ {
		m := inner[:sha256.BlockSize]
		if n > 1 {
			m = append(m, t[:]...)
		}
		m = append(m, constant)
		m = append(m, info...)
		m = append(m, n)
		h := sha256.Sum256(m)
		copy(outer[sha256.BlockSize:], h[:])
		t = sha256.Sum256(outer[:])
		dst = dst[copy(dst, t[:]):]
		clear(h[:])
	}
	clear(inner[:])
	clear(outer[:])
	clear(t[:])
}

// cprfMaxInfo is the longest info cprf hashes on the stack: the session
// nonces of RFC 8548 §3.5 are far shorter.
const cprfMaxInfo = 128

// cprfHMAC is cprf with crypto/hmac, for any key and info length.
func cprfHMAC(dst, key []byte, constant byte, info []byte) {
	mac := hmac.New(sha256.New, key)
	var t [sha256.Size]byte
	for n := byte(1); len(dst) > 0; n++ {
		mac.Reset()
		if n > 1 {
			mac.Write(t[:])
		}
		mac.Write([]byte{constant})
		mac.Write(info)
		mac.Write([]byte{n})
		mac.Sum(t[:0])
		dst = dst[copy(dst, t[:]):]
	}
	clear(t[:])
}

// FullHandshakeSecret computes ss[0] for a full handshake (RFC 8548 §3.3):
// init1 and init2 are the messages exactly as sent (ignored bytes
// included), transcript is eno_transcript (RFC 8547 §4.8), es
// the ECDH result and nonceA is N_A. tep selects the PRF; every TEP of RFC
// 8548 §5 uses HKDF-SHA256, so an invalid TEP yields an invalid secret
// (Valid false) rather than a guess.
func FullHandshakeSecret(tep TEP, transcript, init1, init2, es []byte, nonceA []byte) SessionSecret {
	if !tep.Valid() {
		return SessionSecret{}
	}
	return firstSessionSecret(extractPRK(nonceA, transcript, init1, init2, es))
}

// firstSessionSecret: ss[0] = PRK (RFC 8548 §3.3).
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
	cprf(b[:], s.ss.get()[:], constNextK, nil)
	return SessionSecret{ss: hide(b), index: s.index + 1}
}

// SessionID is session_id[i] = TEP-byte | CPRF(ss[i], CONST_SESSID | sn[i],
// K_LEN), 33 bytes (RFC 8548 §3.4). tepByte is the byte host B sent for
// the negotiated TEP, v bit included: a resumed session's ID starts with
// v = 1 (§3.5). sn is the session nonce (empty for a fresh session).
func (s SessionSecret) SessionID(tepByte byte, sn []byte) []byte {
	if !s.Valid() {
		return nil
	}
	sid := make([]byte, 1+KeyLen)
	sid[0] = tepByte
	cprf(sid[1:], s.ss.get()[:], constSessID, sn)
	return sid
}

// MasterKey is mk[0] = CPRF(ss[i], CONST_REKEY | sn[i], K_LEN) (RFC 8548
// §3.3), the start of the chain of key sets; nil for an invalid secret.
// The caller clears it once its Sealer and Opener exist.
func (s SessionSecret) MasterKey(sn []byte) []byte {
	if !s.Valid() {
		return nil
	}
	mk := make([]byte, KeyLen)
	cprf(mk, s.ss.get()[:], constRekey, sn)
	return mk
}

// ResumeID is resume[i] = CPRF(ss[i], CONST_RESUME, 18) (RFC 8548 §3.5): A
// sends [:9] in its SYN, B answers with [9:]. All zero for an invalid
// secret.
func (s SessionSecret) ResumeID() [ResumeIDLen]byte {
	var r [ResumeIDLen]byte
	if s.Valid() {
		cprf(r[:], s.ss.get()[:], constResume, nil)
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
// ss and the session nonce sn (RFC 8548 §3.3). sealAB says which traffic
// keys this end seals with: k_ab[j] if it played A in the session that
// produced ss[0], k_ba[j] otherwise. That holds for every session resumed
// from the same ss[0], whatever role the host plays in it (§3.5: "a given
// host MUST either encrypt with keys k_ab[j] for all sessions derived from
// the same original session secret ss[0], or with keys k_ba[j]"). The
// master key derived on the way is cleared.
func NewSession(ss SessionSecret, aead AEADID, sn []byte, sealAB bool) (*Sealer, *Opener, error) {
	mk := ss.MasterKey(sn)
	defer clear(mk)
	send, recv := KeysAB, KeysBA
	if !sealAB {
		send, recv = KeysBA, KeysAB
	}
	sealer, err := NewSealer(aead, mk, send)
	if err != nil {
		return nil, nil, err
	}
	opener, err := NewOpener(aead, mk, recv)
	if err != nil {
		return nil, nil, err
	}
	return sealer, opener, nil
}
