// `tcpcrypt-gw session LOCAL REMOTE`: on a LAN host, ask the gateway's
// session endpoint for the tcpcrypt session ID of one of this host's
// connections (package sessionid), for scripts. LOCAL is the connection's
// own IP:PORT, REMOTE the peer's, as `ss -tn` shows them.

package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"time"

	"tcpcrypt-gw/sessionid"
)

func cmdSession(args []string) error {
	fs := flag.NewFlagSet("session", flag.ContinueOnError)
	gw := fs.String("gateway", "", "the session endpoint host:port (default: $"+sessionid.EnvGateway+", else the default route's gateway on port 8474)")
	asJSON := fs.Bool("json", false, "print JSON")
	wait := fs.Duration("wait", 5*time.Second, "how long to wait for a key exchange in progress")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: tcpcrypt-gw session [--gateway H:P] [--json] [--wait D] LOCAL-IP:PORT REMOTE-IP:PORT\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 2 {
		fs.Usage()
		return errors.New("session: want the connection's LOCAL and REMOTE endpoints")
	}
	local, err := netip.ParseAddrPort(fs.Arg(0))
	if err != nil {
		return fmt.Errorf("session: LOCAL %q: want IP:PORT ([IPv6]:PORT)", fs.Arg(0))
	}
	remote, err := netip.ParseAddrPort(fs.Arg(1))
	if err != nil {
		return fmt.Errorf("session: REMOTE %q: want IP:PORT ([IPv6]:PORT)", fs.Arg(1))
	}
	ctx, cancel := context.WithTimeout(context.Background(), *wait)
	defer cancel()
	c := &sessionid.Client{Gateway: *gw}
	info, err := c.LookupAddrs(ctx, local, remote)
	if info == nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		if e := enc.Encode(map[string]any{"local": info.Local.String(), "remote": info.Remote.String(), "state": info.State,
			"encrypted": info.Encrypted, "session_id": hex.EncodeToString(info.SessionID), "tep": info.TEP, "cipher": info.Cipher,
			"resumed": info.Resumed, "reason": info.Reason, "downgrade_suspected": info.DowngradeSuspected}); e != nil {
			return e
		}
	} else {
		fmt.Printf("state      %s\nencrypted  %v\n", info.State, info.Encrypted)
		if info.Encrypted {
			fmt.Printf("session_id %x\ntep        %s\ncipher     %s\nresumed    %v\n", info.SessionID, info.TEP, info.Cipher, info.Resumed)
		}
		if info.Reason != "" {
			fmt.Printf("reason     %s\n", info.Reason)
		}
		if info.DowngradeSuspected {
			fmt.Println("WARNING    downgrade suspected: this peer spoke tcpcrypt before")
		}
	}
	return err // ErrNotEncrypted: exit status 1 after the details
}
