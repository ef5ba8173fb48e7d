// Command bench measures throughput through the gateway pair next to plain
// kernel forwarding over the same namespaces, in one run (`make bench`).
//
//  1. Build the standard topology (test/netns).
//  2. iperf3 client -> server with no gateway running: plain forwarding.
//  3. Start gateway A and gateway B; iperf3 again: every byte encrypted.
//  4. Print both rates and their ratio.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"tcpcrypt-gw/test/netns"
)

func main() {
	gw := flag.String("gw", "bin/tcpcrypt-gw", "gateway binary")
	secs := flag.Int("t", 10, "seconds per iperf3 run")
	streams := flag.Int("P", 1, "parallel iperf3 streams")
	loss := flag.Int("loss", 0, "random loss in percent on the wan (nftables numgen), both directions")
	flag.Parse()
	if err := run(*gw, *secs, *streams, *loss); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(gw string, secs, streams, loss int) error {
	gw, _ = filepath.Abs(gw)
	netns.RemoveOrphans("tcgwbench")
	topo, err := netns.NewTopology("tcgwbench", netns.TopologyOptions{})
	if err != nil {
		return err
	}
	defer topo.Close()
	dir, err := os.MkdirTemp("", "tcgw-bench")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if loss > 0 {
		rules := fmt.Sprintf("table inet tcgwloss {\n chain forward_loss { type filter hook forward priority 0; policy accept;\n  meta l4proto tcp numgen random mod 100 < %d drop\n }\n}\n", loss)
		if out, err := topo.Wan.RunStdin(rules, "nft", "-f", "-"); err != nil {
			return fmt.Errorf("nft: %v %s", err, out)
		}
	}
	srv, err := topo.Server.Start(context.Background(), filepath.Join(dir, "iperf3-s.log"), "iperf3", "-s", "-p", "5201")
	if err != nil {
		return err
	}
	defer srv.Stop()
	time.Sleep(300 * time.Millisecond)

	plain, err := iperf(topo, secs, streams)
	if err != nil {
		return fmt.Errorf("plain forwarding: %w", err)
	}
	for _, g := range []struct {
		ns   *netns.NS
		name string
		pfx  string
	}{{topo.GwA, "gwa", join(topo.GwALANPrefixes)}, {topo.GwB, "gwb", join(topo.GwBLANPrefixes)}} {
		cfg := filepath.Join(dir, g.name+".yaml")
		os.WriteFile(cfg, []byte(fmt.Sprintf("interfaces: {lan: [lan0], wan: [wan0]}\nlan_prefixes: [%s]\n", g.pfx)), 0o600)
		p, err := g.ns.Start(context.Background(), filepath.Join(dir, g.name+".log"), gw, "run", "-c", cfg)
		if err != nil {
			return err
		}
		defer p.Stop()
		if err := waitPort(g.ns, "127.0.0.1:8473"); err != nil {
			return fmt.Errorf("%s: %w", g.name, err)
		}
	}
	enc, err := iperf(topo, secs, streams)
	if err != nil {
		return fmt.Errorf("through the gateways: %w", err)
	}
	lossNote := ""
	if loss > 0 {
		lossNote = fmt.Sprintf(", %d%% random loss on the wan", loss)
	}
	fmt.Printf("iperf3, %d s, %d stream(s)%s, one run:\n", secs, streams, lossNote)
	fmt.Printf("  plain kernel forwarding:          %8.0f Mbit/s\n", plain/1e6)
	fmt.Printf("  through the gateway pair (tcpcrypt): %6.0f Mbit/s\n", enc/1e6)
	fmt.Printf("  ratio gateway/plain:              %8.3f\n", enc/plain)
	return nil
}

func join(ps []netip.Prefix) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return strings.Join(s, ", ")
}

func iperf(topo *netns.Topology, secs, streams int) (float64, error) {
	out, err := topo.Client.Run(context.Background(), "iperf3", "-c", topo.ServerAddr4.String(), "-p", "5201",
		"-t", fmt.Sprint(secs), "-P", fmt.Sprint(streams), "-J")
	if err != nil {
		return 0, fmt.Errorf("%v: %s", err, out)
	}
	var res struct {
		End struct {
			SumReceived struct {
				BitsPerSecond float64 `json:"bits_per_second"`
			} `json:"sum_received"`
			SumSent struct {
				Retransmits int `json:"retransmits"`
			} `json:"sum_sent"`
		} `json:"end"`
	}
	if err := json.Unmarshal(out, &res); err != nil {
		return 0, err
	}
	if os.Getenv("BENCH_VERBOSE") != "" {
		fmt.Printf("  (retransmits %d)\n", res.End.SumSent.Retransmits)
	}
	return res.End.SumReceived.BitsPerSecond, nil
}

func waitPort(ns *netns.NS, addr string) error {
	deadline := time.Now().Add(15 * time.Second)
	for {
		err := ns.Do(func() error {
			c, err := net.DialTimeout("tcp", addr, time.Second)
			if err == nil {
				c.Close()
			}
			return err
		})
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
}
