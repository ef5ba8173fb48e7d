// Package cross holds what make test-cross runs its cross-built test
// binaries with; this test checks qemu-retry.sh with a stand-in emulator.
package cross

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestQemuRetry runs qemu-retry.sh with a fake emulator that answers from
// a script of outcomes, one per run: only Go's runtime dying in one of the
// known ways under qemu-i386 is run again (at most three runs in all); a
// failing test or any other fatal error is passed on after one run.
func TestQemuRetry(t *testing.T) {
	script, err := filepath.Abs("qemu-retry.sh")
	if err != nil {
		t.Fatal(err)
	}
	const crash = "fatal error: schedule: holding locks"
	for _, c := range []struct {
		name     string
		outcomes []string // "rc|output" per run
		rc, runs int
	}{
		{"passes", []string{"0|PASS"}, 0, 1},
		{"runtime crash, then passes", []string{"2|" + crash, "0|PASS"}, 0, 2},
		{"bad g twice, then passes", []string{"2|fatal error: bad g in signal handler", "2|fatal error: morestack on g0", "0|PASS"}, 0, 3},
		{"crashes every time", []string{"2|" + crash, "2|" + crash, "2|" + crash, "0|PASS"}, 2, 3},
		{"failing test", []string{"1|--- FAIL: TestX", "0|PASS"}, 1, 1},
		{"other fatal error", []string{"2|fatal error: concurrent map writes", "0|PASS"}, 2, 1},
		{"panic", []string{"2|panic: boom", "0|PASS"}, 2, 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			for i, o := range c.outcomes {
				if err := os.WriteFile(filepath.Join(dir, "out"+strconv.Itoa(i+1)), []byte(o), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			// The emulator counts its runs in a file and answers the
			// outcome of this run; it is given the test binary and its
			// flags, as qemu-i386-static is.
			emu := filepath.Join(dir, "emu")
			body := `#!/bin/bash
d=$(dirname "$0")
n=$(( $(cat "$d/runs" 2>/dev/null || echo 0) + 1 ))
echo $n > "$d/runs"
o=$(cat "$d/out$n")
echo "args: $*"
echo "${o#*|}"
exit "${o%%|*}"
`
			if err := os.WriteFile(emu, []byte(body), 0o700); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command("bash", script, emu, "/bin/pkg.test", "-test.short")
			var stderr strings.Builder
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			rc := 0
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				rc = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			runs, _ := os.ReadFile(filepath.Join(dir, "runs"))
			if rc != c.rc || strings.TrimSpace(string(runs)) != strconv.Itoa(c.runs) {
				t.Fatalf("exit %d after %s run(s), want %d after %d; stdout %q stderr %q", rc, strings.TrimSpace(string(runs)), c.rc, c.runs, out, stderr.String())
			}
			if !strings.Contains(string(out), "args: /bin/pkg.test -test.short") {
				t.Errorf("the emulator was not given the binary and its flags: %q", out)
			}
			// The last run's output is passed on whole.
			last := c.outcomes[c.runs-1]
			if !strings.Contains(string(out), last[strings.Index(last, "|")+1:]) {
				t.Errorf("stdout %q lacks the last run's output", out)
			}
			// Each rerun is said on stderr, and nothing else is.
			if said := strings.Count(stderr.String(), "qemu-retry: pkg.test: Go's runtime died"); said != c.runs-1 {
				t.Errorf("stderr %q: %d reruns said, want %d", stderr.String(), said, c.runs-1)
			}
		})
	}
}
