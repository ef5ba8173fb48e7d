package endpoint

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"

	"tcpcrypt-gw/crypto/tcpcrypt"
	"tcpcrypt-gw/eno"
)

// bigTransfer is the largest stream each way in TestTransferAllPairs.
func bigTransfer() int64 {
	if raceEnabled {
		return 2 << 20
	}
	return 16 << 20
}

// wantRekeys is how many rekeys a stream of n bytes makes with RekeyBytes
// r: one at every multiple of r that more data follows.
func wantRekeys(n, r int64) uint64 {
	if n == 0 {
		return 0
	}
	return uint64((n - 1) / r)
}

func isInit1(b []byte) bool {
	return len(b) >= 4 && binary.BigEndian.Uint32(b) == tcpcrypt.Init1Magic
}

// TestTransferAllPairs carries 0 B, 1 B, 64 KiB and 16 MiB both ways at
// once over loopback TCP for every TEP and AEAD, with random read and write
// sizes and rekeys every 1/16 of the largest stream.
func TestTransferAllPairs(t *testing.T) {
	big := bigTransfer()
	rekeyBytes := big / 16
	frameSizes := []int{0, 16 << 10, tcpcrypt.MaxFrameData} // 0: DefaultMaxFrame
	pair := 0
	for _, tep := range allTEPs {
		for _, aead := range allAEADs {
			maxFrame := frameSizes[pair%len(frameSizes)]
			seed := uint64(pair) << 8
			pair++
			t.Run(fmt.Sprintf("%v/%v", tep, aead), func(t *testing.T) {
				t.Parallel()
				for _, size := range []int64{0, 1, 64 << 10, big} {
					t.Run(strconv.FormatInt(size, 10), func(t *testing.T) {
						out := simulateENO(t, enoHost{teps: []tcpcrypt.TEP{tep}}, enoHost{teps: allTEPs})
						if out.tep != tep || out.resumeA != nil {
							t.Fatalf("ENO chose %v (resume %v), want %v", out.tep, out.resumeA != nil, tep)
						}
						cfgA, cfgB := configs(out, aead)
						cfgA.RekeyBytes, cfgB.RekeyBytes = rekeyBytes, rekeyBytes
						cfgA.MaxFrame, cfgB.MaxFrame = maxFrame, maxFrame
						rawA, rawB := tcpPair(t)
						wireA := &recordConn{TCPConn: rawA, limit: 8}
						a, b := handshakePair(t, wireA, rawB, cfgA, cfgB)

						if a.AEAD() != aead || b.AEAD() != aead || a.TEP() != tep || b.TEP() != tep {
							t.Fatalf("negotiated A %v/%v, B %v/%v; want %v/%v", a.TEP(), a.AEAD(), b.TEP(), b.AEAD(), tep, aead)
						}
						if a.Resumed() || b.Resumed() {
							t.Fatal("full handshake reports Resumed")
						}
						if !isInit1(wireA.firstBytes()) {
							t.Fatalf("A's stream does not start with Init1: %x", wireA.firstBytes())
						}
						checkSessionIDs(t, a, b, tep)

						exchange(t, a, b, size, size, seed+uint64(size))

						want := wantRekeys(size, rekeyBytes)
						if size == big && want < 2 {
							t.Fatalf("test bug: only %d rekeys in the big stream", want)
						}
						if a.RekeysSent() != want || b.RekeysReceived() != want || b.RekeysSent() != want || a.RekeysReceived() != want {
							t.Errorf("rekeys: A sent %d, B received %d, B sent %d, A received %d; want %d each",
								a.RekeysSent(), b.RekeysReceived(), b.RekeysSent(), a.RekeysReceived(), want)
						}
						a.Close()
						b.Close()
					})
				}
			})
		}
	}
}

func checkSessionIDs(t testing.TB, a, b *Conn, tep tcpcrypt.TEP) {
	t.Helper()
	sa, sb := a.SessionID(), b.SessionID()
	if len(sa) != 1+tcpcrypt.KeyLen || sa[0] != byte(tep) {
		t.Fatalf("session id %x: want the TEP byte and 32 bytes", sa)
	}
	if !bytes.Equal(sa, sb) {
		t.Fatalf("session ids differ: A %x, B %x", sa, sb)
	}
}

// firstFrameOpens reports whether wire starts with a whole frame that
// opens at stream offset 0 under key: what a resumed stream must send.
func firstFrameOpens(t testing.TB, wire []byte, aead tcpcrypt.AEADID, key []byte) bool {
	t.Helper()
	n, need, err := tcpcrypt.FrameLen(wire)
	if err != nil || need || n > len(wire) {
		t.Logf("first bytes are no whole frame: n=%d need=%v err=%v have %d", n, need, err, len(wire))
		return false
	}
	o, err := tcpcrypt.NewOpener(aead, key)
	if err != nil {
		t.Fatal(err)
	}
	_, _, _, err = o.OpenFrame(slices.Clone(wire[:n]), tcpcrypt.FirstFrameOffset(0))
	return err == nil
}

// TestResume runs, for every TEP and AEAD, a full connection, then two
// resumed ones chained through the caches (ss[1], then ss[2]).
func TestResume(t *testing.T) {
	for _, tep := range allTEPs {
		for _, aead := range allAEADs {
			t.Run(fmt.Sprintf("%v/%v", tep, aead), func(t *testing.T) {
				t.Parallel()
				cacheA, cacheB := NewCache(16, time.Minute), NewCache(16, time.Minute)
				hostA := enoHost{teps: []tcpcrypt.TEP{tep}, cache: cacheA, peer: "127.0.0.1"}
				hostB := enoHost{teps: allTEPs, cache: cacheB, peer: "127.0.0.1"}

				out := simulateENO(t, hostA, hostB)
				if out.offeredA || out.resumeA != nil {
					t.Fatal("resumption offered with an empty cache")
				}
				cfgA, cfgB := configs(out, aead)
				rawA, rawB := tcpPair(t)
				prevA, prevB := handshakePair(t, rawA, rawB, cfgA, cfgB)
				exchange(t, prevA, prevB, 10_000, 20_000, 1)
				prevA.Close()
				prevB.Close()

				for i := uint32(1); i <= 2; i++ {
					cacheA.Put(hostA.peer, prevA.CacheEntry())
					cacheB.Put(hostB.peer, prevB.CacheEntry())

					out := simulateENO(t, hostA, hostB)
					if out.resumeA == nil {
						t.Fatalf("connection %d: not resumed", i+1)
					}
					if cacheA.Len() != 0 || cacheB.Len() != 0 {
						t.Fatalf("cache entries left after resuming: A %d, B %d", cacheA.Len(), cacheB.Len())
					}
					e := *out.resumeA
					if e.Secret.Index() != i || e.TEP != tep || e.AEAD != aead {
						t.Fatalf("resumed %v, want ss[%d] %v/%v", e, i, tep, aead)
					}
					cfgA, cfgB := configs(out, aead)
					rawA, rawB := tcpPair(t)
					wireA := &recordConn{TCPConn: rawA, limit: 4096}
					wireB := &recordConn{TCPConn: rawB, limit: 4096}
					a, b := handshakePair(t, wireA, wireB, cfgA, cfgB)
					if !a.Resumed() || !b.Resumed() || a.AEAD() != aead || b.AEAD() != aead {
						t.Fatalf("resumed = %v/%v, AEAD %v/%v", a.Resumed(), b.Resumed(), a.AEAD(), b.AEAD())
					}
					checkSessionIDs(t, a, b, tep)
					if bytes.Equal(a.SessionID(), prevA.SessionID()) {
						t.Fatal("resumed session has the previous session id")
					}
					if !bytes.Equal(a.SessionID(), e.Secret.SessionID(tep)) {
						t.Fatal("resumed session id is not sid[i] of the cached secret")
					}
					if bytes.Equal(a.secret.KeyAB(aead), prevA.secret.KeyAB(aead)) || bytes.Equal(a.secret.KeyBA(aead), prevA.secret.KeyBA(aead)) {
						t.Fatal("resumed session reuses the previous keys")
					}

					exchange(t, a, b, 3000, 5000, uint64(i)<<4)

					// No Init messages: each stream starts with a frame at
					// offset 0 under ss[i]'s keys.
					if w := wireA.firstBytes(); isInit1(w) || !firstFrameOpens(t, w, aead, e.Secret.KeyAB(aead)) {
						t.Fatalf("A's resumed stream does not start with a frame under k_ab[%d]: %x", i, w[:min(16, len(w))])
					}
					if w := wireB.firstBytes(); !firstFrameOpens(t, w, aead, e.Secret.KeyBA(aead)) {
						t.Fatalf("B's resumed stream does not start with a frame under k_ba[%d]: %x", i, w[:min(16, len(w))])
					}
					a.Close()
					b.Close()
					prevA, prevB = a, b
				}
			})
		}
	}
}

// TestResumeCacheMiss: A offers a cached secret that B does not hold (B
// forgot it, or holds another); B falls back to the ordinary TEP and both
// run a full handshake.
func TestResumeCacheMiss(t *testing.T) {
	tep, aead := tcpcrypt.TEPCurve25519, tcpcrypt.ChaCha20Poly1305
	for _, bHolds := range []string{"nothing", "another secret"} {
		t.Run(bHolds, func(t *testing.T) {
			cacheA, cacheB := NewCache(16, time.Minute), NewCache(16, time.Minute)
			cacheA.Put("127.0.0.1", testEntry("cached-at-A"))
			if bHolds != "nothing" {
				cacheB.Put("127.0.0.1", testEntry("cached-at-B"))
			}
			out := simulateENO(t,
				enoHost{teps: []tcpcrypt.TEP{tep}, cache: cacheA, peer: "127.0.0.1"},
				enoHost{teps: allTEPs, cache: cacheB, peer: "127.0.0.1"})
			if !out.offeredA {
				t.Fatal("A did not offer resumption")
			}
			if out.resumeA != nil || out.resumeB != nil || out.tep != tep {
				t.Fatalf("cache miss resumed anyway (tep %v)", out.tep)
			}
			cfgA, cfgB := configs(out, aead)
			rawA, rawB := tcpPair(t)
			wireA := &recordConn{TCPConn: rawA, limit: 8}
			a, b := handshakePair(t, wireA, rawB, cfgA, cfgB)
			if a.Resumed() || b.Resumed() || !isInit1(wireA.firstBytes()) {
				t.Fatalf("fallback is no full handshake: resumed %v/%v, wire %x", a.Resumed(), b.Resumed(), wireA.firstBytes())
			}
			checkSessionIDs(t, a, b, tep)
			exchange(t, a, b, 1000, 1000, 7)
		})
	}
}

// TestResumeAnswerChecked: A accepts B's resumption answer only with the
// right 9 bytes; a forged answer makes negotiation fail.
func TestResumeAnswerChecked(t *testing.T) {
	e := testEntry("answer")
	offer := eno.Offer([]eno.Suboption{OfferResume(e), {TEP: byte(tcpcrypt.TEPCurve25519)}})
	good := AnswerResume(e)
	accept := func(offered, answered eno.Suboption) bool {
		return offered.HasData && ResumeAnswerMatches(e, answered)
	}
	if got, err := eno.Negotiated(offer, eno.Answer(good), accept); err != nil || !got.HasData {
		t.Fatalf("good answer rejected: %v", err)
	}
	bad := AnswerResume(e)
	bad.Data[0] ^= 0x80
	if _, err := eno.Negotiated(offer, eno.Answer(bad), accept); err == nil {
		t.Fatal("forged resumption answer accepted")
	}
	// A's own half echoed back is no proof that B holds the secret.
	if ResumeAnswerMatches(e, OfferResume(e)) {
		t.Fatal("A's half accepted as B's answer")
	}
	other := AnswerResume(e)
	other.TEP = byte(tcpcrypt.TEPP256)
	if ResumeAnswerMatches(e, other) {
		t.Fatal("answer under another TEP accepted")
	}
}

// TestAcceptResumeWrongTEP: B does not resume a secret that A offers under
// another TEP than it was cached with.
func TestAcceptResumeWrongTEP(t *testing.T) {
	c := NewCache(4, time.Minute)
	e := testEntry("tep") // cached under curve25519
	c.Put("p", e)
	off := OfferResume(e)
	off.TEP = byte(tcpcrypt.TEPP256)
	if _, ok := AcceptResume(c, "p", off); ok {
		t.Fatal("resumed under the wrong TEP")
	}
	c.Put("p", e)
	if got, ok := AcceptResume(c, "p", OfferResume(e)); !ok || !sameSecret(got, e) {
		t.Fatal("right offer not accepted")
	}
}

// flipPositions are the byte/bit positions of the first frame (1000 bytes
// of data: 1020 on the wire) whose flip is tested: every bit of the header
// (control, clen), the flags byte, data, and tag.
func flipPositions() [][2]int {
	const frameLen = 1000 + tcpcrypt.FrameOverhead
	var ps [][2]int
	for j := range tcpcrypt.FrameHeaderLen {
		for k := range 8 {
			ps = append(ps, [2]int{j, k})
		}
	}
	for _, j := range []int{3, 4, 500, frameLen - tcpcrypt.TagLen - 1, frameLen - tcpcrypt.TagLen, frameLen - 8, frameLen - 1} {
		for _, k := range []int{0, 3, 7} {
			ps = append(ps, [2]int{j, k})
		}
	}
	return ps
}

// TestBitFlip flips one bit of the first frame after the handshake on the
// wire: the receiver must report ErrAuth and deliver none of its data.
func TestBitFlip(t *testing.T) {
	tep := tcpcrypt.TEPCurve25519
	first := bytes.Repeat([]byte("first frame "), 100)[:1000]
	rest := make([]byte, 100<<10) // enough that a clen grown by a flip is filled
	for _, aead := range allAEADs {
		t.Run(aead.String(), func(t *testing.T) {
			t.Parallel()
			init1Len := (&tcpcrypt.Init1{Ciphers: []tcpcrypt.AEADID{aead}, PublicKey: make([]byte, tep.PublicKeyLen())}).Len()
			for _, p := range flipPositions() {
				t.Run(fmt.Sprintf("byte%d/bit%d", p[0], p[1]), func(t *testing.T) {
					out := simulateENO(t, enoHost{teps: []tcpcrypt.TEP{tep}}, enoHost{teps: allTEPs})
					cfgA, cfgB := configs(out, aead)
					cfgA.Ciphers = []tcpcrypt.AEADID{aead}
					cfgA.MaxFrame = len(first)
					rawA, rawB := tcpPair(t)
					wire := &flipConn{TCPConn: rawA, pos: int64(init1Len + p[0]), bit: uint(p[1])}
					a, b := handshakePair(t, wire, rawB, cfgA, cfgB)

					sent := make(chan struct{})
					go func() {
						defer close(sent)
						if _, err := a.Write(first); err != nil {
							return
						}
						if _, err := a.Write(rest); err != nil {
							return
						}
						a.CloseWrite()
					}()
					got, err := readAll(b)
					if !errors.Is(err, ErrAuth) {
						t.Fatalf("receiver error %v, want ErrAuth", err)
					}
					if len(got) != 0 {
						t.Fatalf("receiver delivered %d bytes of a corrupted frame", len(got))
					}
					if _, err := b.Read(make([]byte, 10)); !errors.Is(err, ErrAuth) {
						t.Fatalf("second Read: %v, want ErrAuth again", err)
					}
					<-sent
					if _, err := readAll(a); err == nil || errors.Is(err, io.EOF) {
						t.Fatalf("sender's Read after the receiver's abort: %v, want an error", err)
					}
				})
			}
		})
	}
}

// TestAuthFailureResets: the receiver of a corrupted frame resets the TCP
// connection, so the sender sees ECONNRESET rather than an orderly end.
func TestAuthFailureResets(t *testing.T) {
	tep, aead := tcpcrypt.TEPCurve25519, tcpcrypt.AES128GCM
	out := simulateENO(t, enoHost{teps: []tcpcrypt.TEP{tep}}, enoHost{teps: allTEPs})
	cfgA, cfgB := configs(out, aead)
	cfgA.Ciphers = []tcpcrypt.AEADID{aead}
	init1Len := (&tcpcrypt.Init1{Ciphers: cfgA.Ciphers, PublicKey: make([]byte, tep.PublicKeyLen())}).Len()
	rawA, rawB := tcpPair(t)
	// Flip the last tag byte of a 100-byte frame.
	wire := &flipConn{TCPConn: rawA, pos: int64(init1Len + 100 + tcpcrypt.FrameOverhead - 1), bit: 2}
	a, b := handshakePair(t, wire, rawB, cfgA, cfgB)
	if _, err := a.Write(make([]byte, 100)); err != nil {
		t.Fatal(err)
	}
	if _, err := readAll(b); !errors.Is(err, ErrAuth) {
		t.Fatalf("receiver: %v, want ErrAuth", err)
	}
	if _, err := readAll(a); !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("sender: %v, want ECONNRESET", err)
	}
}

// TestTruncation: a stream that ends without a FIN frame, at a frame
// boundary or inside a frame, gives ErrTruncated after the whole frames,
// never io.EOF.
func TestTruncation(t *testing.T) {
	tep, aead := tcpcrypt.TEPCurve448, tcpcrypt.AES256GCM
	data := make([]byte, 5000)
	for i := range data {
		data[i] = byte(i * 7)
	}
	const frame = 1000
	init1Len := (&tcpcrypt.Init1{Ciphers: []tcpcrypt.AEADID{aead}, PublicKey: make([]byte, tep.PublicKeyLen())}).Len()
	for _, tc := range []struct {
		name   string
		cutAt  int64 // stream bytes that get through; -1: all of the data frames
		wantOK int   // plaintext bytes delivered before the error
	}{
		{"no FIN frame", -1, len(data)},
		{"inside a header", int64(init1Len + 2*(frame+tcpcrypt.FrameOverhead) + 2), 2 * frame},
		{"inside a frame", int64(init1Len + 3*(frame+tcpcrypt.FrameOverhead) + 500), 3 * frame},
		{"before any frame", int64(init1Len), 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := simulateENO(t, enoHost{teps: []tcpcrypt.TEP{tep}}, enoHost{teps: allTEPs})
			cfgA, cfgB := configs(out, aead)
			cfgA.Ciphers = []tcpcrypt.AEADID{aead}
			cfgA.MaxFrame = frame
			rawA, rawB := tcpPair(t)
			var connA net.Conn = rawA
			if tc.cutAt >= 0 {
				connA = &cutConn{TCPConn: rawA, limit: tc.cutAt}
			}
			a, b := handshakePair(t, connA, rawB, cfgA, cfgB)
			if _, err := a.Write(data); err != nil {
				t.Fatal(err)
			}
			rawA.CloseWrite() // a TCP FIN with no FIN frame
			got, err := readAll(b)
			if !errors.Is(err, ErrTruncated) {
				t.Fatalf("Read error %v, want ErrTruncated", err)
			}
			if !bytes.Equal(got, data[:tc.wantOK]) {
				t.Fatalf("delivered %d bytes, want the first %d sent", len(got), tc.wantOK)
			}
			if _, err := b.Read(make([]byte, 1)); !errors.Is(err, ErrTruncated) {
				t.Fatalf("second Read: %v, want ErrTruncated again", err)
			}
		})
	}
}

// TestCloseSendsFIN: Close without CloseWrite still ends the stream with a
// FIN frame, so the peer sees io.EOF after all the data.
func TestCloseSendsFIN(t *testing.T) {
	out := simulateENO(t, enoHost{teps: allTEPs}, enoHost{teps: allTEPs})
	cfgA, cfgB := configs(out, tcpcrypt.AES128GCM)
	rawA, rawB := tcpPair(t)
	a, b := handshakePair(t, rawA, rawB, cfgA, cfgB)
	msg := []byte("last words")
	if _, err := a.Write(msg); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	got, err := readAll(b)
	if err != io.EOF || !bytes.Equal(got, msg) {
		t.Fatalf("got %q, %v; want %q, io.EOF", got, err, msg)
	}
	if _, err := a.Write(msg); err == nil {
		t.Fatal("Write after Close succeeded")
	}
}

// TestWriteAfterCloseWrite: the own direction stays closed; the other one
// still works.
func TestWriteAfterCloseWrite(t *testing.T) {
	out := simulateENO(t, enoHost{teps: allTEPs}, enoHost{teps: allTEPs})
	cfgA, cfgB := configs(out, tcpcrypt.ChaCha20Poly1305)
	rawA, rawB := tcpPair(t)
	a, b := handshakePair(t, rawA, rawB, cfgA, cfgB)
	if err := a.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Write([]byte("x")); err == nil {
		t.Fatal("Write after CloseWrite succeeded")
	}
	if err := a.Rekey(); err == nil {
		t.Fatal("Rekey after CloseWrite succeeded")
	}
	if got, err := readAll(b); err != io.EOF || len(got) != 0 {
		t.Fatalf("B read %q, %v; want io.EOF", got, err)
	}
	if _, err := b.Write([]byte("reply")); err != nil {
		t.Fatal(err)
	}
	b.CloseWrite()
	if got, err := readAll(a); err != io.EOF || string(got) != "reply" {
		t.Fatalf("A read %q, %v", got, err)
	}
}

// TestManualRekey: Rekey takes effect at the next frame; several calls
// before it make one rekey, which the peer follows.
func TestManualRekey(t *testing.T) {
	out := simulateENO(t, enoHost{teps: allTEPs}, enoHost{teps: allTEPs})
	cfgA, cfgB := configs(out, tcpcrypt.AES256GCM)
	rawA, rawB := tcpPair(t)
	a, b := handshakePair(t, rawA, rawB, cfgA, cfgB)
	var sent []byte
	write := func(s string) {
		t.Helper()
		sent = append(sent, s...)
		if _, err := a.Write([]byte(s)); err != nil {
			t.Fatal(err)
		}
	}
	write("gen0 ")
	for range 3 {
		if err := a.Rekey(); err != nil {
			t.Fatal(err)
		}
	}
	write("gen1 ")
	a.Rekey()
	write("gen2 ")
	a.Rekey()
	a.CloseWrite() // the FIN frame carries the last rekey
	got, err := readAll(b)
	if err != io.EOF || !bytes.Equal(got, sent) {
		t.Fatalf("got %q, %v; want %q, io.EOF", got, err, sent)
	}
	if a.RekeysSent() != 3 || b.RekeysReceived() != 3 {
		t.Fatalf("A sent %d rekeys, B followed %d; want 3", a.RekeysSent(), b.RekeysReceived())
	}
}

// TestReadDeadline: a read deadline is an ordinary, recoverable error.
func TestReadDeadline(t *testing.T) {
	out := simulateENO(t, enoHost{teps: allTEPs}, enoHost{teps: allTEPs})
	cfgA, cfgB := configs(out, tcpcrypt.AES128GCM)
	rawA, rawB := tcpPair(t)
	a, b := handshakePair(t, rawA, rawB, cfgA, cfgB)
	b.SetReadDeadline(time.Now().Add(-time.Second))
	if _, err := b.Read(make([]byte, 10)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Read past the deadline: %v", err)
	}
	b.SetReadDeadline(time.Now().Add(testTimeout))
	a.Write([]byte("after the deadline"))
	a.CloseWrite()
	if got, err := readAll(b); err != io.EOF || string(got) != "after the deadline" {
		t.Fatalf("got %q, %v", got, err)
	}
}

// rawPeer runs Handshake at one end of a TCP connection while the test
// plays the other end by hand.
type rawPeer struct {
	conn *net.TCPConn // the test's end
	done chan error   // Handshake's error
}

func startHandshake(t *testing.T, cfg Config) rawPeer {
	t.Helper()
	rawA, rawB := tcpPair(t)
	own, peer := rawB, rawA
	if cfg.Role == eno.RoleA {
		own, peer = rawA, rawB
	}
	done := make(chan error, 1)
	go func() {
		c, err := Handshake(own, cfg)
		if c != nil {
			c.Close()
		}
		done <- err
	}()
	return rawPeer{conn: peer, done: done}
}

// wantHandshakeAbort checks that the handshake failed on the peer's bytes
// (not by waiting for a deadline) and that the connection was reset.
func (p rawPeer) wantHandshakeAbort(t *testing.T) {
	t.Helper()
	err := <-p.done
	if !errors.Is(err, ErrHandshake) || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Handshake error %v, want ErrHandshake", err)
	}
	buf := make([]byte, 1<<16)
	for range 100 {
		_, rerr := p.conn.Read(buf)
		if rerr == nil {
			continue // bytes sent before the abort (Init1)
		}
		if !errors.Is(rerr, syscall.ECONNRESET) {
			t.Fatalf("peer read %v, want a reset", rerr)
		}
		return
	}
	t.Fatal("peer kept receiving data")
}

func validInit1(t *testing.T, tep tcpcrypt.TEP, ciphers ...tcpcrypt.AEADID) []byte {
	t.Helper()
	kp, err := testKeys.Get(tep)
	if err != nil {
		t.Fatal(err)
	}
	return (&tcpcrypt.Init1{Ciphers: ciphers, PublicKey: kp.PublicKey()}).Append(nil)
}

func validInit2(t *testing.T, tep tcpcrypt.TEP, cipher tcpcrypt.AEADID) []byte {
	t.Helper()
	kp, err := testKeys.Get(tep)
	if err != nil {
		t.Fatal(err)
	}
	return (&tcpcrypt.Init2{Cipher: cipher, PublicKey: kp.PublicKey()}).Append(nil)
}

func withLen(msg []byte, n uint32) []byte {
	msg = slices.Clone(msg)
	binary.BigEndian.PutUint32(msg[4:], n)
	return msg
}

// TestBadInit1: B aborts (RST) on an Init1 it cannot accept, as soon as it
// can tell, without waiting for more bytes.
func TestBadInit1(t *testing.T) {
	tep := tcpcrypt.TEPCurve25519
	good := validInit1(t, tep, tcpcrypt.AES128GCM)
	badMagic := slices.Clone(good)
	binary.BigEndian.PutUint32(badMagic, tcpcrypt.Init2Magic)
	zeroKey := slices.Clone(good)
	clear(zeroKey[len(zeroKey)-32:]) // X25519 low-order point: all-zero ES
	for _, tc := range []struct {
		name     string
		send     []byte
		closeAft bool
	}{
		{"wrong magic", badMagic, false},
		{"absurd length", withLen(good[:8], 0xffffffff), false},
		{"length above MaxInitLen", withLen(good[:8], tcpcrypt.MaxInitLen+1), false},
		{"length below minimum", withLen(good[:8], 9), false},
		{"truncated", good[:40], true},
		{"no acceptable cipher", validInit1(t, tep, 0x7e), false},
		{"all-zero public key", zeroKey, false},
		{"empty stream", nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := startHandshake(t, Config{Role: eno.RoleB, TEP: tep, Ciphers: allAEADs, Keys: testKeys})
			if _, err := p.conn.Write(tc.send); err != nil {
				t.Fatal(err)
			}
			if tc.closeAft {
				p.conn.CloseWrite()
			}
			p.wantHandshakeAbort(t)
		})
	}
}

// TestBadInit2: A aborts on an Init2 it cannot accept.
func TestBadInit2(t *testing.T) {
	tep := tcpcrypt.TEPP256
	good := validInit2(t, tep, tcpcrypt.AES128GCM)
	badMagic := slices.Clone(good)
	binary.BigEndian.PutUint32(badMagic, tcpcrypt.Init1Magic)
	offPoint := slices.Clone(good)
	offPoint[len(offPoint)-1] ^= 1 // P-256 point no longer on the curve
	unknown := slices.Clone(good)
	unknown[8] = 0x7e
	for _, tc := range []struct {
		name string
		send []byte
	}{
		{"wrong magic", badMagic},
		{"absurd length", withLen(good[:8], 0x7fffffff)},
		{"cipher not offered", validInit2(t, tep, tcpcrypt.ChaCha20Poly1305)},
		{"unknown cipher", unknown},
		{"point not on curve", offPoint},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := startHandshake(t, Config{Role: eno.RoleA, TEP: tep, Ciphers: []tcpcrypt.AEADID{tcpcrypt.AES128GCM}, Keys: testKeys})
			if _, err := p.conn.Write(tc.send); err != nil {
				t.Fatal(err)
			}
			p.wantHandshakeAbort(t)
		})
	}
}

// TestTranscriptBinding: ends that saw different ENO transcripts (an
// attacker rewrote the SYN options) get different keys: the first frame
// fails authentication.
func TestTranscriptBinding(t *testing.T) {
	out := simulateENO(t, enoHost{teps: allTEPs}, enoHost{teps: allTEPs})
	cfgA, cfgB := configs(out, tcpcrypt.AES128GCM)
	cfgB.Transcript = slices.Clone(cfgB.Transcript)
	cfgB.Transcript[len(cfgB.Transcript)-1] ^= 1
	rawA, rawB := tcpPair(t)
	a, b := handshakePair(t, rawA, rawB, cfgA, cfgB)
	if bytes.Equal(a.SessionID(), b.SessionID()) {
		t.Fatal("session ids agree despite different transcripts")
	}
	a.Write([]byte("hello"))
	if got, err := readAll(b); !errors.Is(err, ErrAuth) || len(got) != 0 {
		t.Fatalf("got %q, %v; want nothing and ErrAuth", got, err)
	}
}

// panicConn fails the test on any use: Handshake must not touch the
// stream when its Config is invalid.
type panicConn struct{ net.Conn }

func TestConfigErrors(t *testing.T) {
	valid := Config{Role: eno.RoleA, TEP: tcpcrypt.TEPCurve25519, Ciphers: allAEADs}
	bad := tcpcrypt.SessionSecret{}
	for name, mutate := range map[string]func(*Config){
		"no role":          func(c *Config) { c.Role = 0 },
		"bad TEP":          func(c *Config) { c.TEP = 0x30 },
		"no ciphers":       func(c *Config) { c.Ciphers = nil },
		"unknown cipher":   func(c *Config) { c.Ciphers = []tcpcrypt.AEADID{0x55} },
		"256 ciphers":      func(c *Config) { c.Ciphers = slices.Repeat([]tcpcrypt.AEADID{tcpcrypt.AES128GCM}, 256) },
		"negative rekey":   func(c *Config) { c.RekeyBytes = -1 },
		"frame too big":    func(c *Config) { c.MaxFrame = tcpcrypt.MaxFrameData + 1 },
		"negative frame":   func(c *Config) { c.MaxFrame = -5 },
		"invalid resume":   func(c *Config) { c.Resume = &bad; c.ResumeAEAD = tcpcrypt.AES128GCM },
		"resume w/o AEAD ": func(c *Config) { s := testEntry("r").Secret; c.Resume = &s },
	} {
		cfg := valid
		mutate(&cfg)
		if c, err := Handshake(panicConn{}, cfg); err == nil || c != nil {
			t.Errorf("%s: Handshake accepted the config", name)
		}
	}
}

// TestFormatHidesSecrets: printing a Conn shows no key material.
func TestFormatHidesSecrets(t *testing.T) {
	out := simulateENO(t, enoHost{teps: allTEPs}, enoHost{teps: allTEPs})
	cfgA, cfgB := configs(out, tcpcrypt.AES128GCM)
	rawA, rawB := tcpPair(t)
	a, _ := handshakePair(t, rawA, rawB, cfgA, cfgB)
	s := fmt.Sprintf("%v %+v %#v %s", a, a, a, a)
	for _, secret := range [][]byte{a.secret.Bytes(), a.secret.KeyAB(a.AEAD()), a.secret.KeyBA(a.AEAD())} {
		if bytes.Contains([]byte(s), []byte(fmt.Sprintf("%x", secret))) || bytes.Contains([]byte(s), secret) {
			t.Fatalf("formatted Conn shows a secret: %s", s)
		}
	}
	if !bytes.Contains([]byte(s), []byte("aes128gcm")) {
		t.Fatalf("formatted Conn lacks its parameters: %s", s)
	}
}
