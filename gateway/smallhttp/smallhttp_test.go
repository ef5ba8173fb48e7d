package smallhttp

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// start serves h on a loopback port and returns its base URL; the server
// is closed when the test ends.
func start(t *testing.T, s *Server) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(l) }()
	t.Cleanup(func() {
		s.Close()
		select {
		case err := <-done:
			if !errors.Is(err, ErrServerClosed) {
				t.Errorf("Serve returned %v after Close", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("Serve did not return after Close")
		}
	})
	return "http://" + l.Addr().String()
}

// payload is n bytes that differ from position to position.
func payload(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i>>8)
	}
	return b
}

func TestServerResponses(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/small", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, "hello "+r.RemoteAddr)
	})
	mux.HandleFunc("/big/{n}", func(w http.ResponseWriter, r *http.Request) {
		// written in pieces, as encoders do
		b := payload(300 << 10)
		for len(b) > 0 {
			n := min(len(b), 1000)
			w.Write(b[:n])
			b = b[n:]
		}
	})
	mux.HandleFunc("/status", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusTeapot)
		w.WriteHeader(http.StatusOK) // ignored
		io.WriteString(w, `{"x":1}`)
	})
	mux.HandleFunc("/nocontent", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNoContent)
		if _, err := w.Write([]byte("x")); err == nil {
			t.Error("a body after 204 was accepted")
		}
	})
	base := start(t, &Server{Handler: mux})

	resp, err := http.Get(base + "/small")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(string(body), "hello 127.0.0.1:") || resp.ContentLength != int64(len(body)) ||
		resp.Header.Get("Connection") != "close" && !resp.Close || resp.Header.Get("Content-Type") != "text/plain" {
		t.Errorf("/small: %d %q len %d header %v", resp.StatusCode, body, resp.ContentLength, resp.Header)
	}

	resp, err = http.Get(base + "/big/1")
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if sha256.Sum256(body) != sha256.Sum256(payload(300<<10)) || len(resp.TransferEncoding) != 1 || resp.TransferEncoding[0] != "chunked" {
		t.Errorf("/big: %d bytes, transfer encoding %v", len(body), resp.TransferEncoding)
	}

	resp, err = http.Head(base + "/small")
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if len(body) != 0 || resp.ContentLength < int64(len("hello 127.0.0.1:1")) {
		t.Errorf("HEAD: body %q, length %d", body, resp.ContentLength)
	}

	resp, err = http.Get(base + "/status")
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusTeapot || string(body) != `{"x":1}` || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		t.Errorf("/status: %d %q %q", resp.StatusCode, body, resp.Header.Get("Content-Type"))
	}

	resp, err = http.Get(base + "/nocontent")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Errorf("/nocontent: %d", resp.StatusCode)
	}

	resp, err = http.Get(base + "/nothing")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("/nothing: %d", resp.StatusCode)
	}
}

// raw sends request bytes and returns the status line of the answer.
func raw(t *testing.T, base, request string) string {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(c, request)
	line, _ := bufio.NewReader(c).ReadString('\n')
	return strings.TrimSpace(line)
}

func TestServerBadRequests(t *testing.T) {
	var called atomic.Int32
	base := start(t, &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { called.Add(1) }), MaxHeaderBytes: 1024, MaxBodyBytes: 100})
	for _, c := range []struct{ req, want string }{
		{"NONSENSE\r\n\r\n", "HTTP/1.1 400 Bad Request"},
		{"GET / HTTP/1.1\r\nHost: x\r\nX: " + strings.Repeat("a", 2000) + "\r\n\r\n", "HTTP/1.1 431 Request Header Fields Too Large"},
		{"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 101\r\n\r\n", "HTTP/1.1 413 Request Entity Too Large"},
	} {
		if got := raw(t, base, c.req); got != c.want {
			t.Errorf("%.30q: %q, want %q", c.req, got, c.want)
		}
	}
	if n := called.Load(); n != 0 {
		t.Errorf("the handler ran %d times for bad requests", n)
	}
	if got := raw(t, base, "GET / HTTP/1.0\r\n\r\n"); got != "HTTP/1.1 200 OK" {
		t.Errorf("a good request after bad ones: %q", got)
	}
}

func TestServerSurvivesPanicAndBoundsConnections(t *testing.T) {
	logged := make(chan error, 4)
	release := make(chan struct{})
	entered := make(chan struct{}, 4)
	mux := http.NewServeMux()
	mux.HandleFunc("/panic", func(http.ResponseWriter, *http.Request) { panic("boom") })
	mux.HandleFunc("/block", func(w http.ResponseWriter, r *http.Request) {
		entered <- struct{}{}
		<-release
	})
	mux.HandleFunc("/ok", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	s := &Server{Handler: mux, MaxConns: 1, ErrorLog: func(err error) { logged <- err }}
	base := start(t, s)

	if _, err := http.Get(base + "/panic"); err == nil {
		t.Error("a panicking handler produced a response")
	}
	select {
	case err := <-logged:
		if !strings.Contains(err.Error(), "boom") {
			t.Errorf("logged %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Error("the panic was not logged")
	}

	// With the one connection slot taken by a blocked handler, a request
	// from another host waits, unanswered, until the first one
	// ends; the same host, which has its share, is refused at once.
	// The slot of the request before is given back just after its answer
	// reached the client, so /block can still find it taken (503, on a
	// slow machine): ask again until its handler runs.
	for deadline := time.Now().Add(10 * time.Second); ; {
		answered := make(chan struct{})
		go func() {
			if resp, err := http.Get(base + "/block"); err == nil {
				resp.Body.Close()
			}
			close(answered)
		}()
		select {
		case <-entered:
		case <-answered:
			if time.Now().After(deadline) {
				t.Fatal("the slot of the request before was never given back")
			}
			time.Sleep(20 * time.Millisecond)
			continue
		}
		break
	}
	if got := rawFrom(t, "127.0.0.1", base, "GET /ok HTTP/1.0\r\n\r\n"); got != "HTTP/1.1 503 Service Unavailable" {
		t.Errorf("same host, full server: %q", got)
	}
	got := make(chan string, 1)
	go func() { got <- rawFrom(t, "127.0.0.2", base, "GET /ok HTTP/1.0\r\n\r\n") }()
	select {
	case s := <-got:
		t.Fatalf("second request served while the only slot was busy: %q", s)
	case <-time.After(300 * time.Millisecond):
	}
	close(release)
	select {
	case s := <-got:
		if s != "HTTP/1.1 200 OK" {
			t.Errorf("second request: %q", s)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("second request not served after the first ended")
	}
}

// dialFrom connects to base from the loopback address local (any of
// 127.0.0.0/8 is a distinct client to the server).
func dialFrom(t *testing.T, local, base string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// rawFrom sends request from local and returns the status line of the
// answer ("" when the connection closed without one).
func rawFrom(t *testing.T, local, base, request string) string {
	t.Helper()
	c := dialFrom(t, local, base)
	c.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(c, request)
	line, _ := bufio.NewReader(c).ReadString('\n')
	return strings.TrimSpace(line)
}

// slowClients opens n connections from each of the addresses and sends
// half a request line on each, never the rest (slowloris). It waits until
// the server has taken them in (admitted or refused).
func slowClients(t *testing.T, s *Server, base string, n int, from ...string) []net.Conn {
	t.Helper()
	var cs []net.Conn
	for _, a := range from {
		for range n {
			c := dialFrom(t, a, base)
			io.WriteString(c, "GET /ok HT")
			cs = append(cs, c)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		st := s.Stats()
		s.mu.Lock()
		taken := len(s.conns) + int(st.Refused+st.Evicted)
		s.mu.Unlock()
		if taken >= len(cs) {
			return cs
		}
		if time.Now().After(deadline) {
			t.Fatalf("the server took %d of %d slow connections", taken, len(cs))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitConns waits until s holds n connections.
func waitConns(t *testing.T, s *Server, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		s.mu.Lock()
		got := len(s.conns)
		s.mu.Unlock()
		if got == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d connections held, want %d", got, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// answeredWithin asks for /ok from local and fails t unless the answer is
// 200 within d.
func answeredWithin(t *testing.T, local, base string, d time.Duration) {
	t.Helper()
	t0 := time.Now()
	c := dialFrom(t, local, base)
	c.SetDeadline(t0.Add(d))
	io.WriteString(c, "GET /ok HTTP/1.1\r\nHost: x\r\n\r\n")
	line, err := bufio.NewReader(c).ReadString('\n')
	if strings.TrimSpace(line) != "HTTP/1.1 200 OK" {
		t.Fatalf("%s: %q, %v after %v", local, line, err, time.Since(t0))
	}
}

func okServer() *Server {
	return &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }),
		MaxConns: 8, MaxConnsPerHost: 3, HeaderTimeout: 30 * time.Second, ReadTimeout: 60 * time.Second}
}

// TestSlowlorisOneHost: one host holding many connections that never
// finish their request keeps only its share of the slots (each new one
// takes the place of its own oldest), and another host is answered at
// once.
func TestSlowlorisOneHost(t *testing.T) {
	s := okServer()
	base := start(t, s)
	slowClients(t, s, base, 20, "127.0.0.2")
	answeredWithin(t, "127.0.0.3", base, time.Second)
	if st := s.Stats(); st.Evicted != 20-3 || st.Refused != 0 {
		t.Errorf("%+v, want the host's 17 oldest of 20 connections evicted (over its 3)", st)
	}
	s.mu.Lock()
	held := s.perHost[netip.MustParseAddr("127.0.0.2")]
	s.mu.Unlock()
	if held != 3 {
		t.Errorf("the slow host holds %d connections, want 3", held)
	}
	// The host itself, sending a whole request, gets it served.
	answeredWithin(t, "127.0.0.2", base, time.Second)
}

// TestSlowlorisManyHosts: slow connections from many addresses (an IPv6
// host can take many) fill every slot; a new host still gets one, from
// the oldest of those still reading their head; a slow host that holds a
// slot gets no second one on a full server (503).
func TestSlowlorisManyHosts(t *testing.T) {
	s := okServer()
	base := start(t, s)
	var from []string
	for i := range 8 {
		from = append(from, fmt.Sprintf("127.0.1.%d", i+1))
	}
	slow := slowClients(t, s, base, 1, from...)
	if st := s.Stats(); st.Refused != 0 || st.Evicted != 0 {
		t.Fatalf("the server was not full: %+v", st)
	}
	answeredWithin(t, "127.0.0.3", base, time.Second)
	if st := s.Stats(); st.Evicted != 1 {
		t.Errorf("%d evicted, want 1", st.Evicted)
	}
	// The oldest one went: it reads EOF, no answer.
	slow[0].SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := slow[0].Read(make([]byte, 10)); n != 0 || err != io.EOF {
		t.Errorf("the oldest slow connection read %d bytes, %v; want EOF", n, err)
	}
	waitConns(t, s, 7)                        // the answered request's slot is given back
	slowClients(t, s, base, 1, "127.0.1.100") // full again
	c := dialFrom(t, from[7], base)
	c.SetDeadline(time.Now().Add(5 * time.Second))
	line, _ := bufio.NewReader(c).ReadString('\n')
	if strings.TrimSpace(line) != "HTTP/1.1 503 Service Unavailable" {
		t.Errorf("a second connection from a slow host on a full server: %q", line)
	}
	if st := s.Stats(); st.Refused != 1 || st.Evicted != 1 {
		t.Errorf("%+v, want 1 refused and still 1 evicted", st)
	}
}

// TestHeaderAndBodyTimeouts: a request head that does not arrive within
// HeaderTimeout closes the connection without an answer, and its slot is
// free again; a body that does not arrive within ReadTimeout ends the
// handler's read.
func TestHeaderAndBodyTimeouts(t *testing.T) {
	bodyErr := make(chan error, 1)
	s := &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, err := io.ReadAll(r.Body)
		bodyErr <- err
	}), MaxConns: 1, HeaderTimeout: 200 * time.Millisecond, ReadTimeout: 600 * time.Millisecond}
	base := start(t, s)

	c := dialFrom(t, "127.0.0.2", base)
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n") // the head never ends
	t0 := time.Now()
	c.SetReadDeadline(t0.Add(5 * time.Second))
	n, err := c.Read(make([]byte, 100))
	if n != 0 || err != io.EOF || time.Since(t0) > 2*time.Second {
		t.Fatalf("a head cut short: read %d bytes, %v after %v; want EOF after about 200ms", n, err, time.Since(t0))
	}

	waitConns(t, s, 0)
	c = dialFrom(t, "127.0.0.2", base)
	io.WriteString(c, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc") // 7 bytes never come
	select {
	case err := <-bodyErr:
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() {
			t.Errorf("a body cut short: %v, want a timeout", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a body cut short: the handler's read did not end")
	}
	// The single slot is free again.
	answeredWithin(t, "127.0.0.3", base, 2*time.Second)
}

func TestGet(t *testing.T) {
	big := payload(200 << 10)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer t" || r.URL.RawQuery != "limit=5" {
			http.Error(w, "bad", http.StatusUnauthorized)
			return
		}
		w.(http.Flusher).Flush() // forces chunked transfer coding
		w.Write(big)
	}))
	defer srv.Close()
	resp, err := Get(context.Background(), srv.URL+"/api/flows?limit=5", http.Header{"Authorization": {"Bearer t"}}, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 || !bytes.Equal(body, big) {
		t.Fatalf("status %d, %d bytes, err %v", resp.StatusCode, len(body), err)
	}
	resp, err = Get(context.Background(), srv.URL+"/", nil, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("without token: %d", resp.StatusCode)
	}
	if _, err := Get(context.Background(), "https://127.0.0.1:1/", nil, time.Second); err == nil || !strings.Contains(err.Error(), "only http://") {
		t.Errorf("https: %v", err)
	}
	// A server that accepts and never answers: the timeout ends the wait.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		c, err := l.Accept()
		if err == nil {
			defer c.Close()
			io.Copy(io.Discard, c)
		}
	}()
	t0 := time.Now()
	if _, err := Get(context.Background(), "http://"+l.Addr().String()+"/", nil, 200*time.Millisecond); err == nil {
		t.Error("a silent server gave a response")
	}
	if d := time.Since(t0); d > 3*time.Second {
		t.Errorf("timeout took %v", d)
	}
}

// TestFinishedListenerNotKept: the LAN endpoint serves a new listener each
// time an address comes back, so one whose Serve has returned must leave
// the server (it used to stay in a slice for the server's life), while a
// listener still served is closed by Close.
func TestFinishedListenerNotKept(t *testing.T) {
	s := &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {})}
	for i := 0; i < 50; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- s.Serve(l) }()
		// Wait until Serve holds it, then end it from outside (an address gone).
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
			s.mu.Lock()
			_, in := s.ln[l]
			s.mu.Unlock()
			if in {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("Serve never took the listener")
			}
		}
		l.Close()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatal("Serve did not return after its listener closed")
		}
	}
	s.mu.Lock()
	kept := len(s.ln)
	s.mu.Unlock()
	if kept != 0 {
		t.Errorf("%d finished listeners still held by the server", kept)
	}
	url := start(t, s)
	if _, err := http.Get(url); err != nil {
		t.Fatalf("a live listener after the churn: %v", err)
	}
}
