// Get: the client half, for the CLI commands that read a running gateway's
// API (`tcpcrypt-gw flows`, and `session` through package sessionid). One
// request per connection, plain http:// only.
//
//  1. Parse the URL (http only; port 80 when none is given) and dial it
//     under the context and timeout, from a given local address if asked.
//  2. Write the request with net/http's own Request.Write (Connection:
//     close), read the response with http.ReadResponse, which also undoes
//     chunked transfer coding.
//  3. The caller reads and closes the body; closing it closes the
//     connection.

package smallhttp

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"time"
)

// Get fetches rawURL with GET and the given extra headers. timeout bounds
// the whole exchange, reading the body included.
func Get(ctx context.Context, rawURL string, header http.Header, timeout time.Duration) (*http.Response, error) {
	return GetFrom(ctx, nil, rawURL, header, timeout)
}

// GetFrom is Get from the local address local (nil: any).
func GetFrom(ctx context.Context, local net.Addr, rawURL string, header http.Header, timeout time.Duration) (*http.Response, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, err
	}
	if u.Scheme != "http" {
		return nil, fmt.Errorf("%s: only http:// URLs are supported (the gateway's API speaks plain HTTP)", rawURL)
	}
	host := u.Host
	if u.Port() == "" {
		host = net.JoinHostPort(u.Hostname(), "80")
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	d := net.Dialer{LocalAddr: local}
	c, err := d.DialContext(ctx, "tcp", host)
	if err != nil {
		cancel()
		return nil, err
	}
	deadline, _ := ctx.Deadline()
	c.SetDeadline(deadline)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		c.Close()
		cancel()
		return nil, err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	req.Close = true
	if err := req.Write(c); err != nil {
		c.Close()
		cancel()
		return nil, err
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), req)
	if err != nil {
		c.Close()
		cancel()
		return nil, err
	}
	resp.Body = &connBody{ReadCloser: resp.Body, conn: c, cancel: cancel}
	return resp, nil
}

// connBody closes the connection with the body.
type connBody struct {
	io.ReadCloser
	conn   net.Conn
	cancel context.CancelFunc
}

func (b *connBody) Close() error {
	err := b.ReadCloser.Close()
	b.conn.Close()
	b.cancel()
	return err
}
