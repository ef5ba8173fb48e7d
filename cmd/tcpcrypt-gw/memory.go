// The memory limit and GC target at start (config/memory.go derives them):
//
//  1. GOMEMLIMIT or GOGC set in the environment: the runtime has already
//     applied it; the operator's choice wins and is only logged.
//  2. Otherwise the configured plan, with the limit capped at half of the
//     machine's memory (MemTotal): a router also runs its own daemons, and
//     a limit above what exists would not prevent the OOM killer; and at
//     nine tenths of the service's cgroup limit (cgroup v2 memory.max, e.g.
//     systemd's MemoryMax=), which is the gateway's alone. A cap is logged
//     with the keys to lower.
//  3. runtime/debug.SetMemoryLimit and SetGCPercent apply the result.

package main

import (
	"bufio"
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
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

// decideMemory applies the rules above. memTotal and cgroupMax are 0 when
// unknown (or, for the cgroup, unlimited).
func decideMemory(plan config.MemoryPlan, memTotal, cgroupMax config.ByteSize, envLimit, envGOGC string) memorySettings {
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
	for _, c := range []struct {
		cap  config.ByteSize
		what string
	}{
		{memTotal / 2, fmt.Sprintf("this machine has %s: limit set to half of it", memTotal)},
		{cgroupMax / 10 * 9, fmt.Sprintf("the service's cgroup allows %s: limit set to nine tenths of it", cgroupMax)},
	} {
		if s.limit > 0 && c.cap > 0 && s.limit > c.cap {
			s.warnings = append(s.warnings, fmt.Sprintf(
				"the configured limits can need %s (memory limit %s) but %s, %s; "+
					"lower flows.max or flows.max_buffer_total (docs/deploy.md, Memory)",
				plan.Live, plan.Limit, c.what, c.cap))
			s.limit = c.cap
		}
	}
	return s
}

// applyMemory decides and applies; it returns the settings for logging.
func applyMemory(cfg *config.Config, log *slog.Logger) memorySettings {
	s := decideMemory(cfg.MemoryPlan(), memTotal(), cgroupMemoryMax(), os.Getenv("GOMEMLIMIT"), os.Getenv("GOGC"))
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

// cgroupMemoryMax is memory.max of the process's cgroup (cgroup v2: the
// one line "0::/path" of /proc/self/cgroup), 0 when there is none, it is
// "max", or it cannot be read.
func cgroupMemoryMax() config.ByteSize {
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return 0
	}
	path, ok := bytes.CutPrefix(bytes.TrimSpace(b), []byte("0::"))
	if !ok || bytes.ContainsAny(path, "\n") {
		return 0
	}
	m, err := os.ReadFile(filepath.Join("/sys/fs/cgroup", string(path), "memory.max"))
	if err != nil {
		return 0
	}
	v, err := strconv.ParseInt(string(bytes.TrimSpace(m)), 10, 64)
	if err != nil || v <= 0 {
		return 0 // "max": no limit
	}
	return config.ByteSize(v)
}
