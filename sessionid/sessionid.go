// Package sessionid gives a LAN application behind tcpcrypt-gw the tcpcrypt
// session ID of its own TCP connection, so that it can authenticate the
// connection end to end (RFC 8548 §8: a man in the middle shows up as two
// different session IDs; docs/authentication.md).
//
//	info, err := sessionid.Lookup(ctx, conn)     // conn: a *net.TCPConn through the gateway
//	if err != nil { ... }                         // ErrNotEncrypted: the connection is plain
//	mac := hmac.New(sha256.New, psk); mac.Write(info.SessionID) ...
//
// The flow of Lookup:
//  1. The gateway's session endpoint: Client.Gateway, else the environment
//     variable TCPCRYPT_GW_SESSION_API (host:port), else the default route's
//     gateway (from /proc/net/route or /proc/net/ipv6_route) on port 8474.
//  2. Ask it over HTTP from the connection's own local address (the
//     gateway answers a host only about connections whose address is the
//     request's source address) for the connection's local and remote
//     endpoints.
//  3. While the key exchange is still running (the gateway finishes it just
//     after connect/accept returns), ask again every 20 ms until the
//     context ends.
//
// The package depends only on the standard library and on
// tcpcrypt-gw/gateway/smallhttp (itself standard library only), whose
// small HTTP client keeps net/http's Transport, and with it TLS, out of
// the gateway binary's `session` command (docs/deploy.md, flash).
package sessionid

import (
	"bufio"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"tcpcrypt-gw/gateway/smallhttp"
)

// DefaultPort is the session endpoint's port in the gateway's default
// configuration (session_api.listen: [lan:8474]).
const DefaultPort = 8474

// EnvGateway names the environment variable that overrides the endpoint.
const EnvGateway = "TCPCRYPT_GW_SESSION_API"

var (
	// ErrUnknown: the gateway does not know the connection, or it is not
	// the asking host's (the gateway does not tell the two apart). Also
	// the answer when the connection does not pass through the gateway.
	ErrUnknown = errors.New("sessionid: the gateway knows no such connection of this host")
	// ErrNotEncrypted: the connection is not encrypted (Info.Reason says
	// why); matched with errors.Is.
	ErrNotEncrypted = errors.New("sessionid: the connection is not encrypted")
)

// Info is what the gateway says about one connection.
type Info struct {
	Local, Remote netip.AddrPort
	State         string
	Encrypted     bool
	SessionID     []byte // RFC 8548 §3.4; equal at both ends unless someone is in the middle
	TEP, Cipher   string
	Resumed       bool
	Reason        string // why it is plain or was reset
	// DowngradeSuspected: the peer completed tcpcrypt with the gateway
	// before and answered this connection without it.
	DowngradeSuspected bool
}

// Client asks a gateway's session endpoint. The zero value is ready to use.
type Client struct {
	// Gateway is the endpoint's host:port; empty: EnvGateway, else the
	// default route's gateway on DefaultPort.
	Gateway string
	// Poll is the pause between questions during the key exchange; 0: 20 ms.
	Poll time.Duration
}

// Lookup asks the gateway for conn's session ID with a zero Client. The
// wait for the key exchange ends with ctx (give it a deadline).
func Lookup(ctx context.Context, conn net.Conn) (*Info, error) {
	var c Client
	return c.Lookup(ctx, conn)
}

// Lookup asks for conn's session ID. conn must be a TCP connection (its
// LocalAddr and RemoteAddr are *net.TCPAddr).
func (c *Client) Lookup(ctx context.Context, conn net.Conn) (*Info, error) {
	local, ok1 := conn.LocalAddr().(*net.TCPAddr)
	remote, ok2 := conn.RemoteAddr().(*net.TCPAddr)
	if !ok1 || !ok2 {
		return nil, fmt.Errorf("sessionid: %T is not a TCP connection", conn)
	}
	return c.LookupAddrs(ctx, local.AddrPort(), remote.AddrPort())
}

// handshaking are the states in which the session ID is still to come.
var handshaking = map[string]bool{"syn-sent": true, "ack-pending": true, "syn-received": true, "synack-sent": true, "key-exchange": true}

// LookupAddrs asks for the session ID of the connection between local (an
// address of this host) and remote, as this host sees them.
func (c *Client) LookupAddrs(ctx context.Context, local, remote netip.AddrPort) (*Info, error) {
	local = netip.AddrPortFrom(local.Addr().Unmap(), local.Port())
	remote = netip.AddrPortFrom(remote.Addr().Unmap(), remote.Port())
	gw, err := c.gateway(local.Addr())
	if err != nil {
		return nil, err
	}
	// From the connection's own address: that is whom the gateway answers.
	from := &net.TCPAddr{IP: local.Addr().AsSlice(), Zone: local.Addr().Zone()}
	u := "http://" + gw + "/session?" + url.Values{"local": {local.String()}, "remote": {remote.String()}}.Encode()
	poll := c.Poll
	if poll <= 0 {
		poll = 20 * time.Millisecond
	}
	for {
		info, err := ask(ctx, from, u)
		if err != nil {
			return nil, err
		}
		if !handshaking[info.State] {
			if !info.Encrypted {
				return info, fmt.Errorf("%w (%s: %s)", ErrNotEncrypted, info.State, info.Reason)
			}
			return info, nil
		}
		select {
		case <-ctx.Done():
			return info, fmt.Errorf("sessionid: key exchange still running (%s): %w", info.State, ctx.Err())
		case <-time.After(poll):
		}
	}
}

// answer is the endpoint's JSON (gateway/lanapi.Session).
type answer struct {
	Local, Remote      string
	State              string
	Encrypted          bool
	SessionID          string `json:"session_id"`
	TEP, Cipher        string
	Resumed            bool
	Reason             string
	DowngradeSuspected bool   `json:"downgrade_suspected"`
	Error              string `json:"error"`
}

// maxAnswer bounds the answer read: it is a few hundred bytes.
const maxAnswer = 16 << 10

// askTimeout bounds one question to the gateway (the answer is immediate).
const askTimeout = 5 * time.Second

func ask(ctx context.Context, from net.Addr, u string) (*Info, error) {
	resp, err := smallhttp.GetFrom(ctx, from, u, nil, askTimeout)
	if err != nil {
		// The context's deadline becomes the connection's, which can fail
		// as an I/O timeout a moment before ctx says it is done: a
		// question that ran out of the context's time says so.
		if d, ok := ctx.Deadline(); ctx.Err() != nil || ok && !time.Now().Before(d) {
			err = context.DeadlineExceeded
			if ctx.Err() != nil {
				err = ctx.Err()
			}
		}
		return nil, fmt.Errorf("sessionid: asking the gateway: %w", err)
	}
	defer resp.Body.Close()
	var a answer
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxAnswer)).Decode(&a); err != nil {
		return nil, fmt.Errorf("sessionid: gateway answer (HTTP %d): %w", resp.StatusCode, err)
	}
	switch {
	case resp.StatusCode == http.StatusNotFound:
		return nil, ErrUnknown
	case resp.StatusCode != http.StatusOK:
		return nil, fmt.Errorf("sessionid: gateway: HTTP %d: %s", resp.StatusCode, a.Error)
	}
	info := &Info{State: a.State, Encrypted: a.Encrypted, TEP: a.TEP, Cipher: a.Cipher, Resumed: a.Resumed,
		Reason: a.Reason, DowngradeSuspected: a.DowngradeSuspected}
	info.Local, _ = netip.ParseAddrPort(a.Local)
	info.Remote, _ = netip.ParseAddrPort(a.Remote)
	if info.SessionID, err = hex.DecodeString(a.SessionID); err != nil {
		return nil, fmt.Errorf("sessionid: gateway sent a malformed session ID")
	}
	if a.Encrypted && len(info.SessionID) == 0 {
		return nil, fmt.Errorf("sessionid: gateway says encrypted but sent no session ID")
	}
	return info, nil
}

// gateway returns the endpoint's host:port for a connection from local.
func (c *Client) gateway(local netip.Addr) (string, error) {
	if c.Gateway != "" {
		return c.Gateway, nil
	}
	if g := os.Getenv(EnvGateway); g != "" {
		return g, nil
	}
	gw, err := DefaultGateway(local.Is6())
	if err != nil {
		return "", err
	}
	return netip.AddrPortFrom(gw, DefaultPort).String(), nil
}

// DefaultGateway returns the next hop of this host's default route (IPv6
// when v6), read from /proc/net/route or /proc/net/ipv6_route (Linux).
func DefaultGateway(v6 bool) (netip.Addr, error) {
	if v6 {
		return defaultGateway("ipv6_route", parseIPv6Route)
	}
	return defaultGateway("route", parseIPv4Route)
}

func defaultGateway(name string, parse func(fields []string) (netip.Addr, bool)) (netip.Addr, error) {
	// The calling thread's network namespace (/proc/net is the process
	// leader's, which differs for a thread that entered another one).
	path := "/proc/thread-self/net/" + name
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		path = "/proc/net/" + name
		f, err = os.Open(path)
	}
	if err != nil {
		return netip.Addr{}, fmt.Errorf("sessionid: finding the gateway (set %s): %w", EnvGateway, err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if a, ok := parse(strings.Fields(sc.Text())); ok {
			return a, nil
		}
	}
	return netip.Addr{}, fmt.Errorf("sessionid: no default route in %s (set %s)", path, EnvGateway)
}

// parseIPv4Route reads a /proc/net/route line: Iface Destination Gateway
// Flags ... Mask ..., addresses as little-endian hex.
func parseIPv4Route(f []string) (netip.Addr, bool) {
	if len(f) < 8 || f[1] != "00000000" || f[7] != "00000000" {
		return netip.Addr{}, false
	}
	g, err := strconv.ParseUint(f[2], 16, 32)
	if err != nil || g == 0 {
		return netip.Addr{}, false
	}
	return netip.AddrFrom4([4]byte{byte(g), byte(g >> 8), byte(g >> 16), byte(g >> 24)}), true
}

// parseIPv6Route reads a /proc/net/ipv6_route line: dst dst_len src src_len
// next_hop metric refcnt use flags iface, addresses as 32 hex digits.
func parseIPv6Route(f []string) (netip.Addr, bool) {
	if len(f) < 10 || f[0] != strings.Repeat("0", 32) || f[1] != "00" {
		return netip.Addr{}, false
	}
	b, err := hex.DecodeString(f[4])
	if err != nil || len(b) != 16 {
		return netip.Addr{}, false
	}
	a := netip.AddrFrom16([16]byte(b))
	if a.IsUnspecified() {
		return netip.Addr{}, false
	}
	if a.IsLinkLocalUnicast() {
		a = a.WithZone(f[9])
	}
	return a, true
}
