package rfcref_test

// Stream-level interoperability of the reference peer (peer_test.go, built
// only on the RFC reference encoder) with the project's own host
// implementation, crypto/endpoint: all four TEPs x three AEADs x both
// roles, over a loopback TCP pair.

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"testing"
	"time"

	"tcpcrypt-gw/crypto/endpoint"
	"tcpcrypt-gw/crypto/tcpcrypt"
	"tcpcrypt-gw/eno"
)

const (
	stepTimeout  = 5 * time.Second // bound on any one step of the script
	rekeyTimeout = 2 * time.Second // "immediately" (Section 3.8), generously
	maxFrameData = 1<<16 - 1 - tagLen - 1
)

func tcpPair(t *testing.T) (a, b *net.TCPConn) {
	t.Helper()
	ln, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	type res struct {
		c   *net.TCPConn
		err error
	}
	ch := make(chan res, 1)
	go func() {
		c, err := ln.AcceptTCP()
		ch <- res{c, err}
	}()
	a, err = net.DialTCP("tcp", nil, ln.Addr().(*net.TCPAddr))
	if err != nil {
		t.Fatal(err)
	}
	r := <-ch
	if r.err != nil {
		a.Close()
		t.Fatal(r.err)
	}
	t.Cleanup(func() { a.Close(); r.c.Close() })
	return a, r.c
}

type epRead struct {
	data []byte
	err  error
}

// epReader keeps the endpoint's application reading, as an application
// with nothing to send would, and hands what it reads to the test.
type epReader struct {
	ch   chan epRead
	done chan struct{}
}

func startEPReader(c *endpoint.Conn) *epReader {
	r := &epReader{ch: make(chan epRead, 64), done: make(chan struct{})}
	go func() {
		buf := make([]byte, 1<<17)
		for {
			n, err := c.Read(buf)
			if n > 0 {
				select {
				case r.ch <- epRead{data: bytes.Clone(buf[:n])}:
				case <-r.done:
					return
				}
			}
			if err != nil {
				select {
				case r.ch <- epRead{err: err}:
				case <-r.done:
				}
				return
			}
		}
	}()
	return r
}

// expect collects exactly want from the endpoint's application.
func (r *epReader) expect(t *testing.T, what string, want []byte) {
	t.Helper()
	var got []byte
	timer := time.NewTimer(stepTimeout)
	defer timer.Stop()
	for len(got) < len(want) {
		select {
		case x := <-r.ch:
			if x.err != nil {
				t.Fatalf("%s: endpoint Read after %d of %d bytes: %v", what, len(got), len(want), x.err)
			}
			got = append(got, x.data...)
		case <-timer.C:
			t.Fatalf("%s: endpoint read %d of %d bytes in %v", what, len(got), len(want), stepTimeout)
		}
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s: endpoint read different bytes (%d, want %d)", what, len(got), len(want))
	}
}

func (r *epReader) expectEOF(t *testing.T, what string) {
	t.Helper()
	select {
	case x := <-r.ch:
		if x.err != io.EOF {
			t.Fatalf("%s: endpoint Read gave %d bytes, err %v; want io.EOF", what, len(x.data), x.err)
		}
	case <-time.After(stepTimeout):
		t.Fatalf("%s: no io.EOF at the endpoint within %v", what, stepTimeout)
	}
}

// peerRecv reads frames at the reference peer until n data bytes have
// arrived and returns the data and the frames.
func peerRecv(t *testing.T, p *refPeer, what string, n int) ([]byte, []framePlain) {
	t.Helper()
	p.conn.SetReadDeadline(time.Now().Add(stepTimeout))
	var data []byte
	var frames []framePlain
	for len(data) < n {
		f, err := p.recvFrame()
		if err != nil {
			t.Fatalf("%s: reference peer, after %d of %d bytes: %v", what, len(data), n, err)
		}
		frames = append(frames, f)
		data = append(data, f.data...)
	}
	return data, frames
}

// peerSend sends data in frames of the given sizes (the last size repeats).
func peerSend(t *testing.T, p *refPeer, what string, data []byte, sizes ...int) {
	t.Helper()
	p.conn.SetWriteDeadline(time.Now().Add(stepTimeout))
	for i := 0; len(data) > 0 || i == 0; i++ {
		n := min(sizes[min(i, len(sizes)-1)], len(data))
		if err := p.sendFrame(0, 0, data[:n]); err != nil {
			t.Fatalf("%s: reference peer send: %v", what, err)
		}
		data = data[n:]
	}
}

func TestInteropEndpoint(t *testing.T) {
	teps := []byte{tepP256, tepP521, tepCurve25519, tepCurve448, tepX25519MLKEM768}
	for _, tep := range teps {
		for _, aead := range wantAEADs {
			for _, peerIsA := range []bool{true, false} {
				role := "ref-A_vs_endpoint-B"
				if !peerIsA {
					role = "ref-B_vs_endpoint-A"
				}
				name := fmt.Sprintf("%s/%s/%s", tcpcrypt.TEP(tep), aeadName(aead), role)
				t.Run(name, func(t *testing.T) {
					t.Parallel()
					runInterop(t, tep, aead, peerIsA)
				})
			}
		}
	}
}

func runInterop(t *testing.T, tep byte, aead uint16, peerIsA bool) {
	seed := uint64(aead) << 1
	if peerIsA {
		seed |= 1
	}
	rng := rand.New(rand.NewPCG(uint64(tep), seed))
	random := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}
	peerConn, epConn := tcpPair(t)
	deadline := time.Now().Add(4 * stepTimeout)
	peerConn.SetDeadline(deadline)
	epConn.SetDeadline(deadline)

	// TCP-ENO as it would have run: A offers all four TEPs, B (global
	// suboption with b = 1) answers with the one it chose, v = 0.
	offer := []byte{tepP256, tepP521, tepCurve25519, tepCurve448}
	if tep == tepX25519MLKEM768 { // docs/pq-tep.md: offered beside the RFC TEPs
		offer = append([]byte{tepX25519MLKEM768}, offer...)
	}
	transcript := cat(buildENO(offer), buildENO([]byte{0x01, tep}))

	// A offers all three AEADs; B accepts only the one under test, so the
	// choice is forced either way. As A, the endpoint lists it first; as
	// A, the reference peer lists it last.
	others := []uint16{}
	for _, id := range wantAEADs {
		if id != aead {
			others = append(others, id)
		}
	}
	cfg := endpoint.Config{TEP: tcpcrypt.TEP(tep), Transcript: transcript}
	if peerIsA {
		cfg.Role = eno.RoleB
		cfg.Ciphers = []tcpcrypt.AEADID{tcpcrypt.AEADID(aead)}
	} else {
		cfg.Role = eno.RoleA
		for _, id := range append([]uint16{aead}, others...) {
			cfg.Ciphers = append(cfg.Ciphers, tcpcrypt.AEADID(id))
		}
	}
	type hsResult struct {
		c   *endpoint.Conn
		err error
	}
	hs := make(chan hsResult, 1)
	go func() {
		c, err := endpoint.Handshake(epConn, cfg)
		hs <- hsResult{c, err}
	}()

	p := &refPeer{conn: peerConn, r: bufio.NewReader(peerConn), tep: tep}
	var perr error
	if peerIsA {
		perr = p.handshakeA(transcript, append(others, aead))
	} else {
		perr = p.handshakeB(transcript, aead)
	}
	if perr != nil {
		peerConn.Close()
		r := <-hs
		t.Fatalf("reference handshake: %v (endpoint: %v)", perr, r.err)
	}
	r := <-hs
	if r.err != nil {
		t.Fatalf("endpoint.Handshake: %v", r.err)
	}
	ep := r.c
	defer ep.Close()
	if p.aead != aead {
		t.Fatalf("negotiated AEAD %#04x, want %#04x", p.aead, aead)
	}
	if !bytes.Equal(ep.SessionID(), p.sessionID) {
		t.Fatalf("session IDs differ:\n  endpoint: %x\n  rfcref:   %x", ep.SessionID(), p.sessionID)
	}
	rd := startEPReader(ep)
	defer close(rd.done)

	// 1. Reference -> endpoint, generation 0, in frames of assorted sizes
	// including an empty one.
	d1 := random(3000)
	peerSend(t, p, "step 1", d1, 1, 0, 999, 700)
	rd.expect(t, "step 1", d1)

	// 2. Endpoint -> reference, generation 0.
	e1 := random(5000)
	if _, err := ep.Write(e1); err != nil {
		t.Fatalf("step 2: endpoint Write: %v", err)
	}
	got, frames := peerRecv(t, p, "step 2", len(e1))
	if !bytes.Equal(got, e1) {
		t.Fatal("step 2: reference peer read different bytes")
	}
	for i, f := range frames {
		if f.rekey || f.flags != 0 {
			t.Fatalf("step 2: endpoint frame %d has rekey %v, flags %#02x", i, f.rekey, f.flags)
		}
	}

	// 3. The reference peer initiates rekeying (generation 1). The
	// endpoint's application reads and has nothing to send; the endpoint
	// must still answer at once with a frame with rekey = 1 (Section 3.8).
	p.initiateRekey()
	d2 := random(100)
	peerSend(t, p, "step 3", d2, 100)
	rd.expect(t, "step 3", d2)
	p.conn.SetReadDeadline(time.Now().Add(rekeyTimeout))
	f, err := p.recvFrame()
	if err != nil {
		t.Fatalf("step 3: no frame from the endpoint within %v after the peer's rekey (RFC 8548 §3.8: the receiver MUST immediately send a frame with rekey = 1): %v", rekeyTimeout, err)
	}
	if !f.rekey || len(f.data) != 0 || p.remoteGen != 1 {
		t.Fatalf("step 3: endpoint answered the rekey with rekey %v, %d data bytes (remote generation %d), want an empty rekey frame of generation 1", f.rekey, len(f.data), p.remoteGen)
	}

	// 4. The endpoint initiates rekeying (generation 2); the reference
	// peer follows and answers with its own rekey frame.
	if err := ep.Rekey(); err != nil {
		t.Fatalf("step 4: endpoint Rekey: %v", err)
	}
	e2 := random(2000)
	if _, err := ep.Write(e2); err != nil {
		t.Fatalf("step 4: endpoint Write: %v", err)
	}
	got, frames = peerRecv(t, p, "step 4", len(e2))
	if !bytes.Equal(got, e2) {
		t.Fatal("step 4: reference peer read different bytes")
	}
	if !frames[0].rekey || p.remoteGen != 2 || p.localGen != 2 {
		t.Fatalf("step 4: first frame rekey %v, generations remote %d local %d; want a rekey to 2", frames[0].rekey, p.remoteGen, p.localGen)
	}

	// 5. Generation 2 from the reference peer, in one largest frame (clen
	// = 65535, Section 3.6: ciphertext shorter than 2^16 bytes): the
	// endpoint can open it only if it moved to generation 2.
	d3 := random(maxFrameData)
	peerSend(t, p, "step 5", d3, maxFrameData)
	rd.expect(t, "step 5", d3)

	// 6. Two rekeys in a row from the reference peer (generations 3 and
	// 4, each with data); the endpoint answers each.
	p.initiateRekey()
	d4 := random(10)
	peerSend(t, p, "step 6", d4, 10)
	p.initiateRekey()
	d5 := random(20)
	peerSend(t, p, "step 6", d5, 20)
	rd.expect(t, "step 6", append(bytes.Clone(d4), d5...))
	for want := 3; want <= 4; want++ {
		p.conn.SetReadDeadline(time.Now().Add(rekeyTimeout))
		f, err := p.recvFrame()
		if err != nil {
			t.Fatalf("step 6: waiting for the endpoint's rekey to %d: %v", want, err)
		}
		if !f.rekey || p.remoteGen != want {
			t.Fatalf("step 6: endpoint frame rekey %v, remote generation %d, want a rekey to %d", f.rekey, p.remoteGen, want)
		}
	}

	// 7. The reference peer ends its direction: FIN frame with data, then
	// the TCP FIN. The endpoint reports the data, then end-of-file.
	d6 := random(42)
	p.conn.SetWriteDeadline(time.Now().Add(stepTimeout))
	if err := p.sendFrame(flagFIN, 0, d6); err != nil {
		t.Fatalf("step 7: %v", err)
	}
	if err := peerConn.CloseWrite(); err != nil {
		t.Fatalf("step 7: CloseWrite: %v", err)
	}
	rd.expect(t, "step 7", d6)
	rd.expectEOF(t, "step 7")

	// 8. The endpoint rekeys once more (generation 5), sends data, and ends
	// its direction. The reference peer, having sent its FIN frame, only
	// follows the generation (Section 3.8).
	if err := ep.Rekey(); err != nil {
		t.Fatalf("step 8: endpoint Rekey: %v", err)
	}
	e3 := random(3333)
	if _, err := ep.Write(e3); err != nil {
		t.Fatalf("step 8: endpoint Write: %v", err)
	}
	if err := ep.CloseWrite(); err != nil {
		t.Fatalf("step 8: endpoint CloseWrite: %v", err)
	}
	got, frames = peerRecv(t, p, "step 8", len(e3))
	if !bytes.Equal(got, e3) {
		t.Fatal("step 8: reference peer read different bytes")
	}
	if !frames[0].rekey || p.remoteGen != 5 {
		t.Fatalf("step 8: first frame rekey %v, remote generation %d; want a rekey to 5", frames[0].rekey, p.remoteGen)
	}
	for !p.finSeen {
		f, err := p.recvFrame()
		if err != nil {
			t.Fatalf("step 8: waiting for the endpoint's FIN frame: %v", err)
		}
		if len(f.data) != 0 {
			t.Fatalf("step 8: %d unexpected data bytes before FIN", len(f.data))
		}
	}
	if _, err := p.r.ReadByte(); !errors.Is(err, io.EOF) {
		t.Fatalf("step 8: after the FIN frame the stream should end (TCP FIN), got %v", err)
	}
	if !bytes.Equal(ep.SessionID(), p.sessionID) {
		t.Fatalf("session ID changed during the connection")
	}

	runResumed(t, p, ep.CacheEntry(), random)
}

// runResumed resumes the session from ss[1] (RFC 8548 Section 3.5) on a
// new connection on which the host that played B originally is the active
// opener, hence ENO role A: roles in the new session are swapped, while
// each host keeps sealing with the traffic keys of its original role.
func runResumed(t *testing.T, orig *refPeer, entry endpoint.Entry, random func(int) []byte) {
	peerConn, epConn := tcpPair(t)
	deadline := time.Now().Add(4 * stepTimeout)
	peerConn.SetDeadline(deadline)
	epConn.SetDeadline(deadline)

	ss1 := orig.ss[1]
	if !bytes.Equal(entry.Secret.Bytes(), ss1) {
		t.Fatalf("resume: endpoint caches ss[1] = %x, reference %x", entry.Secret.Bytes(), ss1)
	}
	// nonce_a goes with resume[1]{0..8} from the host that was A in the
	// original session (Figure 2), nonce_b with resume[1]{9..17} (Figure 3).
	nonceA, nonceB := random(8), random(8)
	sn := cat(nonceA, nonceB)
	var epOwn, epPeer []byte
	cfg := endpoint.Config{TEP: tcpcrypt.TEP(orig.tep), Resume: &entry, SessionNonce: sn}
	if orig.isA {
		cfg.Role = eno.RoleA // the endpoint was B: it opens now
		epOwn, epPeer = nonceB, nonceA
	} else {
		cfg.Role = eno.RoleB // the reference peer was B: it opens now
		epOwn, epPeer = nonceA, nonceB
	}
	if got := endpoint.SessionNonce(entry, epOwn, epPeer); !bytes.Equal(got, sn) {
		t.Errorf("resume: endpoint.SessionNonce = %x, want nonce_a | nonce_b = %x", got, sn)
	}
	ep, err := endpoint.Handshake(epConn, cfg)
	if err != nil {
		t.Fatalf("resume: endpoint.Handshake: %v", err)
	}
	defer ep.Close()
	p := &refPeer{conn: peerConn, r: bufio.NewReader(peerConn), tep: orig.tep, isA: orig.isA, aead: orig.aead}
	p.sessionID = sessionID(orig.tep|0x80, ss1, sn) // B sent the TEP with v = 1
	p.mk = masterKeys(ss1, sn, 1)
	if !bytes.Equal(ep.SessionID(), p.sessionID) {
		t.Fatalf("resume: session IDs differ:\n  endpoint: %x\n  rfcref:   %x", ep.SessionID(), p.sessionID)
	}
	rd := startEPReader(ep)
	defer close(rd.done)

	// Data both ways at offset 0 (no Init messages), a rekey each way
	// with the prompt answer, and the FIN frames.
	d1 := random(1500)
	peerSend(t, p, "resume 1", d1, 1000)
	rd.expect(t, "resume 1", d1)
	e1 := random(1500)
	if _, err := ep.Write(e1); err != nil {
		t.Fatalf("resume 2: endpoint Write: %v", err)
	}
	if got, _ := peerRecv(t, p, "resume 2", len(e1)); !bytes.Equal(got, e1) {
		t.Fatal("resume 2: reference peer read different bytes")
	}
	p.initiateRekey()
	d2 := random(7)
	peerSend(t, p, "resume 3", d2, 7)
	rd.expect(t, "resume 3", d2)
	p.conn.SetReadDeadline(time.Now().Add(rekeyTimeout))
	if f, err := p.recvFrame(); err != nil || !f.rekey || p.remoteGen != 1 {
		t.Fatalf("resume 3: endpoint's answer to the rekey: rekey %v, remote generation %d, err %v", f.rekey, p.remoteGen, err)
	}
	if err := ep.Rekey(); err != nil {
		t.Fatal(err)
	}
	e2 := random(9)
	if _, err := ep.Write(e2); err != nil {
		t.Fatalf("resume 4: endpoint Write: %v", err)
	}
	got, frames := peerRecv(t, p, "resume 4", len(e2))
	if !bytes.Equal(got, e2) || !frames[0].rekey || p.localGen != 2 {
		t.Fatalf("resume 4: data ok %v, rekey %v, local generation %d", bytes.Equal(got, e2), frames[0].rekey, p.localGen)
	}
	d3 := random(11)
	p.conn.SetWriteDeadline(time.Now().Add(stepTimeout))
	if err := p.sendFrame(flagFIN, 0, d3); err != nil {
		t.Fatal(err)
	}
	rd.expect(t, "resume 5", d3)
	rd.expectEOF(t, "resume 5")
	if err := ep.CloseWrite(); err != nil {
		t.Fatalf("resume 6: endpoint CloseWrite: %v", err)
	}
	p.conn.SetReadDeadline(time.Now().Add(stepTimeout))
	for !p.finSeen {
		if _, err := p.recvFrame(); err != nil {
			t.Fatalf("resume 6: waiting for the endpoint's FIN frame: %v", err)
		}
	}
}
