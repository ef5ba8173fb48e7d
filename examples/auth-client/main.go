// Command auth-client connects to auth-server, authenticates the
// connection by its tcpcrypt session ID (package sidauth: both ends look
// the ID up at their own tcpcrypt-gw and exchange an HMAC under a
// pre-shared key), sends a message and prints the reply. It exits with
// status 1 and a clear message when the session IDs differ: someone is in
// the middle.
//
//	auth-client -connect 203.0.113.5:7100 -psk-file /etc/example.psk -message hello
package main

import (
	"bufio"
	"flag"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"tcpcrypt-gw/examples/sidauth"
)

func main() {
	addr := flag.String("connect", "", "server address host:port")
	pskFile := flag.String("psk-file", "", "file holding the pre-shared key")
	msg := flag.String("message", "hello", "message to send once authenticated")
	gw := flag.String("gateway", "", "session endpoint of our gateway (default: the default route's gateway, port 8474)")
	timeout := flag.Duration("timeout", 10*time.Second, "time allowed for connect, lookup and exchange")
	flag.Parse()
	if err := run(*addr, *pskFile, *msg, *gw, *timeout); err != nil {
		fmt.Fprintln(os.Stderr, "auth-client:", err)
		os.Exit(1)
	}
}

func run(addr, pskFile, msg, gw string, timeout time.Duration) error {
	psk, err := os.ReadFile(pskFile)
	if err != nil || len(strings.TrimSpace(string(psk))) == 0 {
		return fmt.Errorf("-psk-file: need a file with a pre-shared key (%v)", err)
	}
	conn, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return err
	}
	defer conn.Close()
	sid, err := sidauth.Authenticate(conn, gw, []byte(strings.TrimSpace(string(psk))), sidauth.Client, timeout)
	if err != nil {
		return err
	}
	fmt.Printf("authenticated: session ID %x\n", sid)
	conn.SetDeadline(time.Now().Add(timeout))
	if _, err := fmt.Fprintln(conn, msg); err != nil {
		return err
	}
	reply, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return fmt.Errorf("reading the reply: %w", err)
	}
	fmt.Print("reply: ", reply)
	return nil
}
