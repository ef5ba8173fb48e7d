// GET /: the dashboard, one self-contained page built once from embedded
// assets. The style sheet and the script are inlined (so that a token-gated
// page needs no further authenticated requests for its own code) and
// allowed by hash in the Content-Security-Policy, which forbids everything
// else: no external resource, no other script, no framing. The script reads
// /api/stats and /api/flows every 2 s with fetch().

package monitor

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"net/http"
	"strconv"
)

//go:embed assets/dashboard.html assets/dashboard.css assets/dashboard.js
var assets embed.FS

// dashboard is the page and its Content-Security-Policy.
var dashboard = func() struct {
	page []byte
	csp  string
} {
	read := func(name string) []byte {
		b, err := assets.ReadFile("assets/" + name)
		if err != nil {
			panic(err) // embedded: cannot happen in a built binary
		}
		return b
	}
	hash := func(b []byte) string {
		h := sha256.Sum256(b)
		return "'sha256-" + base64.StdEncoding.EncodeToString(h[:]) + "'"
	}
	css, js := read("dashboard.css"), read("dashboard.js")
	page := read("dashboard.html")
	page = bytes.Replace(page, []byte("/*STYLE*/"), css, 1)
	page = bytes.Replace(page, []byte("/*SCRIPT*/"), js, 1)
	csp := "default-src 'none'; script-src " + hash(js) + "; style-src " + hash(css) +
		"; connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
	return struct {
		page []byte
		csp  string
	}{page, csp}
}()

func serveDashboard(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Length", strconv.Itoa(len(dashboard.page)))
	h.Set("Content-Security-Policy", dashboard.csp)
	// The URL may carry the token: keep it out of Referer headers and caches.
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	if r.Method == http.MethodHead {
		return
	}
	w.Write(dashboard.page)
}
