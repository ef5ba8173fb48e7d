// Command idle-conns holds many idle TCP connections open for the bench's
// idle-flow memory figure. One process holds at most a few ten thousand
// sockets (its open-file limit), so the bench runs as many pairs as it
// needs, each pair on its own server port.
//
// Server mode (-listen :port): accept every connection, echo its first
// byte, then hold it open, reading nothing more and sending nothing.
// Prints "idle-conns: listening" once it listens.
//
// Client mode (-connect host:port -n N): open N connections with -par in
// parallel, send one byte on each and wait for its echo (so that the
// connection's handshake through the gateways is complete), then hold them
// open with no traffic, keep-alives off. Prints "idle-conns: done opened X
// failed Y" when all are open (or -limit has passed) and holds them until
// SIGTERM or SIGINT.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

func main() {
	listen := flag.String("listen", "", "server mode: address to listen on")
	connect := flag.String("connect", "", "client mode: address to connect to")
	n := flag.Int("n", 0, "client mode: connections to open")
	par := flag.Int("par", 16, "client mode: connections opened in parallel")
	limit := flag.Duration("limit", 5*time.Minute, "client mode: stop opening after this long")
	flag.Parse()
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	var err error
	switch {
	case *listen != "":
		err = serve(*listen, sigs)
	case *connect != "" && *n > 0:
		err = dial(*connect, *n, *par, *limit, sigs)
	default:
		err = fmt.Errorf("want -listen, or -connect with -n")
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "idle-conns:", err)
		os.Exit(1)
	}
}

func serve(addr string, sigs <-chan os.Signal) error {
	lc := net.ListenConfig{KeepAlive: -1}
	l, err := lc.Listen(context.Background(), "tcp4", addr)
	if err != nil {
		return err
	}
	fmt.Println("idle-conns: listening")
	var (
		mu   sync.Mutex
		held []net.Conn
	)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				c.SetDeadline(time.Now().Add(30 * time.Second))
				b := make([]byte, 1)
				if _, err := io.ReadFull(c, b); err != nil {
					c.Close()
					return
				}
				if _, err := c.Write(b); err != nil {
					c.Close()
					return
				}
				c.SetDeadline(time.Time{})
				mu.Lock()
				held = append(held, c)
				mu.Unlock()
			}()
		}
	}()
	<-sigs
	l.Close()
	mu.Lock()
	fmt.Printf("idle-conns: held %d\n", len(held))
	mu.Unlock()
	return nil
}

func dial(addr string, n, par int, limit time.Duration, sigs <-chan os.Signal) error {
	var (
		mu   sync.Mutex
		held = make([]net.Conn, 0, n)
	)
	var next, fails atomic.Int64
	deadline := time.Now().Add(limit)
	var wg sync.WaitGroup
	for w := 0; w < par; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d := net.Dialer{Timeout: 5 * time.Second, KeepAlive: -1}
			for time.Now().Before(deadline) {
				if next.Add(1) > int64(n) {
					return
				}
				c, err := open(&d, addr)
				if err != nil {
					next.Add(-1) // this one again
					if fails.Add(1) > 1000 {
						return
					}
					continue
				}
				mu.Lock()
				held = append(held, c)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	mu.Lock()
	fmt.Printf("idle-conns: done opened %d failed %d\n", len(held), fails.Load())
	mu.Unlock()
	<-sigs
	return nil
}

// open opens one connection, echoes one byte and leaves it open.
func open(d *net.Dialer, addr string) (net.Conn, error) {
	c, err := d.Dial("tcp4", addr)
	if err != nil {
		return nil, err
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	b := []byte{1}
	if _, err := c.Write(b); err != nil {
		c.Close()
		return nil, err
	}
	if _, err := io.ReadFull(c, b); err != nil {
		c.Close()
		return nil, err
	}
	c.SetDeadline(time.Time{})
	return c, nil
}
