package e2e

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"tcpcrypt-gw/gateway/packet"
	"tcpcrypt-gw/test/capture"
	"tcpcrypt-gw/test/netns"
)

var marker = []byte("TCPCRYPT-GW-MARKER-7f3a")

// markerPayload is a request body full of the marker, so that every WAN
// segment of a plain connection shows it.
func markerPayload(n int) []byte {
	return bytes.Repeat(marker, n/len(marker)+1)[:n]
}

// sendMarker sends 64 KiB of the marker from the client to addr (served by
// l) and checks that the server got it whole.
func sendMarker(t *testing.T, l net.Listener, from *netns.NS, addr string) {
	t.Helper()
	if err := from.SendWhole(l, addr, markerPayload(64<<10)); err != nil {
		t.Fatalf("marker transfer: %v", err)
	}
}

// checkInitOnWire parses the first bytes each way on the WAN by the figures
// of RFC 8548 §4.1 with offsets written here, not with the project's codec:
// Init1 = magic | message_len | nciphers = K | 2*K bytes of AEAD ids | N_A
// (32) | Pub_A, Init2 = magic | message_len | sym_cipher (2) | N_B (32) |
// Pub_B, nothing ignored; Pub_A and Pub_B are pubA and pubB bytes (32 each
// for X25519; 1220 and 1124 for x25519mlkem768, the default TEP:
// docs/pq-tep.md §3). The segment with the last byte of each has PSH
// (§3.3), whatever the number of segments it takes.
func checkInitOnWire(t *testing.T, pkts []packet.Packet, port uint16, pubA, pubB int) {
	t.Helper()
	known := map[uint16]bool{0x0001: true, 0x0002: true, 0x0010: true} // §7 Table 5
	i1, psh1 := capture.StreamStart(pkts, port, true, 512+pubA)
	if len(i1) < 9 || binary.BigEndian.Uint32(i1) != 0x15101a0e {
		t.Fatalf("client stream does not start with INIT1_MAGIC: %x", i1[:min(len(i1), 16)])
	}
	m1, k := int(binary.BigEndian.Uint32(i1[4:])), int(i1[8])
	if k == 0 || m1 != 9+2*k+32+pubA || len(i1) < m1 {
		t.Fatalf("Init1: message_len %d, nciphers %d, %d bytes captured; want 9+2K+32+%d", m1, k, len(i1), pubA)
	}
	offered := map[uint16]bool{}
	for j := range k {
		id := binary.BigEndian.Uint16(i1[9+2*j:])
		if !known[id] {
			t.Errorf("Init1 offers AEAD 0x%04x", id)
		}
		offered[id] = true
	}
	if !psh1[m1] {
		t.Errorf("no PSH on the segment with the last byte of Init1 (offset %d): %v", m1, psh1)
	}
	i2, psh2 := capture.StreamStart(pkts, port, false, 512+pubB)
	if len(i2) < 10 || binary.BigEndian.Uint32(i2) != 0x097105e0 {
		t.Fatalf("server stream does not start with INIT2_MAGIC: %x", i2[:min(len(i2), 16)])
	}
	m2 := int(binary.BigEndian.Uint32(i2[4:]))
	if m2 != 10+32+pubB || !offered[binary.BigEndian.Uint16(i2[8:])] {
		t.Fatalf("Init2: message_len %d, sym_cipher %x (offered %v)", m2, i2[8:10], offered)
	}
	if !psh2[m2] {
		t.Errorf("no PSH on the segment with the last byte of Init2 (offset %d): %v", m2, psh2)
	}
	// The first frame follows each Init: control | clen, clen covering at
	// least flags and a 16-byte tag (§4.2).
	for _, s := range [][]byte{i1[m1:], i2[m2:]} {
		if len(s) >= 3 && (s[0]&0xfe != 0 || binary.BigEndian.Uint16(s[1:]) < 17) {
			t.Errorf("first frame header %x", s[:3])
		}
	}
}

// TestEncryptedThroughBothGateways is case a: HTTP and 64 MiB each way
// through both gateways, equal session IDs, ENO on the SYNs and no
// plaintext on the wire.
func TestEncryptedThroughBothGateways(t *testing.T) {
	e := newEnv(t, envOptions{})
	cap := startCapture(t, e.topo.Wan, "tcp")
	srv := fmt.Sprintf("%s:9000", e.topo.ServerAddr4)
	l := listen(t, e.topo.Server, "0.0.0.0:9000")
	sendMarker(t, l, e.topo.Client, srv)
	pkts := cap.packets()
	facts := factsFor(pkts, 9000, marker)
	if !facts.SYNWithENO || !facts.SYNACKWithENO {
		t.Errorf("wan capture: ENO on SYN %v, on SYN-ACK %v; want both", facts.SYNWithENO, facts.SYNACKWithENO)
	}
	if facts.MarkerSeen {
		t.Error("the plaintext marker is visible on the wan")
	}
	if facts.PayloadBytes < 64<<10 {
		t.Errorf("wan capture saw only %d payload bytes", facts.PayloadBytes)
	}
	checkInitOnWire(t, pkts, 9000, 1220, 1124) // x25519mlkem768, the default

	transfer(t, l, e.topo.Client, srv, 64<<20, 64<<20, 1)

	fa := flowWithPort(e.flows(e.topo.GwA), 9000)
	fb := flowWithPort(e.flows(e.topo.GwB), 9000)
	if fa == nil || fb == nil {
		t.Fatalf("flows not found: A %v B %v", fa, fb)
	}
	if !fa.Encrypted || !fb.Encrypted || fa.SessionID == "" || fa.SessionID != fb.SessionID {
		t.Fatalf("gateway A: encrypted=%v sid=%s; gateway B: encrypted=%v sid=%s", fa.Encrypted, fa.SessionID, fb.Encrypted, fb.SessionID)
	}
	if fa.TEP == "" || fa.Cipher == "" || fa.Direction != "outbound" || fb.Direction != "inbound" {
		t.Fatalf("flow fields: %+v / %+v", fa, fb)
	}

	// HTTP with Go's server and client.
	hl := listen(t, e.topo.Server, "0.0.0.0:8000")
	body := markerPayload(1 << 20)
	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		in, _ := io.ReadAll(r.Body)
		w.Write(in)
		w.Write(body)
	})}
	go hs.Serve(hl)
	t.Cleanup(func() { hs.Close() })
	resp, err := httpPost(e.topo.Client, fmt.Sprintf("http://%s:8000/echo", e.topo.ServerAddr4), []byte("hello"))
	if err != nil {
		t.Fatalf("http: %v", err)
	}
	if !bytes.Equal(resp, append([]byte("hello"), body...)) {
		t.Fatalf("http body: %d bytes, mismatch", len(resp))
	}
}

func httpPost(from *netns.NS, url string, body []byte) ([]byte, error) {
	tr := &http.Transport{DialContext: func(_ context.Context, network, addr string) (net.Conn, error) { return dial(from, addr) }}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: time.Minute}
	resp, err := c.Post(url, "application/octet-stream", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	return io.ReadAll(resp.Body)
}

// TestLegacyServerIsPlain is case b: a server without a gateway works and
// the flow is reported as plain, with the reason.
func TestLegacyServerIsPlain(t *testing.T) {
	e := newEnv(t, envOptions{})
	cap := startCapture(t, e.topo.Wan, "tcp")
	addr := fmt.Sprintf("%s:9001", e.topo.LegacyAddr4)
	l := listen(t, e.topo.Legacy, "0.0.0.0:9001")
	sendMarker(t, l, e.topo.Client, addr)
	facts := factsFor(cap.packets(), 9001, marker)
	if !facts.MarkerSeen {
		t.Error("the marker of a plain connection is not visible on the wan: the capture is not working")
	}
	if facts.SYNACKWithENO {
		t.Error("a legacy server answered ENO?")
	}
	transfer(t, l, e.topo.Client, addr, 8<<20, 8<<20, 2)
	f := flowWithPort(e.flows(e.topo.GwA), 9001)
	if f == nil || f.Encrypted || f.Reason == "" {
		t.Fatalf("legacy flow: %+v", f)
	}
}

// TestInboundThroughPortForward is case c: a client behind gateway B reaches
// a server behind gateway A's NAT port forward; A plays role B.
func TestInboundThroughPortForward(t *testing.T) {
	e := newEnv(t, envOptions{portForward: true})
	l := listen(t, e.topo.Client, "0.0.0.0:9090")
	addr := fmt.Sprintf("%s:8080", e.topo.GwAWANAddr4)
	transfer(t, l, e.topo.Client2, addr, 16<<20, 16<<20, 3)
	fa := flowWithPort(e.flows(e.topo.GwA), 9090)
	fb := flowWithPort(e.flows(e.topo.GwB), 8080)
	if fa == nil || fb == nil || !fa.Encrypted || !fb.Encrypted || fa.SessionID != fb.SessionID {
		t.Fatalf("inbound flows: A %+v B %+v", fa, fb)
	}
	if fa.Direction != "inbound" || fb.Direction != "outbound" {
		t.Fatalf("directions: A %s B %s", fa.Direction, fb.Direction)
	}
}

// TestConnectionSemantics is case d: the server speaks first, half-close in
// each direction, RST propagation, and a closed port stays refused.
func TestConnectionSemantics(t *testing.T) {
	e := newEnv(t, envOptions{})
	addr := fmt.Sprintf("%s:9002", e.topo.ServerAddr4)
	l := listen(t, e.topo.Server, "0.0.0.0:9002")

	t.Run("server speaks first", func(t *testing.T) {
		go func() {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Write([]byte("220 banner\r\n"))
			b := make([]byte, 4)
			io.ReadFull(c, b)
			c.Write(b)
			c.Close()
		}()
		c, err := dial(e.topo.Client, addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(20 * time.Second))
		b := make([]byte, 12)
		if _, err := io.ReadFull(c, b); err != nil || string(b) != "220 banner\r\n" {
			t.Fatalf("banner %q err %v", b, err)
		}
		c.Write([]byte("ping"))
		rest, err := io.ReadAll(c)
		if err != nil || string(rest) != "ping" {
			t.Fatalf("echo %q err %v", rest, err)
		}
	})

	t.Run("half close client first", func(t *testing.T) {
		// the client sends and closes its side; the server keeps sending after
		transfer(t, l, e.topo.Client, addr, 1<<20, 0, 10)
		transfer(t, l, e.topo.Client, addr, 0, 1<<20, 11)
	})

	t.Run("half close server first", func(t *testing.T) {
		done := make(chan error, 1)
		go func() {
			c, err := l.Accept()
			if err != nil {
				done <- err
				return
			}
			defer c.Close()
			c.Write([]byte("bye"))
			c.(*net.TCPConn).CloseWrite()
			b, err := io.ReadAll(c)
			if err == nil && string(b) != "after-close" {
				err = fmt.Errorf("server read %q", b)
			}
			done <- err
		}()
		c, err := dial(e.topo.Client, addr)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(20 * time.Second))
		b, err := io.ReadAll(c)
		if err != nil || string(b) != "bye" {
			t.Fatalf("client read %q err %v", b, err)
		}
		c.Write([]byte("after-close"))
		c.(*net.TCPConn).CloseWrite()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		c.Close()
	})

	t.Run("reset propagates", func(t *testing.T) {
		go func() {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Write([]byte("x"))
			time.Sleep(200 * time.Millisecond)
			c.(*net.TCPConn).SetLinger(0)
			c.Close() // RST
		}()
		c, err := dial(e.topo.Client, addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(20 * time.Second))
		_, err = io.ReadAll(c)
		if !errors.Is(err, syscall.ECONNRESET) {
			t.Fatalf("want connection reset, got %v", err)
		}
	})

	t.Run("closed port refused", func(t *testing.T) {
		_, err := dial(e.topo.Client, fmt.Sprintf("%s:9999", e.topo.ServerAddr4))
		if !errors.Is(err, syscall.ECONNREFUSED) {
			t.Fatalf("want connection refused, got %v", err)
		}
	})
}

// TestConcurrentConnections is case e: 64 connections of mixed sizes at once.
func TestConcurrentConnections(t *testing.T) {
	e := newEnv(t, envOptions{})
	addr := fmt.Sprintf("%s:9003", e.topo.ServerAddr4)
	l := listen(t, e.topo.Server, "0.0.0.0:9003")
	runConcurrent(t, l, e.topo.Client, addr, 64)
	enc := 0
	for _, f := range e.flows(e.topo.GwA) {
		if strings.HasSuffix(f.WAN, ":9003") && f.Encrypted {
			enc++
		}
	}
	if enc != 64 {
		t.Fatalf("%d of 64 flows encrypted", enc)
	}
}

// runConcurrent runs n transfers at once; the server side echoes hashes.
func runConcurrent(t *testing.T, l net.Listener, from *netns.NS, addr string, n int) {
	t.Helper()
	sizes := []int64{0, 1, 1000, 64 << 10, 1 << 20, 4 << 20}
	type job struct {
		seed     uint64
		up, down int64
	}
	jobs := make(map[uint64]job)
	var mu sync.Mutex
	for i := 0; i < n; i++ {
		j := job{seed: uint64(100 + 2*i), up: sizes[i%len(sizes)], down: sizes[(i*5+3)%len(sizes)]}
		jobs[j.seed] = j
	}
	// server: read an 8-byte header (seed), then duplex
	errs := make(chan error, 2*n)
	go func() {
		for i := 0; i < n; i++ {
			c, err := l.Accept()
			if err != nil {
				errs <- err
				return
			}
			go func(c net.Conn) {
				defer c.Close()
				c.SetDeadline(time.Now().Add(5 * time.Minute))
				var hdr [8]byte
				if _, err := io.ReadFull(c, hdr[:]); err != nil {
					errs <- fmt.Errorf("server header: %w", err)
					return
				}
				seed := uint64(0)
				for k := 0; k < 8; k++ {
					seed |= uint64(hdr[k]) << (8 * k)
				}
				mu.Lock()
				j := jobs[seed]
				mu.Unlock()
				r := duplex(c, seed+1, j.down)
				if r.err != nil || r.n != j.up || r.got != hashOf(seed, j.up) {
					errs <- fmt.Errorf("server side of %d: n=%d want %d err=%v", seed, r.n, j.up, r.err)
					return
				}
				errs <- nil
			}(c)
		}
	}()
	var wg sync.WaitGroup
	for _, j := range jobs {
		wg.Add(1)
		go func(j job) {
			defer wg.Done()
			c, err := dial(from, addr)
			if err != nil {
				errs <- fmt.Errorf("dial: %w", err)
				return
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(5 * time.Minute))
			var hdr [8]byte
			for k := 0; k < 8; k++ {
				hdr[k] = byte(j.seed >> (8 * k))
			}
			c.Write(hdr[:])
			r := duplex(c, j.seed, j.up)
			if r.err != nil || r.n != j.down || r.got != hashOf(j.seed+1, j.down) {
				errs <- fmt.Errorf("client side of %d: n=%d want %d err=%v", j.seed, r.n, j.down, r.err)
				return
			}
			errs <- nil
		}(j)
	}
	wg.Wait()
	for i := 0; i < 2*n; i++ {
		select {
		case err := <-errs:
			if err != nil {
				t.Error(err)
			}
		case <-time.After(5 * time.Minute):
			t.Fatal("concurrent transfers did not finish")
		}
	}
}

// TestRandomLoss is case f: 2% random loss on the wan, both directions.
func TestRandomLoss(t *testing.T) {
	e := newEnv(t, envOptions{})
	lossRules(t, e.topo.Wan, 2)
	addr := fmt.Sprintf("%s:9004", e.topo.ServerAddr4)
	l := listen(t, e.topo.Server, "0.0.0.0:9004")
	transfer(t, l, e.topo.Client, addr, 16<<20, 16<<20, 40)
	runConcurrent(t, l, e.topo.Client, addr, 8)
}

// TestIPv6 is case g: a and b over IPv6.
func TestIPv6(t *testing.T) {
	e := newEnv(t, envOptions{})
	srv := fmt.Sprintf("[%s]:9005", e.topo.ServerAddr6)
	l := listen(t, e.topo.Server, "[::]:9005")
	transfer(t, l, e.topo.Client, srv, 16<<20, 16<<20, 50)
	fa := flowWithPort(e.flows(e.topo.GwA), 9005)
	fb := flowWithPort(e.flows(e.topo.GwB), 9005)
	if fa == nil || fb == nil || !fa.Encrypted || fa.SessionID != fb.SessionID {
		t.Fatalf("IPv6 flows: A %+v B %+v", fa, fb)
	}
	leg := fmt.Sprintf("[%s]:9006", e.topo.LegacyAddr6)
	ll := listen(t, e.topo.Legacy, "[::]:9006")
	transfer(t, ll, e.topo.Client, leg, 4<<20, 4<<20, 51)
	if f := flowWithPort(e.flows(e.topo.GwA), 9006); f == nil || f.Encrypted {
		t.Fatalf("IPv6 legacy flow: %+v", f)
	}
}
