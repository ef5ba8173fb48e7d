package eno

import "testing"

var benchSink SYNOption

func BenchmarkParseSYNOption(b *testing.B) {
	// A resuming offer with a fallback list: the longest common case.
	wire := cat([]byte{69, 16, 0x88, 0xa3}, seq(1, 9), []byte{0x23, 0x21, 0x22})
	b.ReportAllocs()
	b.SetBytes(int64(len(wire)))
	for b.Loop() {
		o, err := ParseSYNOption(wire)
		if err != nil {
			b.Fatal(err)
		}
		benchSink = o
	}
}

func BenchmarkParseSYNOptionMalformed(b *testing.B) {
	wire := []byte{69, 6, 0x83, 0xa3, 0, 0}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseSYNOption(wire); err == nil {
			b.Fatal("accepted")
		}
	}
}

func BenchmarkFindOption(b *testing.B) {
	area := cat(linuxSYN, []byte{69, 16, 0x88, 0xa3}, seq(1, 9), []byte{0x23, 0x21, 0x22})
	b.ReportAllocs()
	b.SetBytes(int64(len(area)))
	for b.Loop() {
		if _, found, err := FindOption(area); !found || err != nil {
			b.Fatal("not found")
		}
	}
}

func BenchmarkAppendSYNOption(b *testing.B) {
	o := Offer([]Suboption{tepData(0x23, seq(1, 9)), tep(0x23), tep(0x21), tep(0x22)})
	buf := make([]byte, 0, MaxOptionLen)
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if buf, err = AppendSYNOption(buf[:0], o); err != nil {
			b.Fatal(err)
		}
	}
}
