// Package endpoint runs tcpcrypt (RFC 8548) over a connected byte stream, as
// an end host that speaks it natively would: after TCP-ENO (RFC 8547) has
// negotiated a tcpcrypt TEP, Handshake exchanges Init1/Init2 (or resumes a
// cached session) and returns a Conn that carries application data in
// encryption frames both ways.
//
// A full handshake (RFC 8548 §3.3, §4.1):
//
//  1. A sends Init1 (its AEADs, N_A, PK_A) as the first bytes of its stream.
//  2. B reads all of Init1 (message_len bounded by tcpcrypt.MaxInitLen),
//     picks an AEAD, computes ES and ss[0] and answers with Init2.
//  3. A reads all of Init2 and computes ES and ss[0]. Both derive sid[0]
//     and k_ab/k_ba; frames follow the Init message in each stream, their
//     offsets counting the Init bytes (tcpcrypt.FirstFrameOffset).
//
// A resumed session (RFC 8548 §3.5) sends no Init message: the cached ss[i]
// gives the keys and sid[i], and the first frame of each stream has offset 0.
//
// Sending (Write): data is cut into frames of at most MaxFrame bytes, each
// sealed at its stream offset, and batched into few writes. The own
// direction rekeys (RFC 8548 §3.8) every RekeyBytes plaintext bytes, and in
// any case before tcpcrypt.SafeFramesPerKey frames.
//
// Receiving (Read): stream bytes go into a bounded tcpcrypt.FrameReader,
// which opens whole frames in place. A frame that fails authentication (or
// is malformed) ends the connection with a TCP RST and ErrAuth, delivering
// nothing of it or after it (RFC 8548 §3.6). The stream ends with io.EOF only
// after an authenticated FIN frame; a TCP FIN without one is a truncation
// (ErrTruncated) and is answered with RST as well.
package endpoint

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"tcpcrypt-gw/crypto/tcpcrypt"
	"tcpcrypt-gw/eno"
)

// DefaultMaxFrame is the plaintext carried per frame when Config.MaxFrame
// is 0: a frame then fits one segment of a 1500-byte-MTU path with TCP
// options, the way the gateway frames.
const DefaultMaxFrame = 1380

const (
	// initHeaderLen is the part of an Init message that gives its length:
	// magic[4] | message_len[4] (RFC 8548 §4.1).
	initHeaderLen = 8

	// recvBufferLimit bounds the received bytes held before they form whole
	// frames: room for one largest frame plus a full read beside it.
	recvBufferLimit = 2 * tcpcrypt.MaxFrameLen
	readChunk       = 64 << 10

	// writeBatch is how many frame bytes Write gathers before handing them
	// to the stream: fewer system calls, still bounded.
	writeBatch = 64 << 10

	// closeFINTimeout bounds how long Close waits to send the FIN frame to
	// a peer that does not read.
	closeFINTimeout = time.Second
)

var (
	// ErrAuth: a received frame failed authentication or was malformed.
	// The connection has been reset; nothing of that frame or after it was
	// delivered. Errors returned by Read match it with errors.Is.
	ErrAuth = errors.New("tcpcrypt: received frame failed authentication; connection reset")

	// ErrTruncated: the stream ended without an authenticated FIN frame.
	ErrTruncated = errors.New("tcpcrypt: stream ended without a FIN frame; connection reset")

	// ErrHandshake: the peer's Init message was malformed or unacceptable,
	// or the stream failed before the keys existed. Errors returned by
	// Handshake for these reasons match it with errors.Is.
	ErrHandshake = errors.New("tcpcrypt: handshake failed")

	errWriteClosed = errors.New("tcpcrypt: write after CloseWrite")
)

// Config is what TCP-ENO decided for one connection and this end's policy.
type Config struct {
	Role       eno.Role     // this end's TCP-ENO role
	TEP        tcpcrypt.TEP // the negotiated TEP
	Transcript []byte       // eno_transcript: A's SYN option | B's SYN-ACK option, as on the wire

	// Ciphers are, for A, the AEADs offered in Init1 in order of
	// preference; for B, the AEADs it accepts.
	Ciphers []tcpcrypt.AEADID
	// Keys supplies ephemeral key pairs; nil means a fresh pair per
	// handshake.
	Keys *tcpcrypt.KeyPool

	// Resume, if non-nil, is the cached entry (ss[i], its AEAD and this
	// host's role in the original session) both ends agreed on in the ENO
	// exchange: no Init messages are sent (RFC 8548 §3.5). SessionNonce is
	// then sn[i] = nonce_a | nonce_b (see SessionNonce).
	Resume       *Entry
	SessionNonce []byte

	// RekeyBytes makes the own direction rekey after this many plaintext
	// bytes under one key; 0 rekeys only at the AEAD's safety bound.
	RekeyBytes int64
	// MaxFrame is the plaintext bytes per frame, 1..tcpcrypt.MaxFrameData;
	// 0 means DefaultMaxFrame.
	MaxFrame int
}

// check validates cfg without touching the stream; it returns the frame
// size to use.
func (cfg *Config) check() (maxFrame int, err error) {
	if cfg.Role != eno.RoleA && cfg.Role != eno.RoleB {
		return 0, errors.New("tcpcrypt: config: role must be A or B")
	}
	if !cfg.TEP.Valid() {
		return 0, fmt.Errorf("tcpcrypt: config: %v is not a tcpcrypt TEP", cfg.TEP)
	}
	if cfg.RekeyBytes < 0 {
		return 0, errors.New("tcpcrypt: config: RekeyBytes is negative")
	}
	maxFrame = cfg.MaxFrame
	if maxFrame == 0 {
		maxFrame = DefaultMaxFrame
	}
	if maxFrame < 1 || maxFrame > tcpcrypt.MaxFrameData {
		return 0, fmt.Errorf("tcpcrypt: config: MaxFrame %d outside 1..%d", cfg.MaxFrame, tcpcrypt.MaxFrameData)
	}
	if cfg.Resume != nil {
		r := cfg.Resume
		if !r.Secret.Valid() || !r.AEAD.Valid() || r.TEP != cfg.TEP || r.OriginalRole != eno.RoleA && r.OriginalRole != eno.RoleB {
			return 0, errors.New("tcpcrypt: config: resumption needs a valid secret, AEAD, TEP and original role")
		}
		if len(cfg.SessionNonce) > 2*tcpcrypt.MaxResumeNonceLen {
			return 0, errors.New("tcpcrypt: config: session nonce longer than two resumption nonces")
		}
		return maxFrame, nil
	}
	// Init1 carries the cipher count in one byte (RFC 8548 §4.1).
	if len(cfg.Ciphers) == 0 || len(cfg.Ciphers) > 255 {
		return 0, errors.New("tcpcrypt: config: need 1..255 ciphers")
	}
	for _, a := range cfg.Ciphers {
		if !a.Valid() {
			return 0, fmt.Errorf("tcpcrypt: config: unknown AEAD %v", a)
		}
	}
	return maxFrame, nil
}

// Conn is an established tcpcrypt connection. Read and Write may be called
// from different goroutines at once; Close, CloseWrite and Rekey from any.
// It implements net.Conn.
type Conn struct {
	conn         net.Conn
	role         eno.Role
	originalRole eno.Role // role in the session that produced ss[0]: picks the traffic keys
	tep          tcpcrypt.TEP
	aead         tcpcrypt.AEADID
	next         tcpcrypt.SessionSecret // ss[i+1]: ss[i] itself is dropped once the keys exist
	sessionID    []byte
	resumed      bool

	// Sending side, under wmu.
	wmu           sync.Mutex
	sealer        *tcpcrypt.Sealer
	sendOffset    uint64 // stream offset of the next frame
	maxFrame      int
	rekeyBytes    int64
	sinceRekey    int64 // plaintext bytes under the current key
	framesThisKey int
	rekeyPending  bool // Rekey was called: rekey before the next frame
	wbuf          []byte
	writeClosed   bool
	writeErr      error

	// Receiving side, under rmu.
	rmu        sync.Mutex
	opener     *tcpcrypt.Opener
	frames     *tcpcrypt.FrameReader
	rbuf       []byte
	pending    []byte // authenticated plaintext not yet read; aliases frames' buffer
	recvGen    uint32 // opener generation last seen
	readErr    error  // sticky: io.EOF, ErrAuth or ErrTruncated
	streamDone error  // the stream's own end or failure, once read

	rekeysSent     atomic.Uint64
	rekeysReceived atomic.Uint64

	closeOnce sync.Once
	closeErr  error
}

// Handshake runs tcpcrypt on conn, which TCP-ENO has just opened with the
// outcome in cfg, and returns the encrypted connection. Set a deadline on
// conn to bound the exchange. An invalid cfg is an error and leaves conn
// alone; any failure after that resets conn (RST) and matches ErrHandshake
// when the peer or the stream is at fault.
func Handshake(conn net.Conn, cfg Config) (*Conn, error) {
	maxFrame, err := cfg.check()
	if err != nil {
		return nil, err
	}
	c := &Conn{
		conn:         conn,
		role:         cfg.Role,
		originalRole: cfg.Role,
		tep:          cfg.TEP,
		maxFrame:     maxFrame,
		rekeyBytes:   cfg.RekeyBytes,
	}
	switch {
	case cfg.Resume != nil:
		c.resumed, c.originalRole = true, cfg.Resume.OriginalRole
		start := tcpcrypt.FirstFrameOffset(0)
		err = c.start(cfg.Resume.Secret, cfg.Resume.AEAD, cfg.SessionNonce, start, start)
	case cfg.Role == eno.RoleA:
		err = c.handshakeA(&cfg)
	default:
		err = c.handshakeB(&cfg)
	}
	if err != nil {
		reset(conn)
		return nil, err
	}
	return c, nil
}

// handshakeA sends Init1, then reads and checks Init2 (RFC 8548 §3.3).
func (c *Conn) handshakeA(cfg *Config) error {
	kp, err := keyPair(cfg.Keys, cfg.TEP)
	if err != nil {
		return err
	}
	m1 := tcpcrypt.Init1{Ciphers: cfg.Ciphers, PublicKey: kp.PublicKey()}
	if _, err := rand.Read(m1.NonceA[:]); err != nil {
		return err
	}
	init1 := m1.Append(nil)
	if _, err := c.conn.Write(init1); err != nil {
		return fmt.Errorf("%w: sending Init1: %w", ErrHandshake, err)
	}

	init2, err := readInit(c.conn, tcpcrypt.Init2Magic, cfg.TEP)
	if err != nil {
		return err
	}
	m2, err := tcpcrypt.ParseInit2(cfg.TEP, init2)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrHandshake, err)
	}
	if !slices.Contains(cfg.Ciphers, m2.Cipher) {
		return fmt.Errorf("%w: Init2 chose %v, which A did not offer", ErrHandshake, m2.Cipher)
	}
	es, err := kp.SharedSecret(m2.PublicKey)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrHandshake, err)
	}
	ss := tcpcrypt.FullHandshakeSecret(cfg.TEP, cfg.Transcript, init1, init2, es, m1.NonceA[:])
	clear(es)
	return c.start(ss, m2.Cipher, nil, tcpcrypt.FirstFrameOffset(len(init1)), tcpcrypt.FirstFrameOffset(len(init2)))
}

// handshakeB reads and checks all of Init1, then answers with Init2 (RFC
// 8548 §3.3: B sends nothing before it has the whole of Init1).
func (c *Conn) handshakeB(cfg *Config) error {
	init1, err := readInit(c.conn, tcpcrypt.Init1Magic, cfg.TEP)
	if err != nil {
		return err
	}
	m1, err := tcpcrypt.ParseInit1(cfg.TEP, init1)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrHandshake, err)
	}
	cipher, ok := tcpcrypt.ChooseCipher(m1.Ciphers, cfg.Ciphers)
	if !ok {
		return fmt.Errorf("%w: no acceptable cipher in Init1", ErrHandshake)
	}
	kp, err := keyPair(cfg.Keys, cfg.TEP)
	if err != nil {
		return err
	}
	pubB, es, err := kp.Respond(m1.PublicKey)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrHandshake, err)
	}
	m2 := tcpcrypt.Init2{Cipher: cipher, PublicKey: pubB}
	if _, err := rand.Read(m2.NonceB[:]); err != nil {
		return err
	}
	init2 := m2.Append(nil)
	ss := tcpcrypt.FullHandshakeSecret(cfg.TEP, cfg.Transcript, init1, init2, es, m1.NonceA[:])
	clear(es)
	if _, err := c.conn.Write(init2); err != nil {
		return fmt.Errorf("%w: sending Init2: %w", ErrHandshake, err)
	}
	return c.start(ss, cipher, nil, tcpcrypt.FirstFrameOffset(len(init2)), tcpcrypt.FirstFrameOffset(len(init1)))
}

// keyPair takes a pair from pool, or makes a fresh one without a pool.
func keyPair(pool *tcpcrypt.KeyPool, tep tcpcrypt.TEP) (*tcpcrypt.KeyPair, error) {
	if pool != nil {
		return pool.Get(tep)
	}
	return tcpcrypt.GenerateKeyPair(tep, rand.Reader)
}

// readInit reads exactly one whole Init message with the given magic: the
// header first, to learn and bound message_len, then the rest. It never
// reads past the message, so the frames after it stay in the stream.
func readInit(conn net.Conn, magic uint32, tep tcpcrypt.TEP) ([]byte, error) {
	var hdr [initHeaderLen]byte
	if _, err := io.ReadFull(conn, hdr[:]); err != nil {
		return nil, fmt.Errorf("%w: reading Init header: %w", ErrHandshake, err)
	}
	n, need, err := tcpcrypt.InitMessageLen(magic, tep, hdr[:])
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrHandshake, err)
	}
	if need || n < initHeaderLen {
		return nil, fmt.Errorf("%w: Init header unreadable", ErrHandshake)
	}
	msg := make([]byte, n)
	copy(msg, hdr[:])
	if _, err := io.ReadFull(conn, msg[initHeaderLen:]); err != nil {
		return nil, fmt.Errorf("%w: reading Init message: %w", ErrHandshake, err)
	}
	return msg, nil
}

// start derives this connection's keys from ss and the session nonce sn
// (RFC 8548 §3.3, §3.4, §3.5): the host that was A in the original session
// sends under k_ab and receives under k_ba, the other the reverse.
// sendStart and recvStart are the stream offsets of the first frame each
// way.
func (c *Conn) start(ss tcpcrypt.SessionSecret, aead tcpcrypt.AEADID, sn []byte, sendStart, recvStart uint64) error {
	sealer, opener, err := tcpcrypt.NewSession(ss, aead, sn, c.originalRole == eno.RoleA)
	if err != nil {
		return err
	}
	// RFC 8548 §3.5: "After using the session secret ss[i] to compute
	// mk[0], implementations SHOULD compute and cache ss[i+1] ... and then
	// erase ss[i] from memory."
	c.aead, c.next, c.sessionID = aead, ss.Next(), ss.SessionID(SessionIDTEPByte(c.tep, c.resumed), sn)
	c.sealer, c.sendOffset = sealer, sendStart
	c.opener = opener
	c.frames = tcpcrypt.NewFrameReader(opener, recvStart, recvBufferLimit)
	return nil
}

// Write seals p into frames and sends them. A failed write leaves the
// stream in an unknown state: every later Write fails too.
func (c *Conn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.writeErr != nil {
		return 0, c.writeErr
	}
	if c.writeClosed {
		return 0, errWriteClosed
	}
	if c.wbuf == nil {
		// Allocated on first use: many connections never send much.
		c.wbuf = make([]byte, 0, writeBatch+c.maxFrame+tcpcrypt.FrameOverhead)
	}
	done := 0
	for done < len(p) {
		batchStart := done
		c.wbuf = c.wbuf[:0]
		for done < len(p) && len(c.wbuf) < writeBatch {
			n := c.nextFrameLenLocked(len(p) - done)
			c.sealLocked(0, p[done:done+n])
			done += n
		}
		if _, err := c.conn.Write(c.wbuf); err != nil {
			c.writeErr = err
			return batchStart, err
		}
	}
	return done, nil
}

// nextFrameLenLocked is the data length of the next frame for remaining
// bytes of input. It rekeys first when Rekey asked for it or the current key
// has carried RekeyBytes or tcpcrypt.SafeFramesPerKey frames, and cuts frames at the
// RekeyBytes boundary, so that rekeys fall exactly every RekeyBytes bytes.
// A rekey therefore always has a frame behind it: the receiver can follow
// only one generation per frame (RFC 8548 §3.8, one rekey bit).
func (c *Conn) nextFrameLenLocked(remaining int) int {
	if c.rekeyPending || (c.rekeyBytes > 0 && c.sinceRekey >= c.rekeyBytes) || c.framesThisKey >= tcpcrypt.SafeFramesPerKey {
		c.rekeyLocked()
	}
	n := min(remaining, c.maxFrame)
	if c.rekeyBytes > 0 {
		n = int(min(int64(n), c.rekeyBytes-c.sinceRekey))
	}
	return n
}

// sealLocked appends one frame with data at the next stream offset.
func (c *Conn) sealLocked(flags byte, data []byte) {
	c.wbuf = c.sealer.SealFrame(c.wbuf, c.sendOffset, flags, 0, data)
	c.sendOffset += uint64(tcpcrypt.FrameOverhead + len(data))
	c.sinceRekey += int64(len(data))
	c.framesThisKey++
}

func (c *Conn) rekeyLocked() {
	if c.sealer.Rekey() {
		c.rekeysSent.Add(1)
	}
	c.sinceRekey, c.framesThisKey, c.rekeyPending = 0, 0, false
}

// answerRekey catches the local generation up with the peer's, one empty
// frame per step (tcpcrypt.Sealer.CatchUp, RFC 8548 §3.8), unless the FIN
// frame is sent. It runs on its own
// goroutine: Read must not wait for a Write blocked on a peer that is
// itself blocked writing to us.
func (c *Conn) answerRekey(remote uint32) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.writeErr != nil || c.writeClosed {
		return
	}
	c.wbuf = c.wbuf[:0]
	for gen := c.sealer.Generation(); c.sealer.CatchUp(remote); gen = c.sealer.Generation() {
		if c.sealer.Generation() != gen {
			c.rekeysSent.Add(1)
			c.sinceRekey, c.framesThisKey, c.rekeyPending = 0, 0, false
		}
		c.sealLocked(0, nil)
	}
	if len(c.wbuf) == 0 {
		return
	}
	if _, err := c.conn.Write(c.wbuf); err != nil {
		c.writeErr = err
	}
}

// Rekey moves the own direction to the next key (RFC 8548 §3.8) from the
// next frame sent on; the peer follows when it sees that frame. Several
// calls before that frame make one rekey: the rekey bit lets a receiver
// follow only one generation per frame.
func (c *Conn) Rekey() error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.writeErr != nil {
		return c.writeErr
	}
	if c.writeClosed {
		return errWriteClosed
	}
	c.rekeyPending = true
	return nil
}

// CloseWrite ends the own direction: a frame with the FIN flag (RFC 8548
// §4.2), then the TCP FIN if the stream supports a half-close.
func (c *Conn) CloseWrite() error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if err := c.sendFINLocked(); err != nil {
		return err
	}
	if cw, ok := c.conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// sendFINLocked sends the FIN frame once.
func (c *Conn) sendFINLocked() error {
	if c.writeErr != nil {
		return c.writeErr
	}
	if c.writeClosed {
		return nil
	}
	if c.rekeyPending {
		c.rekeyLocked()
	}
	c.wbuf = c.wbuf[:0]
	c.sealLocked(tcpcrypt.FlagFIN, nil)
	c.writeClosed = true
	if _, err := c.conn.Write(c.wbuf); err != nil {
		c.writeErr = err
		return err
	}
	return nil
}

// Read returns authenticated plaintext. It returns io.EOF only after the
// peer's FIN frame; ErrTruncated if the stream ends without one; an error
// matching ErrAuth once a frame fails authentication. After ErrAuth or
// ErrTruncated the connection has been reset. Other errors of the stream
// (a deadline, a reset by the peer) are returned as they are.
func (c *Conn) Read(p []byte) (int, error) {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	n := 0
	for {
		if len(c.pending) > 0 {
			k := copy(p[n:], c.pending)
			c.pending = c.pending[k:]
			n += k
		}
		if n == len(p) {
			return n, nil
		}
		if c.readErr != nil {
			if n > 0 {
				return n, nil
			}
			return 0, c.readErr
		}
		f, ok, err := c.frames.Next()
		if err != nil {
			c.failReadLocked(fmt.Errorf("%w: %w", ErrAuth, err))
			continue
		}
		if ok {
			c.noteGenerationLocked()
			c.pending = f.Data // frames with no data (e.g. the FIN frame) add nothing
			if f.Flags&tcpcrypt.FlagFIN != 0 {
				c.readErr = io.EOF
			}
			continue
		}
		if n > 0 {
			return n, nil // do not block while holding data for the caller
		}
		if c.streamDone != nil {
			// No whole frame left and the stream is over: a cut frame or
			// no FIN frame at all (RFC 8548 §3.7: truncation attack).
			if c.streamDone != io.EOF {
				err := c.streamDone
				c.streamDone = nil // a deadline or such may pass; read again next time
				return 0, err
			}
			c.failReadLocked(ErrTruncated)
			continue
		}
		c.fillLocked()
	}
}

// fillLocked reads once from the stream into the frame reader, keeping the
// reader within its bound.
func (c *Conn) fillLocked() {
	if c.rbuf == nil {
		c.rbuf = make([]byte, readChunk) // allocated on first use, like wbuf
	}
	room := min(len(c.rbuf), recvBufferLimit-c.frames.Buffered())
	m, err := c.conn.Read(c.rbuf[:room])
	if m > 0 {
		if werr := c.frames.Write(c.rbuf[:m]); werr != nil {
			c.failReadLocked(fmt.Errorf("%w: %w", ErrAuth, werr))
			return
		}
	}
	if err != nil {
		c.streamDone = err
	}
}

// noteGenerationLocked counts the peer's rekeys as the opener follows them
// and answers each one (answerRekey).
func (c *Conn) noteGenerationLocked() {
	if g := c.opener.Generation(); g != c.recvGen {
		c.rekeysReceived.Add(uint64(g - c.recvGen))
		c.recvGen = g
		go c.answerRekey(g)
	}
}

// failReadLocked makes err final for Read and resets the connection (RFC
// 8548 §3.6: a frame that fails authentication aborts the connection).
func (c *Conn) failReadLocked(err error) {
	c.readErr = err
	c.pending = nil
	c.closeOnce.Do(func() { c.closeErr = reset(c.conn) })
}

// Close sends the FIN frame if the own direction is still open and the
// peer takes it promptly, then closes the stream.
func (c *Conn) Close() error {
	c.closeOnce.Do(func() {
		// A Write blocked on a peer that does not read holds wmu; wait for
		// it at most closeFINTimeout (closing the stream below releases
		// it). A short Write, or a rekey answer, ends well before that.
		if c.lockWriteWithin(closeFINTimeout) {
			if !c.writeClosed && c.writeErr == nil {
				c.conn.SetWriteDeadline(time.Now().Add(closeFINTimeout))
				c.sendFINLocked()
			}
			c.wmu.Unlock()
		}
		c.closeErr = c.conn.Close()
	})
	return c.closeErr
}

// lockWriteWithin takes wmu if it becomes free within d.
func (c *Conn) lockWriteWithin(d time.Duration) bool {
	deadline := time.Now().Add(d)
	for !c.wmu.TryLock() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(time.Millisecond)
	}
	return true
}

// reset closes conn so that the peer sees a TCP RST: SO_LINGER 0 makes the
// kernel abort rather than send a FIN (RFC 8548 §3.3: "abort" is RFC 793's Abort).
func reset(conn net.Conn) error {
	if l, ok := conn.(interface{ SetLinger(int) error }); ok {
		l.SetLinger(0)
	}
	return conn.Close()
}

// SessionID is sid[i] (RFC 8548 §3.4): the TEP byte and 32 bytes, equal at
// both ends unless there is a man in the middle. The caller must not
// modify it.
func (c *Conn) SessionID() []byte { return c.sessionID }

// TEP is the negotiated TEP.
func (c *Conn) TEP() tcpcrypt.TEP { return c.tep }

// AEAD is the AEAD in use.
func (c *Conn) AEAD() tcpcrypt.AEADID { return c.aead }

// Role is this end's TCP-ENO role.
func (c *Conn) Role() eno.Role { return c.role }

// Resumed reports whether the session was resumed from a cached secret.
func (c *Conn) Resumed() bool { return c.resumed }

// RekeysSent is how many times the own direction has rekeyed.
func (c *Conn) RekeysSent() uint64 { return c.rekeysSent.Load() }

// RekeysReceived is how many of the peer's rekeys have been followed.
func (c *Conn) RekeysReceived() uint64 { return c.rekeysReceived.Load() }

// NextSecret is ss[i+1], what both ends may cache to resume later (RFC 8548
// §3.5).
func (c *Conn) NextSecret() tcpcrypt.SessionSecret { return c.next }

// CacheEntry is the entry both ends Put in their Cache for this peer: ss[i+1]
// with the role this host played in the original session.
func (c *Conn) CacheEntry() Entry {
	return Entry{TEP: c.tep, AEAD: c.aead, Secret: c.NextSecret(), OriginalRole: c.originalRole}
}

// SessionIDTEPByte is the first byte of a session ID: the TEP byte host B
// sent, v bit included (RFC 8548 §3.4). B answers a fresh key exchange with
// v = 0 and a resumption with v = 1 (§3.5: "the first byte will always have
// v = 1").
func SessionIDTEPByte(tep tcpcrypt.TEP, resumed bool) byte {
	if resumed {
		return byte(tep) | 0x80
	}
	return byte(tep)
}

// NetConn is the underlying stream.
func (c *Conn) NetConn() net.Conn { return c.conn }

// LocalAddr is the stream's local address.
func (c *Conn) LocalAddr() net.Addr { return c.conn.LocalAddr() }

// RemoteAddr is the stream's remote address.
func (c *Conn) RemoteAddr() net.Addr { return c.conn.RemoteAddr() }

// SetDeadline sets the stream's read and write deadlines.
func (c *Conn) SetDeadline(t time.Time) error { return c.conn.SetDeadline(t) }

// SetReadDeadline sets the stream's read deadline.
func (c *Conn) SetReadDeadline(t time.Time) error { return c.conn.SetReadDeadline(t) }

// SetWriteDeadline sets the stream's write deadline. A Write that times out
// leaves the stream unusable for writing (a frame may be cut).
func (c *Conn) SetWriteDeadline(t time.Time) error { return c.conn.SetWriteDeadline(t) }

// Format prints the parameters of the connection, never a key or secret.
func (c *Conn) Format(f fmt.State, _ rune) {
	fmt.Fprintf(f, "tcpcrypt.Conn(%v, %v, %v, resumed %v, %v)", c.role, c.tep, c.aead, c.resumed, c.conn.RemoteAddr())
}
