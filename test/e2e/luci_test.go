// The LuCI app (deploy/openwrt/luci-app-tcpcrypt-gw) in a real browser:
// headless Chromium inside gateway A's namespace loads its views through a
// small stand-in of LuCI's JavaScript runtime (deploy/testdata/luci), whose
// rpc calls run the app's real rpcd plugin against gateway A's real API,
// and whose uci calls go to an in-memory UCI of this test.
//
//  1. Status: after an encrypted connection and one whose peer answered
//     without TCP-ENO (a downgrade, as in TestDowngradeWarn), the page
//     lists both: the first encrypted with TEP, cipher and session ID, the
//     second highlighted as a suspected downgrade; the totals count it.
//  2. Settings: values set in the form and Save & Apply give the expected
//     UCI, checked first by the gateway's check-config through the plugin;
//     a bad value is refused with check-config's message on the page, and
//     nothing is applied.
//
// Screenshots of both pages go to test/artifacts/ (luci-*.png).
package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"tcpcrypt-gw/test/netns"
)

// uciSection is one section of the test's UCI: ".type" and the options
// (string) and lists ([]string).
type uciSection map[string]any

// luciServer serves the LuCI stand-in, the app's views, /ubus (the rpcd
// plugin) and /uci (the test's UCI) inside a namespace.
type luciServer struct {
	t       *testing.T
	ns      *netns.NS
	root    string // repository root
	runDir  string // the plugin's /var/run/tcpcrypt-gw
	addr    string
	mu      sync.Mutex
	staged  map[string]uciSection
	applied map[string]uciSection // after the last apply; nil before
	applies int
}

// parseUCI reads the sections of a UCI file (single-quoted values, as
// the package ships it).
func parseUCI(t *testing.T, text string) map[string]uciSection {
	t.Helper()
	out := map[string]uciSection{}
	var cur uciSection
	word := regexp.MustCompile(`'([^']*)'|(\S+)`)
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		var w []string
		for _, m := range word.FindAllStringSubmatch(line, -1) {
			w = append(w, m[1]+m[2])
		}
		if len(w) != 3 {
			t.Fatalf("UCI line %q", line)
		}
		switch w[0] {
		case "config":
			cur = uciSection{".type": w[1]}
			out[w[2]] = cur
		case "option":
			cur[w[1]] = w[2]
		case "list":
			l, _ := cur[w[1]].([]string)
			cur[w[1]] = append(l, w[2])
		}
	}
	return out
}

func cloneUCI(m map[string]uciSection) map[string]uciSection {
	b, _ := json.Marshal(m)
	var out map[string]uciSection
	json.Unmarshal(b, &out)
	return out
}

func startLuCI(t *testing.T, ns *netns.NS) *luciServer {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	shipped, err := os.ReadFile(filepath.Join(root, "deploy/openwrt/files/tcpcrypt-gw.config"))
	if err != nil {
		t.Fatal(err)
	}
	s := &luciServer{t: t, ns: ns, root: root, runDir: t.TempDir(), staged: parseUCI(t, string(shipped))}
	var l net.Listener
	if err := ns.Do(func() (err error) { l, err = net.Listen("tcp", "127.0.0.1:0"); return }); err != nil {
		t.Fatal(err)
	}
	s.addr = l.Addr().String()
	mux := http.NewServeMux()
	file := func(path, ctype string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			b, err := os.ReadFile(filepath.Join(root, path))
			if err != nil {
				http.Error(w, err.Error(), http.StatusNotFound)
				return
			}
			w.Header().Set("Content-Type", ctype)
			w.Write(b)
		}
	}
	mux.HandleFunc("GET /{$}", file("deploy/testdata/luci/index.html", "text/html; charset=utf-8"))
	mux.HandleFunc("GET /stub.js", file("deploy/testdata/luci/stub.js", "text/javascript"))
	mux.HandleFunc("GET /luci-static/resources/view/tcpcrypt-gw/{name}", func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("name")
		if name != "status.js" && name != "settings.js" {
			http.NotFound(w, r)
			return
		}
		file("deploy/openwrt/luci-app-tcpcrypt-gw/htdocs/luci-static/resources/view/tcpcrypt-gw/"+name, "text/javascript")(w, r)
	})
	// The router's devices: the namespace's links.
	mux.HandleFunc("GET /devices", func(w http.ResponseWriter, r *http.Request) {
		var names []string
		ns.Do(func() error {
			ifs, err := net.Interfaces()
			for _, i := range ifs {
				names = append(names, i.Name)
			}
			return err
		})
		sort.Strings(names)
		json.NewEncoder(w).Encode(names)
	})
	mux.HandleFunc("GET /uci/load", func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		defer s.mu.Unlock()
		if r.URL.Query().Get("config") != "tcpcrypt-gw" {
			http.Error(w, "no such config", http.StatusNotFound)
			return
		}
		json.NewEncoder(w).Encode(s.staged)
	})
	mux.HandleFunc("POST /uci/save", func(w http.ResponseWriter, r *http.Request) {
		var changes [][]any
		if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&changes); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, c := range changes {
			if len(c) < 4 || c[1] != "tcpcrypt-gw" {
				http.Error(w, fmt.Sprintf("bad change %v", c), http.StatusBadRequest)
				return
			}
			sec, _ := c[2].(string)
			opt, _ := c[3].(string)
			if s.staged[sec] == nil {
				http.Error(w, "no section "+sec, http.StatusBadRequest)
				return
			}
			switch {
			case c[0] == "unset":
				delete(s.staged[sec], opt)
			case c[0] == "set" && len(c) == 5:
				s.staged[sec][opt] = c[4]
			}
		}
		w.Write([]byte("{}"))
	})
	mux.HandleFunc("POST /uci/apply", func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.applied = cloneUCI(s.staged)
		s.applies++
		w.Write([]byte("{}"))
	})
	mux.HandleFunc("POST /ubus", s.ubus)
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go hs.Serve(l)
	t.Cleanup(func() { hs.Close() })
	return s
}

// ubus runs the app's rpcd plugin as rpcd would (`call METHOD`, the
// arguments on stdin) with BusyBox's ash, in the namespace, with the real
// gateway binary.
func (s *luciServer) ubus(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Object, Method string
		Params         json.RawMessage
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&req); err != nil || req.Object != "tcpcrypt-gw" {
		http.Error(w, fmt.Sprintf("bad call %+v: %v", req, err), http.StatusBadRequest)
		return
	}
	params := string(req.Params)
	if params == "" || params == "null" {
		params = "{}"
	}
	out, err := s.ns.RunStdin(params, "env",
		"TCPCRYPT_GW_BIN="+gwBinary,
		"TCPCRYPT_GW_FUNCTIONS="+filepath.Join(s.root, "deploy/testdata/functions.sh"),
		"TCPCRYPT_GW_UCI2YAML="+filepath.Join(s.root, "deploy/openwrt/files/uci2yaml.sh"),
		"TCPCRYPT_GW_RUN_DIR="+s.runDir,
		"busybox", "sh", filepath.Join(s.root, "deploy/openwrt/luci-app-tcpcrypt-gw/root/usr/libexec/rpcd/tcpcrypt-gw"), "call", req.Method)
	if err != nil || !json.Valid(out) {
		s.t.Errorf("rpcd plugin %s: %v\n%s", req.Method, err, out)
		http.Error(w, "plugin failed", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(out)
}

// page is the URL of a view, optionally driven with form values.
func (s *luciServer) page(view string, drive map[string]any) string {
	q := url.Values{"view": {view}}
	if drive != nil {
		b, _ := json.Marshal(drive)
		q.Set("drive", string(b))
	}
	return "http://" + s.addr + "/?" + q.Encode()
}

var doneRE = regexp.MustCompile(`<div id="test-done" data-result="([^"]*)"`)

// load dumps the DOM of url once the page marked itself done.
func (s *luciServer) load(t *testing.T, url string) string {
	t.Helper()
	dom := string(chromium(t, s.ns, 1280, 900, url, "--dump-dom"))
	m := doneRE.FindStringSubmatch(dom)
	if m == nil {
		t.Fatalf("the page did not finish:\n%s", dom)
	}
	if strings.HasPrefix(m[1], "error") {
		t.Fatalf("the page failed: %s\n%s", m[1], dom)
	}
	return dom
}

// screenshot saves url as test/artifacts/name and checks it is a picture.
func (s *luciServer) screenshot(t *testing.T, url, name string, height int) {
	t.Helper()
	dir := filepath.Join("..", "artifacts")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	path, err := filepath.Abs(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	os.Remove(path)
	chromium(t, s.ns, 1280, height, url, "--screenshot="+path)
	if colours, _ := screenshotColours(t, path, 1280, height); colours < 16 {
		t.Errorf("screenshot %s looks empty: %d colours", path, colours)
	}
	t.Logf("screenshot: %s", path)
}

var luciRowRE = regexp.MustCompile(`(?s)<tr class="tr tgw-flow [^"]*"[^>]*>.*?</tr>`)

func TestLuCIApp(t *testing.T) {
	requireChromium(t)
	e := newEnv(t, envOptions{})
	// An encrypted flow, then a downgrade: the peer that completed
	// tcpcrypt answers a later connection without TCP-ENO.
	l := listen(t, e.topo.Server, "0.0.0.0:9740")
	srv := fmt.Sprintf("%s:9740", e.topo.ServerAddr4)
	transfer(t, l, e.topo.Client, srv, 64<<10, 64<<10, 974)
	enc := e.flows(e.topo.GwA)
	if len(enc) != 1 || !enc[0].Encrypted || enc[0].SessionID == "" {
		t.Fatalf("the first flow: %+v", enc)
	}
	stripENOFromSYNACKs(e)
	transfer(t, l, e.topo.Client, srv, 16<<10, 16<<10, 975)
	var down, encrypted string
	for _, f := range e.flows(e.topo.GwA) {
		if f.DowngradeSuspected {
			down = f.LAN
		} else if f.Encrypted {
			encrypted = f.LAN
		}
	}
	if down == "" || encrypted == "" {
		t.Fatalf("want an encrypted and a downgrade-flagged flow: %+v", e.flows(e.topo.GwA))
	}

	s := startLuCI(t, e.topo.GwA)
	// The plugin reads the token the init script would have written; the
	// test gateway's API takes any (it has none).
	os.WriteFile(filepath.Join(s.runDir, "api-token"), []byte("unused"), 0o600)

	t.Run("status", func(t *testing.T) {
		u := s.page("tcpcrypt-gw/status", nil)
		dom := s.load(t, u)
		rows := luciRowRE.FindAllString(dom, -1)
		var encRow, downRow string
		for _, r := range rows {
			if strings.Contains(r, ">"+encrypted+"<") {
				encRow = r
			}
			if strings.Contains(r, ">"+down+"<") {
				downRow = r
			}
		}
		sid := enc[0].SessionID
		for _, want := range []string{"tgw-encrypted", ">" + srv + "<", ">encrypted<", ">x25519mlkem768<", ">" + enc[0].Cipher + "<", `title="` + sid + `"`, ">" + sid[:16] + "…<", ">no<"} {
			if !strings.Contains(encRow, want) {
				t.Errorf("the encrypted flow's row lacks %q:\n%s", want, encRow)
			}
		}
		for _, want := range []string{"tgw-downgrade", "background:#fde2e1", "downgrade suspected", ">" + srv + "<", "plain ("} {
			if !strings.Contains(downRow, want) {
				t.Errorf("the downgrade's row lacks %q:\n%s", want, downRow)
			}
		}
		if !strings.Contains(dom, "tgw-downgrade-alert") || !regexp.MustCompile(`Suspected downgrades</td><td[^>]*>1<`).MatchString(dom) {
			t.Errorf("totals without the downgrade:\n%s", dom)
		}
		if strings.Contains(dom, "unused") {
			t.Error("the token reached the page")
		}
		s.screenshot(t, u, "luci-status.png", 700)
	})

	t.Run("settings", func(t *testing.T) {
		u := s.page("tcpcrypt-gw/settings", nil)
		dom := s.load(t, u)
		for _, want := range []string{`data-name="lan_device"`, `value="lan0"`, `value="wan0"`, `data-name="downgrade_block"`, `data-name="downgrade_no_syn_fallback"`, `data-name="flows_max"`, `value="4096"`, `data-name="tun_queues"`} {
			if !strings.Contains(dom, want) {
				t.Errorf("the form lacks %s", want)
			}
		}
		s.screenshot(t, u, "luci-settings.png", 1300)

		// Save & Apply with good values: checked by check-config (the
		// devices exist in this namespace), then applied.
		dom = s.load(t, s.page("tcpcrypt-gw/settings", map[string]any{
			"enabled":                   "1",
			"lan_device":                []string{"lan0"},
			"wan_device":                []string{"wan0"},
			"lan_prefix":                []string{"10.91.1.0/24", "fd91:1::/64"},
			"tep":                       []string{"p256", "curve25519"},
			"cipher":                    []string{"chacha20poly1305"},
			"require_prefix":            []string{"203.0.113.0/24"},
			"require_port":              []string{"5432", "6000-6010"},
			"downgrade_block":           []string{"198.51.100.0/24"},
			"downgrade_no_syn_fallback": []string{"192.0.2.0/24"},
			"flows_max":                 "8192",
			"tun_queues":                "2",
		}))
		if strings.Contains(dom, "alert-message danger") || !strings.Contains(dom, "Configuration changes applied") {
			t.Fatalf("good settings not applied:\n%s", dom)
		}
		s.mu.Lock()
		main, applies := s.applied["main"], s.applies
		s.mu.Unlock()
		want := uciSection{".type": "tcpcrypt-gw", "enabled": "1", "source": "uci", "config": "/etc/tcpcrypt-gw/config.yaml",
			"wan_interface": "wan", "lan_device": []any{"lan0"}, "wan_device": []any{"wan0"},
			"lan_prefix": []any{"10.91.1.0/24", "fd91:1::/64"}, "tep": []any{"p256", "curve25519"}, "cipher": []any{"chacha20poly1305"},
			"require_prefix": []any{"203.0.113.0/24"}, "require_port": []any{"5432", "6000-6010"},
			"downgrade_block": []any{"198.51.100.0/24"}, "downgrade_no_syn_fallback": []any{"192.0.2.0/24"}, "flows_max": "8192", "flows_buffer_total": "8MiB", "tun_queues": "2"}
		if applies != 1 || fmt.Sprint(main) != fmt.Sprint(want) {
			t.Fatalf("applied %d times, UCI:\n%v\nwant:\n%v", applies, main, want)
		}

		// A bad value: check-config's message on the page, nothing applied.
		bad := s.page("tcpcrypt-gw/settings", map[string]any{"flows_buffer_total": "8MB", "cipher": []string{"chacha20poly1305", "rot13"}})
		dom = s.load(t, bad)
		for _, msg := range []string{
			`flows.max_buffer_total: unknown unit "MB"`,
			`tcpcrypt.ciphers[1]: unknown cipher "rot13"`,
			"The gateway rejects these settings",
		} {
			if !strings.Contains(strings.ReplaceAll(dom, "&quot;", `"`), msg) {
				t.Errorf("the page lacks %q:\n%s", msg, dom)
			}
		}
		s.mu.Lock()
		applies = s.applies
		s.mu.Unlock()
		if applies != 1 {
			t.Errorf("a rejected change was applied (%d applies)", applies)
		}
		s.screenshot(t, bad, "luci-settings-rejected.png", 500)
	})
}
