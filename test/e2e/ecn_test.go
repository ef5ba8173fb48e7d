// ECN through the gateways (RFC 3168): both hosts negotiate ECN
// (net.ipv4.tcp_ecn = 1 in their namespaces, IPv4 and IPv6 alike), the
// connection is encrypted and every byte arrives; captures at both hosts
// and on the wan show that the gateways pass ECN as the hosts use it:
//   - the ECN-setup SYN (ECE and CWR, RFC 3168 §6.1.1) reaches the server,
//     and the ECN-setup SYN-ACK (ECE without CWR) reaches the client;
//   - data segments carry ECT(0) at the receiving host and on the wan
//     (the gateways give the frames they write the TOS byte and the ECE
//     and CWR flags of the segment that carried the data; only their own
//     Init messages, and the hosts' retransmissions, are not-ECT);
//   - with a router on the wan marking some ciphertext segments CE, the
//     server sees CE, the client sees the server's ECE, and the server sees
//     the client's CWR: the congestion signal crosses both gateways.
package e2e

import (
	"fmt"
	"strings"
	"testing"

	"tcpcrypt-gw/gateway/packet"
)

const ecnMask = 0x03 // the ECN field of the IPv4 TOS / IPv6 traffic class (RFC 3168 §5)

const (
	ecnECT0 = 0x02
	ecnCE   = 0x03
)

// ecnFacts counts what one capture saw of the connections to port.
type ecnFacts struct {
	synECECWR                  int // SYN (not ACK) with ECE and CWR
	synAckECE, synAckCWR       int // SYN-ACK with ECE; with CWR (must stay 0)
	dataToPort, dataFromPort   int // segments with new data (retransmissions are not-ECT, RFC 3168 §6.1.5)
	ect0ToPort, ect0FromPort   int // of those, ECT(0)
	ceToPort                   int // CE-marked segments toward port
	eceFromPort, cwrToPort     int // non-SYN ECE from the port's side; CWR toward it
	synWithECT, pureAckWithECT int // RFC 3168 §6.1.1/§6.1.4: SYNs and pure ACKs are not ECT
}

// isInit reports whether a payload opens with the magic number of an Init1
// or Init2 message (RFC 8548 §4.3: 0x15101a0e, 0x097105e0). The gateways
// originate these and send them not-ECT.
func isInit(b []byte) bool {
	return len(b) >= 4 && (string(b[:4]) == "\x15\x10\x1a\x0e" || string(b[:4]) == "\x09\x71\x05\xe0")
}

func ecnFactsFor(pkts []packet.Packet, port uint16) ecnFacts {
	var f ecnFacts
	var seen newData
	for i := range pkts {
		p := &pkts[i]
		to, from := p.DstPort == port, p.SrcPort == port
		if !to && !from {
			continue
		}
		fresh := seen.fresh(p, to)
		ecn := p.TOS & ecnMask
		syn := p.Flags&packet.FlagSYN != 0
		ece, cwr := p.Flags&packet.FlagECE != 0, p.Flags&packet.FlagCWR != 0
		data := len(p.Payload()) > 0 && fresh
		switch {
		case syn && p.Flags&packet.FlagACK == 0:
			if ece && cwr {
				f.synECECWR++
			}
		case syn:
			if ece {
				f.synAckECE++
			}
			if cwr {
				f.synAckCWR++
			}
		}
		if syn && ecn != 0 {
			f.synWithECT++
		}
		if !syn && len(p.Payload()) == 0 && p.Flags&(packet.FlagFIN|packet.FlagRST) == 0 && ecn != 0 && ecn != ecnCE {
			f.pureAckWithECT++
		}
		if data && to {
			f.dataToPort++
			if ecn == ecnECT0 {
				f.ect0ToPort++
			}
		}
		if data && from {
			f.dataFromPort++
			if ecn == ecnECT0 {
				f.ect0FromPort++
			}
		}
		if to && ecn == ecnCE {
			f.ceToPort++
		}
		if from && !syn && ece {
			f.eceFromPort++
		}
		if to && !syn && cwr {
			f.cwrToPort++
		}
	}
	return f
}

// newData tells first transmissions from retransmissions, whatever their
// segment boundaries: a segment that starts below the highest sequence
// number seen so far in its direction re-sends data.
type newData struct {
	end     [2]uint32 // per direction (to the port, from it)
	started [2]bool
}

func (n *newData) fresh(p *packet.Packet, toPort bool) bool {
	d := 0
	if toPort {
		d = 1
	}
	if len(p.Payload()) == 0 {
		return false
	}
	end := p.Seq + uint32(len(p.Payload()))
	fresh := !n.started[d] || int32(p.Seq-n.end[d]) >= 0
	if !n.started[d] || int32(end-n.end[d]) > 0 {
		n.end[d], n.started[d] = end, true
	}
	return fresh
}

// wanNotECT lists the new data segments on the wan that are not
// ECN-capable although they should be: all but the gateways' own Init
// messages (retransmissions are left out: Linux sends them not-ECT, RFC
// 3168 §6.1.5). The wan capture holds each packet twice (arriving and
// leaving the wan router); only the copy with the higher TTL, the one
// before the router, counts.
func wanNotECT(pkts []packet.Packet, port uint16) []string {
	maxTTL := map[bool]uint8{}
	for i := range pkts {
		p := &pkts[i]
		if p.DstPort == port || p.SrcPort == port {
			maxTTL[p.DstPort == port] = max(maxTTL[p.DstPort == port], p.TTL)
		}
	}
	var seen newData
	var bad []string
	for i := range pkts {
		p := &pkts[i]
		to := p.DstPort == port
		if !to && p.SrcPort != port || p.TTL != maxTTL[to] {
			continue
		}
		if seen.fresh(p, to) && p.TOS&ecnMask == 0 && !isInit(p.Payload()) {
			bad = append(bad, fmt.Sprintf("%v:%d > %v:%d seq %d len %d", p.Src, p.SrcPort, p.Dst, p.DstPort, p.Seq, len(p.Payload())))
		}
	}
	return bad
}

func TestECN(t *testing.T) {
	e := newEnv(t, envOptions{})
	for _, ns := range []struct {
		name string
		set  func(string, string) error
	}{{"client", e.topo.Client.Sysctl}, {"server", e.topo.Server.Sysctl}} {
		if err := ns.set("net.ipv4.tcp_ecn", "1"); err != nil {
			t.Fatalf("%s: tcp_ecn: %v", ns.name, err)
		}
	}

	for _, c := range []struct {
		name   string
		addr   string
		listen string
		port   uint16
		ce     bool
		seed   uint64
	}{
		{"IPv4", e.topo.ServerAddr4.String(), "0.0.0.0", 9200, false, 11},
		{"IPv6", "[" + e.topo.ServerAddr6.String() + "]", "[::]", 9201, false, 12},
		{"IPv4 with CE marks on the wan", e.topo.ServerAddr4.String(), "0.0.0.0", 9202, true, 13},
	} {
		t.Run(c.name, func(t *testing.T) {
			filter := fmt.Sprintf("tcp port %d", c.port)
			if c.ce {
				// The wan router marks one in 20 ECT(0) segments from
				// gateway A CE, as a congested AQM queue would.
				rules := fmt.Sprintf(`table inet tcgw_ce {
  chain forward {
    type filter hook forward priority filter; policy accept;
    iifname "gwa0" tcp dport %d ip ecn ect0 numgen random mod 20 0 ip ecn set ce counter
  }
}
`, c.port)
				if out, err := e.topo.Wan.RunStdin(rules, "nft", "-f", "-"); err != nil {
					t.Fatalf("CE marking: %v: %s", err, out)
				}
				defer e.topo.Wan.Run(t.Context(), "nft", "delete", "table", "inet", "tcgw_ce")
			}
			atServer := startCapture(t, e.topo.Server, filter)
			atClient := startCapture(t, e.topo.Client, filter)
			onWan := startCapture(t, e.topo.Wan, filter)
			l := listen(t, e.topo.Server, fmt.Sprintf("%s:%d", c.listen, c.port))
			transfer(t, l, e.topo.Client, fmt.Sprintf("%s:%d", c.addr, c.port), 8<<20, 2<<20, c.seed)

			f := flowWithPort(e.flows(e.topo.GwA), int(c.port))
			if f == nil || !f.Encrypted {
				t.Fatalf("flow at gateway A: %+v, want encrypted", f)
			}
			srv := ecnFactsFor(atServer.packets(), c.port)
			cli := ecnFactsFor(atClient.packets(), c.port)
			wanPkts := onWan.packets()
			wan := ecnFactsFor(wanPkts, c.port)
			t.Logf("server %+v\nclient %+v\nwan %+v", srv, cli, wan)

			// Negotiation (RFC 3168 §6.1.1).
			if wan.ect0ToPort == 0 || wan.ect0FromPort == 0 {
				t.Errorf("ECT(0) data on the wan: %d to the server, %d from it", wan.ect0ToPort, wan.ect0FromPort)
			}
			for _, bad := range wanNotECT(wanPkts, c.port) {
				t.Errorf("on the wan, data neither ECN-capable nor an Init message nor a retransmission: %s", bad)
			}
			if srv.synECECWR == 0 || wan.synECECWR == 0 {
				t.Errorf("ECN-setup SYN (ECE|CWR): at the server %d, on the wan %d", srv.synECECWR, wan.synECECWR)
			}
			if cli.synAckECE == 0 || cli.synAckCWR != 0 || wan.synAckECE == 0 {
				t.Errorf("ECN-setup SYN-ACK (ECE, no CWR): at the client ECE %d CWR %d, on the wan ECE %d", cli.synAckECE, cli.synAckCWR, wan.synAckECE)
			}
			// ECT(0) on data, both directions, at the receiver and on the
			// wan (except the gateways' own Init messages there); no ECT on
			// SYNs or pure ACKs (RFC 3168 §6.1.1, §6.1.4).
			for _, x := range []struct {
				where    string
				ect, all int
			}{
				{"client data at the server", srv.ect0ToPort + srv.ceToPort, srv.dataToPort},
				{"server data at the client", cli.ect0FromPort, cli.dataFromPort},
			} {
				if x.all == 0 || x.ect != x.all {
					t.Errorf("%s: %d of %d segments ECN-capable", x.where, x.ect, x.all)
				}
			}
			for _, x := range []struct {
				where string
				n     int
			}{{"server", srv.synWithECT + srv.pureAckWithECT}, {"client", cli.synWithECT + cli.pureAckWithECT}} {
				if x.n != 0 {
					t.Errorf("at the %s: %d SYNs or pure ACKs with an ECT codepoint", x.where, x.n)
				}
			}
			if !c.ce {
				if srv.ceToPort != 0 || cli.eceFromPort != 0 {
					t.Errorf("without marking: CE %d at the server, ECE %d at the client", srv.ceToPort, cli.eceFromPort)
				}
				return
			}
			out, _ := e.topo.Wan.Run(t.Context(), "nft", "list", "table", "inet", "tcgw_ce")
			if strings.Contains(string(out), "counter packets 0 ") {
				t.Fatalf("the wan router marked nothing:\n%s", out)
			}
			// The congestion signal, end to end (RFC 3168 §6.1.2, §6.1.3):
			// CE reaches the server, its ECE reaches the client, the
			// client's CWR reaches the server.
			if wan.ceToPort == 0 || srv.ceToPort == 0 {
				t.Errorf("CE marks: on the wan (after the marking router) %d, at the server %d", wan.ceToPort, srv.ceToPort)
			}
			if cli.eceFromPort == 0 {
				t.Error("the server's ECE did not reach the client")
			}
			if srv.cwrToPort == 0 {
				t.Error("the client's CWR did not reach the server")
			}
		})
	}
}
