package endpoint

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"tcpcrypt-gw/crypto/tcpcrypt"
	"tcpcrypt-gw/eno"
)

// answerWait bounds how long a test waits for a frame that must come
// "immediately" (RFC 8548 §3.8); on loopback it takes microseconds.
const answerWait = 5 * time.Second

// quietWait is how long a test watches for a frame that must NOT come.
const quietWait = 200 * time.Millisecond

// expectData waits for the next piece of data a backgroundReader delivers.
func expectData(t *testing.T, data <-chan []byte, done <-chan error, want string) {
	t.Helper()
	select {
	case got := <-data:
		if string(got) != want {
			t.Fatalf("Conn read %q, want %q", got, want)
		}
	case err := <-done:
		t.Fatalf("Conn read error %v, want %q", err, want)
	case <-time.After(answerWait):
		t.Fatalf("Conn did not deliver %q", want)
	}
}

// checkFrame compares a frame the raw peer received with what it expects.
func checkFrame(t *testing.T, what string, f peerFrame, control, flags byte, data string, gen uint32) {
	t.Helper()
	if f.control != control || f.flags != flags || string(f.data) != data || f.gen != gen {
		t.Fatalf("%s: frame control %#02x flags %#02x data %q generation %d; want control %#02x flags %#02x data %q generation %d",
			what, f.control, f.flags, f.data, f.gen, control, flags, data, gen)
	}
}

// TestRekeyAnswer watches, at the byte level, a Conn answer its peer's
// rekeys (RFC 8548 §3.8): "If the remote generation number is now greater
// than the local generation number, the receiver MUST immediately
// increment its local generation number to match. Moreover, if the
// receiver has not yet transmitted a segment with the FIN flag set, it
// MUST immediately send a frame (with empty application data if
// necessary) with rekey = 1." The peer is a framePeer, so every frame the
// Conn sends is seen with its control byte. The Conn never writes on its
// own here except to answer.
func TestRekeyAnswer(t *testing.T) {
	for _, tc := range []struct {
		aead               tcpcrypt.AEADID
		connRole, connOrig eno.Role
	}{
		{tcpcrypt.AES128GCM, eno.RoleB, eno.RoleB},
		{tcpcrypt.AES256GCM, eno.RoleB, eno.RoleA}, // role swap: the Conn was A
		{tcpcrypt.ChaCha20Poly1305, eno.RoleA, eno.RoleB},
	} {
		t.Run(fmt.Sprintf("%v/role %v/originally %v", tc.aead, tc.connRole, tc.connOrig), func(t *testing.T) {
			c, p := resumedWithPeer(t, tc.aead, tc.connRole, tc.connOrig, nil)
			data, done := backgroundReader(c)

			// 1. The peer rekeys with data; the Conn has nothing to send
			// and answers with an empty frame with rekey = 1 under the
			// next key set.
			if !p.sealer.Rekey() {
				t.Fatal("raw peer could not rekey")
			}
			p.send(0, []byte("peer gen1"))
			expectData(t, data, done, "peer gen1")
			checkFrame(t, "answer to the peer's first rekey", p.mustRecv(answerWait), tcpcrypt.ControlRekey, 0, "", 1)
			if c.RekeysReceived() != 1 || c.RekeysSent() != 1 {
				t.Fatalf("Conn: %d rekeys received, %d sent; want 1 and 1", c.RekeysReceived(), c.RekeysSent())
			}

			// 2. The Conn's data follows under the same generation, rekey = 0.
			if _, err := c.Write([]byte("conn data")); err != nil {
				t.Fatal(err)
			}
			checkFrame(t, "data after the answer", p.mustRecv(answerWait), 0, 0, "conn data", 1)

			// 3. A rekey with an empty frame (as for keep-alive, §3.9) is
			// answered just the same.
			p.sealer.Rekey()
			p.send(0, nil)
			checkFrame(t, "answer to an empty rekey frame", p.mustRecv(answerWait), tcpcrypt.ControlRekey, 0, "", 2)
			if c.RekeysReceived() != 2 || c.RekeysSent() != 2 {
				t.Fatalf("Conn: %d rekeys received, %d sent; want 2 and 2", c.RekeysReceived(), c.RekeysSent())
			}

			// 4. The Conn initiates a rekey; the peer answers it, as the
			// RFC requires. The peer's answer moves the remote generation
			// to the local one, not above it: the Conn must not answer
			// the answer. Its next frame is its data, rekey = 0.
			if err := c.Rekey(); err != nil {
				t.Fatal(err)
			}
			if _, err := c.Write([]byte("conn gen3")); err != nil {
				t.Fatal(err)
			}
			checkFrame(t, "the Conn's own rekey", p.mustRecv(answerWait), tcpcrypt.ControlRekey, 0, "conn gen3", 3)
			p.sealer.Rekey()
			p.send(0, nil) // the peer's answer: generation 3
			p.send(0, []byte("after the answer"))
			expectData(t, data, done, "after the answer")
			if f, err := p.recv(quietWait); !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("the Conn answered an answer: %+v, %v", f, err)
			}
			if _, err := c.Write([]byte("next")); err != nil {
				t.Fatal(err)
			}
			checkFrame(t, "data after the peer's answer", p.mustRecv(answerWait), 0, 0, "next", 3)
			if c.RekeysReceived() != 3 || c.RekeysSent() != 3 {
				t.Fatalf("Conn: %d rekeys received, %d sent; want 3 and 3", c.RekeysReceived(), c.RekeysSent())
			}

			// 5. The FIN frame ends the Conn's direction; the peer's
			// direction goes on.
			if err := c.CloseWrite(); err != nil {
				t.Fatal(err)
			}
			checkFrame(t, "FIN frame", p.mustRecv(answerWait), 0, tcpcrypt.FlagFIN, "", 3)
			p.send(tcpcrypt.FlagFIN, nil)
			select {
			case err := <-done:
				if err != io.EOF {
					t.Fatalf("Conn read %v, want io.EOF", err)
				}
			case <-time.After(answerWait):
				t.Fatal("Conn did not see the peer's FIN frame")
			}
		})
	}
}

// TestNoRekeyAnswerAfterFIN: once the Conn has sent its FIN frame it does
// not answer the peer's rekeys (RFC 8548 §3.8: only "if the receiver has
// not yet transmitted a segment with the FIN flag set"). The stream is not
// half-closed (noHalfClose), so a frame sent after the FIN frame would
// reach the peer.
func TestNoRekeyAnswerAfterFIN(t *testing.T) {
	for _, aead := range allAEADs {
		t.Run(aead.String(), func(t *testing.T) {
			c, p := resumedWithPeer(t, aead, eno.RoleB, eno.RoleB, func(nc net.Conn) net.Conn { return noHalfClose{nc} })
			data, done := backgroundReader(c)
			if _, err := c.Write([]byte("last")); err != nil {
				t.Fatal(err)
			}
			if err := c.CloseWrite(); err != nil {
				t.Fatal(err)
			}
			checkFrame(t, "data", p.mustRecv(answerWait), 0, 0, "last", 0)
			checkFrame(t, "FIN frame", p.mustRecv(answerWait), 0, tcpcrypt.FlagFIN, "", 0)

			for i, msg := range []string{"late 1", "late 2"} {
				p.sealer.Rekey()
				p.send(0, []byte(msg))
				expectData(t, data, done, msg)
				if c.RekeysReceived() != uint64(i+1) {
					t.Fatalf("Conn followed %d rekeys, want %d", c.RekeysReceived(), i+1)
				}
			}
			if f, err := p.recv(quietWait); !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("the Conn sent after its FIN frame: %+v, %v", f, err)
			}
			if c.RekeysSent() != 0 {
				t.Fatalf("the Conn rekeyed %d times after its FIN frame", c.RekeysSent())
			}

			// Close sends nothing more either: the peer sees the end of
			// the stream right after the FIN frame.
			if err := c.Close(); err != nil {
				t.Fatal(err)
			}
			if f, err := p.recv(answerWait); err != io.EOF {
				t.Fatalf("after Close the peer got %+v, %v; want io.EOF", f, err)
			}
		})
	}
}

// TestRekeyAnswerConns: between two Conns, a rekey by either end is
// answered by the other, which has nothing to send, and both follow: each
// end's rekeys sent equal the other's rekeys received, and the answers do
// not start a ping-pong.
func TestRekeyAnswerConns(t *testing.T) {
	out := simulateENO(t, enoHost{teps: allTEPs}, enoHost{teps: allTEPs})
	cfgA, cfgB := configs(out, tcpcrypt.ChaCha20Poly1305)
	rawA, rawB := tcpPair(t)
	a, b := handshakePair(t, rawA, rawB, cfgA, cfgB)
	dataA, doneA := backgroundReader(a)
	dataB, doneB := backgroundReader(b)
	counts := func() [4]uint64 {
		return [4]uint64{a.RekeysSent(), b.RekeysReceived(), b.RekeysSent(), a.RekeysReceived()}
	}
	waitCounts := func(want [4]uint64) {
		t.Helper()
		if !waitFor(answerWait, func() bool { return counts() == want }) {
			t.Fatalf("A sent, B received, B sent, A received: %v rekeys; want %v", counts(), want)
		}
	}

	a.Rekey()
	a.Write([]byte("ping"))
	expectData(t, dataB, doneB, "ping")
	waitCounts([4]uint64{1, 1, 1, 1}) // B answered, A followed

	b.Rekey()
	b.Write([]byte("pong"))
	expectData(t, dataA, doneA, "pong")
	waitCounts([4]uint64{2, 2, 2, 2}) // A answered, B followed

	a.Write([]byte("no rekey"))
	expectData(t, dataB, doneB, "no rekey")
	time.Sleep(quietWait)
	if got := counts(); got != [4]uint64{2, 2, 2, 2} {
		t.Fatalf("rekeys went on without a cause: %v", got)
	}

	a.CloseWrite()
	b.CloseWrite()
	for _, done := range []<-chan error{doneA, doneB} {
		if err := <-done; err != io.EOF {
			t.Fatalf("read %v, want io.EOF", err)
		}
	}
}

// slowWriter delays every Write, as a congested path does, and reports
// each Write as it starts.
type slowWriter struct {
	net.Conn
	delay   time.Duration
	writing chan<- struct{}
}

func (s slowWriter) Write(p []byte) (int, error) {
	select {
	case s.writing <- struct{}{}:
	default:
	}
	time.Sleep(s.delay)
	return s.Conn.Write(p)
}

// TestCloseDuringRekeyAnswerSendsFIN: Close while the Conn is sending a
// rekey answer (RFC 8548 §3.8) must still end the stream with a FIN frame:
// the application has no Write in flight and the peer reads promptly.
// (Close used to give up on the FIN frame whenever the answer held the
// write lock.)
func TestCloseDuringRekeyAnswerSendsFIN(t *testing.T) {
	writing := make(chan struct{}, 1)
	c, p := resumedWithPeer(t, tcpcrypt.AES128GCM, eno.RoleB, eno.RoleB, func(nc net.Conn) net.Conn {
		return slowWriter{Conn: nc, delay: 50 * time.Millisecond, writing: writing}
	})
	p.sealer.Rekey()
	p.send(0, []byte("x"))
	if n, err := c.Read(make([]byte, 10)); n != 1 || err != nil {
		t.Fatalf("Read: %d, %v", n, err)
	}
	select {
	case <-writing: // the answer is being written
	case <-time.After(answerWait):
		t.Fatal("no rekey answer started")
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	var frames []peerFrame
	for {
		f, err := p.recv(answerWait)
		if err != nil {
			break
		}
		frames = append(frames, f)
	}
	if len(frames) == 0 || frames[len(frames)-1].flags&tcpcrypt.FlagFIN == 0 {
		t.Fatalf("the stream ended without a FIN frame; frames received: %+v", frames)
	}
}
