// Package monitor serves the gateway's read-only HTTP interface: per-flow
// state and totals as JSON (/api/...), Prometheus metrics (/metrics) and a
// dashboard page (/).
//
// The flow of a request:
//  1. Authentication: a bearer token is required when one is configured
//     (always, when the listener is not on loopback). Only the dashboard
//     page also takes it as a `token` query parameter, because a browser
//     cannot add a header to the address typed in; the page passes it on as
//     a header in its own requests.
//  2. Routing: a known path with a method other than GET or HEAD gets 405,
//     an unknown path 404; every error is a JSON object {"error": "..."}.
//  3. Snapshot: each shard of the flow table is locked in turn, just long
//     enough to copy its flows' Info (no secret is copied).
//  4. Filter, sort by flow ID, paginate, encode.
//
// Nothing here runs per packet: the counters are the engine's atomics, read
// when a request comes.
package monitor

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"tcpcrypt-gw/flowtable"
	"tcpcrypt-gw/gateway/downgrade"
	"tcpcrypt-gw/gateway/engine"
)

// Source is what the API reads.
type Source struct {
	Table  *flowtable.Table[*engine.Flow]
	Shards int
	Stats  *engine.Stats
	Start  time.Time
	// Paths is the memory of RFC 8547 §9 failures per peer (/api/paths);
	// nil: an empty list.
	Paths *downgrade.Paths
	// Workers reads the per-worker counters of a multi-queue data plane
	// (/api/stats "workers"); nil: none.
	Workers func() []WorkerJSON
}

// Handler returns the HTTP interface. token, if not empty, is required as a
// bearer token.
func Handler(src *Source, token string) http.Handler {
	mux := http.NewServeMux()
	// Patterns without a method, so that a wrong method gets our JSON 405
	// rather than ServeMux's plain-text one.
	mux.Handle("/healthz", onlyGET(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Write([]byte("ok\n"))
	}))
	mux.Handle("/api/stats", onlyGET(src.serveStats))
	mux.Handle("/api/flows", onlyGET(src.serveFlows))
	mux.Handle("/api/flows/{id}", onlyGET(src.serveFlow))
	mux.Handle("/api/paths", onlyGET(src.servePaths))
	mux.Handle("/metrics", onlyGET(newMetricsHandler(src).ServeHTTP))
	mux.Handle("/{$}", onlyGET(serveDashboard))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		httpError(w, http.StatusNotFound, "no such path: "+r.URL.Path)
	})
	if token == "" {
		return mux
	}
	return &authenticator{next: mux, digest: sha256.Sum256([]byte(token))}
}

// authenticator lets a request through only with the right token.
type authenticator struct {
	next   http.Handler
	digest [sha256.Size]byte // of the token: what a request's token is compared with
}

func (a *authenticator) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !a.allowed(r) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="tcpcrypt-gw"`)
		httpError(w, http.StatusUnauthorized, "missing or wrong bearer token")
		return
	}
	a.next.ServeHTTP(w, r)
}

func (a *authenticator) allowed(r *http.Request) bool {
	// The authentication scheme name is case-insensitive (RFC 9110 §11.1).
	if h := r.Header.Get("Authorization"); len(h) > 7 && strings.EqualFold(h[:7], "Bearer ") {
		return a.matches(h[7:])
	}
	// The query parameter only opens the page itself, which holds no data:
	// the API still wants the header, so a token in a URL cannot be
	// replayed against it from elsewhere, and never reaches a log.
	if r.URL.Path == "/" && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
		if q := r.URL.Query()["token"]; len(q) == 1 {
			return a.matches(q[0])
		}
	}
	return false
}

// matches compares the digests of the two tokens in constant time: their
// lengths are equal, so the time tells nothing of the token's length
// either (subtle.ConstantTimeCompare returns at once on unequal lengths),
// and a collision of SHA-256 is not a way in.
func (a *authenticator) matches(got string) bool {
	d := sha256.Sum256([]byte(got))
	return subtle.ConstantTimeCompare(d[:], a.digest[:]) == 1
}

// onlyGET answers 405 to any method but GET and HEAD.
func onlyGET(h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			httpError(w, http.StatusMethodNotAllowed, "method "+r.Method+" not allowed; use GET")
			return
		}
		h(w, r)
	})
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

// ErrorJSON is the body of every error response.
type ErrorJSON struct {
	Error string `json:"error"`
}

func httpError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(ErrorJSON{Error: msg})
}
