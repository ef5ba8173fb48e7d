package e2e

import (
	"encoding/binary"
	"fmt"
	"strings"
	"testing"

	"tcpcrypt-gw/test/netns"
)

// initMagicSeen reports whether any payload of a connection from client port
// cport starts with the Init1 magic (RFC 8548 §4.3): a full key exchange.
func initMagicSeen(pkts []capturedPacket, cport uint16) bool {
	for _, p := range pkts {
		if p.srcPort == cport && len(p.payload) >= 4 && binary.BigEndian.Uint32(p.payload) == 0x15101a0e {
			return true
		}
	}
	return false
}

type capturedPacket struct {
	srcPort uint16
	payload []byte
}

// TestResumption is the session-resumption case: after one full handshake
// between the two gateways, the second and the tenth connection resume (no
// Init bytes on the wire), each with its own session ID, equal at both
// gateways; after gateway B restarts, the next connection falls back to a
// full handshake and works.
func TestResumption(t *testing.T) {
	e := newEnv(t, envOptions{})
	addr := fmt.Sprintf("%s:9300", e.topo.ServerAddr4)
	l := listen(t, e.topo.Server, "0.0.0.0:9300")
	capt := startCapture(t, e.topo.Wan, "tcp port 9300")
	for i := 0; i < 10; i++ {
		transfer(t, l, e.topo.Client, addr, 64<<10, 64<<10, uint64(300+2*i))
	}
	raw := capt.packets()
	var pkts []capturedPacket
	for i := range raw {
		pkts = append(pkts, capturedPacket{srcPort: raw[i].SrcPort, payload: raw[i].Payload()})
	}
	fa, fb := e.flows(e.topo.GwA), e.flows(e.topo.GwB)
	byPortB := map[string]string{}
	for _, f := range fb {
		byPortB[f.WAN] = f.SessionID
	}
	seen := map[string]bool{}
	resumed := 0
	for _, f := range fa {
		if f.WAN != addr {
			continue
		}
		var cport uint16
		fmt.Sscanf(f.LAN[len(e.topo.ClientAddr4.String())+1:], "%d", &cport)
		if !f.Encrypted || f.SessionID == "" || seen[f.SessionID] {
			t.Errorf("flow %s: encrypted=%v sid=%s (repeated=%v)", f.LAN, f.Encrypted, f.SessionID, seen[f.SessionID])
		}
		seen[f.SessionID] = true
		// gateway B sees the client behind A's NAT: match by session ID
		found := false
		for _, sid := range byPortB {
			found = found || sid == f.SessionID
		}
		if !found {
			t.Errorf("flow %s: session ID %s not at gateway B", f.LAN, f.SessionID)
		}
		hasInit := initMagicSeen(pkts, cport)
		if f.Resumed {
			resumed++
			if hasInit {
				t.Errorf("flow %s resumed but Init1 is on the wire", f.LAN)
			}
		} else if !hasInit {
			t.Errorf("flow %s: full handshake without Init1 on the wire?", f.LAN)
		}
	}
	if len(seen) != 10 || resumed != 9 {
		t.Fatalf("%d flows, %d resumed; want 10 and 9", len(seen), resumed)
	}

	// Gateway B restarts: its cache is gone; the next connection offers
	// resumption, B answers with a full handshake, and it works.
	e.gwB.Stop()
	e.gwB = e.startGateway(e.topo.GwB, "gwb", gatewayYAML([]string{"10.91.5.0/24", "fd91:5::/64"}, ""))
	transfer(t, l, e.topo.Client, addr, 1<<20, 1<<20, 400)
	var last *struct{ resumed, enc bool }
	for _, f := range e.flows(e.topo.GwB) {
		last = &struct{ resumed, enc bool }{f.Resumed, f.Encrypted}
	}
	if last == nil || last.resumed || !last.enc {
		t.Fatalf("after B restarted: %+v, want a full, encrypted handshake", last)
	}
}

// TestRekeyUnderLoss: 256 MiB each way with rekeying every 8 MiB in each
// direction and 1% random loss on the wan stays byte-exact, and both
// gateways count the expected rekeys.
func TestRekeyUnderLoss(t *testing.T) {
	rekey := "tcpcrypt:\n  rekey_bytes: 8MiB\n"
	e := newEnv(t, envOptions{extraA: rekey, extraB: rekey})
	lossRules(t, e.topo.Wan, 1)
	addr := fmt.Sprintf("%s:9301", e.topo.ServerAddr4)
	l := listen(t, e.topo.Server, "0.0.0.0:9301")
	const n = 256 << 20
	transfer(t, l, e.topo.Client, addr, n, n, 500)
	fa := flowWithPort(e.flows(e.topo.GwA), 9301)
	fb := flowWithPort(e.flows(e.topo.GwB), 9301)
	if fa == nil || fb == nil {
		t.Fatal("flows not found")
	}
	// Each direction rekeys after every 8 MiB it sends, and also follows a
	// peer that starts a new generation first (the keep-alive rule), so a
	// direction counts at least n/8MiB-1 and at most twice that.
	want := uint64(n/(8<<20)) - 1
	for _, c := range []struct {
		name string
		got  uint64
	}{{"A out", fa.RekeysOut}, {"A in", fa.RekeysIn}, {"B out", fb.RekeysOut}, {"B in", fb.RekeysIn}} {
		if c.got < want || c.got > 2*want+2 {
			t.Errorf("%s: %d rekeys, want %d to %d", c.name, c.got, want, 2*want+2)
		}
	}
	if fa.RekeysOut != fb.RekeysIn || fb.RekeysOut != fa.RekeysIn {
		t.Errorf("rekeys sent and followed differ: A out %d / B in %d, B out %d / A in %d", fa.RekeysOut, fb.RekeysIn, fb.RekeysOut, fa.RekeysIn)
	}
	t.Logf("rekeys: A out %d in %d, B out %d in %d", fa.RekeysOut, fa.RekeysIn, fb.RekeysOut, fb.RekeysIn)
}

func lossRules(t *testing.T, ns *netns.NS, pct int) {
	t.Helper()
	rules := fmt.Sprintf("table inet tcgwloss {\n chain forward_loss { type filter hook forward priority 0; policy accept;\n  meta l4proto tcp numgen random mod 100 < %d drop\n }\n}\n", pct)
	if out, err := ns.RunStdin(rules, "nft", "-f", "-"); err != nil {
		t.Fatalf("nft: %v: %s", err, out)
	}
}

// TestResumptionRoleSwap: after a full handshake client -> server (gateway
// A plays role A), the server opens a connection back to the client through
// A's port forward: gateway B now plays role A and resumes the session (RFC
// 8548 §3.5: "either host MAY later initiate session resumption"), each
// gateway naming it by the half of resume[i] of its ORIGINAL role and
// sealing with its original keys. The data is exact and both gateways show
// the same session ID, which starts with the TEP byte with v = 1.
func TestResumptionRoleSwap(t *testing.T) {
	e := newEnv(t, envOptions{portForward: true})
	srv := listen(t, e.topo.Server, "0.0.0.0:9310")
	transfer(t, srv, e.topo.Client, fmt.Sprintf("%s:9310", e.topo.ServerAddr4), 64<<10, 64<<10, 310)
	cli := listen(t, e.topo.Client, "0.0.0.0:9090")
	transfer(t, cli, e.topo.Server, fmt.Sprintf("%s:8080", e.topo.GwAWANAddr4), 1<<20, 1<<20, 311)

	fa := flowWithPort(e.flows(e.topo.GwA), 9090)
	fb := flowWithPort(e.flows(e.topo.GwB), 8080)
	if fa == nil || fb == nil {
		t.Fatal("flows of the second connection not found")
	}
	if fa.Direction != "inbound" || fb.Direction != "outbound" {
		t.Fatalf("directions: A %s B %s", fa.Direction, fb.Direction)
	}
	if !fa.Resumed || !fb.Resumed || fa.SessionID != fb.SessionID || !strings.HasPrefix(fa.SessionID, "a0") {
		t.Fatalf("second connection: A resumed=%v sid=%s, B resumed=%v sid=%s; want resumed at both, equal IDs starting a0 (x25519mlkem768 | v)",
			fa.Resumed, fa.SessionID, fb.Resumed, fb.SessionID)
	}
}
