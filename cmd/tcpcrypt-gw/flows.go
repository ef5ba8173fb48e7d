// `tcpcrypt-gw flows`: a netstat-like table of a running gateway's flows,
// read from its HTTP API.

package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"tcpcrypt-gw/gateway/monitor"
	"tcpcrypt-gw/gateway/smallhttp"
)

// openwrtTokenFile is where OpenWrt's init script (UCI mode) keeps the API
// token (deploy/openwrt/files/tcpcrypt-gw.init).
var openwrtTokenFile = "/var/run/tcpcrypt-gw/api-token"

func cmdFlows(args []string) error {
	fs := flag.NewFlagSet("flows", flag.ContinueOnError)
	api := fs.String("api", "http://127.0.0.1:8473", "base URL of the gateway's HTTP API")
	asJSON := fs.Bool("json", false, "print the raw JSON")
	tokenFile := fs.String("token-file", "", "file holding the API bearer token")
	// --stats: the totals (/api/stats) as JSON, for OpenWrt's rpcd plugin
	// of the LuCI app, which has no HTTP client that sends a header.
	stats := fs.Bool("stats", false, "print the totals (/api/stats) as JSON instead")
	if err := fs.Parse(args); err != nil {
		return err
	}
	path := "/api/flows?limit=10000"
	if *stats {
		path, *asJSON = "/api/stats", true
	}
	header := http.Header{}
	if *tokenFile == "" {
		// On OpenWrt in UCI mode the init script puts the API behind a
		// token made at boot; the router's own CLI finds it there, so
		// `tcpcrypt-gw flows` works there as everywhere else.
		if _, err := os.Stat(openwrtTokenFile); err == nil {
			*tokenFile = openwrtTokenFile
		}
	}
	if *tokenFile != "" {
		tok, err := os.ReadFile(*tokenFile)
		if err != nil {
			return err
		}
		header.Set("Authorization", "Bearer "+strings.TrimSpace(string(tok)))
	}
	resp, err := smallhttp.Get(context.Background(), strings.TrimRight(*api, "/")+path, header, 10*time.Second)
	if err != nil {
		return fmt.Errorf("cannot reach the gateway API: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("gateway API: %s: %s", resp.Status, strings.TrimSpace(string(body)))
	}
	if *asJSON {
		_, err = os.Stdout.Write(body)
		return err
	}
	var list struct {
		Total int                `json:"total"`
		Flows []monitor.FlowJSON `json:"flows"`
	}
	if err := json.Unmarshal(body, &list); err != nil {
		return fmt.Errorf("gateway API answered something else than a flow list: %w", err)
	}
	printFlows(os.Stdout, list.Flows)
	return nil
}

func printFlows(w io.Writer, flows []monitor.FlowJSON) {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tDIR\tLAN\tWAN\tSTATE\tCRYPTO\tSESSION\tOUT\tIN\tAGE")
	for _, f := range flows {
		crypto := "plain"
		if f.Encrypted || f.TEP != "" && f.Cipher != "" {
			crypto = f.TEP + "/" + f.Cipher
		}
		if f.PostQuantum {
			crypto += " (post-quantum)"
		}
		if !f.Encrypted && f.Reason != "" {
			crypto = "plain (" + f.Reason + ")"
		}
		sid := f.SessionID
		if len(sid) > 16 {
			sid = sid[:16] + "…"
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%d\t%s\n", f.ID, f.Direction, f.LAN, f.WAN, f.State, crypto,
			sid, f.PlainBytesOut, f.PlainBytesIn, time.Duration(f.AgeSeconds*float64(time.Second)).Round(time.Second))
	}
	tw.Flush()
}
