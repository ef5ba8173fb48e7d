package e2e

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"tcpcrypt-gw/crypto/tcpcrypt"
	"tcpcrypt-gw/gateway/monitor"
	"tcpcrypt-gw/gateway/packet"
	"tcpcrypt-gw/test/netns"
)

// pqTEPs configures a gateway for the hybrid TEP first (docs/pq-tep.md).
const pqTEPs = "  teps: [x25519mlkem768, curve25519]\n"

// clampMSS makes a host advertise an MSS of mss on its default IPv4 route
// (the route's advmss), so that the gateways' peer sees that MSS.
func clampMSS(t *testing.T, ns *netns.NS, via string, mss int) {
	t.Helper()
	if out, err := ns.Run(t.Context(), "ip", "route", "change", "default", "via", via, "advmss", fmt.Sprint(mss)); err != nil {
		t.Fatalf("advmss: %v: %s", err, out)
	}
}

// initStarts returns the payload lengths of the segments of port that
// start an Init message with magic (RFC 8548 §4.3): from the server (its
// source port) or to it; each segment once (the WAN namespace sees it on
// two interfaces, and a retransmission again).
func initStarts(pkts []packet.Packet, port uint16, fromServer bool, magic uint32) []int {
	var lens []int
	seen := map[uint32]bool{}
	for i := range pkts {
		p := &pkts[i]
		ours := fromServer && p.SrcPort == port || !fromServer && p.DstPort == port
		if pl := p.Payload(); ours && !seen[p.Seq] && len(pl) >= 4 && binary.BigEndian.Uint32(pl) == magic {
			seen[p.Seq] = true
			lens = append(lens, len(pl))
		}
	}
	return lens
}

// wanSegments makes the gateways' WAN interfaces send single segments,
// never super-packets (gso_max_segs 1: the kernel cuts them before the
// veth), so that the WAN sees, captures and loses segments one by one as
// a real link would.
func wanSegments(t *testing.T, nss ...*netns.NS) {
	t.Helper()
	for _, ns := range nss {
		if out, err := ns.Run(t.Context(), "ip", "link", "set", "dev", netns.WANIf, "gso_max_segs", "1", "gso_max_size", "600"); err != nil {
			t.Fatalf("gso_max_segs: %v: %s", err, out)
		}
	}
}

// pqFlows returns the flows of port at both gateways and checks that they
// are encrypted with the hybrid TEP, shown post_quantum, with the same
// session ID.
func (e *env) pqFlows(port int) (fa, fb *monitor.FlowJSON) {
	t := e.t
	t.Helper()
	fa, fb = flowWithPort(e.flows(e.topo.GwA), port), flowWithPort(e.flows(e.topo.GwB), port)
	if fa == nil || fb == nil {
		t.Fatalf("port %d: flows not found (A %v, B %v)", port, fa != nil, fb != nil)
	}
	for _, f := range []*monitor.FlowJSON{fa, fb} {
		if !f.Encrypted || f.TEP != "x25519mlkem768" || !f.PostQuantum {
			t.Errorf("port %d: flow %s encrypted=%v tep=%q post_quantum=%v reason=%q, want x25519mlkem768", port, f.LAN, f.Encrypted, f.TEP, f.PostQuantum, f.Reason)
		}
	}
	if fa.SessionID == "" || fa.SessionID != fb.SessionID {
		t.Errorf("port %d: session IDs differ: A %s B %s", port, fa.SessionID, fb.SessionID)
	}
	return fa, fb
}

// TestPostQuantumSmallMSSLoss: two gateways with the hybrid TEP, hosts
// that advertise an MSS of 536 and 2 % loss on the WAN: Init1 and Init2
// span segments (RFC 8548 §3.3) and are repaired after loss; the transfer
// is byte-exact with rekeying (every 1 MiB each way), both gateways show
// the same session ID with TEP byte 0x20; the next connection resumes
// (TEP byte 0x20|0x80, no Init on the wire).
func TestPostQuantumSmallMSSLoss(t *testing.T) {
	extra := "tcpcrypt:\n" + pqTEPs + "  rekey_bytes: 1MiB\n"
	e := newEnv(t, envOptions{extraA: extra, extraB: extra})
	clampMSS(t, e.topo.Client, e.topo.GwALANAddr4.String(), 536)
	clampMSS(t, e.topo.Server, e.topo.GwBLANAddr4.String(), 536)
	wanSegments(t, e.topo.GwA, e.topo.GwB)
	lossRules(t, e.topo.Wan, 2)
	// Only the segments that start an Init: tcpdump keeps up with those.
	capt := startCapture(t, e.topo.Wan, fmt.Sprintf("tcp portrange 9320-9321 and (tcp[((tcp[12]&0xf0)>>2):4] = %#x or tcp[((tcp[12]&0xf0)>>2):4] = %#x)", tcpcrypt.Init1Magic, tcpcrypt.Init2Magic))

	const n = 4 << 20
	l1 := listen(t, e.topo.Server, "0.0.0.0:9320")
	transfer(t, l1, e.topo.Client, fmt.Sprintf("%s:9320", e.topo.ServerAddr4), n, n, 320)
	fa, fb := e.pqFlows(9320)
	if fa.Resumed || !strings.HasPrefix(fa.SessionID, "20") {
		t.Errorf("first connection: resumed=%v session ID %s, want a full handshake with TEP byte 20", fa.Resumed, fa.SessionID)
	}
	for _, c := range []struct {
		name string
		got  uint64
	}{{"A out", fa.RekeysOut}, {"A in", fa.RekeysIn}, {"B out", fb.RekeysOut}, {"B in", fb.RekeysIn}} {
		if c.got < 2 {
			t.Errorf("%s: %d rekeys over %d MiB, want at least 2", c.name, c.got, n>>20)
		}
	}

	l2 := listen(t, e.topo.Server, "0.0.0.0:9321")
	transfer(t, l2, e.topo.Client, fmt.Sprintf("%s:9321", e.topo.ServerAddr4), 256<<10, 256<<10, 321)
	ra, _ := e.pqFlows(9321)
	if !ra.Resumed || !strings.HasPrefix(ra.SessionID, "a0") {
		t.Errorf("second connection: resumed=%v session ID %s, want resumed with TEP byte a0", ra.Resumed, ra.SessionID)
	}

	pkts := capt.packets()

	// Init1 (1265 bytes or more) and Init2 (1166) in segments of at most
	// 536 bytes; none for the resumed connection.
	for _, m := range []struct {
		name       string
		fromServer bool
		magic      uint32
	}{{"Init1", false, tcpcrypt.Init1Magic}, {"Init2", true, tcpcrypt.Init2Magic}} {
		lens := initStarts(pkts, 9320, m.fromServer, m.magic)
		if len(lens) == 0 {
			t.Errorf("no %s on the wire", m.name)
		}
		for _, l := range lens {
			if l > 536 {
				t.Errorf("%s's first segment carries %d bytes, more than the MSS 536", m.name, l)
			}
		}
		if n := len(initStarts(pkts, 9321, m.fromServer, m.magic)); n != 0 {
			t.Errorf("the resumed connection has %d %s segments on the wire", n, m.name)
		}
	}
}

// TestPostQuantumRFCOnlyPeer: gateway A with the default TEPs
// (x25519mlkem768 first) and gateway B configured without the hybrid TEP
// agree on curve25519, B's first choice of A's offer (RFC 8547 §4.3), with
// one Init1 and one Init2 on the wire (no extra round trip). A connection
// to port 9332, which gateway A requires to be post-quantum
// (require_encryption.post_quantum), is reset with the reason. After both
// restart with the defaults, the hybrid TEP keys both.
func TestPostQuantumRFCOnlyPeer(t *testing.T) {
	requirePQ := "require_encryption:\n  post_quantum:\n    ports: [9332]\n"
	e := newEnv(t, envOptions{extraA: requirePQ, extraB: "tcpcrypt:\n  teps: [curve25519, p256, curve448, p521]\n  session_cache:\n    size: 0\n"})
	lq := listen(t, e.topo.Server, "0.0.0.0:9332")
	if c, err := dial(e.topo.Client, fmt.Sprintf("%s:9332", e.topo.ServerAddr4)); err == nil {
		// The LAN host's handshake completes before the gateway sees the
		// negotiated TEP (on its ACK): the reset follows at once.
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, rerr := c.Read(make([]byte, 1))
		c.Close()
		if !errors.Is(rerr, syscall.ECONNRESET) {
			t.Fatalf("read on a connection that must be post-quantum: %v, want a reset", rerr)
		}
	}
	if f := flowWithPort(e.flows(e.topo.GwA), 9332); f == nil || f.State != "reset" || f.Reason != "post-quantum required: negotiated curve25519" || f.Encrypted {
		t.Fatalf("gateway A's flow to the required port: %+v", f)
	}

	capt := startCapture(t, e.topo.Wan, fmt.Sprintf("tcp port 9330 and (tcp[((tcp[12]&0xf0)>>2):4] = %#x or tcp[((tcp[12]&0xf0)>>2):4] = %#x)", tcpcrypt.Init1Magic, tcpcrypt.Init2Magic))
	l := listen(t, e.topo.Server, "0.0.0.0:9330")
	transfer(t, l, e.topo.Client, fmt.Sprintf("%s:9330", e.topo.ServerAddr4), 256<<10, 256<<10, 330)
	fa, fb := flowWithPort(e.flows(e.topo.GwA), 9330), flowWithPort(e.flows(e.topo.GwB), 9330)
	if fa == nil || fb == nil {
		t.Fatal("flows not found")
	}
	if !fa.Encrypted || fa.TEP != "curve25519" || fb.TEP != "curve25519" || fa.SessionID != fb.SessionID || !strings.HasPrefix(fa.SessionID, "23") {
		t.Fatalf("A %s %q %s, B %s %q %s: want curve25519 at both with equal session IDs", fa.State, fa.TEP, fa.SessionID, fb.State, fb.TEP, fb.SessionID)
	}
	pkts := capt.packets()
	if n1, n2 := len(initStarts(pkts, 9330, false, tcpcrypt.Init1Magic)), len(initStarts(pkts, 9330, true, tcpcrypt.Init2Magic)); n1 != 1 || n2 != 1 {
		t.Errorf("%d Init1 and %d Init2 on the wire, want one each", n1, n2)
	}

	// Both restart with the defaults (A would otherwise offer to resume
	// the curve25519 session, alone: protocol.md).
	e.gwA.Stop()
	e.gwB.Stop()
	e.gwA = e.startGateway(e.topo.GwA, "gwa", gatewayYAML([]string{"10.91.1.0/24", "fd91:1::/64"}, requirePQ))
	e.gwB = e.startGateway(e.topo.GwB, "gwb", gatewayYAML([]string{"10.91.5.0/24", "fd91:5::/64"}, ""))
	l2 := listen(t, e.topo.Server, "0.0.0.0:9331")
	transfer(t, l2, e.topo.Client, fmt.Sprintf("%s:9331", e.topo.ServerAddr4), 64<<10, 64<<10, 331)
	e.pqFlows(9331)
	transfer(t, lq, e.topo.Client, fmt.Sprintf("%s:9332", e.topo.ServerAddr4), 64<<10, 64<<10, 332)
	e.pqFlows(9332)
}
