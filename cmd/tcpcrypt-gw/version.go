// `tcpcrypt-gw version` (also --version, -v): the release version, set at
// link time with -ldflags "-X main.version=...", followed by what the Go
// toolchain recorded in the binary (runtime/debug.ReadBuildInfo): the Go
// version, the target and, for a build from a git checkout, the commit. A
// package test calls it to see that the installed binary runs.

package main

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
)

// version is the release version; scripts/release.sh and `make package` set
// it from `git describe`. A plain `go build` leaves this default.
var version = "0.1.0-dev"

// printVersion writes one line: name, version, Go version, target, and the
// VCS revision when the build recorded one (a -dirty suffix when the work
// tree had changes).
func printVersion(w io.Writer) {
	line := fmt.Sprintf("tcpcrypt-gw %s %s %s/%s", version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	if info, ok := debug.ReadBuildInfo(); ok {
		var rev, dirty string
		for _, s := range info.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				if s.Value == "true" {
					dirty = "-dirty"
				}
			}
		}
		if len(rev) > 12 {
			rev = rev[:12]
		}
		if rev != "" {
			line += " " + rev + dirty
		}
	}
	fmt.Fprintln(w, line)
}
