// Command bench measures the gateway pair side by side with the designs it
// is judged against, in one run on one topology (`make bench`).
//
//  1. Build the standard topology (test/netns): client - gwa - wan - gwb -
//     server. gwa and gwb are the two routers; wan is the link between them,
//     where random loss is added (nftables numgen).
//  2. For each path, set it up in gwa and gwb, measure, tear it down:
//     (a) plain kernel forwarding;
//     (b) the identity TUN forwarder (cmd/identity-tun: the gateway's
//     routing set-up, then read a batch from the TUN, write it back);
//     (c) a wireguard-go tunnel between gwa and gwb (the pinned module's
//     main, configured with wg or, without it, its UAPI socket);
//     (d) the tcpcrypt-gw pair, with full handshakes and with resumption.
//     Each path gets: iperf3 throughput with no loss, with -streams parallel
//     streams and with random loss on the wan, new connections per second
//     with 16 in parallel, and connect + first echo latency one at a time;
//     the CPU seconds of its two router processes are read around the
//     no-loss and the connection runs (per GB, per connection).
//  3. With -compare, the connection figures of other gateway binaries in
//     rounds interleaved with -gw's and the identity forwarder's
//     (compare.go).
//  4. Open N idle encrypted connections through a fresh gateway pair and
//     read gateway A's RSS before and after: bytes per idle flow.
//  5. Print one table with the ratios of the gateway to each other path,
//     one of the CPU costs and parallel streams, and the goals of issues 22
//     and 21.
//
// Cleanup (namespaces, TUN devices inside them, processes, wireguard-go's
// UAPI sockets, scratch files) runs on return, on error and on SIGINT or
// SIGTERM. Every loop is bounded in time.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

type options struct {
	gw      string        // gateway binary
	goCmd   string        // go command (builds identity-tun and wireguard-go)
	secs    int           // seconds per iperf3 run
	streams int           // iperf3 -P
	loss    int           // percent random loss on the wan for the lossy pass
	runs    int           // runs per throughput or connection-rate figure (median)
	connSec int           // seconds per connection-rate run
	par     int           // connections in parallel for the rate
	latN    int           // latency samples
	idle    int           // idle flows for the memory figure (0: skip)
	idleFor time.Duration // how long the flows stay idle before RSS is read
	paths   []string
	profile string // folder for the gateways' CPU profiles ("" none)
	conns   bool   // only the connection figures
	wgUAPI  bool   // configure wireguard-go through its UAPI socket, not wg
	verbose bool

	// iperf3 -P of the parallel-stream pass (0: none)
	parStreams int
	// further gateway binaries whose connection figures are measured in
	// the same run (-compare)
	compare   []string
	comparePQ bool // -compare also measures x25519mlkem768 full handshakes
}

func main() {
	var o options
	var paths string
	flag.StringVar(&o.gw, "gw", "bin/tcpcrypt-gw", "gateway binary")
	flag.StringVar(&o.goCmd, "go", "go", "go command, to build identity-tun and wireguard-go")
	flag.IntVar(&o.secs, "t", 5, "seconds per iperf3 run")
	flag.IntVar(&o.streams, "P", 1, "parallel iperf3 streams")
	flag.IntVar(&o.parStreams, "streams", 8, "parallel iperf3 streams of the aggregate pass (no loss), beside the one-stream figure; 0 skips it")
	flag.IntVar(&o.loss, "loss", 1, "random loss in percent on the wan (nftables numgen, both directions) for the second throughput pass; 0 skips it")
	flag.BoolVar(&o.conns, "conns", false, "only the connection figures (connections/s and latency), no throughput or memory")
	flag.IntVar(&o.runs, "runs", 3, "runs per throughput and connection-rate figure (the median is printed)")
	flag.IntVar(&o.connSec, "ct", 3, "seconds per connection-rate run")
	flag.IntVar(&o.par, "par", 16, "connections in parallel for the connection rate")
	flag.IntVar(&o.latN, "lat", 200, "connect + echo samples per latency figure (one at a time, at most 10 s)")
	flag.IntVar(&o.idle, "idle", 10000, "idle encrypted flows for the memory figure (e.g. 100000); 0 skips it")
	flag.DurationVar(&o.idleFor, "idle-for", 20*time.Second, "how long the idle flows stay idle before gateway A's RSS is read (the gateway releases an idle flow's AEAD states after 10 s)")
	flag.StringVar(&paths, "paths", "plain,identity,wireguard,gateway", "paths to measure, comma-separated")
	flag.StringVar(&o.profile, "profile", "", "write the gateways' CPU profiles of the throughput runs to this folder and print their top functions")
	flag.BoolVar(&o.wgUAPI, "wg-uapi", false, "configure wireguard-go through its UAPI socket instead of wg (no wireguard-tools needed)")
	var compare string
	flag.StringVar(&compare, "compare", "", "further gateway binaries (e.g. builds of other commits), comma-separated: their full-handshake and resumed connection figures are measured in the same run as -gw's, rounds interleaved")
	flag.BoolVar(&o.comparePQ, "compare-pq", false, "with -compare, also full handshakes with x25519mlkem768 (the ratio to X25519 per binary)")
	flag.BoolVar(&o.verbose, "v", os.Getenv("BENCH_VERBOSE") != "", "print each run")
	flag.Parse()
	for _, p := range strings.Split(paths, ",") {
		switch p = strings.TrimSpace(p); p {
		case pathPlain, pathIdentity, pathWireGuard, pathGateway:
			o.paths = append(o.paths, p)
		case "":
		default:
			fmt.Fprintf(os.Stderr, "bench: unknown path %q (want plain, identity, wireguard, gateway)\n", p)
			os.Exit(2)
		}
	}
	for _, b := range strings.Split(compare, ",") {
		if b = strings.TrimSpace(b); b != "" {
			abs, _ := filepath.Abs(b)
			if _, err := os.Stat(abs); err != nil {
				fmt.Fprintf(os.Stderr, "bench: -compare: %v\n", err)
				os.Exit(2)
			}
			o.compare = append(o.compare, abs)
		}
	}
	if o.runs < 1 || o.secs < 1 || o.connSec < 1 || o.par < 1 || o.latN < 1 || o.idle < 0 || o.parStreams < 0 || o.loss < 0 || o.loss > 100 {
		fmt.Fprintln(os.Stderr, "bench: -runs, -t, -ct, -par, -lat must be >= 1, -idle and -streams >= 0, -loss in [0, 100]")
		os.Exit(2)
	}
	if o.conns {
		o.secs, o.idle = 0, 0
	}
	o.gw, _ = filepath.Abs(o.gw)
	if o.profile != "" {
		o.profile, _ = filepath.Abs(o.profile)
	}

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		s := <-sigs
		fmt.Fprintf(os.Stderr, "bench: %v: cleaning up\n", s)
		runCleanups()
		os.Exit(1)
	}()
	err := run(&o)
	runCleanups()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// Cleanups run once, in reverse order, on return or on a signal.
var (
	cleanupMu sync.Mutex
	cleanups  []func()
)

func atCleanup(f func()) {
	cleanupMu.Lock()
	cleanups = append(cleanups, f)
	cleanupMu.Unlock()
}

func runCleanups() {
	cleanupMu.Lock()
	fs := cleanups
	cleanups = nil
	cleanupMu.Unlock()
	for i := len(fs) - 1; i >= 0; i-- {
		fs[i]()
	}
}
