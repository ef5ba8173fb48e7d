// Command tcpcrypt-impair is a router that impairs what it forwards: run in
// the middle network namespace of a test topology, it steers the packets
// arriving on the given interfaces through a TUN device and delays, drops,
// reorders, duplicates, corrupts, resegments and rewrites them as
// configured (package tcpcrypt-gw/test/impair), then hands them back to the
// kernel, which forwards them on.
//
// The flow:
//  1. Parse the flags into an impair.Config and set-up parameters.
//  2. Set up the TUN device and policy routing (setup.go), then print
//     "ready tun=<name>" to stdout.
//  3. Run the data path (loop.go) until SIGTERM or SIGINT; print the counts
//     on SIGUSR1.
//  4. On exit remove exactly what step 2 added, stop the data path and
//     print the counts, one "stats dir=..." line per direction.
package main

import (
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"

	"tcpcrypt-gw/test/impair"
)

type ifaceList []string

func (l *ifaceList) String() string { return strings.Join(*l, ",") }
func (l *ifaceList) Set(s string) error {
	for _, n := range strings.Split(s, ",") {
		if n = strings.TrimSpace(n); n != "" {
			*l = append(*l, n)
		}
	}
	return nil
}

func main() {
	log.SetFlags(0)
	log.SetPrefix("tcpcrypt-impair: ")
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	// 1. Flags.
	fs := flag.NewFlagSet("tcpcrypt-impair", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: tcpcrypt-impair --iface IF[,IF...] [--dir NAME=PREFIX,...] [impairments]\n\n")
		fs.PrintDefaults()
	}
	var (
		p          setupParams
		ifaces     ifaceList
		queueLimit int
	)
	fs.StringVar(&p.tun, "tun", "impair0", "name of the TUN device to create")
	fs.IntVar(&p.mtu, "mtu", 1500, "MTU of the TUN device")
	fs.Var(&ifaces, "iface", "`IF[,IF...]`: interfaces whose arriving packets are impaired (repeatable)")
	fs.IntVar(&p.table, "table", 4242, "routing table holding the default route into the TUN (ours alone: stale entries are removed)")
	fs.IntVar(&p.priority, "priority", 4242, "priority of the policy rules")
	fs.BoolVar(&p.tcpOnly, "tcp-only", false, "steer only TCP into the TUN (other protocols are forwarded unimpaired)")
	fs.BoolVar(&p.ipv6, "ipv6", true, "also steer IPv6")
	fs.IntVar(&queueLimit, "queue", 20000, "most packets held for their due time; more are dropped and counted as queue_full")
	flags := impair.BindFlags(fs)
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		log.Printf("unexpected arguments %q", fs.Args())
		return 2
	}
	p.ifaces = ifaces
	cfg, err := flags.Config()
	if err != nil {
		log.Print(err)
		return 2
	}
	if queueLimit < 1 || queueLimit > 1<<20 {
		log.Printf("--queue %d: want 1-%d", queueLimit, 1<<20)
		return 2
	}
	im, err := impair.New(cfg)
	if err != nil {
		log.Print(err)
		return 2
	}

	// Signals are caught before set-up, so that a SIGTERM arriving during it
	// still leads to the clean-up below.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGUSR1)

	// 2. Set-up.
	r, err := setUp(p)
	if err != nil {
		log.Print(err)
		return 1
	}
	for _, d := range cfg.Directions {
		log.Printf("%s %v: %+v", d.Name, d.Prefixes, d.Settings)
	}
	log.Printf("%s: %+v", impair.DefaultName, cfg.Default)
	fmt.Printf("ready tun=%s\n", p.tun)

	// 3. The data path.
	path := newDataPath(r.dev, im, queueLimit, p.mtu)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); path.read(p.mtu) }()
	go func() { defer wg.Done(); path.write(stop) }()
	for sig := range sigs {
		if sig == syscall.SIGUSR1 {
			printStats(im)
			continue
		}
		break
	}

	// 4. Clean-up.
	status := 0
	if err := r.tearDown(); err != nil {
		log.Printf("clean-up: %v", err)
		status = 1
	}
	close(stop)
	wg.Wait()
	if n := path.queued(); n > 0 {
		log.Printf("%d queued packets discarded at exit", n)
	}
	if n := path.readErrors.Load() + path.writeErrors.Load(); n > 0 {
		log.Printf("%d TUN read errors, %d write errors", path.readErrors.Load(), path.writeErrors.Load())
	}
	printStats(im)
	return status
}

func printStats(im *impair.Impairer) {
	if err := impair.WriteStats(os.Stdout, im.Stats()); err != nil {
		log.Printf("stats: %v", err)
	}
}
