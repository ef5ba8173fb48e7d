package endpoint

import (
	"encoding/binary"
	"testing"

	"tcpcrypt-gw/crypto/tcpcrypt"
)

// TestHybridTEPNegotiation: the hybrid TEP (docs/pq-tep.md) is used when
// both hosts list it, and a host that offers it first still gets an RFC
// 8548 TEP from an RFC-only peer, with the same single Init1/Init2
// exchange (no extra round trip: RFC 8547 §4.5 picks a TEP both listed).
func TestHybridTEPNegotiation(t *testing.T) {
	rfcOnly := []tcpcrypt.TEP{tcpcrypt.TEPCurve25519, tcpcrypt.TEPP256, tcpcrypt.TEPP521, tcpcrypt.TEPCurve448}
	withPQ := append([]tcpcrypt.TEP{tcpcrypt.TEPX25519MLKEM768}, rfcOnly...)
	for _, c := range []struct {
		name   string
		a, b   []tcpcrypt.TEP
		want   tcpcrypt.TEP
		init1s int // Init1's length with the 3 AEADs configs offers
	}{
		{"both hybrid", withPQ, withPQ, tcpcrypt.TEPX25519MLKEM768, 8 + 1 + 6 + 32 + 1220},
		{"RFC-only B", withPQ, rfcOnly, tcpcrypt.TEPCurve25519, 8 + 1 + 6 + 32 + 32},
		{"RFC-only A", rfcOnly, withPQ, tcpcrypt.TEPCurve25519, 8 + 1 + 6 + 32 + 32},
	} {
		t.Run(c.name, func(t *testing.T) {
			out := simulateENO(t, enoHost{teps: c.a}, enoHost{teps: c.b})
			if out.tep != c.want {
				t.Fatalf("ENO chose %v, want %v", out.tep, c.want)
			}
			cfgA, cfgB := configs(out, tcpcrypt.AES128GCM)
			rawA, rawB := tcpPair(t)
			wireA := &recordConn{TCPConn: rawA, limit: 8}
			a, b := handshakePair(t, wireA, rawB, cfgA, cfgB)
			if a.TEP() != c.want || b.TEP() != c.want {
				t.Fatalf("handshake used %v/%v, want %v", a.TEP(), b.TEP(), c.want)
			}
			first := wireA.firstBytes()
			if !isInit1(first) || int(binary.BigEndian.Uint32(first[4:])) != c.init1s {
				t.Fatalf("A's stream starts %x, want an Init1 of %d bytes", first, c.init1s)
			}
			checkSessionIDs(t, a, b, byte(c.want))
			exchange(t, a, b, 5000, 7000, 3)
		})
	}
}
