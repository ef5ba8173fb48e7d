package rfcref_test

// A reference tcpcrypt host built only on the reference encoder of
// ref_test.go: it runs the key exchange of RFC 8548 Section 3.3 over a
// byte stream and exchanges encryption frames with the rekeying rules of
// Section 3.8. It imports nothing from tcpcrypt-gw; interop_test.go pits
// it against crypto/endpoint.

import (
	"bufio"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
)

// maxInit bounds the Init message a reference peer accepts.
const maxInit = 4096

// refPeer is one end of a tcpcrypt connection.
type refPeer struct {
	conn net.Conn
	r    *bufio.Reader
	tep  byte
	isA  bool // role in the (fresh) session: A seals with k_ab

	aead      uint16
	ss        [][]byte // ss[0], ss[1]
	sessionID []byte
	mk        [][]byte // mk[0..], extended on demand

	sendOff, recvOff    uint64
	localGen, remoteGen int
	rekeyNext           bool // the next frame sent carries rekey = 1
	finSent, finSeen    bool
}

// genPrivate returns a fresh private key in the vector encoding of tep.
func genPrivate(tep byte) ([]byte, error) {
	switch tep {
	case tepX25519MLKEM768: // docs/pq-tep.md section 10: d | z | x
		b := make([]byte, pqSeedLen+pqXLen)
		_, err := rand.Read(b)
		return b, err
	case tepCurve25519:
		b := make([]byte, 32)
		_, err := rand.Read(b)
		return b, err
	case tepCurve448:
		b := make([]byte, 56)
		_, err := rand.Read(b)
		return b, err
	}
	ec, _, ok := nistCurve(tep)
	if !ok {
		return nil, fmt.Errorf("unknown TEP %#02x", tep)
	}
	k, err := ec.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	return k.Bytes(), nil
}

// readInit reads one whole Init message with the given magic and checks
// that it has no ignored bytes (Section 4.1: senders MUST NOT add them).
func (p *refPeer) readInit(magic uint32, fixed int) ([]byte, error) {
	hdr := make([]byte, 8)
	if _, err := io.ReadFull(p.r, hdr); err != nil {
		return nil, fmt.Errorf("reading Init header: %w", err)
	}
	if got := binary.BigEndian.Uint32(hdr); got != magic {
		return nil, fmt.Errorf("Init magic %#08x, want %#08x", got, magic)
	}
	m := int(binary.BigEndian.Uint32(hdr[4:]))
	if m < 8 || m > maxInit {
		return nil, fmt.Errorf("Init message_len %d", m)
	}
	msg := make([]byte, m)
	copy(msg, hdr)
	if _, err := io.ReadFull(p.r, msg[8:]); err != nil {
		return nil, fmt.Errorf("reading Init body: %w", err)
	}
	if fixed >= 0 && m != fixed {
		return msg, fmt.Errorf("Init message_len %d, want %d: the sender added ignored bytes or misencoded a field", m, fixed)
	}
	return msg, nil
}

// handshakeA plays host A: send Init1 offering ciphers, read Init2.
func (p *refPeer) handshakeA(transcript []byte, ciphers []uint16) error {
	p.isA = true
	priv, err := genPrivate(p.tep)
	if err != nil {
		return err
	}
	var pub []byte
	if p.tep == tepX25519MLKEM768 {
		pub, err = pqPubA(priv)
	} else {
		pub, err = pubWire(p.tep, priv)
	}
	if err != nil {
		return err
	}
	nA := make([]byte, nALen)
	rand.Read(nA)
	init1 := buildInit1(ciphers, nA, pub, nil)
	if _, err := p.conn.Write(init1); err != nil {
		return err
	}
	init2, err := p.readInit(init2Magic, 10+nBLen+pubBWireLen(p.tep))
	if err != nil {
		return err
	}
	m2, err := parseInit2(p.tep, init2)
	if err != nil {
		return err
	}
	if !slices.Contains(ciphers, m2.cipher) {
		return fmt.Errorf("Init2 chose %#04x, not offered in %x", m2.cipher, ciphers)
	}
	var es []byte
	if p.tep == tepX25519MLKEM768 {
		es, err = pqShared(priv, m2.pubB)
	} else {
		es, err = sharedSecret(p.tep, priv, m2.pubB)
	}
	if err != nil {
		return fmt.Errorf("ES: %w", err)
	}
	p.keys(transcript, nA, init1, init2, es, m2.cipher)
	p.sendOff, p.recvOff = uint64(len(init1)), uint64(len(init2))
	return nil
}

// handshakeB plays host B: read Init1, choose want, answer with Init2.
func (p *refPeer) handshakeB(transcript []byte, want uint16) error {
	p.isA = false
	init1, err := p.readInit(init1Magic, -1)
	if err != nil {
		return err
	}
	m1, err := parseInit1(p.tep, init1)
	if err != nil {
		return err
	}
	if len(init1) != 9+2*len(m1.ciphers)+nALen+pubWireLen(p.tep) {
		return fmt.Errorf("Init1 has %d bytes for %d ciphers: ignored bytes or a misencoded field", len(init1), len(m1.ciphers))
	}
	if !slices.Contains(m1.ciphers, want) {
		return fmt.Errorf("Init1 offers %x, not %#04x", m1.ciphers, want)
	}
	priv, err := genPrivate(p.tep)
	if err != nil {
		return err
	}
	var pub, es []byte
	if p.tep == tepX25519MLKEM768 {
		m := make([]byte, 32) // FIPS 203 ML-KEM.Encaps: fresh randomness
		rand.Read(m)
		pub, es, err = pqRespond(priv, m1.pubA, m)
	} else {
		if pub, err = pubWire(p.tep, priv); err != nil {
			return err
		}
		es, err = sharedSecret(p.tep, priv, m1.pubA)
	}
	if err != nil {
		return fmt.Errorf("ES: %w", err)
	}
	nB := make([]byte, nBLen)
	rand.Read(nB)
	init2 := buildInit2(want, nB, pub, nil)
	p.keys(transcript, m1.nA, init1, init2, es, want)
	if _, err := p.conn.Write(init2); err != nil {
		return err
	}
	p.sendOff, p.recvOff = uint64(len(init2)), uint64(len(init1))
	return nil
}

// keys runs the key schedule of Sections 3.3 and 3.4 for a fresh session.
func (p *refPeer) keys(transcript, nA, init1, init2, es []byte, aead uint16) {
	p.aead = aead
	prk := extract(nA, cat(transcript, init1, init2, es))
	p.ss = sessionSecrets(prk, 2)
	// B sent the negotiated TEP with v = 0 in a fresh session.
	p.sessionID = sessionID(p.tep, p.ss[0], nil)
	p.mk = masterKeys(p.ss[0], nil, 1)
}

// trafficKey is k_ab[gen] or k_ba[gen] for sending (send = true) or
// receiving.
func (p *refPeer) trafficKey(gen int, send bool) []byte {
	for len(p.mk) <= gen {
		p.mk = append(p.mk, cprf(p.mk[len(p.mk)-1], []byte{constREKEY}, kLen))
	}
	kab, kba := trafficKeys(p.mk[gen], p.aead)
	if send == p.isA {
		return kab
	}
	return kba
}

// initiateRekey increments the local generation (Section 3.8): the next
// frame sent uses the new key set and carries rekey = 1.
func (p *refPeer) initiateRekey() {
	p.localGen++
	p.rekeyNext = true
}

// sendFrame seals one frame at the current stream offset and writes it.
func (p *refPeer) sendFrame(flags byte, urgent uint16, data []byte) error {
	if p.finSent {
		return errors.New("frame after FIN frame")
	}
	f, err := sealFrame(p.aead, p.trafficKey(p.localGen, true), p.sendOff,
		framePlain{rekey: p.rekeyNext, flags: flags, urgent: urgent, data: data})
	if err != nil {
		return err
	}
	p.rekeyNext = false
	if _, err := p.conn.Write(f); err != nil {
		return err
	}
	p.sendOff += uint64(len(f))
	if flags&flagFIN != 0 {
		p.finSent = true
	}
	return nil
}

// recvFrame reads and opens the next frame and applies Section 3.8: a
// frame with rekey = 1 advances the remote generation; if that passes the
// local generation, the local generation follows and, unless a FIN frame
// has gone out, a frame with rekey = 1 (empty data) is sent at once.
func (p *refPeer) recvFrame() (framePlain, error) {
	hdr := make([]byte, 3)
	if _, err := io.ReadFull(p.r, hdr); err != nil {
		return framePlain{}, err
	}
	clen := int(binary.BigEndian.Uint16(hdr[1:]))
	frame := make([]byte, 3+clen)
	copy(frame, hdr)
	if _, err := io.ReadFull(p.r, frame[3:]); err != nil {
		return framePlain{}, fmt.Errorf("frame body: %w", err)
	}
	gen := p.remoteGen
	if hdr[0]&0x01 != 0 {
		gen++
	}
	f, err := openFrame(p.aead, p.trafficKey(gen, false), p.recvOff, frame)
	if err != nil {
		return f, fmt.Errorf("frame at offset %d, generation %d: %w", p.recvOff, gen, err)
	}
	if p.finSeen {
		return f, errors.New("frame after the FIN frame")
	}
	p.recvOff += uint64(len(frame))
	p.remoteGen = gen
	if f.flags&flagFIN != 0 {
		p.finSeen = true
	}
	if f.rekey {
		if p.remoteGen > p.localGen {
			p.localGen = p.remoteGen
			if !p.finSent {
				p.rekeyNext = true
				if err := p.sendFrame(0, 0, nil); err != nil {
					return f, fmt.Errorf("answering rekey: %w", err)
				}
			}
			// After our FIN the new generation is never used: rekeyNext
			// stays false, nothing more is sent.
		}
	}
	return f, nil
}
