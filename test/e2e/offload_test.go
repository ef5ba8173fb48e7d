// Flow offloading (gateway/offload): a gateway on a router whose firewall
// offloads flows refuses to start, naming the setting to change, and a
// running gateway stops when offloading is switched on; either way it
// leaves nothing of its routing behind. The UCI file stands in for
// OpenWrt's /etc/config/firewall (routing.uci_firewall); this kernel has no
// nf_flow_table, so the nftables side is tested in gateway/offload.
package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"tcpcrypt-gw/test/netns"
)

const uciOffloadOn = "config defaults\n\toption input 'REJECT'\n\toption flow_offloading '1'\n"

func TestOffloadRefusesToStart(t *testing.T) {
	topo := newBareTopology(t)
	dir := t.TempDir()
	uci := filepath.Join(dir, "firewall")
	os.WriteFile(uci, []byte(uciOffloadOn), 0o644)
	cfg := filepath.Join(dir, "gwa.yaml")
	os.WriteFile(cfg, []byte(gatewayYAML([]string{"10.91.1.0/24"}, "routing:\n  uci_firewall: "+uci+"\n")), 0o600)
	logPath := filepath.Join(dir, "gwa.log")
	p, err := topo.GwA.Start(context.Background(), logPath, gwBinary, "run", "-c", cfg)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.Done():
	case <-time.After(15 * time.Second):
		p.Stop()
		t.Fatal("the gateway did not refuse to start")
	}
	if p.Wait() == nil {
		t.Error("refused start exited with status 0")
	}
	b, _ := os.ReadFile(logPath)
	for _, want := range []string{uci + ":3: option flow_offloading '1'", "uci set firewall.@defaults[0].flow_offloading='0'"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("message lacks %q:\n%s", want, b)
		}
	}
	checkNothingInstalled(t, topo.GwA)
}

func TestOffloadSwitchedOnStopsGateway(t *testing.T) {
	topo := newBareTopology(t)
	dir := t.TempDir()
	uci := filepath.Join(dir, "firewall")
	os.WriteFile(uci, []byte("config defaults\n\toption flow_offloading '0'\n"), 0o644)
	e := &env{t: t, topo: topo, logs: dir}
	p := e.startGateway(topo.GwA, "gwa", gatewayYAML([]string{"10.91.1.0/24"}, "routing:\n  uci_firewall: "+uci+"\n"))
	defer p.Stop()

	os.WriteFile(uci, []byte(uciOffloadOn), 0o644)
	// SIGHUP runs the check at once (otherwise it runs every 30 s).
	syscall.Kill(p.Pid(), syscall.SIGHUP)
	select {
	case <-p.Done():
	case <-time.After(15 * time.Second):
		t.Fatal("the gateway kept running with flow offloading switched on")
	}
	if p.Wait() == nil {
		t.Error("stopped with status 0")
	}
	b, _ := os.ReadFile(filepath.Join(dir, "gwa.log"))
	if !strings.Contains(string(b), "flow offloading was switched on") || !strings.Contains(string(b), "flow_offloading") {
		t.Errorf("log:\n%s", b)
	}
	checkNothingInstalled(t, topo.GwA)
}

// checkNothingInstalled: no TUN device, no policy rule at the gateway's
// priority, no nftables table of the gateway.
func checkNothingInstalled(t *testing.T, ns *netns.NS) {
	t.Helper()
	if out, err := ns.Run(t.Context(), "ip", "link", "show", tunName); err == nil {
		t.Errorf("TUN device left:\n%s", out)
	}
	for _, fam := range []string{"-4", "-6"} {
		out, _ := ns.Run(t.Context(), "ip", fam, "rule", "show")
		if strings.Contains(string(out), "7463") {
			t.Errorf("rules left (%s):\n%s", fam, out)
		}
	}
	if out, err := ns.Run(t.Context(), "nft", "list", "table", "inet", "tcpcrypt_gw"); err == nil {
		t.Errorf("nftables table left:\n%s", out)
	}
}

// newBareTopology builds the standard topology without gateways, removed
// when t ends.
func newBareTopology(t *testing.T) *netns.Topology {
	t.Helper()
	topo, err := netns.NewTopology(nsPrefix, netns.TopologyOptions{})
	if err != nil {
		t.Fatalf("topology: %v", err)
	}
	t.Cleanup(func() {
		if err := topo.Close(); err != nil {
			t.Errorf("topology close: %v", err)
		}
	})
	return topo
}
