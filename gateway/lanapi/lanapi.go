// Package lanapi serves the session endpoint on the gateway's LAN side: a
// LAN host asks for the tcpcrypt session ID of one of its own connections,
// so that its application can authenticate the connection end to end (RFC
// 8548 §8: "applications [...] SHOULD authenticate the session ID"; RFC
// 8547 §5.1). LAN hosts do not know they are behind a gateway and never
// see the session ID otherwise.
//
// The flow of a request (GET /session?local=IP:PORT&remote=IP:PORT):
//  1. Parse the two endpoints as the LAN host sees its connection: local is
//     its own address and port, remote the peer's.
//  2. The requester's source address must equal local's address. A host
//     learns only about its own connections: for anything else the answer
//     is byte for byte the answer for a connection that does not exist.
//  3. Look the flow up by its key (LAN = local, WAN = remote) in its shard,
//     copy its snapshot (no secret is copied), answer JSON.
//
// No token is needed: the session ID is not a secret (RFC 8548 §8), and a
// host sees only what it already knows plus that ID. Keys never leave the
// engine. docs/authentication.md says what a LAN attacker can and cannot do.
package lanapi

import (
	"encoding/hex"
	"encoding/json"
	"net"
	"net/http"
	"net/netip"
	"time"

	"tcpcrypt-gw/flowtable"
	"tcpcrypt-gw/gateway/engine"
	"tcpcrypt-gw/gateway/smallhttp"
)

// DefaultPort is the port of session_api.listen's default "lan:8474".
const DefaultPort = 8474

// Path is the one path the endpoint serves.
const Path = "/session"

// Session is the answer about one connection.
type Session struct {
	Local  string `json:"local"`  // the LAN host's endpoint
	Remote string `json:"remote"` // the peer's endpoint, as the LAN host sees it
	State  string `json:"state"`  // the flow's state (docs/monitoring.md)
	// Encrypted: the key exchange completed; SessionID, TEP and Cipher are
	// then set.
	Encrypted bool   `json:"encrypted"`
	SessionID string `json:"session_id,omitempty"` // hex, RFC 8548 §3.4; not a secret
	TEP       string `json:"tep,omitempty"`
	Cipher    string `json:"cipher,omitempty"`
	Resumed   bool   `json:"resumed"`
	Reason    string `json:"reason,omitempty"` // why the flow is plain or was reset
	// DowngradeSuspected: a peer that completed tcpcrypt before answered
	// this connection without TCP-ENO.
	DowngradeSuspected bool `json:"downgrade_suspected"`
}

// Error is the body of every error answer.
type Error struct {
	Error string `json:"error"`
}

// NotFound is the error text for a connection the gateway does not know or
// will not tell the requester about: the two are indistinguishable.
const NotFound = "no such connection"

// Source is the flow table the endpoint reads.
type Source struct {
	Table *flowtable.Table[*engine.Flow]
}

// Handler returns the endpoint.
func Handler(src *Source) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc(Path, src.serveSession)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		reply(w, http.StatusNotFound, Error{"no such path; use GET " + Path + "?local=IP:PORT&remote=IP:PORT"})
	})
	return mux
}

// NewServer returns a server for the endpoint with tight limits: the
// requests are tiny, and any LAN host may connect, so one host gets 4 of
// the 16 connections and 2 s for its request head (docs/security.md). It is a smallhttp
// server (one request per connection), not net/http's, which would link
// TLS into the binary (docs/deploy.md, flash).
func NewServer(src *Source) *smallhttp.Server {
	return &smallhttp.Server{Handler: Handler(src), HeaderTimeout: 2 * time.Second, ReadTimeout: 5 * time.Second,
		WriteTimeout: 5 * time.Second, MaxConnsPerHost: 4, MaxHeaderBytes: 4 << 10, MaxBodyBytes: 4 << 10}
}

func (s *Source) serveSession(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		reply(w, http.StatusMethodNotAllowed, Error{"method " + r.Method + " not allowed; use GET"})
		return
	}
	q := r.URL.Query()
	local, err := endpoint(q.Get("local"))
	if err != nil {
		reply(w, http.StatusBadRequest, Error{"local: want the connection's own IP:PORT, e.g. 192.168.1.7:40000"})
		return
	}
	remote, err := endpoint(q.Get("remote"))
	if err != nil {
		reply(w, http.StatusBadRequest, Error{"remote: want the peer's IP:PORT, e.g. 203.0.113.5:443"})
		return
	}
	from, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil || from.Addr().Unmap().WithZone("") != local.Addr() {
		// Another host's connection: the same answer as no connection.
		reply(w, http.StatusNotFound, Error{NotFound})
		return
	}
	sess, ok := s.lookup(flowtable.Key{LAN: local, WAN: remote})
	if !ok {
		reply(w, http.StatusNotFound, Error{NotFound})
		return
	}
	reply(w, http.StatusOK, sess)
}

// endpoint parses IP:PORT in the canonical form the flow table keys by.
func endpoint(s string) (netip.AddrPort, error) {
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		return ap, err
	}
	if ap.Port() == 0 || !ap.Addr().IsValid() {
		return ap, net.InvalidAddrError("port 0")
	}
	return netip.AddrPortFrom(ap.Addr().Unmap().WithZone(""), ap.Port()), nil
}

// lookup copies the snapshot of the flow with key k, holding its shard's
// lock only for the copy.
func (s *Source) lookup(k flowtable.Key) (Session, bool) {
	i := s.Table.Shard(k)
	s.Table.LockShard(i)
	en, ok := s.Table.Get(i, k)
	var in engine.Info
	if ok {
		in = en.Value.Snapshot()
	}
	s.Table.UnlockShard(i)
	if !ok {
		return Session{}, false
	}
	return Session{Local: in.LAN.String(), Remote: in.WAN.String(), State: in.State, Encrypted: in.Encrypted,
		SessionID: hex.EncodeToString(in.SessionID), TEP: in.TEP, Cipher: in.Cipher, Resumed: in.Resumed,
		Reason: in.Reason, DowngradeSuspected: in.Downgrade}, true
}

func reply(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}
