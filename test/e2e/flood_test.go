// A SYN flood through gateway A: the client namespace sends SYNs from
// random source ports with a raw socket (IPPROTO_RAW, so IP_HDRINCL) to a
// closed port of the server, whose resets the wan drops, so that every
// flooded flow stays half-open at gateway A. The flow table must stay
// within its cap, the process's memory bounded, an encrypted connection
// opened before the flood must keep going byte for byte, and the half-open
// flows must expire on schedule afterwards.
package e2e

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"tcpcrypt-gw/crypto/tcpcrypt"
	"tcpcrypt-gw/eno"
	"tcpcrypt-gw/gateway/packet"
	"tcpcrypt-gw/test/netns"
)

const (
	floodSYNs     = 100000
	floodMaxFlows = 4096
	floodPort     = 9399 // closed on the server
	// floodBurst SYNs are sent, then the sender pauses floodPause: about
	// 50,000 SYNs a second, more than the gateway can take on 2 cores.
	floodBurst = 500
	floodPause = 10 * time.Millisecond
	// floodRSSLimit bounds gateway A's peak resident memory (VmHWM).
	floodRSSLimit = 256 << 20
)

// TestSYNFlood is case 3.
func TestSYNFlood(t *testing.T) {
	e := newEnv(t, envOptions{extraA: fmt.Sprintf("flows:\n  max: %d\n  handshake_timeout: 2s\n", floodMaxFlows)})
	// The server's resets to the flood never come back: half-open flows.
	rules := fmt.Sprintf(`table inet tcgwflood {
  chain forward { type filter hook forward priority 0; policy accept;
    tcp sport %d drop
  }
}`, floodPort)
	if out, err := e.topo.Wan.RunStdin(rules, "nft", "-f", "-"); err != nil {
		t.Fatalf("nft: %v: %s", err, out)
	}

	// 1. An encrypted connection that streams both ways until told to stop.
	l := listen(t, e.topo.Server, "0.0.0.0:9300")
	long := startStreaming(t, e, l, fmt.Sprintf("%s:9300", e.topo.ServerAddr4), 3000)
	before := e.apiStats(e.topo.GwA)
	hwmBefore := vmHWM(t, e.gwA.Pid())

	// 2. The flood, with the flow count watched while it lasts.
	var maxFlows atomic.Int64
	stopWatch := make(chan struct{})
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		for {
			select {
			case <-stopWatch:
				return
			case <-time.After(100 * time.Millisecond):
			}
			if b, err := e.api(e.topo.GwA, "/api/stats"); err == nil {
				if n := jsonNumber(string(b), "flows"); n > maxFlows.Load() {
					maxFlows.Store(n)
				}
			}
		}
	}()
	progressAtStart := long.received()
	start := time.Now()
	fromClient := func(*rand.Rand) netip.Addr { return e.topo.ClientAddr4 }
	sent, sendErrs := synFlood(t, e.topo.Client, fromClient, netip.AddrPortFrom(e.topo.ServerAddr4, floodPort), floodSYNs, time.Minute, nil)
	floodTime := time.Since(start)
	close(stopWatch)
	<-watched
	during := e.apiStats(e.topo.GwA)
	t.Logf("flood: %d SYNs sent in %v (%d send errors); gateway A: %.0f packets in, table full %.0f times, at most %d flows seen; the long connection received %d bytes during it",
		sent, floodTime.Round(time.Millisecond), sendErrs, during["packets_in"]-before["packets_in"],
		during["table_full"]-before["table_full"], maxFlows.Load(), long.received()-progressAtStart)
	if sent < floodSYNs*9/10 {
		t.Fatalf("only %d of %d SYNs could be sent", sent, floodSYNs)
	}
	// The TUN device's queue drops what the gateway cannot take in time.
	if got := during["packets_in"] - before["packets_in"]; got < floodSYNs/5 {
		t.Fatalf("gateway A saw %.0f packets: the flood did not reach it", got)
	}
	if m := maxFlows.Load(); m > floodMaxFlows || during["flows"] > floodMaxFlows {
		t.Fatalf("gateway A had %d flows (now %.0f), above flows.max %d", m, during["flows"], floodMaxFlows)
	}
	if maxFlows.Load() < floodMaxFlows/4 {
		t.Fatalf("at most %d flows seen: the flood did not fill the table", maxFlows.Load())
	}

	// 3. The half-open flows expire after handshake_timeout (2s); bound 20s.
	deadline := time.Now().Add(20 * time.Second)
	for {
		n := e.apiStats(e.topo.GwA)["flows"]
		if n <= 4 {
			t.Logf("flows back to %.0f %v after the flood", n, time.Since(start.Add(floodTime)).Round(100*time.Millisecond))
			break
		}
		if time.Now().After(deadline) {
			flows := e.flows(e.topo.GwA)
			states := map[string]int{}
			for _, f := range flows {
				states[f.State]++
			}
			sample := ""
			if len(flows) > 0 {
				sample = fmt.Sprintf("%+v", flows[len(flows)/2])
			}
			t.Fatalf("%.0f flows 20s after the flood (by state %v; e.g. %s): half-open flows do not expire", n, states, sample)
		}
		time.Sleep(200 * time.Millisecond)
	}

	// 4. Memory: the peak resident set of gateway A.
	peakRSSBelow(t, e, hwmBefore, floodRSSLimit)

	// 5. The long connection still moves, and every byte was right.
	afterFlood := long.received()
	long.waitFor(afterFlood + 1<<20)
	long.stop(t)
	if f := flowWithPort(e.flows(e.topo.GwA), 9300); f == nil || !f.Encrypted {
		t.Fatalf("the long connection's flow is gone or not encrypted: %+v", f)
	}
}

// synFlood sends n SYNs from the addresses src picks and random ports to
// dst through a raw socket in namespace ns, within limit. Each carries the
// options of a Linux SYN and then extra (e.g. enoOffer). It returns how
// many were sent and how many sends failed (a full socket buffer).
func synFlood(t *testing.T, ns *netns.NS, src func(*rand.Rand) netip.Addr, dst netip.AddrPort, n int, limit time.Duration, extra []byte) (sent, failed int) {
	t.Helper()
	var fd int
	err := ns.Do(func() (err error) {
		fd, err = syscall.Socket(syscall.AF_INET, syscall.SOCK_RAW, syscall.IPPROTO_RAW)
		return err
	})
	if err != nil {
		t.Fatalf("raw socket: %v", err)
	}
	defer syscall.Close(fd)
	to := &syscall.SockaddrInet4{Addr: dst.Addr().As4()}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 99))
	// The options of a Linux SYN: MSS, SACK permitted, timestamps, window scale.
	opts := []byte{packet.OptMSS, 4, 0x05, 0xb4, packet.OptSACKPerm, 2, packet.OptTimestamp, 10, 0, 0, 0, 1, 0, 0, 0, 0, packet.OptNOP, packet.OptWScale, 3, 7}
	opts = append(opts, extra...)
	for len(opts)%4 != 0 {
		opts = append(opts, packet.OptEOL) // the data offset counts 32-bit words
	}
	h := packet.Header{Dst: dst.Addr(), DstPort: dst.Port(), Flags: packet.FlagSYN,
		Window: 64240, TTL: 64, Options: opts}
	buf := make([]byte, h.Len())
	deadline := time.Now().Add(limit)
	for sent+failed < n && time.Now().Before(deadline) {
		h.Src = src(rng)
		h.SrcPort = uint16(1024 + rng.IntN(65535-1024))
		h.Seq = rng.Uint32()
		h.IPID = uint16(rng.Uint32())
		pkt := packet.Build(buf, &h)
		if err := syscall.Sendto(fd, pkt, 0, to); err != nil {
			if !errors.Is(err, syscall.ENOBUFS) && !errors.Is(err, syscall.EAGAIN) {
				t.Fatalf("sendto: %v", err)
			}
			failed++
			time.Sleep(time.Millisecond)
			continue
		}
		sent++
		if sent%floodBurst == 0 {
			time.Sleep(floodPause)
		}
	}
	return sent, failed
}

// enoOffer is the ENO option of a tcpcrypt host's SYN (RFC 8547 §4.1, kind
// 69): role A (no global suboption, b = 0, §4.2) offering the TEPs of RFC
// 8548 §7 that the gateway supports, as a peer gateway would send it.
func enoOffer(t *testing.T) []byte {
	t.Helper()
	teps := []eno.Suboption{{TEP: byte(tcpcrypt.TEPCurve25519)}, {TEP: byte(tcpcrypt.TEPCurve448)}, {TEP: byte(tcpcrypt.TEPP256)}, {TEP: byte(tcpcrypt.TEPP521)}}
	opt, err := eno.AppendSYNOption(nil, eno.Offer(teps))
	if err != nil {
		t.Fatal(err)
	}
	return opt
}

// peakRSSBelow fails t if gateway A's peak resident set (VmHWM) is above
// limit; before is the peak read before the flood, for the log.
func peakRSSBelow(t *testing.T, e *env, before, limit int64) {
	t.Helper()
	hwm := vmHWM(t, e.gwA.Pid())
	t.Logf("gateway A VmHWM: %d KiB before the flood, %d KiB peak", before>>10, hwm>>10)
	if hwm > limit {
		t.Fatalf("gateway A peak RSS %d MiB, above %d MiB", hwm>>20, limit>>20)
	}
}

// vmHWM is the peak resident set size of process pid, in bytes.
func vmHWM(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				t.Fatalf("VmHWM %q: %v", rest, err)
			}
			return kb << 10
		}
	}
	t.Fatalf("no VmHWM in /proc/%d/status", pid)
	return 0
}

// jsonNumber picks "key": number out of an indented JSON object (the
// watcher runs outside the test goroutine, so it cannot use apiStats).
func jsonNumber(js, key string) int64 {
	i := strings.Index(js, `"`+key+`":`)
	if i < 0 {
		return -1
	}
	rest := strings.TrimLeft(js[i+len(key)+3:], " ")
	j := 0
	for j < len(rest) && rest[j] >= '0' && rest[j] <= '9' {
		j++
	}
	n, _ := strconv.ParseInt(rest[:j], 10, 64)
	return n
}

// streaming is one connection on which both ends write pseudo-random
// streams until stopped, and verify every byte they read.
type streaming struct {
	client, server net.Conn
	clientSent     atomic.Int64 // bytes the client wrote
	serverSent     atomic.Int64
	clientGot      *countingConn // the client's reads, counted as they happen
	stopping       chan struct{}
	done           sync.WaitGroup
	clientRes      verified
	serverRes      verified
	clientErr      error
	serverErr      error
	seed           uint64
}

// startStreaming opens the connection (it must be encrypted) and starts
// both directions.
func startStreaming(t *testing.T, e *env, l net.Listener, addr string, seed uint64) *streaming {
	t.Helper()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			accepted <- nil
			return
		}
		accepted <- c
	}()
	c, err := dial(e.topo.Client, addr)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	sc := <-accepted
	if sc == nil {
		t.Fatal("accept failed")
	}
	s := &streaming{client: c, server: sc, stopping: make(chan struct{}), seed: seed, clientGot: &countingConn{Conn: c}}
	t.Cleanup(func() { c.Close(); sc.Close() })
	for _, x := range []net.Conn{c, sc} {
		x.SetDeadline(time.Now().Add(3 * time.Minute))
	}
	const unbounded = 1 << 50
	s.done.Add(4)
	go func() { defer s.done.Done(); s.clientErr = s.write(c, seed, &s.clientSent) }()
	go func() { defer s.done.Done(); s.serverErr = s.write(sc, seed+1, &s.serverSent) }()
	go func() { defer s.done.Done(); s.serverRes = readVerified(sc, seed, unbounded) }()
	go func() { defer s.done.Done(); s.clientRes = readVerified(s.clientGot, seed+1, unbounded) }()
	// Wait until data flows, then check that it is encrypted.
	s.waitFor(64 << 10)
	if f := flowWithPort(e.flows(e.topo.GwA), addrPort(addr)); f == nil || !f.Encrypted {
		t.Fatalf("the streaming connection is not encrypted: %+v", f)
	}
	return s
}

func addrPort(addr string) int {
	_, p, _ := net.SplitHostPort(addr)
	n, _ := strconv.Atoi(p)
	return n
}

// write sends the stream seed in 16 KiB pieces until stopping, then
// half-closes.
func (s *streaming) write(c net.Conn, seed uint64, sent *atomic.Int64) error {
	src := newStream(seed, 1<<50)
	buf := make([]byte, 16<<10)
	for {
		select {
		case <-s.stopping:
			return c.(*net.TCPConn).CloseWrite()
		default:
		}
		src.Read(buf)
		n, err := c.Write(buf)
		sent.Add(int64(n))
		if err != nil {
			return err
		}
	}
}

// received is how many bytes the client has read so far.
func (s *streaming) received() int64 { return s.clientGot.n.Load() }

// waitFor waits (at most a minute) until the client has read n bytes.
func (s *streaming) waitFor(n int64) {
	deadline := time.Now().Add(time.Minute)
	for s.received() < n && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
}

// stop ends both directions and checks that each side read exactly what
// the other wrote.
func (s *streaming) stop(t *testing.T) {
	t.Helper()
	close(s.stopping)
	s.done.Wait()
	if s.clientErr != nil || s.serverErr != nil || s.clientRes.err != nil || s.serverRes.err != nil {
		t.Fatalf("streaming: client write %v, server write %v, client read %v, server read %v",
			s.clientErr, s.serverErr, s.clientRes.err, s.serverRes.err)
	}
	s.serverRes.mustBePrefix(t, "server")
	s.clientRes.mustBePrefix(t, "client")
	if s.serverRes.n != s.clientSent.Load() || s.clientRes.n != s.serverSent.Load() {
		t.Fatalf("streaming: server read %d of %d bytes, client read %d of %d", s.serverRes.n, s.clientSent.Load(), s.clientRes.n, s.serverSent.Load())
	}
	t.Logf("streaming connection: %d bytes up, %d down, byte-exact", s.serverRes.n, s.clientRes.n)
}

// countingConn counts the bytes read through it.
type countingConn struct {
	net.Conn
	n atomic.Int64
}

func (c *countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.n.Add(int64(n))
	return n, err
}
