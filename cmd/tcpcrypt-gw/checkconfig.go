// `tcpcrypt-gw check-config`: every problem of a config file, with its
// line and reason, and a non-zero exit when there is any.

package main

import (
	"errors"
	"flag"
	"fmt"

	"tcpcrypt-gw/config"
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
	// What the runtime will be held to (config/memory.go), and whether this
	// machine can give it.
	plan := cfg.MemoryPlan()
	fmt.Printf("memory: %s\n", plan)
	for _, w := range decideMemory(plan, memTotal(), cgroupMemoryMax(), "", "").warnings {
		fmt.Printf("memory: warning: %s\n", w)
	}
	return nil
}
