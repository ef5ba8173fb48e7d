package impair

import (
	"bytes"
	"testing"
	"time"
)

func TestParseTCP(t *testing.T) {
	for _, v6 := range []bool{false, true} {
		s := seg{v6: v6, srcPort: 1234, dstPort: 80, seq: 99, ack_: true, opts: tsOption(), payload: []byte("hello")}
		pkt := s.build(t)
		padded := append(append([]byte(nil), pkt...), 0, 0, 0) // link-layer padding is cut
		p, ok := parseTCP(padded)
		if !ok {
			t.Fatalf("v6=%v: not parsed", v6)
		}
		if !bytes.Equal(p.pkt, pkt) || p.srcPort() != 1234 || p.dstPort() != 80 || p.seq() != 99 ||
			string(p.payload()) != "hello" || len(p.options()) != 12 || p.v6 != v6 || !p.tcpChecksumOK() {
			t.Fatalf("v6=%v: parsed %+v", v6, p)
		}
		// Every truncation is refused, none panics.
		for n := range len(pkt) {
			if _, ok := parseTCP(pkt[:n]); ok {
				t.Fatalf("v6=%v: truncated to %d bytes, still parsed", v6, n)
			}
		}
	}
}

func TestChecksumHelpers(t *testing.T) {
	for _, odd := range []int{0, 1} {
		pkt := seg{srcPort: 1, dstPort: 2, ack_: true, payload: payloadOf(100+odd, 3)}.build(t)
		p, _ := parseTCP(pkt)
		want := append([]byte(nil), pkt...)
		pkt[p.tcpOff+16], pkt[p.tcpOff+17] = 0x12, 0x34
		p.fixTCPChecksum()
		if !bytes.Equal(pkt, want) {
			t.Fatalf("fixTCPChecksum differs from gopacket's checksum")
		}
		// Adjusting for a change of the last (maybe odd) byte keeps it valid.
		i := len(pkt) - 1
		before := p.wordsSum(i, i+1)
		pkt[i] ^= 0x5a
		p.adjustTCPChecksum(before, p.wordsSum(i, i+1))
		checkValid(t, pkt)
		// And keeps a bad checksum bad.
		pkt[p.tcpOff+16] ^= 1
		before = p.wordsSum(i-2, i+1)
		pkt[i-1] ^= 0x77
		p.adjustTCPChecksum(before, p.wordsSum(i-2, i+1))
		if p.tcpChecksumOK() {
			t.Fatalf("a bad checksum became good")
		}
	}
}

func TestOptionWalkMalformed(t *testing.T) {
	for _, opts := range [][]byte{
		{2},          // kind without length
		{2, 0},       // length 0
		{2, 1},       // length 1
		{2, 9, 0, 0}, // beyond the end
		{69, 2, 2, 5, 0, 0, 0, 0},
	} {
		// Options padded to a multiple of 4 inside a real header.
		padded := append([]byte(nil), opts...)
		for len(padded)%4 != 0 {
			padded = append(padded, 0)
		}
		pkt := seg{srcPort: 1, dstPort: 2, syn: true}.build(t)
		pkt = append(pkt[:40:40], padded...)
		pkt[32] = byte((20+len(padded))/4) << 4
		pkt[2], pkt[3] = 0, byte(len(pkt))
		p, ok := parseTCP(pkt)
		if !ok {
			t.Fatalf("%x: not parsed", opts)
		}
		p.hasOption(69)
		p.replaceOption(5)
		p.clampMSS(100)
	}
}

// FuzzProcess feeds arbitrary bytes, as IPv4 and IPv6, to an impairer with
// every impairment on: it must never panic, and what it emits is never
// longer than what came in.
func FuzzProcess(f *testing.F) {
	f.Add(seg{srcPort: 1, dstPort: 2, syn: true, opts: synOpts()}.build(f))
	f.Add(seg{v6: true, srcPort: 1, dstPort: 2, ack_: true, opts: tsOption(), payload: payloadOf(300, 1)}.build(f))
	f.Add(seg{toA: true, srcPort: 1, dstPort: 2, fin: true, ack_: true, payload: []byte("ab")}.build(f))
	f.Add([]byte{0x45})
	s := Settings{Delay: time.Millisecond, Jitter: time.Millisecond, LossPct: 10, DupPct: 10, ReorderPct: 10,
		CorruptPct: 50, ResegmentPct: 100, ClampMSS: 500, StripENO: StripBoth, DropSYNWithOption: 30, ForgeFINAfterBytes: 10}
	im, err := New(testConfig(s, s, s))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, pkt []byte) {
		n := len(pkt)
		im.Process(pkt, t0, func(out []byte, _ time.Time) bool {
			if len(out) > n {
				t.Fatalf("emitted %d bytes from %d", len(out), n)
			}
			return true
		})
	})
}
