// HTTP from inside a namespace: the connection is opened on a thread that
// is in the namespace, so it reaches addresses (such as a gateway's API on
// 127.0.0.1) that exist only there.

package netns

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

// HTTPGet fetches http://hostport+path from inside n. A status other than
// 200 is an error carrying the body.
func (n *NS) HTTPGet(hostport, path string) ([]byte, error) {
	var body []byte
	err := n.Do(func() error {
		c, err := net.DialTimeout("tcp", hostport, 2*time.Second)
		if err != nil {
			return err
		}
		tr := &http.Transport{DialContext: func(context.Context, string, string) (net.Conn, error) { return c, nil }}
		defer tr.CloseIdleConnections()
		resp, err := (&http.Client{Transport: tr, Timeout: 5 * time.Second}).Get("http://" + hostport + path)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		body, err = io.ReadAll(io.LimitReader(resp.Body, 64<<20))
		if err == nil && resp.StatusCode != http.StatusOK {
			err = fmt.Errorf("%s: %s", resp.Status, body)
		}
		return err
	})
	return body, err
}

// SendWhole dials addr from inside n, writes payload and closes, and checks
// that the server side, accepting on l, received exactly payload.
func (n *NS) SendWhole(l net.Listener, addr string, payload []byte) error {
	got := make(chan []byte, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			got <- nil
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(30 * time.Second))
		b, _ := io.ReadAll(c)
		got <- b
	}()
	var c net.Conn
	if err := n.Do(func() (err error) { c, err = net.DialTimeout("tcp", addr, 10*time.Second); return }); err != nil {
		return err
	}
	c.SetDeadline(time.Now().Add(30 * time.Second))
	_, werr := c.Write(payload)
	c.Close()
	if werr != nil {
		return werr
	}
	if b := <-got; !bytes.Equal(b, payload) {
		return fmt.Errorf("the server received %d bytes, want %d (equal %v)", len(b), len(payload), bytes.Equal(b, payload))
	}
	return nil
}
