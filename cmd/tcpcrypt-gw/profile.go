//go:build !noprofile

// The CPU profile of a whole run, for measurements (test/bench -profile):
// TCPCRYPT_GW_CPUPROFILE=PREFIX writes PREFIX.<pid>. Release and package
// builds (-tags noprofile, scripts/release.sh) leave runtime/pprof out:
// 0.2 MB of a router's flash (docs/deploy.md); see profile_off.go.

package main

import (
	"fmt"
	"log/slog"
	"os"
	"runtime/pprof"
)

func startCPUProfile(*slog.Logger) (stop func(), err error) {
	prof := os.Getenv("TCPCRYPT_GW_CPUPROFILE")
	if prof == "" {
		return func() {}, nil
	}
	f, err := os.Create(fmt.Sprintf("%s.%d", prof, os.Getpid()))
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}
