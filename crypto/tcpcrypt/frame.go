// Encryption frames and rekeying (RFC 8548 §3.6, §3.8, §4.2; digest §2.5,
// §2.6).
//
//	Frame      = control[1] | clen[2] | ciphertext[clen]
//	ciphertext = AEAD-Seal(key, nonce, plaintext, associated data)  (tag included)
//	plaintext  = flags[1] | urgent[2], only with URG | data
//	nonce      = FRAME_NONCE_MAGIC[4] | offset[8]
//	AD         = control | clen
//
// Sealing, one direction's sender (Sealer):
//  1. Write the header and the plaintext straight into dst.
//  2. Seal the plaintext in place; the tag follows it.
//
// Opening, one direction's receiver (Opener):
//  1. Check the header's length against the frame.
//  2. Pick the key generation from the control byte's rekey bit and the
//     frame's offset (current, next, or one step back).
//  3. Open in place; only an authenticated frame moves the generation on.
//
// Both cache their cipher.AEAD objects; sealing and opening allocate nothing.
package tcpcrypt

import (
	"crypto/aes"
	"crypto/cipher"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"golang.org/x/crypto/chacha20poly1305"
)

// Plaintext flags. Their bit positions are a [check] item of the digest
// (§2.5); these two constants are the one place that fixes them: FIN is bit
// 0, URG bit 1, the other bits are sent as zero and ignored on receipt
// (RFC 8548 §4.2.1).
const (
	FlagFIN byte = 0x01
	FlagURG byte = 0x02

	knownFlags = FlagFIN | FlagURG
)

// ControlRekey is the rekey bit of the control byte (RFC 8548 §3.8, §4.2):
// it flips with every new key generation, so it equals generation & 1. The
// other control bits are sent as zero and ignored (they are still
// authenticated, as part of the associated data).
const ControlRekey byte = 0x01

// urgentLen is the size of the urgent pointer present with FlagURG.
const urgentLen = 2

// minCiphertextLen is the smallest valid clen: the flags byte and the tag.
const minCiphertextLen = 1 + TagLen

// MaxFrameData is the most data one frame can carry whatever its flags:
// clen is 16 bits and covers flags, urgent pointer, data and tag.
const MaxFrameData = 0xffff - TagLen - 1 - urgentLen

var (
	errFrameShort  = errors.New("tcpcrypt: frame shorter than its header")
	errFrameCLen   = errors.New("tcpcrypt: frame clen too small")
	errFrameLength = errors.New("tcpcrypt: frame length differs from its clen")
	errFrameAuth   = errors.New("tcpcrypt: frame failed authentication")
	errFrameURG    = errors.New("tcpcrypt: URG frame without urgent pointer")
	errKeyLength   = errors.New("tcpcrypt: key length does not match the AEAD")
	errUnknownAEAD = errors.New("tcpcrypt: unknown AEAD")
)

// frameAssociatedData returns the associated data of a frame: its 3-byte
// header control|clen. What the AD covers is a [check] item of the digest
// (§2.5); this function is the one place that fixes it (RFC 8548 §4.2.2).
func frameAssociatedData(frame []byte) []byte { return frame[:FrameHeaderLen] }

// putFrameNonce writes the frame ID used as AEAD nonce:
// FRAME_NONCE_MAGIC | offset, big-endian (RFC 8548 §4.2.3).
func putFrameNonce(nonce *[aeadNonceLen]byte, offset uint64) {
	binary.BigEndian.PutUint32(nonce[:4], frameNonceMagic)
	binary.BigEndian.PutUint64(nonce[4:], offset)
}

// FirstFrameOffset is the stream offset of the first frame after an Init
// message of initLen bytes (0 when resuming, which sends no Init). The
// offset origin is a [check] item of the digest (§2.5); this function is
// the one place that fixes it: offset 0 is the first byte after the SYN,
// and the Init message's bytes count (RFC 8548 §4.2.3).
func FirstFrameOffset(initLen int) uint64 { return uint64(initLen) }

// rekeyBit is the control byte's rekey bit for generation gen.
func rekeyBit(gen uint32) byte { return byte(gen&1) * ControlRekey }

// FrameLen returns the whole length (FrameHeaderLen + clen) of the frame
// that starts at hdr, need=true while fewer than 3 bytes are present, and an
// error if clen cannot hold the flags byte and the tag.
func FrameLen(hdr []byte) (n int, need bool, err error) {
	if len(hdr) < FrameHeaderLen {
		return 0, true, nil
	}
	clen := int(binary.BigEndian.Uint16(hdr[1:3]))
	if clen < minCiphertextLen {
		return 0, false, errFrameCLen
	}
	return FrameHeaderLen + clen, false, nil
}

// keyGeneration is one generation of one direction's traffic key. It is
// immutable once made and always held hidden (hidden.go).
type keyGeneration struct {
	aead   AEADID
	key    [32]byte // k[gen]; kept to derive k[gen+1]
	cipher cipher.AEAD
	gen    uint32
}

func newKeyGeneration(aead AEADID, key []byte, gen uint32) (hidden[keyGeneration], error) {
	if !aead.Valid() {
		return hidden[keyGeneration]{}, errUnknownAEAD
	}
	if len(key) != aead.KeyLen() {
		return hidden[keyGeneration]{}, errKeyLength
	}
	g := &keyGeneration{aead: aead, gen: gen}
	copy(g.key[:], key)
	var err error
	switch aead {
	case AES128GCM, AES256GCM:
		var block cipher.Block
		if block, err = aes.NewCipher(key); err == nil {
			g.cipher, err = cipher.NewGCM(block)
		}
	case ChaCha20Poly1305:
		g.cipher, err = chacha20poly1305.New(key)
	}
	if err != nil {
		return hidden[keyGeneration]{}, err
	}
	return hide(g), nil
}

// next derives generation gen+1: k_next = CPRF(k, CONST_REKEY, key_len)
// (RFC 8548 §3.8).
func (g *keyGeneration) next() (hidden[keyGeneration], error) {
	var k [32]byte
	n := g.aead.KeyLen()
	cprf(k[:n], g.key[:n], constRekey)
	defer clear(k[:])
	return newKeyGeneration(g.aead, k[:n], g.gen+1)
}

// Sealer is one direction's sending state. It is not safe for concurrent
// use.
type Sealer struct {
	cur   hidden[keyGeneration]
	nonce [aeadNonceLen]byte // scratch, kept here so SealFrame does not allocate
}

// NewSealer starts a direction at generation 0 with key (k_ab or k_ba).
func NewSealer(aead AEADID, key []byte) (*Sealer, error) {
	g, err := newKeyGeneration(aead, key, 0)
	if err != nil {
		return nil, err
	}
	return &Sealer{cur: g}, nil
}

// SealFrame appends to dst one whole frame carrying data at stream offset
// offset, under the current generation, and returns the extended slice.
// flags may hold FlagFIN and FlagURG (other bits are dropped); urgent is
// sent only with FlagURG. It does not allocate when dst has room for
// FrameOverhead+len(data) (+2 with URG) more bytes. data may already sit
// anywhere in dst, including the place it takes in the frame (seal in
// place). len(data) must not exceed MaxFrameData: callers size frames from
// the MSS, so a larger one is a programming error and panics.
func (s *Sealer) SealFrame(dst []byte, offset uint64, flags byte, urgent uint16, data []byte) []byte {
	flags &= knownFlags
	ptLen := 1 + len(data)
	if flags&FlagURG != 0 {
		ptLen += urgentLen
	}
	clen := ptLen + TagLen
	if len(data) > MaxFrameData {
		panic(fmt.Sprintf("tcpcrypt: SealFrame with %d bytes of data (max %d)", len(data), MaxFrameData))
	}

	start := len(dst)
	dst = slices.Grow(dst, FrameHeaderLen+clen)[:start+FrameHeaderLen+ptLen]
	frame := dst[start:]
	pt := frame[FrameHeaderLen:]
	// Data first: it may overlap the bytes written below (memmove).
	copy(pt[ptLen-len(data):], data)
	if flags&FlagURG != 0 {
		binary.BigEndian.PutUint16(pt[1:], urgent)
	}
	pt[0] = flags
	g := s.cur.get()
	frame[0] = rekeyBit(g.gen)
	binary.BigEndian.PutUint16(frame[1:3], uint16(clen))

	putFrameNonce(&s.nonce, offset)
	g.cipher.Seal(pt[:0], s.nonce[:], pt, frameAssociatedData(frame))
	return dst[:start+FrameHeaderLen+clen]
}

// Rekey moves to the next generation: later frames use k_next and carry the
// flipped rekey bit (RFC 8548 §3.8). Frames already sealed keep theirs.
func (s *Sealer) Rekey() {
	g, err := s.cur.get().next()
	if err != nil {
		// Unreachable: the AEAD and key length were valid for the current
		// generation and the derivation keeps both.
		panic("tcpcrypt: rekey: " + err.Error())
	}
	s.cur = g
}

// Generation is the key generation of the next frame sealed (0 at start).
func (s *Sealer) Generation() uint32 { return s.cur.get().gen }

// AEAD is the direction's algorithm.
func (s *Sealer) AEAD() AEADID { return s.cur.get().aead }

// Format prints the algorithm and generation, never the key.
func (s *Sealer) Format(f fmt.State, _ rune) {
	fmt.Fprintf(f, "Sealer(%v, generation %d)", s.AEAD(), s.Generation())
}

// Opener is one direction's receiving state. It keeps the current
// generation, derives the next one when a frame shows the flipped rekey bit,
// and keeps the previous generation one step back so that a frame sealed
// before the sender's rekey but delivered after the switch still opens (the
// offset tells the two apart: frames of the older generation lie before the
// first frame of the current one). It is not safe for concurrent use.
type Opener struct {
	cur  hidden[keyGeneration]
	prev hidden[keyGeneration] // empty until the first switch
	next hidden[keyGeneration] // derived on first sight of a flipped bit, cached until used
	// switchOffset is the offset of the frame that moved the Opener to cur:
	// the sender's generations never decrease along the stream, so a frame
	// with the other rekey bit below it belongs to prev, at or above it to
	// next.
	switchOffset uint64
	nonce        [aeadNonceLen]byte
}

// NewOpener starts a direction at generation 0 with key (k_ab or k_ba).
func NewOpener(aead AEADID, key []byte) (*Opener, error) {
	g, err := newKeyGeneration(aead, key, 0)
	if err != nil {
		return nil, err
	}
	return &Opener{cur: g}, nil
}

// OpenFrame authenticates and decrypts one whole frame in place, the frame
// starting at stream offset offset. It returns the flags (FlagFIN, FlagURG;
// other bits dropped), the urgent pointer (0 without URG) and the data, a
// sub-slice of frame. On any error it returns no data and the contents of
// frame are unspecified; the caller must abort the connection (RFC 8548
// §3.6). It does not allocate except when it derives a new generation.
func (o *Opener) OpenFrame(frame []byte, offset uint64) (flags byte, urgent uint16, data []byte, err error) {
	n, need, err := FrameLen(frame)
	if need {
		return 0, 0, nil, errFrameShort
	}
	if err != nil {
		return 0, 0, nil, err
	}
	if n != len(frame) {
		return 0, 0, nil, errFrameLength
	}

	g := o.cur.get()
	advance := false
	if frame[0]&ControlRekey != rekeyBit(g.gen) {
		switch {
		case o.prev.ok() && offset < o.switchOffset:
			g = o.prev.get()
		default:
			if !o.next.ok() {
				if o.next, err = g.next(); err != nil {
					return 0, 0, nil, err
				}
			}
			g, advance = o.next.get(), true
		}
	}

	putFrameNonce(&o.nonce, offset)
	ct := frame[FrameHeaderLen:]
	pt, err := g.cipher.Open(ct[:0], o.nonce[:], ct, frameAssociatedData(frame))
	if err != nil {
		return 0, 0, nil, errFrameAuth
	}
	if advance {
		o.prev, o.cur, o.next = o.cur, o.next, hidden[keyGeneration]{}
		o.switchOffset = offset
	}

	flags = pt[0] & knownFlags
	data = pt[1:]
	if flags&FlagURG != 0 {
		if len(data) < urgentLen {
			return 0, 0, nil, errFrameURG
		}
		urgent = binary.BigEndian.Uint16(data)
		data = data[urgentLen:]
	}
	return flags, urgent, data, nil
}

// Generation is the receiver's current key generation.
func (o *Opener) Generation() uint32 { return o.cur.get().gen }

// AEAD is the direction's algorithm.
func (o *Opener) AEAD() AEADID { return o.cur.get().aead }

// Format prints the algorithm and generation, never the key.
func (o *Opener) Format(f fmt.State, _ rune) {
	fmt.Fprintf(f, "Opener(%v, generation %d)", o.AEAD(), o.Generation())
}
