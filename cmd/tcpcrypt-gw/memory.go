// The memory limit and GC target at start (config/memory.go derives them):
//
//  1. GOMEMLIMIT or GOGC set in the environment: the runtime has already
//     applied it; the operator's choice wins and is only logged.
//  2. Otherwise the configured plan, with the limit capped at half of the
//     machine's memory (MemTotal): a router also runs its own daemons, and
//     a limit above what exists would not prevent the OOM killer. A cap is
//     logged with the keys to lower.
//  3. runtime/debug.SetMemoryLimit and SetGCPercent apply the result.

package main

import (
	"bufio"
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"runtime/debug"
	"strconv"

	"tcpcrypt-gw/config"
)

// memorySettings is what the gateway sets, and why.
type memorySettings struct {
	limit    config.ByteSize // 0: leave the runtime's limit alone
	gogc     int             // 0: leave the runtime's GOGC alone
	warnings []string
}

// decideMemory applies the rules above. memTotal is 0 when unknown.
func decideMemory(plan config.MemoryPlan, memTotal config.ByteSize, envLimit, envGOGC string) memorySettings {
	var s memorySettings
	if envGOGC == "" {
		s.gogc = plan.GOGC
	} else {
		s.warnings = append(s.warnings, fmt.Sprintf("GOGC=%s from the environment wins over memory.gogc (%d)", envGOGC, plan.GOGC))
	}
	if envLimit != "" {
		s.warnings = append(s.warnings, fmt.Sprintf("GOMEMLIMIT=%s from the environment wins over memory.limit", envLimit))
		return s
	}
	s.limit = plan.Limit
	if half := memTotal / 2; s.limit > 0 && half > 0 && s.limit > half {
		s.warnings = append(s.warnings, fmt.Sprintf(
			"the configured limits can need %s (memory limit %s) but this machine has %s: limit set to half of it, %s; "+
				"lower flows.max or flows.max_buffer_total (docs/deploy.md, Memory)",
			plan.Live, plan.Limit, memTotal, half))
		s.limit = half
	}
	return s
}

// applyMemory decides and applies; it returns the settings for logging.
func applyMemory(cfg *config.Config, log *slog.Logger) memorySettings {
	s := decideMemory(cfg.MemoryPlan(), memTotal(), os.Getenv("GOMEMLIMIT"), os.Getenv("GOGC"))
	for _, w := range s.warnings {
		log.Warn("memory", "note", w)
	}
	if s.limit > 0 {
		debug.SetMemoryLimit(int64(s.limit))
	}
	if s.gogc > 0 {
		debug.SetGCPercent(s.gogc)
	}
	return s
}

// memTotal is MemTotal of /proc/meminfo, 0 when it cannot be read.
func memTotal() config.ByteSize {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0
	}
	return parseMemTotal(b)
}

func parseMemTotal(b []byte) config.ByteSize {
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := bytes.Fields(sc.Bytes())
		if len(f) == 3 && string(f[0]) == "MemTotal:" && string(f[2]) == "kB" {
			kb, err := strconv.ParseInt(string(f[1]), 10, 64)
			if err == nil && kb > 0 {
				return config.ByteSize(kb) * config.KiB
			}
		}
	}
	return 0
}
