// `tcpcrypt-gw check-config`: every problem of a config file, with its
// line and reason, and a non-zero exit when there is any; for a good file,
// the cipher order in force and why, and the worst-case memory its limits
// allow.

package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"tcpcrypt-gw/config"
	"tcpcrypt-gw/gateway/engine"
)

func cmdCheckConfig(args []string) error {
	fs := flag.NewFlagSet("check-config", flag.ContinueOnError)
	path := fs.String("c", "", "config file to check (YAML)")
	noIfaces := fs.Bool("no-interfaces", false, "do not check that the named interfaces exist on this machine")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *path == "" {
		return errors.New("check-config needs -c FILE")
	}
	cfg, err := config.Load(*path)
	if err != nil {
		return err
	}
	if !*noIfaces {
		if probs := cfg.CheckInterfaces(interfaceExists); len(probs) > 0 {
			for i := range probs {
				if probs[i].File == "" {
					probs[i].File = *path
				}
			}
			return &config.Error{Problems: probs}
		}
	}
	fmt.Printf("%s: ok\n", *path)
	cipherReport(os.Stdout, cfg)
	memoryReport(os.Stdout, cfg.Flows)
	// What the Go runtime will be held to (config/memory.go), and whether
	// this machine can give it.
	plan := cfg.MemoryPlan()
	fmt.Printf("memory: %s\n", plan)
	for _, w := range decideMemory(plan, memTotal(), cgroupMemoryMax(), "", "").warnings {
		fmt.Printf("memory: warning: %s\n", w)
	}
	return nil
}

// cipherReport prints the cipher order in force and where it comes from:
// the file, or the default for this CPU (config/cipherorder.go).
func cipherReport(w io.Writer, cfg *config.Config) {
	fmt.Fprintf(w, "ciphers: %s (%s)\n", strings.Join(cfg.TCPCrypt.Ciphers, ", "), cfg.CipherOrder())
}

// memoryReport prints the most memory the flow limits let the gateway use
// for flows: every flow of the table active and encrypted, and every byte
// of the buffer budget held, in ring buffers of up to twice their content,
// plus the empty buffers bulk flows keep for their next burst.
// The Go runtime adds its own overhead on top (up to GOGC percent of the
// live heap, 100 by default), and so does the rest of the process.
func memoryReport(w io.Writer, f config.Flows) {
	mib := func(n float64) string { return fmt.Sprintf("%.0f MiB", n/(1<<20)) }
	state := float64(f.Max) * engine.ActiveFlowBytes
	buffers := config.MemoryBufferFactor * float64(f.MaxBufferTotal)
	parked := float64(f.MaxBufferTotal / config.MemoryParkedShare)
	fmt.Fprintf(w, "worst-case memory of the flow limits: %s\n", mib(state+buffers+parked))
	fmt.Fprintf(w, "  flow state: flows.max %d x %d bytes (an active encrypted flow; idle %d, half-open %d) = %s\n",
		f.Max, engine.ActiveFlowBytes, engine.IdleFlowBytes, engine.HalfOpenFlowBytes, mib(state))
	fmt.Fprintf(w, "  buffers: flows.max_buffer_total %s of data (at most %s per flow), in buffers of up to twice that = %s\n",
		f.MaxBufferTotal, f.MaxBufferPerFlow, mib(buffers))
	fmt.Fprintf(w, "  empty buffers bulk flows keep for their next burst: up to 1/%d of the data = %s\n", config.MemoryParkedShare, mib(parked))
	fmt.Fprintf(w, "  plus the Go runtime's headroom (GOGC, 100%% of the live heap by default) and the process itself\n")
}
