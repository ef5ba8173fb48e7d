// HTTP from inside a namespace: the connection is opened on a thread that
// is in the namespace, so it reaches addresses (such as a gateway's API on
// 127.0.0.1) that exist only there.

package netns

import (
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
