// Command auth-server accepts connections, authenticates each by its
// tcpcrypt session ID (package sidauth, the counterpart of auth-client),
// and answers one line: "authenticated <line>". A connection whose
// session ID the client does not prove is closed with a clear message.
//
//	auth-server -listen :7100 -psk-file /etc/example.psk
package main

import (
	"bufio"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"strings"
	"time"

	"tcpcrypt-gw/examples/sidauth"
)

func main() {
	addr := flag.String("listen", ":7100", "listen address")
	pskFile := flag.String("psk-file", "", "file holding the pre-shared key")
	gw := flag.String("gateway", "", "session endpoint of our gateway (default: the default route's gateway, port 8474)")
	once := flag.Bool("once", false, "serve one connection, then exit with its status")
	timeout := flag.Duration("timeout", 10*time.Second, "time allowed for lookup and exchange")
	flag.Parse()
	psk, err := os.ReadFile(*pskFile)
	if err != nil || len(strings.TrimSpace(string(psk))) == 0 {
		log.Fatalf("auth-server: -psk-file: need a file with a pre-shared key (%v)", err)
	}
	key := []byte(strings.TrimSpace(string(psk)))
	l, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal("auth-server: ", err)
	}
	fmt.Println("listening on", l.Addr())
	for {
		conn, err := l.Accept()
		if err != nil {
			log.Fatal("auth-server: ", err)
		}
		if !*once {
			go report(conn, serve(conn, *gw, key, *timeout))
			continue
		}
		err = serve(conn, *gw, key, *timeout)
		report(conn, err)
		if err != nil {
			os.Exit(1)
		}
		return
	}
}

func report(conn net.Conn, err error) {
	if err != nil {
		fmt.Fprintf(os.Stderr, "auth-server: %s: %v\n", conn.RemoteAddr(), err)
	}
}

func serve(conn net.Conn, gw string, psk []byte, timeout time.Duration) error {
	defer conn.Close()
	sid, err := sidauth.Authenticate(conn, gw, psk, sidauth.Server, timeout)
	if err != nil {
		return err
	}
	fmt.Printf("authenticated %s: session ID %x\n", conn.RemoteAddr(), sid)
	conn.SetDeadline(time.Now().Add(timeout))
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(conn, "authenticated %s", line)
	return err
}
