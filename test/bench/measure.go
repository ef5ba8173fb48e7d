// The measurements on a path that is set up: iperf3, random loss on the
// wan, the connection rate and the connect + echo latency.

package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"tcpcrypt-gw/test/netns"
)

// startEcho listens on port in ns. Each connection: read once, write back
// what was read, close (the server closes first, so the client, which
// closes after reading EOF, keeps no TIME_WAIT and its ports last).
func startEcho(ns *netns.NS, port int) (net.Listener, error) {
	var l net.Listener
	err := ns.Do(func() (err error) {
		l, err = net.Listen("tcp4", ":"+strconv.Itoa(port))
		return
	})
	if err != nil {
		return nil, err
	}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(10 * time.Second))
				b := make([]byte, 64)
				if n, err := c.Read(b); n > 0 && err == nil {
					c.Write(b[:n])
				}
			}()
		}
	}()
	return l, nil
}

// echoConn opens one connection from the thread's namespace, sends n bytes,
// reads them back, then reads EOF and closes. It returns the time from the
// start of connect to the echo.
func echoConn(addr string, n int, timeout time.Duration) (time.Duration, error) {
	start := time.Now()
	c, err := net.DialTimeout("tcp4", addr, timeout)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	c.SetDeadline(start.Add(timeout))
	msg := []byte("ping")[:n]
	if _, err := c.Write(msg); err != nil {
		return 0, err
	}
	got := make([]byte, 8)
	if _, err := io.ReadFull(c, got[:n]); err != nil {
		return 0, err
	}
	d := time.Since(start)
	if string(got[:n]) != string(msg) {
		return 0, fmt.Errorf("echo: got %q", got[:n])
	}
	if _, err := c.Read(got); err != io.EOF {
		return 0, fmt.Errorf("echo: want EOF, got %v", err)
	}
	echoes.Add(1)
	return d, nil
}

// echoes counts the connections echoConn completed.
var echoes atomic.Int64

// waitEcho waits (bounded) until one echo goes through from ns.
func waitEcho(ns *netns.NS, addr string, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		err := ns.Do(func() error { _, err := echoConn(addr, 1, 2*time.Second); return err })
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

// iperfMedian runs iperf3 with the given parallel streams o.runs times and
// returns the median receive rate and the bytes the receiver got in all
// runs (rate times -t: what the routers moved meanwhile).
func (e *env) iperfMedian(what string, streams int) (rate, bytes float64, err error) {
	var vs []float64
	for i := 0; i < e.o.runs; i++ {
		v, retr, err := e.iperf(streams)
		if err != nil {
			// Once more: iperf3's server sometimes refuses a test right
			// after the previous one.
			fmt.Fprintf(os.Stderr, "bench: %s: %v; again\n", what, err)
			time.Sleep(time.Second)
			if v, retr, err = e.iperf(streams); err != nil {
				return 0, 0, err
			}
		}
		if e.o.verbose {
			fmt.Printf("  %s: iperf3 %.0f Mbit/s, %d retransmits\n", what, v/1e6, retr)
		}
		vs = append(vs, v)
		bytes += v / 8 * float64(e.o.secs)
	}
	return median(vs), bytes, nil
}

func (e *env) iperf(streams int) (float64, int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(e.o.secs+30)*time.Second)
	defer cancel()
	out, err := e.topo.Client.Run(ctx, "iperf3", "-c", e.topo.ServerAddr4.String(), "-p", strconv.Itoa(iperfPort),
		"-t", strconv.Itoa(e.o.secs), "-P", strconv.Itoa(streams), "-J")
	if err != nil {
		return 0, 0, fmt.Errorf("%v: %s", err, out)
	}
	return netns.Iperf3Result(out)
}

// waitListen waits (bounded) until a TCP port listens in ns.
func waitListen(ns *netns.NS, port int, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		out, err := ns.Run(context.Background(), "ss", "-Hltn", fmt.Sprintf("sport = :%d", port))
		if err == nil && len(bytes.TrimSpace(out)) > 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("nothing listens on port %d after %v", port, limit)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// The loss table in the wan router: every forwarded TCP or UDP packet (UDP
// for the wireguard-go tunnel) is counted, those towards gwb (the data of
// iperf3, client to server) also apart, and o.loss percent of them, chosen
// at random, are dropped and counted.
const lossTable = "tcgwloss"

func (e *env) addLoss() error {
	rules := fmt.Sprintf(`table inet %s {
 chain forward_loss { type filter hook forward priority 0; policy accept;
  meta l4proto { tcp, udp } oifname "gwb0" counter
  meta l4proto { tcp, udp } counter
  meta l4proto { tcp, udp } numgen random mod 100 < %d counter drop
 }
}
`, lossTable, e.o.loss)
	if out, err := e.topo.Wan.RunStdin(rules, "nft", "-f", "-"); err != nil {
		return fmt.Errorf("nft: %v %s", err, out)
	}
	return nil
}

func (e *env) removeLoss() error {
	if out, err := e.topo.Wan.Run(context.Background(), "nft", "delete", "table", "inet", lossTable); err != nil {
		return fmt.Errorf("nft: %v %s", err, out)
	}
	return nil
}

// lossCount is what the loss table counted: packets the wan forwarded
// towards the server and their bytes, all packets (both directions), and the
// packets dropped. A packet here is what the kernel forwards as one: a GSO
// super-packet of many segments counts once.
type lossCount struct {
	fwdPkts, fwdBytes, pkts, dropped uint64
}

func (a lossCount) sub(b lossCount) lossCount {
	return lossCount{a.fwdPkts - b.fwdPkts, a.fwdBytes - b.fwdBytes, a.pkts - b.pkts, a.dropped - b.dropped}
}

var counterRE = regexp.MustCompile(`counter packets (\d+) bytes (\d+)`)

func (e *env) lossCounters() (lossCount, error) {
	out, err := e.topo.Wan.Run(context.Background(), "nft", "list", "table", "inet", lossTable)
	if err != nil {
		return lossCount{}, err
	}
	m := counterRE.FindAllSubmatch(out, -1)
	if len(m) != 3 {
		return lossCount{}, fmt.Errorf("nft: %d counters in %s", len(m), out)
	}
	n := func(b []byte) uint64 { v, _ := strconv.ParseUint(string(b), 10, 64); return v }
	return lossCount{fwdPkts: n(m[0][1]), fwdBytes: n(m[0][2]), pkts: n(m[1][1]), dropped: n(m[2][1])}, nil
}

// connRateMedian measures the connection rate o.runs times; it returns the
// median and the connections completed in all runs.
func (e *env) connRateMedian(what string) (float64, int64, error) {
	var vs []float64
	var total int64
	for i := 0; i < e.o.runs; i++ {
		r0 := e.hostRetrans()
		v, n, fails, err := e.connRate()
		if err != nil {
			return 0, 0, err
		}
		if e.o.verbose || fails > 0 {
			r := e.hostRetrans().sub(r0)
			fmt.Printf("  %s: %.0f connections/s (%d in %d s, %d failed; the hosts retransmitted %d SYNs or SYN-ACKs, %d segments in all)\n",
				what, v, n, e.o.connSec, fails, r.syn, r.segs)
		}
		vs = append(vs, v)
		total += n
	}
	return median(vs), total, nil
}

// connRate opens connections (connect, 1 byte each way, close) with o.par
// in parallel for o.connSec seconds and returns the completed ones per
// second. A failed connection is counted and skipped; too many fail the run.
func (e *env) connRate() (rate float64, done, fails int64, err error) {
	var nDone, nFail atomic.Int64
	start := time.Now()
	deadline := start.Add(time.Duration(e.o.connSec) * time.Second)
	const maxFails = 200
	var wg sync.WaitGroup
	errs := make(chan error, e.o.par)
	for i := 0; i < e.o.par; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- e.topo.Client.Do(func() error {
				for time.Now().Before(deadline) {
					if _, err := echoConn(e.echo, 1, 5*time.Second); err != nil {
						if nFail.Add(1) > maxFails {
							return fmt.Errorf("more than %d connections failed, last: %w", maxFails, err)
						}
						continue
					}
					nDone.Add(1)
				}
				return nil
			})
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			return 0, 0, 0, err
		}
	}
	el := time.Since(start).Seconds()
	return float64(nDone.Load()) / el, nDone.Load(), nFail.Load(), nil
}

// latency is the distribution of connect + first echo times.
type latency struct {
	p50, p90 time.Duration
	n        int
}

// latency measures o.latN connect + 4-byte echo exchanges one at a time (at
// most 10 s).
func (e *env) latency() (latency, error) {
	var ds []time.Duration
	limit := time.Now().Add(10 * time.Second)
	err := e.topo.Client.Do(func() error {
		fails := 0
		for len(ds) < e.o.latN && time.Now().Before(limit) {
			d, err := echoConn(e.echo, 4, 5*time.Second)
			if err != nil {
				if fails++; fails > 20 {
					return err
				}
				continue
			}
			ds = append(ds, d)
		}
		return nil
	})
	if err != nil {
		return latency{}, err
	}
	if len(ds) == 0 {
		return latency{}, errors.New("no sample")
	}
	slices.Sort(ds)
	return latency{p50: ds[len(ds)/2], p90: ds[len(ds)*9/10], n: len(ds)}, nil
}

// clockTicks is USER_HZ, the unit of the CPU times in /proc/<pid>/stat
// (100 on every Linux architecture the bench runs on).
const clockTicks = 100

// cpuTicks returns the CPU time (user + system, in clock ticks) of each
// process of the current path; nil when one cannot be read.
func (e *env) cpuTicks() []uint64 {
	var out []uint64
	for _, p := range e.cur {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.Pid()))
		if err != nil {
			return nil
		}
		// Fields after the command name (in parentheses): state is the
		// 3rd field of the line, utime the 14th, stime the 15th.
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			return nil
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) < 13 {
			return nil
		}
		u, _ := strconv.ParseUint(f[11], 10, 64)
		s, _ := strconv.ParseUint(f[12], 10, 64)
		out = append(out, u+s)
	}
	return out
}

// cpuSince is the CPU time in seconds the current path's processes used
// since cpu0 (from cpuTicks), summed; false when the path has no process
// or one could not be read.
func (e *env) cpuSince(cpu0 []uint64) (float64, bool) {
	cpu1 := e.cpuTicks()
	if len(cpu0) == 0 || len(cpu1) != len(cpu0) {
		return 0, false
	}
	var t uint64
	for i := range cpu1 {
		t += cpu1[i] - cpu0[i]
	}
	return float64(t) / clockTicks, true
}

// retrans is what a namespace's TCP counted of retransmissions: SYNs and
// SYN-ACKs (TcpExt TCPSynRetrans) and all segments (Tcp RetransSegs). A
// connection-rate run that falls with no more CPU per connection has
// connections waiting on a timer: these say which.
type retrans struct{ syn, segs uint64 }

func (a retrans) sub(b retrans) retrans { return retrans{a.syn - b.syn, a.segs - b.segs} }

// retransOf reads ns's counters (zero when they cannot be read).
func retransOf(ns *netns.NS) retrans {
	var r retrans
	for _, f := range []struct {
		file, table, field string
		dst                *uint64
	}{{"/proc/net/netstat", "TcpExt:", "TCPSynRetrans", &r.syn}, {"/proc/net/snmp", "Tcp:", "RetransSegs", &r.segs}} {
		if out, err := ns.Run(context.Background(), "cat", f.file); err == nil {
			*f.dst = snmpField(string(out), f.table, f.field)
		}
	}
	return r
}

// snmpField is one counter of /proc/net/snmp or /proc/net/netstat: a table
// is a line of names and a line of values, both led by "Table:". 0 when
// absent.
func snmpField(text, table, field string) uint64 {
	var names []string
	for _, line := range strings.Split(text, "\n") {
		fs := strings.Fields(line)
		if len(fs) == 0 || fs[0] != table {
			continue
		}
		if names == nil {
			names = fs
			continue
		}
		for i, n := range names {
			if n == field && i < len(fs) {
				v, _ := strconv.ParseUint(fs[i], 10, 64)
				return v
			}
		}
		return 0
	}
	return 0
}

// hostRetrans is the client's and the server's counters together.
func (e *env) hostRetrans() retrans {
	c, s := retransOf(e.topo.Client), retransOf(e.topo.Server)
	return retrans{c.syn + s.syn, c.segs + s.segs}
}
