//go:build demo

// `tcpcrypt-gw demo`: the gateway's main job, on one machine, with no
// config file and no router.
//
//  1. Build network namespaces: client - gateway A (NAT) - wan - gateway B -
//     server, and a legacy server on the wan with no gateway.
//  2. Run this binary as gateway A and gateway B on embedded defaults (only
//     the interface names and LAN prefixes of the topology are given).
//  3. Capture on the wan; send a marker string from the client to the server
//     behind gateway B and to the legacy server.
//  4. Print, for each connection, what both gateways report (encrypted or
//     plain, TEP, cipher, session ID) and what the wan capture shows.
//  5. Clean up (with --wait: after Ctrl-C).
//
// The demo drives the test harness (test/netns, test/capture, gopacket), so
// it is only in binaries built with -tags demo (`make demo`): the router
// binary carries nothing from the tests (docs/deploy.md, flash).

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"tcpcrypt-gw/gateway/monitor"
	"tcpcrypt-gw/test/capture"
	"tcpcrypt-gw/test/netns"
)

var demoMarker = []byte("SECRET-MARKER-tcpcrypt-demo;")

func cmdDemo(args []string) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	wait := fs.Bool("wait", false, "keep the topology and gateways running until Ctrl-C")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if os.Geteuid() != 0 {
		return errors.New("demo needs root (network namespaces, TUN devices)")
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "tcpcrypt-gw-demo")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	netns.RemoveOrphans("tcgwdemo") // a demo killed earlier left these
	say("1. building namespaces: client - gwa (NAT) - wan - gwb - server, and legacy on the wan")
	topo, err := netns.NewTopology("tcgwdemo", netns.TopologyOptions{})
	if err != nil {
		return err
	}
	defer func() {
		say("cleaning up: gateways stopped, namespaces removed")
		topo.Close()
	}()

	say("2. starting gateway A (in gwa) and gateway B (in gwb) on embedded defaults")
	for _, g := range []struct {
		ns       *netns.NS
		name     string
		prefixes string
	}{{topo.GwA, "gwa", prefixList(topo.GwALANPrefixes)}, {topo.GwB, "gwb", prefixList(topo.GwBLANPrefixes)}} {
		cfg := filepath.Join(dir, g.name+".yaml")
		yaml := fmt.Sprintf("interfaces:\n  lan: [lan0]\n  wan: [wan0]\nlan_prefixes: [%s]\n", g.prefixes)
		if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
			return err
		}
		p, err := g.ns.Start(context.Background(), filepath.Join(dir, g.name+".log"), self, "run", "-c", cfg)
		if err != nil {
			return err
		}
		defer p.Stop()
		if err := waitAPI(g.ns, 15*time.Second); err != nil {
			b, _ := os.ReadFile(filepath.Join(dir, g.name+".log"))
			return fmt.Errorf("%s did not start: %v\n%s", g.name, err, b)
		}
	}

	say("3. capturing on the wan; the client sends %q (64 KiB of it) to each server", strings.TrimSuffix(string(demoMarker), ";"))
	capt, err := capture.Start(topo.Wan, dir, "tcp")
	if err != nil {
		return err
	}
	targets := []struct {
		label string
		ns    *netns.NS
		addr  string
		port  uint16
	}{
		{"server behind gateway B", topo.Server, topo.ServerAddr4.String(), 7001},
		{"legacy server (no gateway)", topo.Legacy, topo.LegacyAddr4.String(), 7002},
	}
	for _, tg := range targets {
		if err := demoTransfer(topo.Client, tg.ns, tg.addr, tg.port); err != nil {
			return fmt.Errorf("transfer to %s: %w", tg.label, err)
		}
	}
	pkts, err := capt.Stop()
	if err != nil {
		return err
	}

	say("4. results")
	flowsA, errA := demoFlows(topo.GwA)
	flowsB, errB := demoFlows(topo.GwB)
	if errA != nil || errB != nil {
		return fmt.Errorf("gateway API: %v %v", errA, errB)
	}
	ok := true
	for _, tg := range targets {
		fa := demoFlowByPort(flowsA, tg.port)
		fb := demoFlowByPort(flowsB, tg.port)
		facts := capture.FactsFor(pkts, tg.port, demoMarker)
		fmt.Printf("\n   connection client -> %s (%s:%d)\n", tg.label, tg.addr, tg.port)
		if fa == nil {
			fmt.Println("     gateway A: no flow seen (unexpected)")
			ok = false
			continue
		}
		if fa.Encrypted {
			fmt.Printf("     gateway A: ENCRYPTED  tep=%s cipher=%s\n", fa.TEP, fa.Cipher)
			fmt.Printf("                session id %s\n", fa.SessionID)
		} else {
			fmt.Printf("     gateway A: plain (%s)\n", fa.Reason)
		}
		if fb != nil {
			fmt.Printf("     gateway B: ENCRYPTED=%v tep=%s cipher=%s\n", fb.Encrypted, fb.TEP, fb.Cipher)
			fmt.Printf("                session id %s\n", fb.SessionID)
			same := fa.SessionID != "" && fa.SessionID == fb.SessionID
			fmt.Printf("     session IDs equal at both gateways: %v\n", same)
			ok = ok && same
		} else {
			fmt.Println("     gateway B: not on the path")
		}
		fmt.Printf("     wan capture: %d packets, ENO on SYN %v, ENO on SYN-ACK %v, marker visible: %v\n",
			facts.Packets, facts.SYNWithENO, facts.SYNACKWithENO, facts.MarkerSeen)
		wantEncrypted := tg.port == 7001
		if fa.Encrypted != wantEncrypted || facts.MarkerSeen == wantEncrypted {
			ok = false
		}
	}
	fmt.Println()
	if !ok {
		return errors.New("demo: the results are not what they should be (see above)")
	}
	say("the encrypted connection hides the marker on the wan; the legacy connection works unchanged and shows it")
	if *wait {
		say("--wait: topology up; try `ip netns exec %s curl ...`; Ctrl-C to clean up", topo.Client.Name)
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
		<-sig
	}
	return nil
}

func say(format string, a ...any) { fmt.Printf("== "+format+"\n", a...) }

func prefixList(ps []netip.Prefix) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return strings.Join(s, ", ")
}

// demoTransfer sends the marker payload from the client to a server in srvNS
// and checks that it arrives whole.
func demoTransfer(client, srvNS *netns.NS, addr string, port uint16) error {
	var l net.Listener
	if err := srvNS.Do(func() (err error) { l, err = net.Listen("tcp", fmt.Sprintf(":%d", port)); return }); err != nil {
		return err
	}
	defer l.Close()
	addrPort := net.JoinHostPort(addr, fmt.Sprint(port))
	return client.SendWhole(l, addrPort, bytes.Repeat(demoMarker, (64<<10)/len(demoMarker)))
}

func waitAPI(ns *netns.NS, within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		_, err := demoGet(ns, "/healthz")
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func demoGet(ns *netns.NS, path string) ([]byte, error) {
	return ns.HTTPGet("127.0.0.1:8473", path)
}

func demoFlows(ns *netns.NS) ([]monitor.FlowJSON, error) {
	b, err := demoGet(ns, "/api/flows?limit=10000")
	if err != nil {
		return nil, err
	}
	var l struct {
		Flows []monitor.FlowJSON `json:"flows"`
	}
	return l.Flows, json.Unmarshal(b, &l)
}

func demoFlowByPort(flows []monitor.FlowJSON, port uint16) *monitor.FlowJSON {
	suffix := fmt.Sprintf(":%d", port)
	for i := range flows {
		if strings.HasSuffix(flows[i].WAN, suffix) || strings.HasSuffix(flows[i].LAN, suffix) {
			return &flows[i]
		}
	}
	return nil
}
