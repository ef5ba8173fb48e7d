package endpoint

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"tcpcrypt-gw/crypto/tcpcrypt"
	"tcpcrypt-gw/eno"
)

var (
	allTEPs  = []tcpcrypt.TEP{tcpcrypt.TEPP256, tcpcrypt.TEPP521, tcpcrypt.TEPCurve25519, tcpcrypt.TEPCurve448, tcpcrypt.TEPX25519MLKEM768}
	allAEADs = []tcpcrypt.AEADID{tcpcrypt.AES128GCM, tcpcrypt.AES256GCM, tcpcrypt.ChaCha20Poly1305}

	// testKeys hands out a fresh key pair per handshake (lifetime 0).
	testKeys = tcpcrypt.NewKeyPool(allTEPs, 0)
)

// testTimeout bounds every connection of a test: no test can hang.
const testTimeout = 2 * time.Minute

// tcpPair returns the two ends of a fresh TCP connection over 127.0.0.1:
// a is the active opener (role A), b the passive one. Both close at the end
// of the test.
func tcpPair(t testing.TB) (a, b *net.TCPConn) {
	t.Helper()
	ln, err := net.ListenTCP("tcp4", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	type accepted struct {
		c   *net.TCPConn
		err error
	}
	ch := make(chan accepted, 1)
	go func() {
		c, err := ln.AcceptTCP()
		ch <- accepted{c, err}
	}()
	a, err = net.DialTCP("tcp4", nil, ln.Addr().(*net.TCPAddr))
	if err != nil {
		t.Fatal(err)
	}
	r := <-ch
	if r.err != nil {
		a.Close()
		t.Fatal(r.err)
	}
	b = r.c
	t.Cleanup(func() { a.Close(); b.Close() })
	deadline := time.Now().Add(testTimeout)
	a.SetDeadline(deadline)
	b.SetDeadline(deadline)
	return a, b
}

// enoHost is one side of a simulated TCP-ENO SYN exchange.
type enoHost struct {
	teps     []tcpcrypt.TEP // supported, in order of preference
	cache    *Cache         // nil: no resumption
	peer     string         // how this host names the other in its cache
	nonceLen int            // bytes of resumption nonce it sends (0..8)
}

// enoOutcome is what both ends learned from the SYN exchange.
type enoOutcome struct {
	transcript []byte
	tep        tcpcrypt.TEP
	resumeA    *Entry // A (the active opener) resumes this entry
	resumeB    *Entry // B (the passive opener) resumes this entry
	offeredA   bool   // A offered resumption
	snA, snB   []byte // sn[i] as A and B computed it (resumption only)
	offer      eno.Suboption
	answer     eno.Suboption // B's chosen suboption, as sent
}

// simulateENO runs the SYN / SYN-ACK option exchange of RFC 8547 with the
// eno codec, as the gateway does on packets: A offers a cached secret (if
// any) with its half of resume[i] and a fresh nonce ahead of its ordinary
// TEPs; B takes the entry out of its cache by that half (RFC 8548 §3.5) and
// answers with its own half and nonce, or falls back to an ordinary TEP; A
// checks B's half. Each end then computes sn[i] = nonce_a | nonce_b. A
// resumption suboption with fewer than 9 bytes of data is, for B, an offer
// of fresh key exchange with that TEP.
func simulateENO(t testing.TB, a, b enoHost) enoOutcome {
	t.Helper()
	var out enoOutcome

	// A's SYN.
	var subs []eno.Suboption
	var aEntry Entry
	var aNonce []byte
	if a.cache != nil {
		if e, ok := a.cache.TakeForPeer(a.peer); ok {
			aEntry, aNonce, out.offeredA = e, NewResumeNonce(a.nonceLen), true
			out.offer = OfferResume(e, aNonce)
			subs = append(subs, out.offer)
		}
	}
	for _, tep := range a.teps {
		subs = append(subs, eno.Suboption{TEP: byte(tep)})
	}
	offer := eno.Offer(subs)
	aOpt, err := eno.AppendSYNOption(nil, offer)
	if err != nil {
		t.Fatalf("A's SYN option: %v", err)
	}

	// B's SYN-ACK.
	offerSeen, err := eno.ParseSYNOption(aOpt)
	if err != nil {
		t.Fatalf("B parsing A's option: %v", err)
	}
	var bEntry Entry
	var bPeerNonce []byte
	var bResumes bool
	chosen, ok := eno.Choose(offerSeen, func(s eno.Suboption) bool {
		if s.HasData && len(s.Data) >= resumeHalfLen {
			if b.cache == nil {
				return false
			}
			bEntry, bPeerNonce, bResumes = AcceptResume(b.cache, b.peer, s)
			return bResumes
		}
		// v = 0, or v = 1 with fewer than 9 bytes: fresh key exchange.
		return slices.Contains(b.teps, tcpcrypt.TEP(s.TEP))
	})
	if !ok {
		t.Fatal("B found no acceptable TEP")
	}
	var bNonce []byte
	switch {
	case bResumes:
		bNonce = NewResumeNonce(b.nonceLen)
		chosen = AnswerResume(bEntry, bNonce)
		out.resumeB = &bEntry
		out.snB = SessionNonce(bEntry, bNonce, bPeerNonce)
	case chosen.HasData:
		chosen = eno.Suboption{TEP: chosen.TEP} // fresh key exchange, v = 0
	}
	out.answer = chosen
	bOpt, err := eno.AppendSYNOption(nil, eno.Answer(chosen))
	if err != nil {
		t.Fatalf("B's SYN-ACK option: %v", err)
	}

	// A checks B's answer.
	answer, err := eno.ParseSYNOption(bOpt)
	if err != nil {
		t.Fatalf("A parsing B's option: %v", err)
	}
	var aPeerNonce []byte
	got, err := eno.Negotiated(offer, answer, func(offered, answered eno.Suboption) bool {
		if !out.offeredA || !offered.HasData {
			return false
		}
		n, ok := ResumeAnswerMatches(aEntry, answered)
		if ok {
			aPeerNonce = n
		}
		return ok
	})
	if err != nil {
		t.Fatalf("A rejects B's answer: %v", err)
	}
	if got.HasData {
		out.resumeA = &aEntry
		out.snA = SessionNonce(aEntry, aNonce, aPeerNonce)
	}
	if (out.resumeA != nil) != (out.resumeB != nil) {
		t.Fatalf("A resumes = %v but B resumes = %v", out.resumeA != nil, out.resumeB != nil)
	}
	out.tep = tcpcrypt.TEP(got.TEP)
	out.transcript = eno.Transcript(aOpt, bOpt)
	return out
}

// configs builds both ends' configurations from an ENO outcome: A offers
// every AEAD, aead first; B accepts all and prefers aead, so aead is chosen
// (B picks by its own order of preference, RFC 8548 §3.3).
func configs(out enoOutcome, aead tcpcrypt.AEADID) (cfgA, cfgB Config) {
	offered := []tcpcrypt.AEADID{aead}
	for _, x := range allAEADs {
		if x != aead {
			offered = append(offered, x)
		}
	}
	cfgA = Config{Role: eno.RoleA, TEP: out.tep, Transcript: out.transcript, Ciphers: offered, Keys: testKeys}
	cfgB = Config{Role: eno.RoleB, TEP: out.tep, Transcript: out.transcript, Ciphers: slices.Clone(offered), Keys: testKeys}
	if out.resumeA != nil {
		cfgA.Resume, cfgA.SessionNonce = out.resumeA, out.snA
		cfgB.Resume, cfgB.SessionNonce = out.resumeB, out.snB
	}
	return cfgA, cfgB
}

// handshakePair runs Handshake at both ends of conns at once.
func handshakePair(t testing.TB, connA, connB net.Conn, cfgA, cfgB Config) (a, b *Conn) {
	t.Helper()
	type result struct {
		c   *Conn
		err error
	}
	ch := make(chan result, 1)
	go func() {
		c, err := Handshake(connA, cfgA)
		ch <- result{c, err}
	}()
	b, errB := Handshake(connB, cfgB)
	r := <-ch
	if r.err != nil || errB != nil {
		t.Fatalf("handshake: A: %v, B: %v", r.err, errB)
	}
	return r.c, b
}

// recordConn records the first bytes written to a TCP connection.
type recordConn struct {
	*net.TCPConn
	mu    sync.Mutex
	first []byte
	limit int
}

func (r *recordConn) Write(p []byte) (int, error) {
	r.mu.Lock()
	if room := r.limit - len(r.first); room > 0 {
		r.first = append(r.first, p[:min(room, len(p))]...)
	}
	r.mu.Unlock()
	return r.TCPConn.Write(p)
}

func (r *recordConn) firstBytes() []byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.first)
}

// flipConn flips bit bit of the byte at stream position pos on its way out.
type flipConn struct {
	*net.TCPConn
	pos     int64
	bit     uint
	written int64
}

func (f *flipConn) Write(p []byte) (int, error) {
	if i := f.pos - f.written; i >= 0 && i < int64(len(p)) {
		p = slices.Clone(p)
		p[i] ^= 1 << f.bit
	}
	f.written += int64(len(p))
	return f.TCPConn.Write(p)
}

// cutConn forwards only the first limit bytes of the stream and swallows
// the rest, like a middlebox that cuts the stream.
type cutConn struct {
	*net.TCPConn
	limit   int64
	written int64
}

func (c *cutConn) Write(p []byte) (int, error) {
	if room := c.limit - c.written; room > 0 {
		if _, err := c.TCPConn.Write(p[:min(room, int64(len(p)))]); err != nil {
			return 0, err
		}
	}
	c.written += int64(len(p))
	return len(p), nil
}

// chunkSize draws a read or write size: often tiny, mostly up to max.
func chunkSize(rng *rand.Rand, max int) int {
	if rng.IntN(4) == 0 {
		return 1 + rng.IntN(16)
	}
	return 1 + rng.IntN(max)
}

func streamSource(seed uint64) *rand.ChaCha8 {
	var s [32]byte
	binary.LittleEndian.PutUint64(s[:], seed)
	return rand.NewChaCha8(s)
}

// sendStream writes n pseudo-random bytes (from seed) in random chunks,
// then the FIN frame, and returns the SHA-256 of what it sent.
func sendStream(c *Conn, n int64, seed uint64) ([32]byte, error) {
	rng := rand.New(rand.NewPCG(seed, 0x5e9d))
	src := streamSource(seed)
	h := sha256.New()
	const maxChunk = 200 << 10
	buf := make([]byte, maxChunk)
	for sent := int64(0); sent < n; {
		k := int(min(int64(chunkSize(rng, maxChunk)), n-sent))
		src.Read(buf[:k])
		h.Write(buf[:k])
		w, err := c.Write(buf[:k])
		sent += int64(w)
		if err != nil {
			return [32]byte{}, err
		}
		if w != k {
			return [32]byte{}, io.ErrShortWrite
		}
	}
	var sum [32]byte
	h.Sum(sum[:0])
	return sum, c.CloseWrite()
}

// recvStream reads until io.EOF in random chunks and returns the SHA-256
// and length of what it read; any other error is returned.
func recvStream(c *Conn, seed uint64) (sum [32]byte, n int64, err error) {
	rng := rand.New(rand.NewPCG(seed, 0x7ead))
	h := sha256.New()
	const maxChunk = 70 << 10
	buf := make([]byte, maxChunk)
	for {
		k, err := c.Read(buf[:chunkSize(rng, maxChunk)])
		h.Write(buf[:k])
		n += int64(k)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return sum, n, err
		}
	}
	h.Sum(sum[:0])
	return sum, n, nil
}

// exchange sends nAB bytes from a to b and nBA bytes from b to a at the
// same time and checks that each side received exactly what the other sent.
func exchange(t testing.TB, a, b *Conn, nAB, nBA int64, seed uint64) {
	t.Helper()
	type sent struct {
		sum [32]byte
		err error
	}
	type got struct {
		sum [32]byte
		n   int64
		err error
	}
	sentAB, sentBA := make(chan sent, 1), make(chan sent, 1)
	gotAB, gotBA := make(chan got, 1), make(chan got, 1)
	go func() { s, err := sendStream(a, nAB, seed); sentAB <- sent{s, err} }()
	go func() { s, err := sendStream(b, nBA, seed+1); sentBA <- sent{s, err} }()
	go func() { s, n, err := recvStream(b, seed+2); gotAB <- got{s, n, err} }()
	go func() { s, n, err := recvStream(a, seed+3); gotBA <- got{s, n, err} }()
	for _, dir := range []struct {
		name string
		n    int64
		s    chan sent
		g    chan got
	}{{"A->B", nAB, sentAB, gotAB}, {"B->A", nBA, sentBA, gotBA}} {
		s, g := <-dir.s, <-dir.g
		if s.err != nil || g.err != nil {
			t.Errorf("%s: send error %v, receive error %v", dir.name, s.err, g.err)
			continue
		}
		if g.n != dir.n || g.sum != s.sum {
			t.Errorf("%s: received %d bytes (sha256 %x), sent %d (sha256 %x)", dir.name, g.n, g.sum[:8], dir.n, s.sum[:8])
		}
	}
}

// readAll reads c until an error and returns what it read and the error
// (io.EOF for a clean end).
func readAll(c *Conn) ([]byte, error) {
	var out []byte
	buf := make([]byte, 4096)
	for {
		n, err := c.Read(buf)
		out = append(out, buf[:n]...)
		if err != nil {
			return out, err
		}
	}
}

// openFrames opens, in stream order from offset start, every whole frame at
// the start of wire with a fresh Opener for the traffic keys keys of mk0
// (RFC 8548 §3.3). It returns how many frames opened, and the first error.
func openFrames(wire []byte, start uint64, aead tcpcrypt.AEADID, mk0 []byte, keys tcpcrypt.TrafficKeys) (int, error) {
	o, err := tcpcrypt.NewOpener(aead, mk0, keys)
	if err != nil {
		return 0, err
	}
	wire = slices.Clone(wire)
	off, opened := start, 0
	for {
		n, need, err := tcpcrypt.FrameLen(wire)
		if err != nil {
			return opened, err
		}
		if need || n > len(wire) {
			return opened, nil
		}
		if _, _, _, err := o.OpenFrame(wire[:n], off); err != nil {
			return opened, err
		}
		wire, off = wire[n:], off+uint64(n)
		opened++
	}
}

// framePeer plays one end of a resumed tcpcrypt session by hand over a raw
// TCP connection: it seals and opens frames itself with a Sealer and an
// Opener, so a test sees every frame of the other end, control byte
// included.
type framePeer struct {
	t       testing.TB
	conn    net.Conn
	sealer  *tcpcrypt.Sealer
	opener  *tcpcrypt.Opener
	sendOff uint64
	recvOff uint64
}

// peerFrame is one frame the framePeer received.
type peerFrame struct {
	control byte
	flags   byte
	data    []byte
	gen     uint32 // the opener's generation after the frame
}

// send seals data (with flags) at the next offset and writes the frame.
func (p *framePeer) send(flags byte, data []byte) {
	p.t.Helper()
	frame := p.sealer.SealFrame(nil, p.sendOff, flags, 0, data)
	p.sendOff += uint64(len(frame))
	if _, err := p.conn.Write(frame); err != nil {
		p.t.Fatalf("raw peer write: %v", err)
	}
}

// recv reads and opens the next frame, waiting at most wait. The error is
// the stream's (a deadline, io.EOF) or the frame's.
func (p *framePeer) recv(wait time.Duration) (peerFrame, error) {
	p.conn.SetReadDeadline(time.Now().Add(wait))
	defer p.conn.SetReadDeadline(time.Now().Add(testTimeout))
	hdr := make([]byte, tcpcrypt.FrameHeaderLen)
	if _, err := io.ReadFull(p.conn, hdr); err != nil {
		return peerFrame{}, err
	}
	n, _, err := tcpcrypt.FrameLen(hdr)
	if err != nil {
		return peerFrame{}, err
	}
	frame := make([]byte, n)
	copy(frame, hdr)
	if _, err := io.ReadFull(p.conn, frame[len(hdr):]); err != nil {
		return peerFrame{}, err
	}
	control := frame[0]
	flags, _, data, err := p.opener.OpenFrame(frame, p.recvOff)
	if err != nil {
		return peerFrame{}, err
	}
	p.recvOff += uint64(n)
	return peerFrame{control: control, flags: flags, data: slices.Clone(data), gen: p.opener.Generation()}, nil
}

// mustRecv is recv that fails the test on an error.
func (p *framePeer) mustRecv(wait time.Duration) peerFrame {
	p.t.Helper()
	f, err := p.recv(wait)
	if err != nil {
		p.t.Fatalf("raw peer: no frame within %v: %v", wait, err)
	}
	return f
}

// noHalfClose hides the stream's CloseWrite: Conn.CloseWrite then sends
// the FIN frame only and the stream stays open for writing, so that a frame
// sent after the FIN frame would reach the peer.
type noHalfClose struct{ net.Conn }

// resumedWithPeer resumes a session from a fixed secret between a Conn
// (original role connOrig, current TCP-ENO role connRole) and a framePeer
// holding the other original role, over loopback TCP, with 16 bytes of
// session nonce. Resumption sends no Init messages, so the frames start at
// offset 0 both ways.
func resumedWithPeer(t *testing.T, aead tcpcrypt.AEADID, connRole, connOrig eno.Role, wrap func(net.Conn) net.Conn) (*Conn, *framePeer) {
	t.Helper()
	e := testEntry("raw peer session")
	e.AEAD, e.OriginalRole = aead, connOrig
	sn := []byte("nonce-a|nonce-b|")
	rawA, rawB := tcpPair(t)
	own, other := net.Conn(rawB), net.Conn(rawA)
	if connRole == eno.RoleA {
		own, other = rawA, rawB
	}
	if wrap != nil {
		own = wrap(own)
	}
	c, err := Handshake(own, Config{Role: connRole, TEP: e.TEP, Resume: &e, SessionNonce: sn})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	sealer, opener, err := tcpcrypt.NewSession(e.Secret, aead, sn, connOrig != eno.RoleA)
	if err != nil {
		t.Fatal(err)
	}
	return c, &framePeer{t: t, conn: other, sealer: sealer, opener: opener}
}

// backgroundReader reads c until an error and hands every piece of data
// to data; the error ends up in done.
func backgroundReader(c *Conn) (data <-chan []byte, done <-chan error) {
	d, e := make(chan []byte, 64), make(chan error, 1)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := c.Read(buf)
			if n > 0 {
				d <- slices.Clone(buf[:n])
			}
			if err != nil {
				e <- err
				return
			}
		}
	}()
	return d, e
}

// waitFor polls cond until it holds or wait has passed.
func waitFor(wait time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(wait)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(time.Millisecond)
	}
	return true
}
