// Key-exchange messages Init1 and Init2 (RFC 8548 §4.1).
//
//	Init1 = INIT1_MAGIC[4] | message_len[4] | nciphers[1] = K | sym_cipher[2*K] |
//	        N_A[32] | Pub_A | ignored[...]
//	Init2 = INIT2_MAGIC[4] | message_len[4] | sym_cipher[2] |
//	        N_B[32] | Pub_B | ignored[...]
//
// Senders add no ignored bytes: "Implementations ... MUST construct Init1
// such that the ignored field has zero length" (and Init2 likewise);
// receivers "MUST permit and ignore any bytes following Pub_A" (§4.1).
// A receiver first learns the message length from the 8-byte header
// (InitMessageLen) so it can wait for the whole message, then parses exactly
// that many bytes. Malformed messages are errors; the caller aborts the
// connection (RFC 8548 §3.3).
package tcpcrypt

import (
	"encoding/binary"
	"errors"
)

const (
	initHeaderLen = 8                            // magic[4] | message_len[4]
	init1FixedLen = initHeaderLen + 1 + NonceLen // magic, len, nciphers, N_A; then 2*K and Pub_A
	init2FixedLen = initHeaderLen + 2 + NonceLen // magic, len, sym_cipher, N_B; then Pub_B
	aeadIDLen     = 2                            // sym_cipher (RFC 8548 §4.1)
)

var (
	errInitMagic     = errors.New("tcpcrypt: Init message has the wrong magic")
	errInitLen       = errors.New("tcpcrypt: Init message_len out of range")
	errInitTruncated = errors.New("tcpcrypt: Init message length differs from message_len")
	errInitNoCiphers = errors.New("tcpcrypt: Init1 offers no cipher")
	errInitCipher    = errors.New("tcpcrypt: Init2 chose an unknown cipher")
	errInitKind      = errors.New("tcpcrypt: unknown Init magic")
)

// Init1 is A's key-exchange message.
type Init1 struct {
	Ciphers   []AEADID       // A's AEADs, most preferred first; unknown ones are kept
	NonceA    [NonceLen]byte // N_A
	PublicKey []byte         // Pub_A, wire form (KeyPair.PublicKey)
	Ignored   []byte         // bytes after Pub_A: received only, never sent
}

// Init2 is B's answer.
type Init2 struct {
	Cipher    AEADID         // sym_cipher chosen from Init1.Ciphers
	NonceB    [NonceLen]byte // N_B
	PublicKey []byte         // Pub_B, wire form
	Ignored   []byte         // bytes after Pub_B: received only, never sent
}

// Len is the encoded length (message_len) of m as Append writes it.
func (m *Init1) Len() int {
	return init1FixedLen + aeadIDLen*len(m.Ciphers) + len(m.PublicKey)
}

// Append appends the encoded message to dst, with no ignored bytes
// (RFC 8548 §4.1: the message ends with Pub_A). The caller keeps it valid:
// at most 255 ciphers and a public key of the TEP's length; otherwise the
// receiver's ParseInit1 rejects it.
func (m *Init1) Append(dst []byte) []byte {
	dst = binary.BigEndian.AppendUint32(dst, Init1Magic)
	dst = binary.BigEndian.AppendUint32(dst, uint32(m.Len()))
	dst = append(dst, byte(len(m.Ciphers)))
	for _, c := range m.Ciphers {
		dst = binary.BigEndian.AppendUint16(dst, uint16(c))
	}
	dst = append(dst, m.NonceA[:]...)
	return append(dst, m.PublicKey...)
}

// Len is the encoded length (message_len) of m as Append writes it.
func (m *Init2) Len() int {
	return init2FixedLen + len(m.PublicKey)
}

// Append appends the encoded message to dst, with no ignored bytes (see
// Init1.Append).
func (m *Init2) Append(dst []byte) []byte {
	dst = binary.BigEndian.AppendUint32(dst, Init2Magic)
	dst = binary.BigEndian.AppendUint32(dst, uint32(m.Len()))
	dst = binary.BigEndian.AppendUint16(dst, uint16(m.Cipher))
	dst = append(dst, m.NonceB[:]...)
	return append(dst, m.PublicKey...)
}

// initMinLen is the smallest valid message_len for magic and tep: Init1 must
// offer at least one cipher.
func initMinLen(magic uint32, tep TEP) (int, error) {
	if !tep.Valid() {
		return 0, errInvalidTEP
	}
	switch magic {
	case Init1Magic:
		return init1FixedLen + aeadIDLen + tep.PublicKeyLen(), nil
	case Init2Magic:
		return init2FixedLen + tep.ResponseKeyLen(), nil
	}
	return 0, errInitKind
}

// InitMessageLen reads the header of a partially received Init message whose
// expected magic is magic (Init1Magic or Init2Magic). It returns need=true
// while prefix is shorter than the 8-byte header, else message_len, or an
// error if the magic differs or message_len is outside [minimum, MaxInitLen].
func InitMessageLen(magic uint32, tep TEP, prefix []byte) (n int, need bool, err error) {
	minLen, err := initMinLen(magic, tep)
	if err != nil {
		return 0, false, err
	}
	if len(prefix) < initHeaderLen {
		return 0, true, nil
	}
	if binary.BigEndian.Uint32(prefix) != magic {
		return 0, false, errInitMagic
	}
	m := binary.BigEndian.Uint32(prefix[4:])
	if m < uint32(minLen) || m > MaxInitLen {
		return 0, false, errInitLen
	}
	return int(m), false, nil
}

// checkInit validates the header of a whole message.
func checkInit(magic uint32, tep TEP, msg []byte) error {
	n, need, err := InitMessageLen(magic, tep, msg)
	if err != nil {
		return err
	}
	if need || n != len(msg) {
		return errInitTruncated
	}
	return nil
}

// ParseInit1 parses exactly one whole Init1 message for tep. The result
// does not alias msg.
func ParseInit1(tep TEP, msg []byte) (*Init1, error) {
	if err := checkInit(Init1Magic, tep, msg); err != nil {
		return nil, err
	}
	k := int(msg[initHeaderLen])
	if k == 0 {
		return nil, errInitNoCiphers
	}
	pkLen := tep.PublicKeyLen()
	if len(msg) < init1FixedLen+aeadIDLen*k+pkLen {
		return nil, errInitLen
	}
	m := &Init1{Ciphers: make([]AEADID, k)}
	rest := msg[initHeaderLen+1:]
	for i := range k {
		m.Ciphers[i] = AEADID(binary.BigEndian.Uint16(rest[aeadIDLen*i:]))
	}
	rest = rest[aeadIDLen*k:]
	copy(m.NonceA[:], rest)
	rest = rest[NonceLen:]
	m.PublicKey = append([]byte(nil), rest[:pkLen]...)
	m.Ignored = append([]byte(nil), rest[pkLen:]...)
	return m, nil
}

// ParseInit2 parses exactly one whole Init2 message for tep. An unknown
// sym_cipher is an error; whether A offered it is the caller's check. The
// result does not alias msg.
func ParseInit2(tep TEP, msg []byte) (*Init2, error) {
	if err := checkInit(Init2Magic, tep, msg); err != nil {
		return nil, err
	}
	m := &Init2{Cipher: AEADID(binary.BigEndian.Uint16(msg[initHeaderLen:]))}
	if !m.Cipher.Valid() {
		return nil, errInitCipher
	}
	pkLen := tep.ResponseKeyLen()
	rest := msg[initHeaderLen+aeadIDLen:]
	copy(m.NonceB[:], rest)
	rest = rest[NonceLen:]
	m.PublicKey = append([]byte(nil), rest[:pkLen]...)
	m.Ignored = append([]byte(nil), rest[pkLen:]...)
	return m, nil
}

// ChooseCipher is B's choice of sym_cipher (RFC 8548 §3.3): of the AEADs
// A offered, the one B prefers most. preference is B's acceptable AEADs,
// most preferred first: §3.3 asks for a user-set "order of preference to
// use when selecting an algorithm from those offered (when playing role
// B)", which is the gateway's configured cipher list.
func ChooseCipher(offered []AEADID, preference []AEADID) (AEADID, bool) {
	for _, c := range preference {
		for _, o := range offered {
			if c == o && c.Valid() {
				return c, true
			}
		}
	}
	return 0, false
}
