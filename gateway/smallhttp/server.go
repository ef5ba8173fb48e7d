// Package smallhttp serves an http.Handler over HTTP/1.1 and fetches a URL
// with GET, without net/http's Server and Transport. Those two link the
// whole TLS stack (crypto/tls, x509, RSA, ...) and HTTP/2 into the binary,
// about 1.5 MB of a mipsle build (docs/deploy.md), although the gateway's
// status API speaks plain HTTP on loopback or the LAN only. The request
// parser, the header type and the handlers stay net/http's own.
//
// The flow of one connection on the server:
//  1. Serve waits for a free connection slot (at most MaxConns at once),
//     then accepts.
//  2. The request head and body are read through a reader capped at
//     MaxHeaderBytes + MaxBodyBytes and under one ReadTimeout; a request
//     that does not parse gets 400, one too large 431, and the connection
//     closes.
//  3. The handler runs; what it writes is kept until it returns or passes
//     bufferLimit, then sent with Content-Length, or else as chunks. Every
//     response says Connection: close: one request per connection keeps
//     the server simple and bounded, and the API's clients (the dashboard
//     polling every 2 s, a scraper, the CLI) do not need more.
//  4. A handler that panics gets its connection closed; the server goes on.
package smallhttp

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// Server serves one handler. Set the fields before Serve; zero values take
// the defaults below.
type Server struct {
	Handler        http.Handler
	ReadTimeout    time.Duration // reading the whole request (default 10 s)
	WriteTimeout   time.Duration // writing the whole response (default 30 s)
	MaxConns       int           // connections served at once (default 16)
	MaxHeaderBytes int           // request line and headers (default 16 KiB)
	MaxBodyBytes   int64         // request body (default 64 KiB)
	ErrorLog       func(error)   // handler panics; nil: not logged

	mu     sync.Mutex
	ln     []net.Listener
	conns  map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup
}

// ErrServerClosed is what Serve returns after Close.
var ErrServerClosed = errors.New("smallhttp: server closed")

const (
	defaultReadTimeout  = 10 * time.Second
	defaultWriteTimeout = 30 * time.Second
	defaultMaxConns     = 16
	defaultMaxHeader    = 16 << 10
	defaultMaxBody      = 64 << 10
	// bufferLimit is how much of a response is kept to send it with a
	// Content-Length; a longer one goes out in chunks of about this size.
	bufferLimit = 32 << 10
)

func orDefault[T int | int64 | time.Duration](v, def T) T {
	if v <= 0 {
		return def
	}
	return v
}

// Serve accepts connections on l until l fails or Close is called.
func (s *Server) Serve(l net.Listener) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		l.Close()
		return ErrServerClosed
	}
	s.ln = append(s.ln, l)
	if s.conns == nil {
		s.conns = make(map[net.Conn]struct{})
	}
	s.mu.Unlock()

	slots := make(chan struct{}, orDefault(s.MaxConns, defaultMaxConns))
	backoff := time.Duration(0)
	for {
		slots <- struct{}{}
		c, err := l.Accept()
		if err != nil {
			<-slots
			s.mu.Lock()
			closed := s.closed
			s.mu.Unlock()
			if closed {
				return ErrServerClosed
			}
			if errors.Is(err, net.ErrClosed) {
				return err
			}
			// Out of file descriptors, a connection aborted before
			// accept: wait a little and go on, as net/http does.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		if !s.track(c) {
			c.Close()
			return ErrServerClosed
		}
		go func() {
			defer func() { <-slots }()
			defer s.untrack(c)
			s.serveConn(c)
		}()
	}
}

func (s *Server) track(c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.conns[c] = struct{}{}
	s.wg.Add(1)
	return true
}

func (s *Server) untrack(c net.Conn) {
	c.Close()
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	s.wg.Done()
}

// Close stops the listeners, closes every open connection and waits for
// their handlers to return.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closed = true
	for _, l := range s.ln {
		l.Close()
	}
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	return nil
}

func (s *Server) serveConn(c net.Conn) {
	maxHeader := orDefault(s.MaxHeaderBytes, defaultMaxHeader)
	maxBody := orDefault(s.MaxBodyBytes, defaultMaxBody)
	c.SetReadDeadline(time.Now().Add(orDefault(s.ReadTimeout, defaultReadTimeout)))
	c.SetWriteDeadline(time.Now().Add(orDefault(s.WriteTimeout, defaultWriteTimeout)))

	// The head must fit in maxHeader bytes; the body gets maxBody more.
	limited := &io.LimitedReader{R: c, N: int64(maxHeader)}
	req, err := http.ReadRequest(bufio.NewReaderSize(limited, 4096))
	if err != nil {
		status := http.StatusBadRequest
		if limited.N <= 0 {
			status = http.StatusRequestHeaderFieldsTooLarge
		}
		writeError(c, status)
		return
	}
	limited.N += maxBody
	req.RemoteAddr = c.RemoteAddr().String()
	if req.ContentLength > maxBody {
		writeError(c, http.StatusRequestEntityTooLarge)
		return
	}

	w := &responseWriter{conn: c, header: make(http.Header), head: req.Method == http.MethodHead, http11: req.ProtoAtLeast(1, 1)}
	defer func() {
		if p := recover(); p != nil {
			if s.ErrorLog != nil {
				s.ErrorLog(fmt.Errorf("smallhttp: handler for %s %s panicked: %v", req.Method, req.URL.Path, p))
			}
			return
		}
		w.finish()
	}()
	s.Handler.ServeHTTP(w, req)
}

// writeError answers a request that could not be served, with no handler.
func writeError(c net.Conn, status int) {
	fmt.Fprintf(c, "HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s\n",
		status, http.StatusText(status), len(http.StatusText(status))+1, http.StatusText(status))
}

// responseWriter keeps the response until the handler returns or it grows
// past bufferLimit (then it streams chunks).
type responseWriter struct {
	conn        net.Conn
	header      http.Header
	status      int
	head        bool // a HEAD request: headers only
	headLen     int  // for HEAD: the length of the body not sent
	http11      bool // the client speaks HTTP/1.1: chunks allowed
	body        bytes.Buffer
	sentHeader  bool
	chunked     bool
	writeFailed bool
}

func (w *responseWriter) Header() http.Header { return w.header }

func (w *responseWriter) WriteHeader(status int) {
	if w.status != 0 || status < 200 || status > 999 {
		// Informational (1xx) responses are not supported; a second
		// WriteHeader is ignored, as net/http does.
		return
	}
	w.status = status
}

// bodyAllowed reports whether the status may carry a body (RFC 9110 §6.4.1).
func (w *responseWriter) bodyAllowed() bool {
	return w.status != http.StatusNoContent && w.status != http.StatusNotModified
}

func (w *responseWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if w.writeFailed {
		return 0, io.ErrClosedPipe
	}
	if !w.bodyAllowed() {
		return 0, http.ErrBodyNotAllowed
	}
	if w.head {
		w.headLen += len(p)
		return len(p), nil
	}
	w.body.Write(p)
	if w.body.Len() >= bufferLimit {
		if !w.sentHeader {
			if w.http11 {
				w.chunked = true
			}
			w.sendHeader(-1)
		}
		w.flushBody()
	}
	if w.writeFailed {
		return 0, io.ErrClosedPipe
	}
	return len(p), nil
}

// sendHeader writes the status line and the headers. length is the body's
// Content-Length, or -1 when it is sent in chunks (or, for an HTTP/1.0
// client, until the connection closes).
func (w *responseWriter) sendHeader(length int) {
	w.sentHeader = true
	h := w.header
	if h.Get("Content-Type") == "" && w.body.Len() > 0 {
		h.Set("Content-Type", http.DetectContentType(w.body.Bytes()))
	}
	h.Del("Transfer-Encoding")
	h.Del("Content-Length")
	h.Set("Connection", "close")
	if h.Get("Date") == "" {
		h.Set("Date", time.Now().UTC().Format(http.TimeFormat))
	}
	switch {
	case w.chunked:
		h.Set("Transfer-Encoding", "chunked")
	case length >= 0 && w.bodyAllowed():
		h.Set("Content-Length", strconv.Itoa(length))
	}
	bw := bufio.NewWriterSize(w.conn, 1024)
	fmt.Fprintf(bw, "HTTP/1.1 %d %s\r\n", w.status, http.StatusText(w.status))
	h.Write(bw)
	bw.WriteString("\r\n")
	if bw.Flush() != nil {
		w.writeFailed = true
	}
}

// flushBody sends what is kept, as one chunk when chunked.
func (w *responseWriter) flushBody() {
	if w.body.Len() == 0 || w.writeFailed {
		return
	}
	var err error
	if w.chunked {
		_, err = fmt.Fprintf(w.conn, "%x\r\n", w.body.Len())
		if err == nil {
			w.body.WriteString("\r\n")
		}
	}
	if err == nil {
		_, err = w.conn.Write(w.body.Bytes())
	}
	w.body.Reset()
	if err != nil {
		w.writeFailed = true
	}
}

// finish sends the rest of the response after the handler returned.
func (w *responseWriter) finish() {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if !w.sentHeader {
		w.sendHeader(w.body.Len() + w.headLen)
	}
	if w.head {
		return
	}
	w.flushBody()
	if w.chunked && !w.writeFailed {
		io.WriteString(w.conn, "0\r\n\r\n")
	}
}
