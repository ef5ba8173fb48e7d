// Package smallhttp serves an http.Handler over HTTP/1.1 and fetches a URL
// with GET, without net/http's Server and Transport. Those two link the
// whole TLS stack (crypto/tls, x509, RSA, ...) and HTTP/2 into the binary,
// about 1.5 MB of a mipsle build (docs/deploy.md), although the gateway's
// status API speaks plain HTTP on loopback or the LAN only. The request
// parser, the header type and the handlers stay net/http's own.
//
// The flow of one connection on the server:
//  1. Serve accepts whenever a connection could be admitted: a slot is free
//     (at most MaxConns at once), or one is held by a connection that has
//     not sent its request head yet, which may be evicted.
//  2. Admission, per client (its source address): a host at
//     MaxConnsPerHost gives up its own oldest connection still reading
//     its head, or else the new one is refused (503). With every slot
//     taken, the oldest connection still reading its head, of the host
//     holding the most connections, gives way if that host holds more
//     than the newcomer's; otherwise a newcomer that holds connections
//     already is refused, and one that holds none waits until a handler
//     returns. So a host that holds connections open without sending
//     requests (slowloris) cannot keep another host out, and a request
//     that arrives whole is served at once.
//  3. The request head must arrive within HeaderTimeout of the accept, and
//     in MaxHeaderBytes; the head and the body within ReadTimeout, the
//     body in MaxBodyBytes. A request that does not parse gets 400, one
//     too large 431 or 413, and the connection closes.
//  4. The handler runs; what it writes is kept until it returns or passes
//     bufferLimit, then sent with Content-Length, or else as chunks. Every
//     response says Connection: close: one request per connection keeps
//     the server simple and bounded, and the API's clients (the dashboard
//     polling every 2 s, a scraper, the CLI) do not need more.
//  5. A handler that panics gets its connection closed; the server goes on.
package smallhttp

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"time"
)

// Server serves one handler. Set the fields before Serve; zero values take
// the defaults below. The limits hold for the server as a whole, over all
// the listeners it serves.
type Server struct {
	Handler         http.Handler
	HeaderTimeout   time.Duration // from the accept to the end of the request head (default 3 s)
	ReadTimeout     time.Duration // from the accept to the end of the whole request (default 10 s)
	WriteTimeout    time.Duration // writing the whole response (default 30 s)
	MaxConns        int           // connections served at once (default 16)
	MaxConnsPerHost int           // of them, from one source address (default 8)
	MaxHeaderBytes  int           // request line and headers (default 16 KiB)
	MaxBodyBytes    int64         // request body (default 64 KiB)
	ErrorLog        func(error)   // handler panics; nil: not logged

	mu      sync.Mutex
	room    *sync.Cond                // signalled when a connection leaves
	ln      map[net.Listener]struct{} // being served; a listener leaves when its Serve returns
	conns   map[*conn]struct{}
	perHost map[netip.Addr]int
	closed  bool
	wg      sync.WaitGroup
	stats   Stats
}

// Stats counts what the per-client limits did.
type Stats struct {
	Refused uint64 // connections answered 503 at once: their host had its share
	Evicted uint64 // connections closed before their request head was complete, to make room
}

// conn is one admitted connection.
type conn struct {
	net.Conn
	host     netip.Addr
	accepted time.Time
	reading  bool // the request head is not complete yet: it may be evicted
	evicted  bool // closed to make room; its slot is already given back
}

// ErrServerClosed is what Serve returns after Close.
var ErrServerClosed = errors.New("smallhttp: server closed")

const (
	defaultHeaderTimeout = 3 * time.Second
	defaultReadTimeout   = 10 * time.Second
	defaultWriteTimeout  = 30 * time.Second
	defaultMaxConns      = 16
	defaultMaxPerHost    = 8
	defaultMaxHeader     = 16 << 10
	defaultMaxBody       = 64 << 10
	// bufferLimit is how much of a response is kept to send it with a
	// Content-Length; a longer one goes out in chunks of about this size.
	bufferLimit = 32 << 10
	// refuseTimeout bounds the write of a 503 to a refused connection, so
	// that the accept loop never waits for a client (a fresh socket's
	// send buffer takes the few bytes at once).
	refuseTimeout = 50 * time.Millisecond
)

func orDefault[T int | int64 | time.Duration](v, def T) T {
	if v <= 0 {
		return def
	}
	return v
}

// Stats returns the counts so far.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats
}

// init prepares the shared state; s.mu is held.
func (s *Server) init() {
	if s.conns == nil {
		s.ln = make(map[net.Listener]struct{})
		s.conns = make(map[*conn]struct{})
		s.perHost = make(map[netip.Addr]int)
		s.room = sync.NewCond(&s.mu)
	}
}

// Serve accepts connections on l until l fails or Close is called.
func (s *Server) Serve(l net.Listener) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		l.Close()
		return ErrServerClosed
	}
	s.init()
	s.ln[l] = struct{}{}
	s.mu.Unlock()
	// The LAN endpoint serves a new listener each time an address comes
	// back (hotplug), so a finished listener must not stay here.
	defer func() {
		s.mu.Lock()
		delete(s.ln, l)
		s.mu.Unlock()
	}()

	backoff := time.Duration(0)
	for {
		if !s.waitRoom() {
			return ErrServerClosed
		}
		c, err := l.Accept()
		if err != nil {
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
		sc, err := s.admit(c)
		if err != nil {
			c.Close()
			return err
		}
		if sc == nil {
			refuse(c)
			continue
		}
		go func() {
			defer s.untrack(sc)
			s.serveConn(sc)
		}()
	}
}

// waitRoom waits until a new connection could be admitted: a free slot or
// an evictable connection. It reports false once the server is closed.
func (s *Server) waitRoom() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for !s.closed && len(s.conns) >= orDefault(s.MaxConns, defaultMaxConns) && !s.anyReading() {
		s.room.Wait()
	}
	return !s.closed
}

func (s *Server) anyReading() bool {
	for c := range s.conns {
		if c.reading {
			return true
		}
	}
	return false
}

// hostOf is the client a connection's limits are counted for: its source
// address (IPv4-mapped IPv6 as IPv4, without zone).
func hostOf(c net.Conn) netip.Addr {
	if ta, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		return ta.AddrPort().Addr().Unmap().WithZone("")
	}
	ap, _ := netip.ParseAddrPort(c.RemoteAddr().String())
	return ap.Addr().Unmap().WithZone("")
}

// admit applies the per-client limits to a new connection (step 2). It
// returns nil when the connection is to be refused, ErrServerClosed when
// the server was closed meanwhile.
func (s *Server) admit(c net.Conn) (*conn, error) {
	host := hostOf(c)
	maxConns := orDefault(s.MaxConns, defaultMaxConns)
	maxPerHost := min(orDefault(s.MaxConnsPerHost, defaultMaxPerHost), maxConns)
	s.mu.Lock()
	defer s.mu.Unlock()
	for {
		if s.closed {
			return nil, ErrServerClosed
		}
		mine := s.perHost[host]
		if mine >= maxPerHost {
			// Its own slowest connection gives way, or the new one goes.
			if v := s.oldestReading(func(v *conn) bool { return v.host == host }); v != nil {
				s.evict(v)
				continue
			}
			s.stats.Refused++
			return nil, nil
		}
		if len(s.conns) < maxConns {
			break
		}
		// Full: a slot still waiting for its request head gives way, from
		// a host holding more than this one (each gets its share).
		most := 0
		for v := range s.conns {
			if v.reading {
				most = max(most, s.perHost[v.host])
			}
		}
		if most > mine {
			s.evict(s.oldestReading(func(v *conn) bool { return s.perHost[v.host] == most }))
			continue
		}
		if mine > 0 {
			// It has its share already: waiting here would hold up the
			// accept loop for every other host.
			s.stats.Refused++
			return nil, nil
		}
		// Every slot is in a handler, which ends within WriteTimeout.
		s.room.Wait()
	}
	sc := &conn{Conn: c, host: host, accepted: time.Now(), reading: true}
	s.conns[sc] = struct{}{}
	s.perHost[host]++
	s.wg.Add(1)
	return sc, nil
}

// refuse answers 503 to a connection that was not admitted and closes it.
func refuse(c net.Conn) {
	c.SetWriteDeadline(time.Now().Add(refuseTimeout))
	writeError(c, http.StatusServiceUnavailable)
	c.Close()
}

// oldestReading is the connection accepted first among those still
// reading their request head for which match holds; s.mu is held.
func (s *Server) oldestReading(match func(*conn) bool) *conn {
	var old *conn
	for v := range s.conns {
		if v.reading && match(v) && (old == nil || v.accepted.Before(old.accepted)) {
			old = v
		}
	}
	return old
}

// evict closes v and gives its slot back at once; its goroutine ends on
// the closed connection. s.mu is held.
func (s *Server) evict(v *conn) {
	s.release(v)
	v.evicted = true
	s.stats.Evicted++
	v.Close()
}

// release gives v's slot back; s.mu is held.
func (s *Server) release(v *conn) {
	delete(s.conns, v)
	if s.perHost[v.host]--; s.perHost[v.host] <= 0 {
		delete(s.perHost, v.host)
	}
	s.room.Broadcast()
}

func (s *Server) untrack(c *conn) {
	c.Close()
	s.mu.Lock()
	if !c.evicted {
		s.release(c)
	}
	s.mu.Unlock()
	s.wg.Done()
}

// headRead marks c's head as complete: from now on it is not evicted. It
// reports false when c was evicted before.
func (s *Server) headRead(c *conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	c.reading = false
	return !c.evicted
}

// Close stops the listeners, closes every open connection and waits for
// their handlers to return.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closed = true
	for l := range s.ln {
		l.Close()
	}
	for c := range s.conns {
		c.Close()
	}
	if s.room != nil {
		s.room.Broadcast()
	}
	s.mu.Unlock()
	s.wg.Wait()
	return nil
}

func (s *Server) serveConn(c *conn) {
	maxHeader := orDefault(s.MaxHeaderBytes, defaultMaxHeader)
	maxBody := orDefault(s.MaxBodyBytes, defaultMaxBody)
	readEnd := c.accepted.Add(orDefault(s.ReadTimeout, defaultReadTimeout))
	headEnd := c.accepted.Add(orDefault(s.HeaderTimeout, defaultHeaderTimeout))
	if headEnd.After(readEnd) {
		headEnd = readEnd
	}
	c.SetReadDeadline(headEnd)
	c.SetWriteDeadline(time.Now().Add(orDefault(s.WriteTimeout, defaultWriteTimeout)))

	// The head must fit in maxHeader bytes; the body gets maxBody more.
	limited := &io.LimitedReader{R: c, N: int64(maxHeader)}
	req, err := http.ReadRequest(bufio.NewReaderSize(limited, 4096))
	if !s.headRead(c) {
		return
	}
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return // too slow: no answer, the client is not waiting for one
		}
		status := http.StatusBadRequest
		if limited.N <= 0 {
			status = http.StatusRequestHeaderFieldsTooLarge
		}
		writeError(c, status)
		return
	}
	c.SetReadDeadline(readEnd)
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
