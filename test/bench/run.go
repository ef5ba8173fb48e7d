// The run: one topology, each path in turn, then the idle-flow memory.

package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"strconv"
	"time"

	"tcpcrypt-gw/test/netns"
)

// The paths, in the order they are measured.
const (
	pathPlain     = "plain"
	pathIdentity  = "identity"
	pathWireGuard = "wireguard"
	pathGateway   = "gateway"
)

// Ports of the bench's servers in the server namespace.
const (
	iperfPort = 5201
	echoPort  = 5300
	idlePort0 = 5400 // first port of the idle-flow listeners
)

// result is what one path measured; zero means not measured.
type result struct {
	path string
	note string // why something is missing

	tput, tputLoss float64 // bit/s, medians
	lossSeen       lossCount
	cpu            []float64 // per router process during the no-loss runs, share of one core
	// CPU seconds of both router processes per GB received, during the
	// one-stream no-loss runs and during the parallel-stream runs.
	cpuPerGB, cpuPerGBPar float64
	tputPar               float64 // bit/s, aggregate of -streams parallel streams, median

	// CPU seconds of both router processes per completed connection during
	// the connection-rate runs: full handshake (X25519 for the gateway),
	// resumed and x25519mlkem768 (gateway only).
	cpuConn, cpuConnResumed, cpuConnPQ float64

	conns, connsResumed float64 // per second, medians (resumed: gateway only)
	lat, latResumed     latency
	// Gateway: full handshakes with the hybrid post-quantum TEP
	// x25519mlkem768 (conns and lat are with X25519, curve25519).
	connsPQ float64
	latPQ   latency

	// Gateway: gwa's counts of flows encrypted in the full-handshake start
	// and of resumptions in the resumed start, and the connections the
	// bench completed in each.
	encrypted, resumed   uint64
	resumeOffered        uint64
	resumeMisses         uint64
	madeFull, madeResume int64
	encryptedPQ          uint64 // gwa's post-quantum flows in the x25519mlkem768 start
	madePQ               int64
}

// env is what every measurement needs.
type env struct {
	o    *options
	topo *netns.Topology
	dir  string        // scratch folder
	echo string        // client -> server echo address
	cur  []*netns.Proc // the processes of the path set up now, gwa's first
}

func run(o *options) error {
	machine := describeMachine()
	topo, dir, err := newTopology()
	if err != nil {
		return err
	}
	e := &env{o: o, topo: topo, dir: dir, echo: net.JoinHostPort(topo.ServerAddr4.String(), strconv.Itoa(echoPort))}
	// Many short connections from one address: the whole port range, and
	// a backlog large enough for the idle-flow burst.
	if err := topo.Client.Sysctl("net.ipv4.ip_local_port_range", "1024 65535"); err != nil {
		return err
	}
	if err := topo.Server.Sysctl("net.core.somaxconn", "65535"); err != nil {
		return err
	}
	if err := topo.Server.Sysctl("net.ipv4.tcp_max_syn_backlog", "65535"); err != nil {
		return err
	}
	l, err := startEcho(topo.Server, echoPort)
	if err != nil {
		return err
	}
	atCleanup(func() { l.Close() })
	if o.secs > 0 {
		srv, err := topo.Server.Start(context.Background(), "", "iperf3", "-s", "-p", strconv.Itoa(iperfPort))
		if err != nil {
			return err
		}
		atCleanup(func() { srv.Stop() })
		if err := waitListen(topo.Server, iperfPort, 10*time.Second); err != nil {
			return fmt.Errorf("iperf3 server: %w", err)
		}
	}
	if err := waitEcho(topo.Client, e.echo, 10*time.Second); err != nil {
		return fmt.Errorf("plain forwarding does not work: %w", err)
	}

	fmt.Printf("tcpcrypt-gw bench, one run on one topology (client - gwa - wan - gwb - server)\n%s\n", machine)
	var results []*result
	start := time.Now()
	for _, p := range o.paths {
		r := &result{path: p}
		results = append(results, r)
		var err error
		switch p {
		case pathPlain:
			err = e.measure(r, false)
		case pathIdentity:
			err = e.measureIdentity(r)
		case pathWireGuard:
			err = e.measureWireGuard(r)
		case pathGateway:
			err = e.measureGateway(r)
		}
		if err != nil {
			// A path that fails is reported and the run goes on; the
			// others still compare.
			r.note = err.Error()
			fmt.Fprintf(os.Stderr, "bench: %s: %v\n", p, err)
		}
		if o.verbose {
			fmt.Printf("  (%s done, %.0f s so far)\n", p, time.Since(start).Seconds())
		}
	}
	var cmp []*cmpResult
	if len(o.compare) > 0 {
		cmp = e.measureCompare()
	}
	var idle *idleResult
	if o.idle > 0 {
		idle, err = e.measureIdle(o.idle, o.idleFor)
		if err != nil {
			idle = &idleResult{err: err}
		}
	}
	report(o, results, idle)
	if cmp != nil {
		reportCompare(cmp)
	}
	if o.verbose {
		fmt.Printf("(total %.0f s)\n", time.Since(start).Seconds())
	}
	return nil
}

// measure runs the figures of one path that is already set up: throughput
// without and with loss, connection rate and latency. With resumed set it
// fills the resumed connection figures instead (gateway only).
func (e *env) measure(r *result, resumed bool) error {
	if e.o.secs > 0 && !resumed {
		if err := e.throughput(r); err != nil {
			return err
		}
	}
	return e.connFigures(r, resumed)
}

// throughput fills r.tput, r.cpu and r.cpuPerGB, then the parallel
// streams' r.tputPar and r.cpuPerGBPar, then with loss r.tputLoss.
func (e *env) throughput(r *result) error {
	cpu0, t0 := e.cpuTicks(), time.Now()
	v, bytes, err := e.iperfMedian(r.path, e.o.streams)
	if err != nil {
		return fmt.Errorf("iperf3: %w", err)
	}
	r.tput = v
	if cpu1 := e.cpuTicks(); len(cpu1) == len(cpu0) {
		for i := range cpu1 {
			r.cpu = append(r.cpu, float64(cpu1[i]-cpu0[i])/clockTicks/time.Since(t0).Seconds())
		}
	}
	r.cpuPerGB = e.perGB(cpu0, bytes)
	if e.o.parStreams > 0 {
		cpu0 := e.cpuTicks()
		v, bytes, err := e.iperfMedian(r.path+fmt.Sprintf(", %d streams", e.o.parStreams), e.o.parStreams)
		if err != nil {
			return fmt.Errorf("iperf3 -P %d: %w", e.o.parStreams, err)
		}
		r.tputPar, r.cpuPerGBPar = v, e.perGB(cpu0, bytes)
	}
	if e.o.loss == 0 {
		return nil
	}
	if err := e.addLoss(); err != nil {
		return err
	}
	before, _ := e.lossCounters()
	v, _, err = e.iperfMedian(r.path+fmt.Sprintf(", %d%% loss", e.o.loss), e.o.streams)
	after, _ := e.lossCounters()
	r.lossSeen = after.sub(before)
	if derr := e.removeLoss(); derr != nil && err == nil {
		err = derr
	}
	if err != nil {
		return fmt.Errorf("iperf3 with loss: %w", err)
	}
	r.tputLoss = v
	return nil
}

// perGB is the CPU seconds the path's processes used since cpu0 per 1e9
// bytes moved; 0 when there is no process to read.
func (e *env) perGB(cpu0 []uint64, bytes float64) float64 {
	if t, ok := e.cpuSince(cpu0); ok && bytes > 0 {
		return t / (bytes / 1e9)
	}
	return 0
}

// connFigures fills the connection rate, its CPU per connection and the
// latency.
func (e *env) connFigures(r *result, resumed bool) error {
	c, err := e.connRateAndLatency(r.path)
	if err != nil {
		return err
	}
	if resumed {
		r.connsResumed, r.latResumed, r.cpuConnResumed = c.rate, c.lat, c.cpu
	} else {
		r.conns, r.lat, r.cpuConn = c.rate, c.lat, c.cpu
	}
	return nil
}

// connResult is what connRateAndLatency measured: the median rate, the
// latency, and the CPU seconds per connection of the path's processes
// during the rate runs (0 when the path has none).
type connResult struct {
	rate float64
	lat  latency
	cpu  float64
}

// connRateAndLatency measures the connection rate and the latency of the
// path set up now.
func (e *env) connRateAndLatency(what string) (connResult, error) {
	var c connResult
	cpu0 := e.cpuTicks()
	rate, n, err := e.connRateMedian(what)
	if err != nil {
		return c, fmt.Errorf("connections/s: %w", err)
	}
	c.rate = rate
	if t, ok := e.cpuSince(cpu0); ok && n > 0 {
		c.cpu = t / float64(n)
	}
	if c.lat, err = e.latency(); err != nil {
		return c, fmt.Errorf("latency: %w", err)
	}
	return c, nil
}

func (e *env) measureIdentity(r *result) error {
	stop, err := e.startIdentity()
	if err != nil {
		return err
	}
	defer stop()
	return e.measure(r, false)
}

func (e *env) measureWireGuard(r *result) error {
	stop, err := e.startWireGuard()
	if err != nil {
		return err
	}
	defer stop()
	return e.measure(r, false)
}

// measureGateway measures the gateway pair in four starts: full handshakes
// only (session cache off) with X25519 (curve25519, RFC 8548's required
// TEP), the same with the hybrid post-quantum TEP (x25519mlkem768, the
// default), throughput, and resumption (default configuration); with
// -profile each start writes CPU profiles.
func (e *env) measureGateway(r *result) error {
	gws, err := e.startGateways("tcpcrypt:\n  teps: [curve25519]\n  session_cache: {size: 0}\n", "conns-full")
	if err != nil {
		return err
	}
	made := echoes.Load()
	err = e.connFigures(r, false)
	r.madeFull = echoes.Load() - made
	if st, serr := gws.stats(e.topo.GwA); serr == nil {
		r.encrypted = st.FlowsEncrypted
	}
	gws.stop()
	gws.printProfiles("the full-handshake connection runs")
	if err != nil {
		return fmt.Errorf("full handshakes: %w", err)
	}
	if err := e.measureGatewayPQ(r); err != nil {
		return fmt.Errorf("full handshakes, x25519mlkem768: %w", err)
	}
	if e.o.secs > 0 {
		gws, err = e.startGateways("", "throughput")
		if err != nil {
			return err
		}
		err = e.throughput(r)
		gws.stop()
		gws.printProfiles("the throughput runs")
		if err != nil {
			return err
		}
	}
	gws, err = e.startGateways("", "conns-resumed")
	if err != nil {
		return err
	}
	defer func() {
		gws.stop()
		gws.printProfiles("the resumed connection runs")
	}()
	// One connection first, so that the others can resume its session.
	if err := waitEcho(e.topo.Client, e.echo, 10*time.Second); err != nil {
		return err
	}
	made = echoes.Load()
	if err := e.connFigures(r, true); err != nil {
		return fmt.Errorf("resumption: %w", err)
	}
	r.madeResume = echoes.Load() - made
	if st, err := gws.stats(e.topo.GwA); err == nil {
		r.resumed, r.resumeOffered, r.resumeMisses = st.Resumptions, st.ResumeOffered, st.ResumeMisses
	}
	return nil
}

// measureGatewayPQ measures full handshakes with the hybrid post-quantum
// TEP, session cache off, in a start of its own beside the X25519 one.
func (e *env) measureGatewayPQ(r *result) error {
	gws, err := e.startGateways("tcpcrypt:\n  teps: [x25519mlkem768]\n  session_cache: {size: 0}\n", "conns-pq")
	if err != nil {
		return err
	}
	defer func() {
		gws.stop()
		gws.printProfiles("the x25519mlkem768 connection runs")
	}()
	made := echoes.Load()
	c, err := e.connRateAndLatency(r.path + ", x25519mlkem768")
	r.connsPQ, r.latPQ, r.cpuConnPQ = c.rate, c.lat, c.cpu
	r.madePQ = echoes.Load() - made
	if st, serr := gws.stats(e.topo.GwA); serr == nil {
		r.encryptedPQ = st.FlowsPostQuantum
	}
	return err
}
