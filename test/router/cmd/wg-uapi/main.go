// Command wg-uapi configures wireguard-go inside the router VM, where there
// is no wg tool: it copies a UAPI request (key=value lines ending with an
// empty line, the protocol wg itself speaks) from standard input to the
// device's socket and exits 0 only when the answer is errno=0.
//
//	wg-uapi /var/run/wireguard/wg0.sock < request
package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"time"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "wg-uapi:", err)
		os.Exit(1)
	}
}

func run() error {
	if len(os.Args) != 2 {
		return fmt.Errorf("usage: wg-uapi SOCKET < request")
	}
	req, err := io.ReadAll(io.LimitReader(os.Stdin, 1<<16))
	if err != nil {
		return err
	}
	c, err := net.DialTimeout("unix", os.Args[1], 10*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := c.Write(req); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if strings.TrimSpace(line) != "errno=0" {
		return fmt.Errorf("%s", strings.TrimSpace(line))
	}
	return nil
}
