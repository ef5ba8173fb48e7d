//go:build noprofile

// Release builds: no runtime/pprof (profile.go); a profile asked for is
// refused in the log rather than silently missing.

package main

import (
	"log/slog"
	"os"
)

func startCPUProfile(log *slog.Logger) (stop func(), err error) {
	if os.Getenv("TCPCRYPT_GW_CPUPROFILE") != "" {
		log.Warn("TCPCRYPT_GW_CPUPROFILE: this is a release build without profiling (built with -tags noprofile)")
	}
	return func() {}, nil
}
