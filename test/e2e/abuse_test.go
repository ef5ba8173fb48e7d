// The gateway's own endpoints under abuse from the LAN (issue 23, item 3):
// one LAN host (client2, on gateway B's LAN) holds many connections to the
// session endpoint that never finish their request (slowloris), reopening
// each one the gateway closes, first from its one address, then from many
// IPv6 addresses of its own; the other LAN host (the server) still gets the
// session ID of its encrypted connection within a second, every time.
package e2e

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"tcpcrypt-gw/sessionid"
	"tcpcrypt-gw/test/netns"
)

const (
	slowConns     = 40    // connections the attacker holds at once
	slowAddrs     = 20    // IPv6 addresses it takes for the second round
	slowMaxDials  = 20000 // bound on the attacker's connections in a round
	slowReopen    = 100 * time.Millisecond
	lookupBudget  = time.Second     // the other host's answer must come within it
	slowRoundTime = 5 * time.Second // each round: longer than the endpoint's 2 s head deadline
)

func TestSessionEndpointUnderSlowloris(t *testing.T) {
	if withFirewall4 {
		// fw4's syn_flood chain limits SYNs to the router to 25/s (burst
		// 50) for all hosts together: the attacker's redials use it up and
		// the other host's SYN waits for its 1 s retransmission, whatever
		// the gateway does (docs/security.md). The test runs in the
		// suite's first pass, without fw4.
		t.Skip("TCPCRYPT_E2E_FIREWALL=fw4: fw4's global SYN rate limit, not the gateway, decides this (docs/security.md)")
	}
	e := newEnv(t, envOptions{})
	_, server := acceptedConn(t, listen(t, e.topo.Server, "0.0.0.0:9610"), e.topo.Client, fmt.Sprintf("%s:9610", e.topo.ServerAddr4))
	gwb := net.JoinHostPort(e.topo.GwBLANAddr4.String(), "8474")
	gwb6 := net.JoinHostPort(e.topo.GwBLANAddr6.String(), "8474")
	lookup := func() (time.Duration, error) {
		t0 := time.Now()
		err := e.topo.Server.Do(func() error {
			ctx, cancel := context.WithTimeout(context.Background(), lookupBudget)
			defer cancel()
			c := sessionid.Client{Gateway: gwb}
			info, err := c.Lookup(ctx, server)
			if err == nil && len(info.SessionID) == 0 {
				err = fmt.Errorf("no session ID in %+v", info)
			}
			return err
		})
		return time.Since(t0), err
	}
	if d, err := lookup(); err != nil {
		t.Fatalf("before the attack: %v after %v", err, d)
	}

	var from []netip.Addr
	for i := range slowAddrs {
		a := netip.AddrFrom16([16]byte{0xfd, 0x91, 0, 5, 14: 0x01, 15: byte(i)})
		if err := e.topo.Client2.Addr("eth0", a.String()+"/64"); err != nil {
			t.Fatal(err)
		}
		from = append(from, a)
	}
	for _, round := range []struct {
		name   string
		target string
		from   []netip.Addr // nil: client2's own address
	}{
		{"one address", gwb, nil},
		{fmt.Sprintf("%d IPv6 addresses", slowAddrs), gwb6, from},
	} {
		sl := startSlowloris(t, e.topo.Client2, round.target, round.from)
		// The attacker's connections are in: the gateway has been full
		// from the attacker's side for a while, then every lookup during
		// the round must be quick.
		time.Sleep(500 * time.Millisecond)
		var worst time.Duration
		n := 0
		for end := time.Now().Add(slowRoundTime); time.Now().Before(end); n++ {
			d, err := lookup()
			if err != nil {
				open, dials := sl.open.Load(), sl.dials.Load()
				sl.stop()
				t.Fatalf("%s: lookup %d during the attack: %v after %v (the attacker had %d connections open, %d dialed)",
					round.name, n, err, d, open, dials)
			}
			worst = max(worst, d)
			time.Sleep(200 * time.Millisecond)
		}
		sl.stop()
		if sl.dials.Load() >= slowMaxDials {
			t.Fatalf("%s: the attacker ran out of connections (%d) before the round ended", round.name, sl.dials.Load())
		}
		t.Logf("%s: %d lookups, slowest %v; the attacker dialed %d connections, %d closed by the gateway, %d answered 503",
			round.name, n, worst.Round(time.Millisecond), sl.dials.Load(), sl.closed.Load(), sl.refused.Load())
		if sl.dials.Load() < slowConns {
			t.Fatalf("%s: the attacker opened only %d connections", round.name, sl.dials.Load())
		}
	}
}

// slowloris keeps slowConns connections to an HTTP server open, each having
// sent half a request line, reopening each one the server closes.
type slowloris struct {
	quit                         chan struct{}
	wg                           sync.WaitGroup
	open, dials, closed, refused atomic.Int64
	mu                           sync.Mutex
	conns                        map[net.Conn]bool
}

// startSlowloris starts it from ns towards target, from the addresses
// from in turn (nil: the namespace's own).
func startSlowloris(t *testing.T, ns *netns.NS, target string, from []netip.Addr) *slowloris {
	t.Helper()
	s := &slowloris{quit: make(chan struct{}), conns: map[net.Conn]bool{}}
	t.Cleanup(s.stop)
	deadline := time.Now().Add(time.Minute)
	for i := range slowConns {
		var local *net.TCPAddr
		if len(from) > 0 {
			local = &net.TCPAddr{IP: from[i%len(from)].AsSlice()}
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			for s.dials.Load() < slowMaxDials && time.Now().Before(deadline) {
				select {
				case <-s.quit:
					return
				default:
				}
				var c net.Conn
				err := ns.Do(func() (err error) {
					d := net.Dialer{LocalAddr: local, Timeout: 2 * time.Second}
					c, err = d.Dial("tcp", target)
					return err
				})
				s.dials.Add(1)
				if err != nil {
					time.Sleep(50 * time.Millisecond)
					continue
				}
				if !s.track(c) {
					return
				}
				c.Write([]byte("GET /session?local=")) // and never the rest
				s.open.Add(1)
				// Until the gateway closes it (or stop does).
				line, _ := bufio.NewReader(c).ReadString('\n')
				s.open.Add(-1)
				if len(line) >= 12 && line[9:12] == "503" {
					s.refused.Add(1)
				} else {
					s.closed.Add(1)
				}
				s.untrack(c)
				time.Sleep(slowReopen) // a pace the gateway sees for the whole round
			}
		}()
	}
	for end := time.Now().Add(10 * time.Second); s.open.Load() < slowConns/2 && time.Now().Before(end); {
		time.Sleep(10 * time.Millisecond)
	}
	return s
}

func (s *slowloris) track(c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	select {
	case <-s.quit:
		c.Close()
		return false
	default:
	}
	s.conns[c] = true
	return true
}

func (s *slowloris) untrack(c net.Conn) {
	c.Close()
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

// stop closes every connection and waits for the goroutines.
func (s *slowloris) stop() {
	s.mu.Lock()
	select {
	case <-s.quit:
	default:
		close(s.quit)
	}
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}
