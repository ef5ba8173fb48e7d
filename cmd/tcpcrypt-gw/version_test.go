package main

import (
	"bytes"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// TestVersionCommand builds the binary with a version set through -ldflags
// -X, as release.sh and `make package` do, and runs `version` and
// `--version`: both print that version and the Go version, and exit 0.
func TestVersionCommand(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := filepath.Join(t.TempDir(), "tcpcrypt-gw")
	build := exec.Command("go", "build", "-o", bin, "-ldflags", "-X main.version=9.8.7-test", ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	for _, arg := range []string{"version", "--version"} {
		out, err := exec.Command(bin, arg).Output()
		if err != nil {
			t.Fatalf("%s: %v", arg, err)
		}
		s := string(out)
		if !strings.HasPrefix(s, "tcpcrypt-gw 9.8.7-test "+runtime.Version()+" ") || !strings.HasSuffix(s, "\n") {
			t.Errorf("%s printed %q", arg, s)
		}
	}
}

func TestPrintVersionDefault(t *testing.T) {
	var b bytes.Buffer
	printVersion(&b)
	want := "tcpcrypt-gw " + version + " " + runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH
	if !strings.HasPrefix(b.String(), want) {
		t.Fatalf("got %q, want prefix %q", b.String(), want)
	}
}
