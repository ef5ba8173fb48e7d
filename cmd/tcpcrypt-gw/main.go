// Command tcpcrypt-gw is the transparent tcpcrypt gateway.
//
//	tcpcrypt-gw run [-c config.yaml]          run the gateway (embedded defaults without -c)
//	tcpcrypt-gw check-config -c config.yaml   report every problem of a config file
//	tcpcrypt-gw flows [--json] [-api URL]     show the current flows of a running gateway
//	tcpcrypt-gw session LOCAL REMOTE          on a LAN host: the session ID of one of its connections
//	tcpcrypt-gw demo [--wait]                 the gateway's main job in network namespaces
//	tcpcrypt-gw version                       (also --version)
package main

import (
	"fmt"
	"os"
)

const usage = `usage: tcpcrypt-gw <command> [flags]

commands:
  run [-c FILE]            run the gateway (embedded defaults without -c)
  check-config -c FILE     check a config file and report every problem
  flows [--json] [--stats] [--api URL] [--token-file F]
                           show the flows of a running gateway
  session [--gateway H:P] [--json] LOCAL-IP:PORT REMOTE-IP:PORT
                           on a LAN host: the tcpcrypt session ID of one of its
                           connections, from the gateway's session endpoint
  demo [--wait]            build a namespace topology and show encryption at work (root)
  version, --version       print the version and build information
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	var err error
	args := os.Args[2:]
	switch os.Args[1] {
	case "run":
		err = cmdRun(args)
	case "check-config":
		err = cmdCheckConfig(args)
	case "flows":
		err = cmdFlows(args)
	case "session":
		err = cmdSession(args)
	case "demo":
		err = cmdDemo(args)
	case "version", "--version", "-v":
		printVersion(os.Stdout)
	case "help", "-h", "--help":
		fmt.Print(usage)
	default:
		fmt.Fprintf(os.Stderr, "tcpcrypt-gw: unknown command %q\n\n%s", os.Args[1], usage)
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "tcpcrypt-gw:", err)
		os.Exit(1)
	}
}
