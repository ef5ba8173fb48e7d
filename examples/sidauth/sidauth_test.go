package sidauth

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestProofBindsKeyRoleAndID(t *testing.T) {
	psk, sid := []byte("k"), []byte{0x21, 1, 2, 3}
	p := Proof(psk, Client, sid)
	for name, other := range map[string][]byte{
		"role": Proof(psk, Server, sid), "key": Proof([]byte("K"), Client, sid), "id": Proof(psk, Client, []byte{0x21, 1, 2, 4}),
	} {
		if bytes.Equal(p, other) {
			t.Errorf("the proof does not depend on the %s", name)
		}
	}
	if !bytes.Equal(p, Proof(psk, Client, sid)) || len(p) != 32 {
		t.Error("the proof is not a 32-byte function of its inputs")
	}
}

// fakeGateway answers each end of a loopback connection with the session
// ID given for its local port's side.
func fakeGateway(t *testing.T, ids func(local string) string) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, `{"state":"encrypted","encrypted":true,"session_id":%q}`, ids(r.URL.Query().Get("local")))
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// both runs Authenticate at both ends of one loopback connection.
func both(t *testing.T, gw string, clientPSK, serverPSK []byte) (clientErr, serverErr error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	srvErr := make(chan error, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			srvErr <- err
			return
		}
		defer c.Close()
		_, err = Authenticate(c, gw, serverPSK, Server, 5*time.Second)
		srvErr <- err
	}()
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, clientErr = Authenticate(c, gw, clientPSK, Client, 5*time.Second)
	return clientErr, <-srvErr
}

func TestSameSessionAuthenticates(t *testing.T) {
	gw := fakeGateway(t, func(string) string { return "21" + strings.Repeat("ab", 32) })
	if ce, se := both(t, gw, []byte("psk"), []byte("psk")); ce != nil || se != nil {
		t.Fatalf("client %v, server %v", ce, se)
	}
}

func TestDifferentSessionsFailAtBothEnds(t *testing.T) {
	// A relay in the middle: each end's gateway sees its own session.
	var mu sync.Mutex
	var first string
	gw := fakeGateway(t, func(local string) string {
		mu.Lock()
		defer mu.Unlock()
		if first == "" {
			first = local
		}
		if local == first {
			return "21" + strings.Repeat("aa", 32)
		}
		return "21" + strings.Repeat("bb", 32)
	})
	ce, se := both(t, gw, []byte("psk"), []byte("psk"))
	if !errors.Is(ce, ErrMismatch) || !errors.Is(se, ErrMismatch) {
		t.Fatalf("client %v, server %v; want ErrMismatch at both", ce, se)
	}
	if !strings.Contains(ce.Error(), "man in the middle") {
		t.Errorf("message %q does not say what it means", ce)
	}
}

func TestWrongKeyFails(t *testing.T) {
	gw := fakeGateway(t, func(string) string { return hex.EncodeToString([]byte{0x21, 9, 9}) })
	if ce, se := both(t, gw, []byte("psk"), []byte("other")); !errors.Is(ce, ErrMismatch) || !errors.Is(se, ErrMismatch) {
		t.Fatalf("client %v, server %v", ce, se)
	}
}
