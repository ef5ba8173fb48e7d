// Package rfcref_test holds a second, independent tcpcrypt encoder written
// straight from the figures of RFC 8548 (tcpcrypt) and RFC 8547 (TCP-ENO).
//
// The encoder in this file deliberately imports nothing from tcpcrypt-gw:
// only the standard library, golang.org/x/crypto/chacha20poly1305 and
// github.com/cloudflare/circl/dh/x448. It exists so that a misreading of a
// figure in the project's own encoders shows up as a byte mismatch against
// an implementation that was written without looking at them.
//
// Section references below are to RFC 8548 unless marked otherwise.
package rfcref_test

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math/big"

	"github.com/cloudflare/circl/dh/x448"
	"golang.org/x/crypto/chacha20poly1305"
)

// TEP identifiers, Table 4 (Section 7).
const (
	tepP256       byte = 0x21
	tepP521       byte = 0x22
	tepCurve25519 byte = 0x23
	tepCurve448   byte = 0x24
)

// AEAD identifiers, Table 5 (Section 7).
const (
	aeadAES128GCM        uint16 = 0x0001
	aeadAES256GCM        uint16 = 0x0002
	aeadChaCha20Poly1305 uint16 = 0x0010
)

// Constant values, Table 1 (Section 4.3).
const (
	constNEXTK  byte   = 0x01
	constSESSID byte   = 0x02
	constREKEY  byte   = 0x03
	constKEYA   byte   = 0x04
	constKEYB   byte   = 0x05
	constRESUME byte   = 0x06
	init1Magic  uint32 = 0x15101a0e
	init2Magic  uint32 = 0x097105e0
)

// Lengths fixed for all four TEPs, Section 5.
const (
	nALen = 32
	nBLen = 32
	kLen  = 32
)

// Resumption identifier length and nonce bound, Section 3.5.
const (
	resumeLen      = 18
	resumeHalf     = 9
	maxResumeNonce = 8
)

// ENO option kind, RFC 8547 Section 4.1 / 11.
const enoKind = 69

// AEAD tag length: all three algorithms of Table 3 produce 16-byte tags
// (RFC 5116 Sections 5.1/5.2, RFC 8439 Section 2.8).
const tagLen = 16

// ---------------------------------------------------------------------
// Section 3.1, Figure 1: HKDF-Extract and HKDF-Expand with SHA-256.

func hmacSHA256(key []byte, parts ...[]byte) []byte {
	m := hmac.New(sha256.New, key)
	for _, p := range parts {
		m.Write(p)
	}
	return m.Sum(nil)
}

// extract is HKDF-Extract(salt, IKM) = HMAC-Hash(salt, IKM).
func extract(salt, ikm []byte) []byte { return hmacSHA256(salt, ikm) }

// cprf is HKDF-Expand(PRK, CONST, L) exactly as in Figure 1:
//
//	T(0) = empty string
//	T(n) = HMAC-Hash(PRK, T(n-1) | CONST | n)   (n in a single octet)
//	OKM  = first L octets of T(1) | T(2) | ...
func cprf(prk, cnst []byte, l int) []byte {
	if l < 0 || l > 255*sha256.Size {
		panic("cprf: bad length")
	}
	var okm, t []byte
	for n := 1; len(okm) < l; n++ {
		t = hmacSHA256(prk, t, cnst, []byte{byte(n)})
		okm = append(okm, t...)
	}
	return okm[:l]
}

func cat(parts ...[]byte) []byte {
	var out []byte
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// ---------------------------------------------------------------------
// Section 5: key-agreement schemes.

// nistCurve returns the Go curve objects for the two ECDHE TEPs.
func nistCurve(tep byte) (ecdh.Curve, elliptic.Curve, bool) {
	switch tep {
	case tepP256:
		return ecdh.P256(), elliptic.P256(), true
	case tepP521:
		return ecdh.P521(), elliptic.P521(), true
	}
	return nil, nil, false
}

func coordLen(c elliptic.Curve) int { return (c.Params().BitSize + 7) / 8 }

// compressPoint implements the IEEE 1363 Section E.2.3 point-to-octet-string
// conversion in compressed form: PC = 0x02 | (y mod 2), followed by X
// padded to the field size.
func compressPoint(c elliptic.Curve, x, y *big.Int) []byte {
	out := make([]byte, 1+coordLen(c))
	out[0] = 0x02 | byte(y.Bit(0))
	x.FillBytes(out[1:])
	return out
}

// decompressPoint reverses compressPoint and performs the public-key
// validation of IEEE 1363 A.16.10 that is meaningful for a prime-order
// curve (cofactor 1): coordinates in [0, p-1], the point satisfies the
// curve equation, and it is not the point at infinity (which has no
// compressed encoding here).
func decompressPoint(c elliptic.Curve, b []byte) (x, y *big.Int, err error) {
	p := c.Params()
	n := coordLen(c)
	if len(b) != 1+n {
		return nil, nil, fmt.Errorf("compressed point: length %d, want %d", len(b), 1+n)
	}
	if b[0] != 0x02 && b[0] != 0x03 {
		return nil, nil, fmt.Errorf("compressed point: PC byte %#02x", b[0])
	}
	x = new(big.Int).SetBytes(b[1:])
	if x.Cmp(p.P) >= 0 {
		return nil, nil, errors.New("compressed point: x >= p")
	}
	// y^2 = x^3 - 3x + b (mod p)
	rhs := new(big.Int).Exp(x, big.NewInt(3), p.P)
	rhs.Sub(rhs, new(big.Int).Lsh(x, 1))
	rhs.Sub(rhs, x)
	rhs.Add(rhs, p.B)
	rhs.Mod(rhs, p.P)
	y = new(big.Int).ModSqrt(rhs, p.P)
	if y == nil {
		return nil, nil, errors.New("compressed point: x not on curve")
	}
	if y.Bit(0) != uint(b[0]&1) {
		y.Sub(p.P, y)
	}
	// Independent on-curve check of the recovered point.
	lhs := new(big.Int).Mul(y, y)
	lhs.Mod(lhs, p.P)
	if lhs.Cmp(rhs) != 0 {
		return nil, nil, errors.New("compressed point: recovered y does not satisfy the curve equation")
	}
	return x, y, nil
}

func uncompressed(c elliptic.Curve, x, y *big.Int) []byte {
	n := coordLen(c)
	out := make([]byte, 1+2*n)
	out[0] = 0x04
	x.FillBytes(out[1 : 1+n])
	y.FillBytes(out[1+n:])
	return out
}

// pubWire returns Pub_X as it is transmitted in Init1/Init2 (Section 5).
//
// NIST curves: "prefixed by a two-byte length in big-endian format", with
// the figure numbering the bytes of the whole structure 0 .. L-1, so L
// counts the two length bytes too. X25519/X448: the raw RFC 7748 string.
func pubWire(tep byte, priv []byte) ([]byte, error) {
	switch tep {
	case tepCurve25519:
		k, err := ecdh.X25519().NewPrivateKey(priv)
		if err != nil {
			return nil, err
		}
		return k.PublicKey().Bytes(), nil
	case tepCurve448:
		if len(priv) != x448.Size {
			return nil, fmt.Errorf("x448 private key: %d bytes", len(priv))
		}
		var sk, pk x448.Key
		copy(sk[:], priv)
		x448.KeyGen(&pk, &sk)
		return pk[:], nil
	}
	ec, c, ok := nistCurve(tep)
	if !ok {
		return nil, fmt.Errorf("unknown TEP %#02x", tep)
	}
	k, err := ec.NewPrivateKey(priv)
	if err != nil {
		return nil, err
	}
	u := k.PublicKey().Bytes() // 0x04 | X | Y
	n := coordLen(c)
	x := new(big.Int).SetBytes(u[1 : 1+n])
	y := new(big.Int).SetBytes(u[1+n:])
	point := compressPoint(c, x, y)
	out := make([]byte, 2, 2+len(point))
	binary.BigEndian.PutUint16(out, uint16(2+len(point)))
	return append(out, point...), nil
}

// pubWireLen is the length of Pub_A (and for the RFC TEPs Pub_B) on the
// wire for a TEP.
func pubWireLen(tep byte) int {
	switch tep {
	case tepX25519MLKEM768:
		return pqPubALen
	case tepCurve25519:
		return 32
	case tepCurve448:
		return 56
	case tepP256:
		return 2 + 1 + 32
	case tepP521:
		return 2 + 1 + 66
	}
	return -1
}

// sharedSecret computes ES (Section 5) from a local private key and the
// peer's public key as transmitted.
func sharedSecret(tep byte, priv, peerWire []byte) ([]byte, error) {
	switch tep {
	case tepCurve25519:
		k, err := ecdh.X25519().NewPrivateKey(priv)
		if err != nil {
			return nil, err
		}
		pk, err := ecdh.X25519().NewPublicKey(peerWire)
		if err != nil {
			return nil, err
		}
		es, err := k.ECDH(pk) // rejects the all-zero output (RFC 7748 §6)
		if err != nil {
			return nil, err
		}
		return es, nil
	case tepCurve448:
		if len(priv) != x448.Size || len(peerWire) != x448.Size {
			return nil, errors.New("x448: bad key length")
		}
		var sk, pk, es x448.Key
		copy(sk[:], priv)
		copy(pk[:], peerWire)
		if !x448.Shared(&es, &sk, &pk) { // false on an all-zero result
			return nil, errors.New("x448: all-zero shared secret")
		}
		return es[:], nil
	}
	ec, c, ok := nistCurve(tep)
	if !ok {
		return nil, fmt.Errorf("unknown TEP %#02x", tep)
	}
	x, y, err := parseNISTPub(c, peerWire)
	if err != nil {
		return nil, err
	}
	k, err := ec.NewPrivateKey(priv)
	if err != nil {
		return nil, err
	}
	pk, err := ec.NewPublicKey(uncompressed(c, x, y)) // validates again
	if err != nil {
		return nil, err
	}
	return k.ECDH(pk) // ECSVDP-DH: the x-coordinate of the shared point
}

// parseNISTPub parses pubkey_len | pubkey (Section 5) with L counting the
// whole structure, then decompresses and validates the point.
func parseNISTPub(c elliptic.Curve, w []byte) (x, y *big.Int, err error) {
	if len(w) < 2 {
		return nil, nil, errors.New("pubkey: shorter than its length field")
	}
	l := int(binary.BigEndian.Uint16(w))
	if l != len(w) {
		return nil, nil, fmt.Errorf("pubkey_len = %d, structure is %d bytes", l, len(w))
	}
	return decompressPoint(c, w[2:])
}

// ---------------------------------------------------------------------
// Section 4.1: Init1 and Init2.

func buildInit1(ciphers []uint16, nA, pubA, ignored []byte) []byte {
	m := 4 + 4 + 1 + 2*len(ciphers) + len(nA) + len(pubA) + len(ignored)
	b := binary.BigEndian.AppendUint32(nil, init1Magic)
	b = binary.BigEndian.AppendUint32(b, uint32(m))
	b = append(b, byte(len(ciphers)))
	for _, c := range ciphers {
		b = binary.BigEndian.AppendUint16(b, c)
	}
	return cat(b, nA, pubA, ignored)
}

func buildInit2(cipher uint16, nB, pubB, ignored []byte) []byte {
	m := 4 + 4 + 2 + len(nB) + len(pubB) + len(ignored)
	b := binary.BigEndian.AppendUint32(nil, init2Magic)
	b = binary.BigEndian.AppendUint32(b, uint32(m))
	b = binary.BigEndian.AppendUint16(b, cipher)
	return cat(b, nB, pubB, ignored)
}

type init1Msg struct {
	ciphers []uint16
	nA      []byte
	pubA    []byte
}

type init2Msg struct {
	cipher uint16
	nB     []byte
	pubB   []byte
}

// pubBWireLen is the length of Pub_B: Pub_A's for the RFC TEPs, whose
// Pub_A and Pub_B have one format (Section 5).
func pubBWireLen(tep byte) int {
	if tep == tepX25519MLKEM768 {
		return pqPubBLen
	}
	return pubWireLen(tep)
}

// parseInit1 reads one whole Init1 message (message_len bytes).
func parseInit1(tep byte, b []byte) (init1Msg, error) {
	var m init1Msg
	if len(b) < 9 || binary.BigEndian.Uint32(b) != init1Magic {
		return m, errors.New("init1: bad magic")
	}
	ml := int(binary.BigEndian.Uint32(b[4:]))
	if ml != len(b) {
		return m, fmt.Errorf("init1: message_len %d for %d bytes", ml, len(b))
	}
	k := int(b[8])
	off := 9 + 2*k
	if off+nALen+pubWireLen(tep) > ml {
		return m, errors.New("init1: too short")
	}
	for i := range k {
		m.ciphers = append(m.ciphers, binary.BigEndian.Uint16(b[9+2*i:]))
	}
	m.nA = b[off : off+nALen]
	m.pubA = b[off+nALen : off+nALen+pubWireLen(tep)]
	return m, nil // bytes after Pub_A are ignored (Section 4.1)
}

func parseInit2(tep byte, b []byte) (init2Msg, error) {
	var m init2Msg
	if len(b) < 10 || binary.BigEndian.Uint32(b) != init2Magic {
		return m, errors.New("init2: bad magic")
	}
	ml := int(binary.BigEndian.Uint32(b[4:]))
	if ml != len(b) {
		return m, fmt.Errorf("init2: message_len %d for %d bytes", ml, len(b))
	}
	if 10+nBLen+pubBWireLen(tep) > ml {
		return m, errors.New("init2: too short")
	}
	m.cipher = binary.BigEndian.Uint16(b[8:])
	m.nB = b[10 : 10+nBLen]
	m.pubB = b[10+nBLen : 10+nBLen+pubBWireLen(tep)]
	return m, nil
}

// ---------------------------------------------------------------------
// Sections 3.3-3.5: the key schedule.

func sessionSecrets(prk []byte, n int) [][]byte {
	ss := [][]byte{prk}
	for i := 1; i < n; i++ {
		ss = append(ss, cprf(ss[i-1], []byte{constNEXTK}, kLen))
	}
	return ss
}

func sessionID(tepByte byte, ss, sn []byte) []byte {
	return cat([]byte{tepByte}, cprf(ss, cat([]byte{constSESSID}, sn), kLen))
}

func resumeID(ss []byte) []byte { return cprf(ss, []byte{constRESUME}, resumeLen) }

func masterKeys(ss, sn []byte, n int) [][]byte {
	mk := [][]byte{cprf(ss, cat([]byte{constREKEY}, sn), kLen)}
	for j := 1; j < n; j++ {
		mk = append(mk, cprf(mk[j-1], []byte{constREKEY}, kLen))
	}
	return mk
}

// aeadLens is Table 3.
func aeadLens(id uint16) (keyLen, nonceLen int, ok bool) {
	switch id {
	case aeadAES128GCM:
		return 16, 12, true
	case aeadAES256GCM, aeadChaCha20Poly1305:
		return 32, 12, true
	}
	return 0, 0, false
}

func aeadName(id uint16) string {
	switch id {
	case aeadAES128GCM:
		return "aes128gcm"
	case aeadAES256GCM:
		return "aes256gcm"
	case aeadChaCha20Poly1305:
		return "chacha20poly1305"
	}
	return fmt.Sprintf("aead-%#04x", id)
}

// trafficKeys returns k_ab[j] and k_ba[j] for one master key.
func trafficKeys(mk []byte, id uint16) (kab, kba []byte) {
	kl, nl, ok := aeadLens(id)
	if !ok {
		panic("unknown AEAD")
	}
	return cprf(mk, []byte{constKEYA}, kl+nl), cprf(mk, []byte{constKEYB}, kl+nl)
}

// ---------------------------------------------------------------------
// Sections 3.6 and 4.2: encryption frames.

func newAEAD(id uint16, key []byte) (cipher.AEAD, error) {
	switch id {
	case aeadAES128GCM, aeadAES256GCM:
		blk, err := aes.NewCipher(key)
		if err != nil {
			return nil, err
		}
		return cipher.NewGCM(blk)
	case aeadChaCha20Poly1305:
		return chacha20poly1305.New(key)
	}
	return nil, fmt.Errorf("unknown AEAD %#04x", id)
}

// splitTrafficKey divides a traffic key as in Figure 4.
func splitTrafficKey(id uint16, tk []byte) (k, nr []byte) {
	kl, nl, _ := aeadLens(id)
	if len(tk) != kl+nl {
		panic("traffic key length")
	}
	return tk[:kl], tk[kl:]
}

// frameNonce is N = frame_ID XOR NR (Sections 3.6 and 4.2.3).
func frameNonce(nr []byte, offset uint64) []byte {
	fid := make([]byte, len(nr))
	binary.BigEndian.PutUint64(fid[len(fid)-8:], offset)
	for i := range fid {
		fid[i] ^= nr[i]
	}
	return fid
}

const (
	flagFIN byte = 0x01
	flagURG byte = 0x02
)

// framePlain is the decoded content of one frame.
type framePlain struct {
	rekey  bool
	flags  byte
	urgent uint16
	data   []byte
}

// sealFrame builds control | clen | ciphertext (Section 4.2) for a frame
// that starts at byte offset in the sender's TCP stream.
func sealFrame(id uint16, tk []byte, offset uint64, f framePlain) ([]byte, error) {
	k, nr := splitTrafficKey(id, tk)
	a, err := newAEAD(id, k)
	if err != nil {
		return nil, err
	}
	pt := []byte{f.flags} // Section 4.2.1
	if f.flags&flagURG != 0 {
		pt = binary.BigEndian.AppendUint16(pt, f.urgent)
	}
	pt = append(pt, f.data...)
	clen := len(pt) + a.Overhead()
	if clen >= 1<<16 {
		return nil, errors.New("frame: ciphertext too long")
	}
	var control byte
	if f.rekey {
		control = 0x01
	}
	hdr := []byte{control, byte(clen >> 8), byte(clen)} // == associated data (4.2.2)
	return a.Seal(hdr, frameNonce(nr, offset), pt, hdr), nil
}

// openFrame authenticates and decodes one complete frame.
func openFrame(id uint16, tk []byte, offset uint64, frame []byte) (framePlain, error) {
	var f framePlain
	if len(frame) < 3 {
		return f, errors.New("frame: short header")
	}
	clen := int(binary.BigEndian.Uint16(frame[1:3]))
	if len(frame) != 3+clen {
		return f, fmt.Errorf("frame: clen %d for %d bytes of ciphertext", clen, len(frame)-3)
	}
	k, nr := splitTrafficKey(id, tk)
	a, err := newAEAD(id, k)
	if err != nil {
		return f, err
	}
	pt, err := a.Open(nil, frameNonce(nr, offset), frame[3:], frame[:3])
	if err != nil {
		return f, err
	}
	f.rekey = frame[0]&0x01 != 0 // cres bits are ignored on receipt
	if len(pt) < 1 {
		return f, errors.New("frame: empty plaintext")
	}
	f.flags = pt[0]
	pt = pt[1:]
	if f.flags&flagURG != 0 {
		if len(pt) < 2 {
			return f, errors.New("frame: URGp without urgent field")
		}
		f.urgent = binary.BigEndian.Uint16(pt)
		pt = pt[2:]
	}
	f.data = pt
	return f, nil
}

// ---------------------------------------------------------------------
// RFC 8547: ENO options.

type enoSubopt struct {
	b    byte   // initial suboption byte (v bit | glt)
	data []byte // suboption data (v = 1 only)
}

type enoOption struct {
	global  byte // explicit or implicit (0x00) global suboption
	subopts []enoSubopt
}

// parseENO parses a SYN-form ENO option including kind and length bytes
// (RFC 8547 Sections 4.1-4.4).
func parseENO(opt []byte) (enoOption, error) {
	var o enoOption
	if len(opt) < 2 || opt[0] != enoKind || int(opt[1]) != len(opt) {
		return o, fmt.Errorf("ENO option: bad kind/length in %x", opt)
	}
	globalSeen := false
	c := opt[2:]
	for len(c) > 0 {
		b := c[0]
		v, glt := b&0x80 != 0, b&0x7f
		switch {
		case !v && glt < 0x20: // global suboption: only the first counts
			if !globalSeen {
				o.global, globalSeen = b, true
			}
			c = c[1:]
		case !v: // TEP without data
			o.subopts = append(o.subopts, enoSubopt{b: b})
			c = c[1:]
		case glt < 0x20: // length byte: 100nnnnn
			if b&0xe0 != 0x80 {
				return o, fmt.Errorf("ENO option: bad length byte %#02x", b)
			}
			n := int(b&0x1f) + 1
			if len(c) < 2+n || c[1] < 0xa0 {
				return o, errors.New("ENO option: bad suboption after length byte")
			}
			o.subopts = append(o.subopts, enoSubopt{b: c[1], data: c[2 : 2+n]})
			c = c[2+n:]
		default: // TEP with data to the end of the option
			o.subopts = append(o.subopts, enoSubopt{b: b, data: c[1:]})
			c = nil
		}
	}
	return o, nil
}

// negotiatedTEP returns the byte (TEP identifier and v bit) that host B
// sent for the negotiated TEP: the last TEP identifier in B's SYN-form
// option that also occurs in A's (RFC 8547 Section 4.5, RFC 8548 Section
// 3.2; the v bit is not part of the comparison).
func negotiatedTEP(synA, synB enoOption) (byte, bool) {
	for i := len(synB.subopts) - 1; i >= 0; i-- {
		glt := synB.subopts[i].b & 0x7f
		for _, s := range synA.subopts {
			if s.b&0x7f == glt {
				return synB.subopts[i].b, true
			}
		}
	}
	return 0, false
}

// buildENO builds a SYN-form ENO option from raw suboption bytes.
func buildENO(subopts ...[]byte) []byte {
	c := cat(subopts...)
	return cat([]byte{enoKind, byte(2 + len(c))}, c)
}

// resumeSubopt builds the resumption suboption of Figure 2 (original role
// A: first half) or Figure 3 (original role B: second half).
func resumeSubopt(tep byte, resume []byte, origA bool, nonce []byte) []byte {
	half := resume[resumeHalf:resumeLen] // resume[i]{9..17}
	if origA {
		half = resume[:resumeHalf] // resume[i]{0..8}
	}
	return cat([]byte{tep | 0x80}, half, nonce)
}

// ---------------------------------------------------------------------
// A whole fresh session computed from its inputs.

type refSession struct {
	tep        byte
	pubA, pubB []byte
	transcript []byte
	init1      []byte
	init2      []byte
	es, esB    []byte // ES as computed by A and by B
	prk        []byte
	ss         [][]byte
	sessionIDs [][]byte
	resume     [][]byte
	mk         [][]byte
}

type refInputs struct {
	tep                  byte
	privA, privB         []byte
	nA, nB               []byte
	enoSynA, enoSynAckB  []byte
	ciphers              []uint16
	init1Ign, init2Ign   []byte
	cipher               uint16
	generations, secrets int
	encapsRandom         []byte // x25519mlkem768: B's ML-KEM randomness m
}

func computeSession(in refInputs) (*refSession, error) {
	s := &refSession{tep: in.tep}
	var err error
	if in.tep == tepX25519MLKEM768 { // docs/pq-tep.md, pq_test.go
		if s.pubA, err = pqPubA(in.privA); err != nil {
			return nil, fmt.Errorf("Pub_A: %w", err)
		}
		if s.pubB, s.esB, err = pqRespond(in.privB, s.pubA, in.encapsRandom); err != nil {
			return nil, fmt.Errorf("Pub_B: %w", err)
		}
	} else {
		if s.pubA, err = pubWire(in.tep, in.privA); err != nil {
			return nil, fmt.Errorf("Pub_A: %w", err)
		}
		if s.pubB, err = pubWire(in.tep, in.privB); err != nil {
			return nil, fmt.Errorf("Pub_B: %w", err)
		}
	}
	oa, err := parseENO(in.enoSynA)
	if err != nil {
		return nil, err
	}
	ob, err := parseENO(in.enoSynAckB)
	if err != nil {
		return nil, err
	}
	if oa.global&0x01 != 0 || ob.global&0x01 == 0 {
		return nil, fmt.Errorf("ENO roles: A's b bit %d, B's b bit %d", oa.global&1, ob.global&1)
	}
	tepByte, ok := negotiatedTEP(oa, ob)
	if !ok {
		return nil, errors.New("ENO: no negotiated TEP")
	}
	if tepByte&0x7f != in.tep {
		return nil, fmt.Errorf("ENO negotiates TEP %#02x, vector says %#02x", tepByte&0x7f, in.tep)
	}
	s.transcript = cat(in.enoSynA, in.enoSynAckB)
	s.init1 = buildInit1(in.ciphers, in.nA, s.pubA, in.init1Ign)
	s.init2 = buildInit2(in.cipher, in.nB, s.pubB, in.init2Ign)
	if in.tep == tepX25519MLKEM768 {
		if s.es, err = pqShared(in.privA, s.pubB); err != nil {
			return nil, fmt.Errorf("ES at A: %w", err)
		}
	} else {
		if s.es, err = sharedSecret(in.tep, in.privA, s.pubB); err != nil {
			return nil, fmt.Errorf("ES at A: %w", err)
		}
		if s.esB, err = sharedSecret(in.tep, in.privB, s.pubA); err != nil {
			return nil, fmt.Errorf("ES at B: %w", err)
		}
	}
	if !bytes.Equal(s.es, s.esB) {
		return nil, fmt.Errorf("ES differs: A %x, B %x", s.es, s.esB)
	}
	s.prk = extract(in.nA, cat(s.transcript, s.init1, s.init2, s.es))
	s.ss = sessionSecrets(s.prk, in.secrets)
	for _, ss := range s.ss {
		s.resume = append(s.resume, resumeID(ss))
	}
	// session_id[0] is the only one with an empty session nonce.
	s.sessionIDs = [][]byte{sessionID(tepByte, s.ss[0], nil)}
	s.mk = masterKeys(s.ss[0], nil, in.generations)
	return s, nil
}
