// The dashboard in a real browser: headless Chromium inside gateway A's
// namespace loads / after an encrypted and a plain connection, runs the
// page's script (virtual time, so the 2 s refresh runs without waiting) and
// leaves the DOM and screenshots to check. The screenshots are kept in
// test/artifacts/ for people to look at.
package e2e

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/png"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"tcpcrypt-gw/flowtable"
	"tcpcrypt-gw/gateway/engine"
	"tcpcrypt-gw/gateway/monitor"
	"tcpcrypt-gw/test/netns"
)

const chromiumPath = "/usr/bin/chromium"

func requireChromium(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath(chromiumPath); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI=true but %s is missing (make deps installs it)", chromiumPath)
		}
		t.Skipf("%s not installed", chromiumPath)
	}
}

// chromium runs headless Chromium in ns with a window of the given size and
// the extra arguments (--dump-dom or --screenshot=...), and returns its
// output.
func chromium(t *testing.T, ns *netns.NS, width, height int, url string, extra ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	args := append([]string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
		"--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
		"--user-data-dir=" + t.TempDir(), fmt.Sprintf("--window-size=%d,%d", width, height),
		"--virtual-time-budget=5000"}, extra...)
	out, err := ns.Run(ctx, chromiumPath, append(args, url)...)
	if err != nil {
		t.Fatalf("chromium: %v", err)
	}
	return out
}

var (
	rowRE    = regexp.MustCompile(`(?s)<tr class="flow [^"]*"[^>]*>.*?</tr>`)
	statusRE = regexp.MustCompile(`<p id="status"[^>]*>([^<]*)</p>`)
)

// pageStatus is the text of the page's status line: "up …" once the
// script has read the API, "update failed: …" when it could not.
func pageStatus(dom []byte) string {
	m := statusRE.FindSubmatch(dom)
	if m == nil {
		return ""
	}
	return string(m[1])
}

// flowRows returns the flow rows of a dumped DOM.
func flowRows(dom []byte) []string {
	var rows []string
	for _, m := range rowRE.FindAll(dom, -1) {
		rows = append(rows, string(m))
	}
	return rows
}

// checkScreenshot decodes a PNG, checks its size and that it shows more
// than a blank page, including the green of encrypted rows.
func checkScreenshot(t *testing.T, path string, width, height int) {
	t.Helper()
	colours, green := screenshotColours(t, path, width, height)
	if colours < 16 || green < 200 {
		t.Errorf("screenshot %s looks empty: %d colours, %d green pixels", path, colours, green)
	}
}

// screenshotColours decodes a PNG, checks its size and counts its colours
// and its green pixels (every other pixel of every other row).
func screenshotColours(t *testing.T, path string, width, height int) (colours, green int) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("screenshot %s: %v", path, err)
	}
	if img.Bounds() != image.Rect(0, 0, width, height) {
		t.Errorf("screenshot %s is %v, want %dx%d", path, img.Bounds(), width, height)
	}
	seen := map[[3]uint32]bool{}
	for y := 0; y < height; y += 2 {
		for x := 0; x < width; x += 2 {
			r, g, b, _ := img.At(x, y).RGBA()
			seen[[3]uint32{r >> 8, g >> 8, b >> 8}] = true
			if g>>8 > r>>8+8 && g>>8 > b>>8+4 {
				green++
			}
		}
	}
	return len(seen), green
}

func TestDashboardInBrowser(t *testing.T) {
	requireChromium(t)
	e := newEnv(t, envOptions{})
	// An encrypted flow (through both gateways) and a plain one (legacy
	// server without a gateway).
	srv := fmt.Sprintf("%s:9500", e.topo.ServerAddr4)
	transfer(t, listen(t, e.topo.Server, "0.0.0.0:9500"), e.topo.Client, srv, 200<<10, 300<<10, 50)
	legacy := fmt.Sprintf("%s:9501", e.topo.LegacyAddr4)
	transfer(t, listen(t, e.topo.Legacy, "0.0.0.0:9501"), e.topo.Client, legacy, 10<<10, 10<<10, 51)
	if f := flowWithPort(e.flows(e.topo.GwA), 9501); f == nil || f.Encrypted {
		t.Fatalf("legacy flow: %+v", f)
	}

	url := "http://" + apiAddr + "/"
	dom := chromium(t, e.topo.GwA, 1200, 800, url, "--dump-dom")
	if !bytes.Contains(dom, []byte(`id="flow-rows"`)) {
		t.Fatalf("the DOM has no flow table:\n%s", dom)
	}
	if st := pageStatus(dom); !strings.HasPrefix(st, "up ") {
		t.Fatalf("the page could not read the API: status %q", st)
	}
	var encRow, plainRow string
	for _, r := range flowRows(dom) {
		if strings.Contains(r, srv) {
			encRow = r
		}
		if strings.Contains(r, legacy) {
			plainRow = r
		}
	}
	client := e.topo.ClientAddr4.String() + ":"
	if !strings.Contains(encRow, `data-security="encrypted"`) || !strings.Contains(encRow, ">encrypted<") ||
		!strings.Contains(encRow, client) || !strings.Contains(encRow, "outbound") || !strings.Contains(encRow, "x25519mlkem768") ||
		!strings.Contains(encRow, `data-post-quantum="true"`) || !strings.Contains(encRow, ">post-quantum<") {
		t.Errorf("the encrypted flow's row:\n%s\nDOM:\n%s", encRow, dom)
	}
	if !strings.Contains(plainRow, `data-security="plain"`) || !strings.Contains(plainRow, ">plain<") ||
		!strings.Contains(plainRow, client) || !strings.Contains(plainRow, `class="reason"`) {
		t.Errorf("the plain flow's row:\n%s", plainRow)
	}

	dir := filepath.Join("..", "artifacts")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, shot := range []struct {
		name          string
		width, height int
	}{{"dashboard.png", 1200, 800}, {"dashboard-phone.png", 390, 844}} {
		path, err := filepath.Abs(filepath.Join(dir, shot.name))
		if err != nil {
			t.Fatal(err)
		}
		os.Remove(path)
		chromium(t, e.topo.GwA, shot.width, shot.height, url, "--screenshot="+path)
		checkScreenshot(t, path, shot.width, shot.height)
	}
}

// TestDashboardWithToken serves the monitor with a token, in a namespace of
// its own: the page opens with ?token= and its own requests carry the token
// as a header, so the totals arrive.
func TestDashboardWithToken(t *testing.T) {
	requireChromium(t)
	ns, err := netns.New(nsPrefix)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := ns.Close(); err != nil {
			t.Errorf("netns close: %v", err)
		}
	})
	stats := new(engine.Stats)
	stats.AuthFailures.Add(4242)
	stats.FlowsEncrypted.Add(31337)
	src := &monitor.Source{Table: flowtable.New[*engine.Flow](flowtable.Config{Shards: 1, MaxFlows: 16}), Shards: 1,
		Stats: stats, Start: time.Now()}
	const token = "tok-e2e-3f9c"
	var l net.Listener
	if err := ns.Do(func() (err error) { l, err = net.Listen("tcp", "127.0.0.1:0"); return }); err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: monitor.Handler(src, token), ReadHeaderTimeout: 5 * time.Second}
	go hs.Serve(l)
	t.Cleanup(func() { hs.Close() })
	base := "http://" + l.Addr().String() + "/"

	dom := chromium(t, ns, 1200, 800, base+"?token="+token, "--dump-dom")
	if st := pageStatus(dom); !strings.HasPrefix(st, "up ") || !bytes.Contains(dom, []byte(">4242<")) || !bytes.Contains(dom, []byte(">31337<")) {
		t.Errorf("with ?token= the page did not show the totals (status %q):\n%s", st, dom)
	}
	dom = chromium(t, ns, 1200, 800, base+"?token=wrong", "--dump-dom")
	if bytes.Contains(dom, []byte("flow-rows")) || !bytes.Contains(dom, []byte("bearer token")) {
		t.Errorf("a wrong token still got the page:\n%s", dom)
	}
}
