package smallhttp

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
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

	// With one connection slot taken by a blocked handler, a second
	// request waits (it is not accepted) until the first one ends.
	go http.Get(base + "/block")
	<-entered
	got := make(chan string, 1)
	go func() {
		resp, err := http.Get(base + "/ok")
		if err != nil {
			got <- err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		got <- string(b)
	}()
	select {
	case s := <-got:
		t.Fatalf("second request served while the only slot was busy: %q", s)
	case <-time.After(300 * time.Millisecond):
	}
	close(release)
	select {
	case s := <-got:
		if s != "ok" {
			t.Errorf("second request: %q", s)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("second request not served after the first ended")
	}
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
