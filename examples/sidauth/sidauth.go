// Package sidauth is the example's session-ID authentication: both ends of
// a TCP connection, each behind its own tcpcrypt-gw, look up the session ID
// of the connection at their gateway (package sessionid) and prove to each
// other, over the connection, that they see the same one.
//
// The exchange (RFC 8548 §8: the session ID is authenticated by the
// application; RFC 8547 §5.1):
//  1. Each end computes HMAC-SHA256(psk, label | role | session ID) with its
//     own role ("client" or "server") and sends the 32 bytes.
//  2. Each end reads the peer's 32 bytes and compares them, in constant
//     time, with the HMAC it expects for the peer's role over its own
//     session ID.
//
// A man in the middle who terminates tcpcrypt towards each gateway makes
// two sessions with two different IDs; without the pre-shared key he
// cannot compute the HMAC over the other ID, so both ends fail. The role
// in the HMAC stops him from reflecting one end's proof back to it.
package sidauth

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"tcpcrypt-gw/sessionid"
)

// Roles.
const (
	Client = "client"
	Server = "server"
)

const label = "tcpcrypt-gw example session-ID authentication v1"

// ErrMismatch: the peer's proof is not over our session ID.
var ErrMismatch = errors.New("session ID authentication FAILED: the peer sees a different tcpcrypt session " +
	"(a man in the middle is terminating the encryption) or uses another pre-shared key")

// Proof is the HMAC one end sends.
func Proof(psk []byte, role string, sessionID []byte) []byte {
	m := hmac.New(sha256.New, psk)
	m.Write([]byte(label))
	m.Write([]byte{0})
	m.Write([]byte(role))
	m.Write([]byte{0})
	m.Write(sessionID)
	return m.Sum(nil)
}

// Authenticate looks up conn's session ID at the gateway (within timeout)
// and runs the exchange as role. It returns the session ID when the peer
// proved it sees the same one.
func Authenticate(conn net.Conn, gateway string, psk []byte, role string, timeout time.Duration) ([]byte, error) {
	if role != Client && role != Server {
		return nil, fmt.Errorf("sidauth: unknown role %q", role)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	c := &sessionid.Client{Gateway: gateway}
	info, err := c.Lookup(ctx, conn)
	if err != nil {
		return nil, fmt.Errorf("session ID lookup: %w", err)
	}
	if info.DowngradeSuspected {
		return nil, errors.New("the gateway suspects a downgrade on this connection")
	}
	peer := Server
	if role == Server {
		peer = Client
	}
	conn.SetDeadline(time.Now().Add(timeout))
	defer conn.SetDeadline(time.Time{})
	errc := make(chan error, 1)
	go func() { _, err := conn.Write(Proof(psk, role, info.SessionID)); errc <- err }()
	got := make([]byte, sha256.Size)
	if _, err := io.ReadFull(conn, got); err != nil {
		return nil, fmt.Errorf("reading the peer's proof: %w", err)
	}
	if err := <-errc; err != nil {
		return nil, fmt.Errorf("sending our proof: %w", err)
	}
	if !hmac.Equal(got, Proof(psk, peer, info.SessionID)) {
		return info.SessionID, ErrMismatch
	}
	return info.SessionID, nil
}
