// Encryption frames and rekeying (RFC 8548 §3.6, §3.8, §4.2).
//
//	Frame      = control[1] | clen[2] | ciphertext[clen]
//	ciphertext = AEAD-Seal(K, N, plaintext, associated data)  (tag included)
//	plaintext  = flags[1] | urgent[2], only with URGp | data
//	N          = frame_ID XOR NR,  frame_ID = zero[4] | offset[8]
//	AD         = control | clen
//
// K and NR are the two parts of the traffic key k_ab[j] or k_ba[j] of the
// direction's current generation j (§3.6 Figure 4).
//
// Sealing, one direction's sender (Sealer):
//  1. Write the header and the plaintext straight into dst; the control
//     byte has rekey = 1 only on the first frame of a new generation.
//  2. Seal the plaintext in place; the tag follows it.
//
// Opening, one direction's receiver (Opener), frames in stream order:
//  1. Check the header's length against the frame.
//  2. rekey = 1: the frame is the first of the sender's next generation
//     (§3.8), opened with the next key set.
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

// Plaintext flags (RFC 8548 §4.2.1): FINp is bit 0, URGp bit 1; the other
// six bits (fres) are sent as zero and ignored on receipt.
const (
	FlagFIN byte = 0x01
	FlagURG byte = 0x02

	knownFlags = FlagFIN | FlagURG
)

// ControlRekey is the rekey bit of the control byte (RFC 8548 §3.8, §4.2):
// 1 on the first frame sealed under a new generation, 0 on every other. The
// seven cres bits are sent as zero and ignored on receipt (they are still
// authenticated, as part of the associated data).
const ControlRekey byte = 0x01

// SafeFramesPerKey bounds the frames a sender seals under one traffic key,
// whatever its configured rekey policy: RFC 8548 §3.8 has rekeying serve
// "AEAD ciphers that can securely encrypt only a bounded number of
// messages under a given key"; 2^24 frames stays below the AES-GCM and
// ChaCha20-Poly1305 limits for frames of up to 64 KiB as TLS 1.3 (RFC 8446
// §5.5) counts them.
const SafeFramesPerKey = 1 << 24

// urgentLen is the size of the urgent pointer present with FlagURG.
const urgentLen = 2

// minCiphertextLen is the smallest valid clen: the flags byte and the tag.
const minCiphertextLen = 1 + TagLen

// MaxFrameData is the most data one frame can carry whatever its flags:
// clen is 16 bits and covers flags, urgent pointer, data and tag (§3.6:
// the ciphertext "has length less than 2^16 bytes").
const MaxFrameData = 0xffff - TagLen - 1 - urgentLen

var (
	errFrameShort  = errors.New("tcpcrypt: frame shorter than its header")
	errFrameCLen   = errors.New("tcpcrypt: frame clen too small")
	errFrameLength = errors.New("tcpcrypt: frame length differs from its clen")
	errFrameAuth   = errors.New("tcpcrypt: frame failed authentication")
	errFrameURG    = errors.New("tcpcrypt: URG frame without urgent pointer")
	errKeyLength   = errors.New("tcpcrypt: master key must be K_LEN bytes")
	errUnknownAEAD = errors.New("tcpcrypt: unknown AEAD")
	errKeysDir     = errors.New("tcpcrypt: traffic keys must be KeysAB or KeysBA")
)

// frameAssociatedData returns the associated data of a frame: its 3-byte
// header control | clen (RFC 8548 §4.2.2).
func frameAssociatedData(frame []byte) []byte { return frame[:FrameHeaderLen] }

// putFrameNonce writes N = frame_ID XOR NR, frame_ID being the 8-byte
// big-endian offset left-padded with zeros to ae_nonce_len bytes (RFC 8548
// §3.6, §4.2.3).
func putFrameNonce(nonce *[NRLen]byte, nr *[NRLen]byte, offset uint64) {
	*nonce = [NRLen]byte{}
	binary.BigEndian.PutUint64(nonce[NRLen-8:], offset)
	for i := range nonce {
		nonce[i] ^= nr[i]
	}
}

// FirstFrameOffset is the stream offset of the first frame after an Init
// message of initLen bytes (0 when resuming, which sends no Init): the frame
// ID counts bytes "in the underlying TCP datastream", from the first byte
// after the SYN, Init bytes included (RFC 8548 §3.6).
func FirstFrameOffset(initLen int) uint64 { return uint64(initLen) }

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

// TrafficKeys names the traffic key of a key set a direction uses
// (RFC 8548 §3.3): k_ab, sealed by the host that played A in the original
// session, or k_ba.
type TrafficKeys byte

const (
	KeysAB TrafficKeys = constKeyA // k_ab[j] = CPRF(mk[j], CONST_KEY_A, ...)
	KeysBA TrafficKeys = constKeyB // k_ba[j] = CPRF(mk[j], CONST_KEY_B, ...)
)

// keyGeneration is one direction's key of generation gen: the AEAD keyed
// with K and the nonce randomizer NR of k_ab[gen] or k_ba[gen], and mk[gen]
// to derive the next generation. Only its cipher changes after it is made:
// Release drops it while a flow is idle (an AEAD state is most of what an
// idle connection holds) and the next frame builds it again from mk. It is
// always held hidden (hidden.go).
type keyGeneration struct {
	aead   AEADID
	keys   TrafficKeys
	mk     [KeyLen]byte
	nr     [NRLen]byte
	cipher cipher.AEAD // nil after Release, until the next frame
	gen    uint32
}

// newKeyGeneration derives the traffic key of generation gen from mk[gen]
// (RFC 8548 §3.3, §3.6 Figure 4).
func newKeyGeneration(aead AEADID, mk []byte, keys TrafficKeys, gen uint32) (hidden[keyGeneration], error) {
	if !aead.Valid() {
		return hidden[keyGeneration]{}, errUnknownAEAD
	}
	if len(mk) != KeyLen {
		return hidden[keyGeneration]{}, errKeyLength
	}
	if keys != KeysAB && keys != KeysBA {
		return hidden[keyGeneration]{}, errKeysDir
	}
	g := &keyGeneration{aead: aead, keys: keys, gen: gen}
	copy(g.mk[:], mk)
	if err := g.build(); err != nil {
		return hidden[keyGeneration]{}, err
	}
	return hide(g), nil
}

// build derives k = K | NR from mk and keys the AEAD with K.
func (g *keyGeneration) build() error {
	var tk [32 + NRLen]byte
	defer clear(tk[:])
	k := tk[:g.aead.KeyLen()+NRLen]
	cprf(k, g.mk[:], byte(g.keys), nil)
	key := k[:g.aead.KeyLen()]
	copy(g.nr[:], k[g.aead.KeyLen():])
	var err error
	switch g.aead {
	case AES128GCM, AES256GCM:
		var block cipher.Block
		if block, err = aes.NewCipher(key); err == nil {
			g.cipher, err = cipher.NewGCM(block)
		}
	case ChaCha20Poly1305:
		g.cipher, err = chacha20poly1305.New(key)
	}
	return err
}

// aeadCipher returns the AEAD, built again if Release dropped it.
func (g *keyGeneration) aeadCipher() cipher.AEAD {
	if g.cipher == nil {
		if err := g.build(); err != nil {
			// Unreachable: the AEAD and key were valid when g was made.
			panic("tcpcrypt: rebuilding a released key: " + err.Error())
		}
	}
	return g.cipher
}

// next derives generation gen+1: mk[j+1] = CPRF(mk[j], CONST_REKEY, K_LEN)
// (RFC 8548 §3.3, §3.8).
func (g *keyGeneration) next() (hidden[keyGeneration], error) {
	var mk [KeyLen]byte
	defer clear(mk[:])
	cprf(mk[:], g.mk[:], constRekey, nil)
	return newKeyGeneration(g.aead, mk[:], g.keys, g.gen+1)
}

// Sealer is one direction's sending state: the local generation of RFC
// 8548 §3.8. It is not safe for concurrent use.
type Sealer struct {
	cur   hidden[keyGeneration]
	fresh bool        // cur is a new generation no frame has used yet: the next frame has rekey = 1
	nonce [NRLen]byte // scratch, kept here so SealFrame does not allocate
}

// NewSealer starts a direction at generation 0 from mk[0], sealing with the
// traffic key keys names.
func NewSealer(aead AEADID, mk0 []byte, keys TrafficKeys) (*Sealer, error) {
	g, err := newKeyGeneration(aead, mk0, keys, 0)
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
	aead := s.beginFrame(frame, clen, offset)
	aead.Seal(pt[:0], s.nonce[:], pt, frameAssociatedData(frame))
	return dst[:start+FrameHeaderLen+clen]
}

// SealFrameAfter is SealFrame (without URG) for data that has a byte in
// front of it the caller lends: src[0], restored before it returns, and
// the data src[1:]. The frame's plaintext, the flags byte then the data
// (the first variant of RFC 8548 §4.2.1, URGp and fres zero), is sealed
// from where it lies into dst with the same associated data and nonce as
// SealFrame's (§4.2.2, §4.2.3): one pass over the data instead of a copy
// and a pass. dst must not overlap src.
func (s *Sealer) SealFrameAfter(dst []byte, offset uint64, flags byte, src []byte) []byte {
	flags &= knownFlags &^ FlagURG
	clen := len(src) + TagLen
	if len(src)-1 > MaxFrameData {
		panic(fmt.Sprintf("tcpcrypt: SealFrameAfter with %d bytes of data (max %d)", len(src)-1, MaxFrameData))
	}
	start := len(dst)
	dst = slices.Grow(dst, FrameHeaderLen+clen)[:start+FrameHeaderLen]
	frame := dst[start:]
	aead := s.beginFrame(frame, clen, offset)
	lent := src[0]
	src[0] = flags
	aead.Seal(frame[FrameHeaderLen:FrameHeaderLen], s.nonce[:], src, frameAssociatedData(frame))
	src[0] = lent
	return dst[:start+FrameHeaderLen+clen]
}

// beginFrame writes the frame header (rekey bit, length; RFC 8548 §4.2)
// and the nonce of the frame at offset, and returns the AEAD to seal it
// with.
func (s *Sealer) beginFrame(frame []byte, clen int, offset uint64) cipher.AEAD {
	g := s.cur.get()
	frame[0] = 0
	if s.fresh {
		frame[0], s.fresh = ControlRekey, false
	}
	binary.BigEndian.PutUint16(frame[1:3], uint16(clen))
	putFrameNonce(&s.nonce, &g.nr, offset)
	return g.aeadCipher()
}

// Rekey increments the local generation (RFC 8548 §3.8): the next frame
// sealed uses the next key set and carries rekey = 1; frames already sealed
// keep theirs. The receiver counts one generation per rekey = 1 frame, so
// while no frame has used the new generation yet Rekey does nothing and
// reports false.
func (s *Sealer) Rekey() bool {
	if s.fresh {
		return false
	}
	g, err := s.cur.get().next()
	if err != nil {
		// Unreachable: the AEAD and key length were valid for the current
		// generation and the derivation keeps both.
		panic("tcpcrypt: rekey: " + err.Error())
	}
	s.cur, s.fresh = g, true
	return true
}

// Release drops the AEAD state until the next frame (an idle connection
// need not keep it); keys and generation stay.
func (s *Sealer) Release() { s.cur.get().cipher = nil }

// Released reports whether the AEAD state is dropped (until the next frame).
func (s *Sealer) Released() bool { return s.cur.get().cipher == nil }

// CatchUp is one step of answering the peer's rekey (RFC 8548 §3.8): "If
// the remote generation number is now greater than the local generation
// number, the receiver MUST immediately increment its local generation
// number to match. Moreover, ... it MUST immediately send a frame (with
// empty application data if necessary) with rekey = 1." It reports whether
// the caller must seal one more frame (empty if it has no data) to get to
// remote, starting the next generation first when needed. The peer counts
// one generation per rekey = 1 frame, so a rekey of ours not yet on the
// wire goes out first and each further generation needs its own frame:
//
//	for s.CatchUp(remote) { seal a frame }
func (s *Sealer) CatchUp(remote uint32) bool {
	if s.Generation() >= remote {
		return false
	}
	if !s.fresh {
		s.Rekey()
	}
	return true
}

// RekeyPending reports whether the next frame sealed will carry rekey = 1.
func (s *Sealer) RekeyPending() bool { return s.fresh }

// Generation is the local generation: that of the next frame sealed (0 at
// start).
func (s *Sealer) Generation() uint32 { return s.cur.get().gen }

// AEAD is the direction's algorithm.
func (s *Sealer) AEAD() AEADID { return s.cur.get().aead }

// Format prints the algorithm and generation, never the key.
func (s *Sealer) Format(f fmt.State, _ rune) {
	fmt.Fprintf(f, "Sealer(%v, generation %d)", s.AEAD(), s.Generation())
}

// Opener is one direction's receiving state: the remote generation of RFC
// 8548 §3.8. Frames must be opened in stream order (the FrameReader and the
// gateway's reassembly guarantee it): a frame with rekey = 1 is the first
// of the sender's next generation, every other frame belongs to the
// current one. It is not safe for concurrent use.
type Opener struct {
	cur   hidden[keyGeneration]
	next  hidden[keyGeneration] // derived on the first rekey = 1 frame, kept if that frame fails
	nonce [NRLen]byte
}

// NewOpener starts a direction at generation 0 from mk[0], opening with the
// traffic key keys names.
func NewOpener(aead AEADID, mk0 []byte, keys TrafficKeys) (*Opener, error) {
	g, err := newKeyGeneration(aead, mk0, keys, 0)
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
	advance := frame[0]&ControlRekey != 0
	if advance {
		if !o.next.ok() {
			if o.next, err = g.next(); err != nil {
				return 0, 0, nil, err
			}
		}
		g = o.next.get()
	}

	putFrameNonce(&o.nonce, &g.nr, offset)
	ct := frame[FrameHeaderLen:]
	pt, err := g.aeadCipher().Open(ct[:0], o.nonce[:], ct, frameAssociatedData(frame))
	if err != nil {
		return 0, 0, nil, errFrameAuth
	}
	if advance {
		// The older generation's key is dropped: frames are opened in
		// order, so none will need it again (§3.8: delete older keys).
		o.cur, o.next = o.next, hidden[keyGeneration]{}
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

// Release drops the AEAD state until the next frame (an idle connection
// need not keep it), and the next generation if one was derived ahead.
func (o *Opener) Release() {
	o.cur.get().cipher = nil
	o.next = hidden[keyGeneration]{}
}

// Generation is the remote generation: that of the last frame opened.
func (o *Opener) Generation() uint32 { return o.cur.get().gen }

// AEAD is the direction's algorithm.
func (o *Opener) AEAD() AEADID { return o.cur.get().aead }

// Format prints the algorithm and generation, never the key.
func (o *Opener) Format(f fmt.State, _ rune) {
	fmt.Fprintf(f, "Opener(%v, generation %d)", o.AEAD(), o.Generation())
}
