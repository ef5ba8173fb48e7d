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
	allTEPs  = []tcpcrypt.TEP{tcpcrypt.TEPP256, tcpcrypt.TEPP521, tcpcrypt.TEPCurve25519, tcpcrypt.TEPCurve448}
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
	teps  []tcpcrypt.TEP // supported, in order of preference
	cache *Cache         // nil: no resumption
	peer  string         // how this host names the other in its cache
}

// enoOutcome is what both ends learned from the SYN exchange.
type enoOutcome struct {
	transcript []byte
	tep        tcpcrypt.TEP
	resumeA    *Entry // A resumes this entry
	resumeB    *Entry // B resumes this entry
	offeredA   bool   // A offered resumption
}

// simulateENO runs the SYN / SYN-ACK option exchange of RFC 8547 with the
// eno codec, as the gateway does on packets: A offers a cached secret (if
// any) ahead of its ordinary TEPs; B takes it out of its cache by the 9
// bytes A sent, or falls back to an ordinary TEP; A checks B's 9 bytes.
func simulateENO(t testing.TB, a, b enoHost) enoOutcome {
	t.Helper()
	var out enoOutcome

	// A's SYN.
	var subs []eno.Suboption
	var aEntry Entry
	if a.cache != nil {
		if e, ok := a.cache.TakeForPeer(a.peer); ok {
			aEntry, out.offeredA = e, true
			subs = append(subs, OfferResume(e))
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
	var bResumes bool
	chosen, ok := eno.Choose(offerSeen, func(s eno.Suboption) bool {
		if s.HasData {
			if b.cache == nil {
				return false
			}
			bEntry, bResumes = AcceptResume(b.cache, b.peer, s)
			return bResumes
		}
		return slices.Contains(b.teps, tcpcrypt.TEP(s.TEP))
	})
	if !ok {
		t.Fatal("B found no acceptable TEP")
	}
	if bResumes {
		chosen = AnswerResume(bEntry)
		out.resumeB = &bEntry
	}
	bOpt, err := eno.AppendSYNOption(nil, eno.Answer(chosen))
	if err != nil {
		t.Fatalf("B's SYN-ACK option: %v", err)
	}

	// A checks B's answer.
	answer, err := eno.ParseSYNOption(bOpt)
	if err != nil {
		t.Fatalf("A parsing B's option: %v", err)
	}
	got, err := eno.Negotiated(offer, answer, func(offered, answered eno.Suboption) bool {
		return out.offeredA && offered.HasData && ResumeAnswerMatches(aEntry, answered)
	})
	if err != nil {
		t.Fatalf("A rejects B's answer: %v", err)
	}
	if got.HasData {
		out.resumeA = &aEntry
	}
	if (out.resumeA != nil) != (out.resumeB != nil) {
		t.Fatalf("A resumes = %v but B resumes = %v", out.resumeA != nil, out.resumeB != nil)
	}
	out.tep = tcpcrypt.TEP(got.TEP)
	out.transcript = eno.Transcript(aOpt, bOpt)
	return out
}

// configs builds both ends' configurations from an ENO outcome: A offers
// aead first (then the others), B accepts all.
func configs(out enoOutcome, aead tcpcrypt.AEADID) (cfgA, cfgB Config) {
	offered := []tcpcrypt.AEADID{aead}
	for _, x := range allAEADs {
		if x != aead {
			offered = append(offered, x)
		}
	}
	cfgA = Config{Role: eno.RoleA, TEP: out.tep, Transcript: out.transcript, Ciphers: offered, Keys: testKeys}
	cfgB = Config{Role: eno.RoleB, TEP: out.tep, Transcript: out.transcript, Ciphers: allAEADs, Keys: testKeys}
	if out.resumeA != nil {
		cfgA.Resume, cfgA.ResumeAEAD = &out.resumeA.Secret, out.resumeA.AEAD
		cfgB.Resume, cfgB.ResumeAEAD = &out.resumeB.Secret, out.resumeB.AEAD
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
