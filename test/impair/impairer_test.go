package impair

import (
	"bytes"
	"encoding/binary"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/google/gopacket/layers"
)

var t0 = time.Unix(1700000000, 0)

// tsOption is a timestamp option padded to 12 bytes with two NOPs, as Linux
// sends it.
func tsOption() []layers.TCPOption {
	return []layers.TCPOption{
		{OptionType: layers.TCPOptionKindNop, OptionLength: 1},
		{OptionType: layers.TCPOptionKindNop, OptionLength: 1},
		{OptionType: layers.TCPOptionKindTimestamps, OptionLength: 10, OptionData: []byte{0, 0, 1, 2, 0, 0, 3, 4}},
	}
}

func TestResegmentSplitsIntoValidSegments(t *testing.T) {
	for _, v6 := range []bool{false, true} {
		im := newImpairer(t, testConfig(Settings{ResegmentPct: 100}, Settings{}, Settings{}))
		for i := range 50 {
			s := seg{v6: v6, srcPort: 40000, dstPort: 80, seq: 0xfffffe00 + uint32(i)*1000, ack: 77, ack_: true, psh: true, fin: i%2 == 1, id: 0xfff0, opts: tsOption(), payload: payloadOf(1000-i*19, byte(i))}
			in := s.build(t)
			var c collector
			im.Process(in, t0, c.emit)
			if len(c.got) < 2 || len(c.got) > 4 {
				t.Fatalf("v6=%v: %d segments, want 2-4", v6, len(c.got))
			}
			var joined []byte
			ids := map[uint16]bool{}
			for k, o := range c.got {
				d := checkValid(t, o.pkt)
				if len(d.payload) == 0 {
					t.Fatalf("piece %d is empty", k)
				}
				if want := s.seq + uint32(len(joined)); d.tcp.Seq != want {
					t.Fatalf("piece %d seq %d, want %d", k, d.tcp.Seq, want)
				}
				last := k == len(c.got)-1
				if d.tcp.PSH != last || d.tcp.FIN != (last && s.fin) {
					t.Fatalf("piece %d of %d: PSH=%v FIN=%v", k, len(c.got), d.tcp.PSH, d.tcp.FIN)
				}
				if !d.tcp.ACK || d.tcp.Ack != s.ack || len(d.tcp.Options) != 3 {
					t.Fatalf("piece %d lost header fields: ack=%v/%d options=%v", k, d.tcp.ACK, d.tcp.Ack, d.tcp.Options)
				}
				if d.v4 != nil {
					if ids[d.v4.Id] {
						t.Fatalf("piece %d repeats IPv4 ID %d", k, d.v4.Id)
					}
					ids[d.v4.Id] = true
				}
				joined = append(joined, d.payload...)
			}
			if !bytes.Equal(joined, s.payload) {
				t.Fatalf("v6=%v: joined payload differs from the original", v6)
			}
		}
		st := stats(im, "a2b")
		if st[Resegmented] != 50 || st[Pieces] < 100 || st[Sent] != st[Pieces] {
			t.Fatalf("counts %v", st)
		}
	}
}

func TestResegmentCutPointsVary(t *testing.T) {
	im := newImpairer(t, testConfig(Settings{ResegmentPct: 100}, Settings{}, Settings{}))
	counts := map[int]int{}
	firsts := map[int]bool{}
	for i := range 300 {
		var c collector
		im.Process(seg{srcPort: 1, dstPort: 2, seq: uint32(i), ack_: true, payload: payloadOf(100, 0)}.build(t), t0, c.emit)
		counts[len(c.got)]++
		firsts[len(decode(t, c.got[0].pkt).payload)] = true
	}
	for n := 2; n <= 4; n++ {
		if counts[n] < 50 {
			t.Errorf("%d pieces in %d of 300 splits, want about 100", n, counts[n])
		}
	}
	if len(firsts) < 30 {
		t.Errorf("only %d different first cut points in 300 splits", len(firsts))
	}
}

func TestResegmentTinyAndSpecialSegments(t *testing.T) {
	im := newImpairer(t, testConfig(Settings{ResegmentPct: 100}, Settings{}, Settings{}))
	// Two bytes: exactly two one-byte pieces.
	var c collector
	im.Process(seg{srcPort: 1, dstPort: 2, seq: 5, ack_: true, payload: []byte{1, 2}}.build(t), t0, c.emit)
	if len(c.got) != 2 {
		t.Fatalf("2-byte segment: %d pieces, want 2", len(c.got))
	}
	// Not split: one byte, SYN with data, RST, a bad checksum.
	bad := seg{srcPort: 1, dstPort: 2, seq: 5, ack_: true, payload: payloadOf(500, 1)}.build(t)
	bad[len(bad)-1] ^= 0xff
	for name, pkt := range map[string][]byte{
		"one byte": seg{srcPort: 1, dstPort: 2, ack_: true, payload: []byte{9}}.build(t),
		"syn":      seg{srcPort: 1, dstPort: 2, syn: true, payload: payloadOf(100, 2)}.build(t),
		"rst":      seg{srcPort: 1, dstPort: 2, rst: true, payload: payloadOf(100, 3)}.build(t),
		"bad sum":  bad,
	} {
		var c collector
		in := append([]byte(nil), pkt...)
		im.Process(pkt, t0, c.emit)
		if len(c.got) != 1 || !bytes.Equal(c.got[0].pkt, in) {
			t.Errorf("%s: emitted %d packets (first changed: %v), want it once unchanged", name, len(c.got), len(c.got) > 0 && !bytes.Equal(c.got[0].pkt, in))
		}
	}
}

// synOpts are the options of a Linux SYN with a TCP-ENO option (RFC 8547
// §4.1) inserted.
func synOpts() []layers.TCPOption {
	return []layers.TCPOption{
		{OptionType: layers.TCPOptionKindMSS, OptionLength: 4, OptionData: []byte{0x05, 0xb4}},
		{OptionType: layers.TCPOptionKindSACKPermitted, OptionLength: 2},
		{OptionType: layers.TCPOptionKindTimestamps, OptionLength: 10, OptionData: []byte{0, 0, 1, 2, 0, 0, 0, 0}},
		{OptionType: layers.TCPOptionKindNop, OptionLength: 1},
		{OptionType: layers.TCPOptionKindWindowScale, OptionLength: 3, OptionData: []byte{7}},
		{OptionType: OptionENO, OptionLength: 4, OptionData: []byte{0x01, 0x20}},
	}
}

func kinds(d decoded) []layers.TCPOptionKind {
	var ks []layers.TCPOptionKind
	for _, o := range d.tcp.Options {
		ks = append(ks, o.OptionType)
	}
	return ks
}

func TestStripENO(t *testing.T) {
	syn := seg{srcPort: 40000, dstPort: 80, seq: 1, syn: true, opts: synOpts()}
	synack := seg{toA: true, srcPort: 80, dstPort: 40000, seq: 9, ack: 2, syn: true, ack_: true, opts: synOpts()}
	data := seg{srcPort: 40000, dstPort: 80, seq: 2, ack_: true, opts: []layers.TCPOption{{OptionType: OptionENO, OptionLength: 2}, {OptionType: layers.TCPOptionKindNop, OptionLength: 1}, {OptionType: layers.TCPOptionKindNop, OptionLength: 1}}, payload: []byte("x")}
	for _, tc := range []struct {
		mode                StripENO
		wantSYN, wantSYNACK bool // stripped
	}{
		{StripNone, false, false}, {StripSYN, true, false}, {StripSYNACK, false, true}, {StripBoth, true, true},
	} {
		// The same mode in both directions: the SYN goes a2b, the SYN-ACK b2a.
		im := newImpairer(t, testConfig(Settings{StripENO: tc.mode}, Settings{StripENO: tc.mode}, Settings{}))
		for _, x := range []struct {
			s    seg
			want bool
		}{{syn, tc.wantSYN}, {synack, tc.wantSYNACK}, {data, false}} {
			in := x.s.build(t)
			orig := append([]byte(nil), in...)
			var c collector
			im.Process(in, t0, c.emit)
			if len(c.got) != 1 {
				t.Fatalf("%v: %d packets out", tc.mode, len(c.got))
			}
			d := checkValid(t, c.got[0].pkt)
			has := slices.Contains(kinds(d), OptionENO)
			if has == x.want {
				t.Errorf("mode %v, syn=%v ack=%v: ENO present=%v", tc.mode, x.s.syn, x.s.ack_, has)
			}
			if len(c.got[0].pkt) != len(orig) {
				t.Errorf("length changed %d -> %d", len(orig), len(c.got[0].pkt))
			}
			if x.want {
				// Everything else is kept, the ENO bytes became NOPs.
				want := slices.DeleteFunc(kinds(decode(t, orig)), func(k layers.TCPOptionKind) bool { return k == OptionENO })
				want = append(want, layers.TCPOptionKindNop, layers.TCPOptionKindNop, layers.TCPOptionKindNop, layers.TCPOptionKindNop)
				if !slices.Equal(kinds(d), want) {
					t.Errorf("options %v, want %v", kinds(d), want)
				}
			} else if !bytes.Equal(c.got[0].pkt, orig) {
				t.Errorf("mode %v: segment changed although not stripped", tc.mode)
			}
		}
		st := stats(im, "a2b")[ENOStripped] + stats(im, "b2a")[ENOStripped]
		want := uint64(0)
		for _, b := range []bool{tc.wantSYN, tc.wantSYNACK} {
			if b {
				want++
			}
		}
		if st != want {
			t.Errorf("mode %v: eno_stripped %d, want %d", tc.mode, st, want)
		}
	}
}

func TestStripKeepsBadChecksumBad(t *testing.T) {
	im := newImpairer(t, testConfig(Settings{StripENO: StripBoth, ClampMSS: 1000}, Settings{}, Settings{}))
	in := seg{srcPort: 1, dstPort: 2, syn: true, opts: synOpts()}.build(t)
	in[len(in)-10] ^= 0x40 // inside the options: the checksum no longer verifies
	var c collector
	im.Process(in, t0, c.emit)
	s, ok := parseTCP(c.got[0].pkt)
	if !ok || s.hasOption(OptionENO) {
		t.Fatalf("not parsed or ENO kept")
	}
	if s.tcpChecksumOK() {
		t.Fatalf("a segment that arrived with a bad checksum left with a good one")
	}
}

func TestClampMSS(t *testing.T) {
	im := newImpairer(t, testConfig(Settings{ClampMSS: 1000}, Settings{ClampMSS: 1000}, Settings{}))
	for _, tc := range []struct {
		s    seg
		mss  uint16
		want uint16
	}{
		{seg{srcPort: 1, dstPort: 2, syn: true}, 1460, 1000},
		{seg{toA: true, v6: true, srcPort: 2, dstPort: 1, syn: true, ack_: true}, 1440, 1000},
		{seg{srcPort: 1, dstPort: 2, syn: true}, 536, 536},
	} {
		tc.s.opts = synOpts()
		tc.s.opts[0].OptionData = binary.BigEndian.AppendUint16(nil, tc.mss)
		var c collector
		im.Process(tc.s.build(t), t0, c.emit)
		d := checkValid(t, c.got[0].pkt)
		if got := binary.BigEndian.Uint16(d.tcp.Options[0].OptionData); got != tc.want {
			t.Errorf("MSS %d clamped to %d, want %d", tc.mss, got, tc.want)
		}
	}
	if n := stats(im, "a2b")[MSSClamped] + stats(im, "b2a")[MSSClamped]; n != 2 {
		t.Errorf("mss_clamped %d, want 2", n)
	}
}

func TestDropSYNWithOption(t *testing.T) {
	im := newImpairer(t, testConfig(Settings{DropSYNWithOption: OptionENO}, Settings{}, Settings{}))
	plain := synOpts()[:5]
	for _, tc := range []struct {
		s    seg
		drop bool
	}{
		{seg{srcPort: 1, dstPort: 2, syn: true, opts: synOpts()}, true},
		{seg{srcPort: 1, dstPort: 2, syn: true, ack_: true, opts: synOpts()}, true},
		{seg{srcPort: 1, dstPort: 2, syn: true, opts: plain}, false},
		{seg{srcPort: 1, dstPort: 2, ack_: true, opts: synOpts(), payload: []byte("data")}, false},
		{seg{toA: true, srcPort: 2, dstPort: 1, syn: true, opts: synOpts()}, false}, // b2a: not configured
	} {
		var c collector
		im.Process(tc.s.build(t), t0, c.emit)
		if (len(c.got) == 0) != tc.drop {
			t.Errorf("syn=%v ack=%v opts=%d: emitted %d, want drop=%v", tc.s.syn, tc.s.ack_, len(tc.s.opts), len(c.got), tc.drop)
		}
	}
	if n := stats(im, "a2b")[SYNDropped]; n != 2 {
		t.Errorf("syn_dropped %d, want 2", n)
	}
}

func TestCorruptNth(t *testing.T) {
	for _, bad := range []bool{false, true} {
		im := newImpairer(t, testConfig(Settings{CorruptNth: 50, CorruptBadChecksum: bad}, Settings{}, Settings{}))
		var changed []int
		for i := range 120 {
			s := seg{srcPort: 1, dstPort: 2, seq: uint32(i * 100), ack_: true, payload: payloadOf(100, byte(i))}
			var c collector
			// Pure ACKs in between are not counted.
			im.Process(seg{srcPort: 1, dstPort: 2, seq: 0, ack_: true}.build(t), t0, c.emit)
			in := s.build(t)
			im.Process(append([]byte(nil), in...), t0, c.emit)
			got := c.got[1].pkt
			if bytes.Equal(got, in) {
				continue
			}
			changed = append(changed, i+1)
			d := decode(t, got)
			diff := 0
			for k := range d.payload {
				if d.payload[k] != s.payload[k] {
					diff++
				}
			}
			if diff != 1 {
				t.Errorf("%d payload bytes differ, want 1", diff)
			}
			ps, _ := parseTCP(got)
			if ps.tcpChecksumOK() == bad {
				t.Errorf("bad=%v: checksum valid=%v", bad, ps.tcpChecksumOK())
			}
			if !bad {
				checkValid(t, got)
			}
		}
		if !slices.Equal(changed, []int{50}) {
			t.Errorf("bad=%v: corrupted segments %v, want [50]", bad, changed)
		}
	}
}

func TestCorruptPortFilter(t *testing.T) {
	im := newImpairer(t, testConfig(Settings{CorruptNth: 3, CorruptPort: 443}, Settings{}, Settings{}))
	var corrupted []uint16
	for i := range 10 {
		port := uint16(80)
		if i%2 == 1 {
			port = 443
		}
		in := seg{srcPort: 1000, dstPort: port, seq: uint32(i), ack_: true, payload: payloadOf(50, 1)}.build(t)
		orig := append([]byte(nil), in...)
		var c collector
		im.Process(in, t0, c.emit)
		if !bytes.Equal(c.got[0].pkt, orig) {
			corrupted = append(corrupted, uint16(i))
		}
	}
	// Segments 1, 3, 5 go to port 443; the third of them is segment 5.
	if !slices.Equal(corrupted, []uint16{5}) {
		t.Errorf("corrupted %v, want [5]", corrupted)
	}
}

func TestForgeFIN(t *testing.T) {
	for _, v6 := range []bool{false, true} {
		im := newImpairer(t, testConfig(Settings{ForgeFINAfterBytes: 5000}, Settings{}, Settings{}))
		var c collector
		var isn uint32 = 0xfffff000 // the stream wraps around 2^32
		send := func(port uint16, off uint32, n int) {
			im.Process(seg{v6: v6, srcPort: port, dstPort: 80, seq: isn + off, ack: 5, ack_: true, psh: true, id: 10, opts: tsOption(), payload: payloadOf(n, 0)}.build(t), t0, c.emit)
		}
		send(1111, 0, 1000)
		send(2222, 0, 3000) // another flow, with less
		send(1111, 1000, 1000)
		send(1111, 0, 1000) // a retransmission counts nothing
		send(1111, 2000, 2500)
		if len(c.got) != 5 {
			t.Fatalf("forged before the count was reached: %d packets", len(c.got))
		}
		send(1111, 4500, 1000) // reaches 5500
		if len(c.got) != 7 {
			t.Fatalf("%d packets after reaching the count, want the segment and a FIN", len(c.got))
		}
		fin := checkValid(t, c.got[6].pkt)
		if !fin.tcp.FIN || fin.tcp.PSH || !fin.tcp.ACK || len(fin.payload) != 0 || fin.tcp.Seq != isn+5500 || fin.tcp.Ack != 5 || fin.tcp.SrcPort != 1111 {
			t.Fatalf("forged FIN: FIN=%v PSH=%v ACK=%v len=%d seq=%d ack=%d sport=%d", fin.tcp.FIN, fin.tcp.PSH, fin.tcp.ACK, len(fin.payload), fin.tcp.Seq, fin.tcp.Ack, fin.tcp.SrcPort)
		}
		if !c.got[6].due.Equal(c.got[5].due) {
			t.Errorf("FIN due %v, segment due %v", c.got[6].due, c.got[5].due)
		}
		send(2222, 3000, 9000) // once per direction
		send(1111, 5500, 9000)
		if len(c.got) != 9 || stats(im, "a2b")[FINForged] != 1 {
			t.Fatalf("forged more than once: %d packets, %d forged", len(c.got), stats(im, "a2b")[FINForged])
		}
	}
}

// rates runs n data segments through an impairer and returns its counts.
func rates(t *testing.T, s Settings, n int) ([NumCounters]uint64, []out) {
	im := newImpairer(t, testConfig(s, Settings{}, Settings{}))
	var c collector
	pkt := seg{srcPort: 1, dstPort: 2, ack_: true, payload: payloadOf(200, 0)}.build(t)
	for i := range n {
		p := append([]byte(nil), pkt...)
		binary.BigEndian.PutUint32(p[24:], uint32(i)) // the sequence number tells the packets apart
		im.Process(p, t0.Add(time.Duration(i)*time.Millisecond), c.emit)
	}
	return stats(im, "a2b"), c.got
}

// within asserts that count is within 6 standard deviations of a binomial
// with n trials and probability pct%.
func within(t *testing.T, name string, count uint64, n int, pct float64) {
	t.Helper()
	p := pct / 100
	mean := float64(n) * p
	sd := math.Sqrt(float64(n) * p * (1 - p))
	if math.Abs(float64(count)-mean) > 6*sd {
		t.Errorf("%s: %d of %d, want about %.0f (%.1f%%)", name, count, n, mean, pct)
	}
}

func TestLossDupReorderRates(t *testing.T) {
	const n = 10000
	st, got := rates(t, Settings{LossPct: 5, DupPct: 3, ReorderPct: 2, ReorderDelay: 20 * time.Millisecond}, n)
	within(t, "lost", st[Lost], n, 5)
	within(t, "duplicated", st[Duplicated], n-int(st[Lost]), 3)
	within(t, "reordered", st[Reordered], n-int(st[Lost]), 2)
	if want := uint64(n) - st[Lost] + st[Duplicated]; st[Sent] != want || uint64(len(got)) != want {
		t.Fatalf("sent %d, emitted %d, want %d", st[Sent], len(got), want)
	}
	// Count packets and duplicates by sequence number, and check that the
	// due order differs from the arrival order about as often as reordered.
	seen := map[uint32]int{}
	for _, o := range got {
		seen[binary.BigEndian.Uint32(o.pkt[24:])]++
	}
	dups := 0
	for _, k := range seen {
		if k == 2 {
			dups++
		}
	}
	if len(seen) != n-int(st[Lost]) || uint64(dups) != st[Duplicated] {
		t.Fatalf("%d distinct packets, %d twice; counts %v", len(seen), dups, st)
	}
	q := NewQueue(2*n, 2000, 0)
	for _, o := range got {
		q.Push(o.pkt, o.due)
	}
	var order []uint32
	for {
		p, ok := q.PopDue(t0.Add(time.Hour))
		if !ok {
			break
		}
		order = append(order, binary.BigEndian.Uint32(p[24:]))
	}
	held := 0 // packets released after a packet that arrived later
	maxSoFar := uint32(0)
	for _, s := range order {
		if s < maxSoFar {
			held++
		}
		maxSoFar = max(maxSoFar, s)
	}
	// A held packet is overtaken by the 20 that follow it; a duplicate of a
	// held one counts twice.
	if held < int(st[Reordered]) || held > 2*int(st[Reordered]) {
		t.Errorf("%d packets left after a later one, reordered %d", held, st[Reordered])
	}
}

func TestDelayJitterKeepsOrder(t *testing.T) {
	const n = 2000
	s := Settings{Delay: 30 * time.Millisecond, Jitter: 5 * time.Millisecond}
	st, got := rates(t, s, n)
	if st[Sent] != n {
		t.Fatalf("sent %d", st[Sent])
	}
	var lo, hi time.Duration = time.Hour, 0
	for i, o := range got {
		d := o.due.Sub(t0.Add(time.Duration(i) * time.Millisecond))
		lo, hi = min(lo, d), max(hi, d)
		if d < s.Delay-s.Jitter || d > s.Delay+s.Jitter+time.Millisecond {
			t.Fatalf("packet %d delayed %v", i, d)
		}
		if i > 0 && o.due.Before(got[i-1].due) {
			t.Fatalf("packet %d due before packet %d: jitter reordered", i, i-1)
		}
	}
	if hi-lo < 5*time.Millisecond {
		t.Errorf("delays span %v-%v: no jitter", lo, hi)
	}
}

func TestDirections(t *testing.T) {
	im := newImpairer(t, testConfig(Settings{LossPct: 100}, Settings{Delay: time.Second}, Settings{Delay: time.Minute}))
	var c collector
	im.Process(seg{srcPort: 1, dstPort: 2, payload: []byte("a")}.build(t), t0, c.emit)
	im.Process(seg{v6: true, srcPort: 1, dstPort: 2, payload: []byte("a")}.build(t), t0, c.emit)
	if len(c.got) != 0 {
		t.Fatalf("a2b not all lost")
	}
	im.Process(seg{toA: true, srcPort: 1, dstPort: 2, payload: []byte("b")}.build(t), t0, c.emit)
	im.Process(seg{toA: true, v6: true, srcPort: 1, dstPort: 2, payload: []byte("b")}.build(t), t0, c.emit)
	other := seg{srcPort: 1, dstPort: 2}.build(t)
	copy(other[16:20], []byte{192, 0, 2, 1})
	im.Process(other, t0, c.emit)
	im.Process([]byte{0x45, 1, 2}, t0, c.emit) // too short to classify
	if len(c.got) != 4 || c.got[0].due.Sub(t0) != time.Second || c.got[1].due.Sub(t0) != time.Second ||
		c.got[2].due.Sub(t0) != time.Minute || c.got[3].due.Sub(t0) != time.Minute {
		t.Fatalf("got %d packets: %v", len(c.got), c.got)
	}
	if stats(im, "a2b")[Packets] != 2 || stats(im, "b2a")[Packets] != 2 || stats(im, DefaultName)[Packets] != 2 {
		t.Fatalf("stats %v", im.Stats())
	}
}

func TestNonTCPPassesUnchanged(t *testing.T) {
	all := Settings{ResegmentPct: 100, CorruptPct: 100, StripENO: StripBoth, ClampMSS: 500, DropSYNWithOption: OptionENO, ForgeFINAfterBytes: 1}
	im := newImpairer(t, testConfig(all, all, all))
	tcp := seg{srcPort: 1, dstPort: 2, syn: true, opts: synOpts(), payload: payloadOf(100, 0)}.build(t)
	udp := append([]byte(nil), tcp...)
	udp[9] = 17
	frag := append([]byte(nil), tcp...)
	frag[6] |= 0x20 // more fragments
	short := tcp[:30]
	for name, pkt := range map[string][]byte{"udp": udp, "fragment": frag, "truncated": short, "garbage": {0x60, 1}, "empty": {}} {
		in := append([]byte(nil), pkt...)
		var c collector
		im.Process(pkt, t0, c.emit)
		if len(c.got) != 1 || !bytes.Equal(c.got[0].pkt, in) {
			t.Errorf("%s: %d packets out, want it once unchanged", name, len(c.got))
		}
	}
}

func TestDeterministic(t *testing.T) {
	s := Settings{Delay: 10 * time.Millisecond, Jitter: 3 * time.Millisecond, LossPct: 10, DupPct: 10, ReorderPct: 10, CorruptPct: 10, ResegmentPct: 50}
	run := func(seed uint64) []out {
		cfg := testConfig(s, s, s)
		cfg.Seed = seed
		im := newImpairer(t, cfg)
		var c collector
		for i := range 500 {
			im.Process(seg{toA: i%3 == 0, srcPort: 1, dstPort: 2, seq: uint32(i) * 300, ack_: true, payload: payloadOf(300, byte(i))}.build(t), t0.Add(time.Duration(i)*time.Millisecond), c.emit)
		}
		return c.got
	}
	equal := func(a, b []out) bool {
		return slices.EqualFunc(a, b, func(x, y out) bool { return bytes.Equal(x.pkt, y.pkt) && x.due.Equal(y.due) })
	}
	a, b, c := run(42), run(42), run(43)
	if !equal(a, b) {
		t.Fatalf("same seed, different output")
	}
	if equal(a, c) {
		t.Fatalf("different seeds, same output")
	}
}

func TestQueueFullCounted(t *testing.T) {
	im := newImpairer(t, testConfig(Settings{Delay: time.Second}, Settings{}, Settings{}))
	q := NewQueue(10, 1500, 0)
	for i := range 15 {
		im.Process(seg{srcPort: 1, dstPort: 2, seq: uint32(i), ack_: true}.build(t), t0, q.Push)
	}
	st := stats(im, "a2b")
	if q.Len() != 10 || st[Sent] != 10 || st[QueueFull] != 5 {
		t.Fatalf("queue %d, sent %d, queue_full %d", q.Len(), st[Sent], st[QueueFull])
	}
}

func TestProcessAllocatesNothing(t *testing.T) {
	s := Settings{Delay: time.Millisecond, Jitter: time.Millisecond, LossPct: 1, DupPct: 1, ReorderPct: 1, CorruptPct: 1, ResegmentPct: 100, ClampMSS: 1000, StripENO: StripBoth}
	im := newImpairer(t, testConfig(s, s, s))
	q := NewQueue(100000, 1500, 16)
	emit := q.Push
	data := seg{srcPort: 1, dstPort: 2, ack_: true, opts: tsOption(), payload: payloadOf(1400, 0)}.build(t)
	syn := seg{srcPort: 1, dstPort: 2, syn: true, opts: synOpts()}.build(t)
	now := t0
	drain := func() {
		for {
			p, ok := q.PopDue(now.Add(time.Hour))
			if !ok {
				return
			}
			q.Release(p)
		}
	}
	for range 100 { // warm the queue's free list
		im.Process(data, now, emit)
	}
	drain()
	allocs := testing.AllocsPerRun(200, func() {
		now = now.Add(time.Microsecond)
		im.Process(data, now, emit)
		im.Process(syn, now, emit)
		drain()
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per packet pair", allocs)
	}
}

func BenchmarkProcessResegment(b *testing.B) {
	s := Settings{Delay: 5 * time.Millisecond, LossPct: 1, DupPct: 1, ReorderPct: 1, ResegmentPct: 100}
	im := newImpairer(b, testConfig(s, s, s))
	q := NewQueue(100000, 1500, 16)
	emit := q.Push
	data := seg{srcPort: 1, dstPort: 2, ack_: true, opts: tsOption(), payload: payloadOf(1400, 0)}.build(b)
	now := t0
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		now = now.Add(time.Microsecond)
		im.Process(data, now, emit)
		for {
			p, ok := q.PopDue(now)
			if !ok {
				break
			}
			q.Release(p)
		}
	}
}

func BenchmarkProcessPassthrough(b *testing.B) {
	im := newImpairer(b, testConfig(Settings{}, Settings{}, Settings{}))
	q := NewQueue(100000, 1500, 16)
	emit := q.Push
	data := seg{srcPort: 1, dstPort: 2, ack_: true, opts: tsOption(), payload: payloadOf(1400, 0)}.build(b)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		im.Process(data, t0, emit)
		p, _ := q.PopDue(t0)
		q.Release(p)
	}
}
