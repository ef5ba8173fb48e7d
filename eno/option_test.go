package eno

import (
	"bytes"
	"errors"
	"testing"
)

// seq returns n bytes counting up from start, as recognisable suboption data.
func seq(start byte, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = start + byte(i)
	}
	return b
}

func cat(parts ...[]byte) []byte {
	var out []byte
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

func equalSYNOption(a, b SYNOption) bool {
	if a.Global != b.Global || a.HasGlobal != b.HasGlobal || len(a.TEPs) != len(b.TEPs) {
		return false
	}
	for i := range a.TEPs {
		x, y := a.TEPs[i], b.TEPs[i]
		if x.TEP != y.TEP || x.HasData != y.HasData || !bytes.Equal(x.Data, y.Data) {
			return false
		}
	}
	return true
}

// TestSYNOptionRoundTrip encodes each option, compares the wire bytes
// with the layout of RFC 8547 §4.1/§4.2/§4.4 written out by hand, and
// decodes them back.
func TestSYNOptionRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		opt  SYNOption
		wire []byte
	}{
		{"empty", SYNOption{}, []byte{69, 2}},
		{"global only", SYNOption{Global: GlobalB, HasGlobal: true}, []byte{69, 3, 0x01}},
		{"explicit zero global", SYNOption{HasGlobal: true}, []byte{69, 3, 0x00}},
		{"a bit", SYNOption{Global: GlobalA, HasGlobal: true}, []byte{69, 3, 0x02}},
		{"a and b", SYNOption{Global: GlobalA | GlobalB, HasGlobal: true}, []byte{69, 3, 0x03}},
		{"TEPs without data", SYNOption{TEPs: []Suboption{{TEP: 0x23}, {TEP: 0x21}, {TEP: 0x7f}}},
			[]byte{69, 5, 0x23, 0x21, 0x7f}},
		{"answer", SYNOption{Global: GlobalB, HasGlobal: true, TEPs: []Suboption{{TEP: 0x23}}},
			[]byte{69, 4, 0x01, 0x23}},
		{"data last", SYNOption{TEPs: []Suboption{{TEP: 0x21}, {TEP: 0x23, Data: seq(1, 9), HasData: true}}},
			cat([]byte{69, 13, 0x21, 0xa3}, seq(1, 9))},
		{"data not last uses length byte", SYNOption{TEPs: []Suboption{{TEP: 0x23, Data: seq(1, 9), HasData: true}, {TEP: 0x21}}},
			cat([]byte{69, 14, 0x88, 0xa3}, seq(1, 9), []byte{0x21})},
		{"two with data", SYNOption{TEPs: []Suboption{
			{TEP: 0x23, Data: seq(1, 9), HasData: true},
			{TEP: 0x22, Data: seq(0x40, 9), HasData: true}}},
			cat([]byte{69, 23, 0x88, 0xa3}, seq(1, 9), []byte{0xa2}, seq(0x40, 9))},
		{"one data byte not last", SYNOption{TEPs: []Suboption{{TEP: 0x30, Data: []byte{7}, HasData: true}, {TEP: 0x21}}},
			[]byte{69, 6, 0x80, 0xb0, 7, 0x21}},
		{"32 data bytes not last", SYNOption{TEPs: []Suboption{{TEP: 0x30, Data: seq(0, 32), HasData: true}, {TEP: 0x21}}},
			cat([]byte{69, 37, 0x9f, 0xb0}, seq(0, 32), []byte{0x21})},
		{"empty data last", SYNOption{TEPs: []Suboption{{TEP: 0x21}, {TEP: 0x23, Data: []byte{}, HasData: true}}},
			[]byte{69, 4, 0x21, 0xa3}},
		{"max length", SYNOption{Global: GlobalB, HasGlobal: true, TEPs: []Suboption{{TEP: 0x24, Data: seq(0, 36), HasData: true}}},
			cat([]byte{69, 40, 0x01, 0xa4}, seq(0, 36))},
		{"max TEP count", SYNOption{TEPs: func() []Suboption {
			s := make([]Suboption, MaxSYNContents)
			for i := range s {
				s[i].TEP = MinTEP + byte(i)
			}
			return s
		}()}, cat([]byte{69, 40}, seq(MinTEP, MaxSYNContents))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := AppendSYNOption(nil, tt.opt)
			if err != nil {
				t.Fatalf("AppendSYNOption: %v", err)
			}
			if !bytes.Equal(got, tt.wire) {
				t.Fatalf("encoded % x, want % x", got, tt.wire)
			}
			n, err := EncodedLen(tt.opt)
			if err != nil || n != len(got) {
				t.Fatalf("EncodedLen = %d, %v; want %d", n, err, len(got))
			}
			back, err := ParseSYNOption(got)
			if err != nil {
				t.Fatalf("ParseSYNOption: %v", err)
			}
			if !equalSYNOption(back, tt.opt) {
				t.Fatalf("decoded %+v, want %+v", back, tt.opt)
			}
		})
	}
}

func TestAppendSYNOptionAppends(t *testing.T) {
	prefix := []byte{2, 4, 5, 0xb4}
	got, err := AppendSYNOption(prefix, SYNOption{TEPs: []Suboption{{TEP: 0x23}}})
	if err != nil {
		t.Fatal(err)
	}
	if want := []byte{2, 4, 5, 0xb4, 69, 3, 0x23}; !bytes.Equal(got, want) {
		t.Fatalf("got % x, want % x", got, want)
	}
}

// TestParseSYNOptionAccepts covers well-formed encodings that
// AppendSYNOption never produces.
func TestParseSYNOptionAccepts(t *testing.T) {
	tests := []struct {
		name string
		wire []byte
		want SYNOption
	}{
		{"global after TEPs", []byte{69, 4, 0x23, 0x01},
			SYNOption{Global: 0x01, HasGlobal: true, TEPs: []Suboption{{TEP: 0x23}}}},
		{"global between TEPs", []byte{69, 5, 0x21, 0x01, 0x23},
			SYNOption{Global: 0x01, HasGlobal: true, TEPs: []Suboption{{TEP: 0x21}, {TEP: 0x23}}}},
		{"length byte on the last TEP", []byte{69, 6, 0x81, 0xa3, 5, 6},
			SYNOption{TEPs: []Suboption{{TEP: 0x23, Data: []byte{5, 6}, HasData: true}}}},
		// RFC 8547 §4.2: z bits MUST be ignored on receipt.
		{"z bits ignored", []byte{69, 3, 0x1d},
			SYNOption{Global: 0x01, HasGlobal: true}},
		{"z bits only", []byte{69, 4, 0x1c, 0x23},
			SYNOption{Global: 0x00, HasGlobal: true, TEPs: []Suboption{{TEP: 0x23}}}},
		// RFC 8547 §4.2: a receiver MUST ignore all but the first global
		// suboption, so a second one is not an error.
		{"second global ignored", []byte{69, 4, 0x01, 0x02},
			SYNOption{Global: 0x01, HasGlobal: true}},
		{"second global around TEP ignored", []byte{69, 5, 0x00, 0x23, 0x01},
			SYNOption{Global: 0x00, HasGlobal: true, TEPs: []Suboption{{TEP: 0x23}}}},
		{"three globals, first with z", []byte{69, 6, 0x1e, 0x21, 0x01, 0x01},
			SYNOption{Global: 0x02, HasGlobal: true, TEPs: []Suboption{{TEP: 0x21}}}},
		{"vacuous", []byte{69, 2}, SYNOption{}},
		{"length byte then TEP 0xa0", []byte{69, 5, 0x80, 0xa0, 9},
			SYNOption{TEPs: []Suboption{{TEP: 0x20, Data: []byte{9}, HasData: true}}}},
		{"unknown TEP kept", []byte{69, 4, 0x7e, 0x23},
			SYNOption{TEPs: []Suboption{{TEP: 0x7e}, {TEP: 0x23}}}},
		{"duplicate TEP ids kept", []byte{69, 7, 0x81, 0xa3, 1, 2, 0x23},
			SYNOption{TEPs: []Suboption{{TEP: 0x23, Data: []byte{1, 2}, HasData: true}, {TEP: 0x23}}}},
		{"data to end swallows suboption-looking bytes", []byte{69, 6, 0xa3, 0x01, 0x88, 0x21},
			SYNOption{TEPs: []Suboption{{TEP: 0x23, Data: []byte{0x01, 0x88, 0x21}, HasData: true}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseSYNOption(tt.wire)
			if err != nil {
				t.Fatalf("ParseSYNOption(% x): %v", tt.wire, err)
			}
			if !equalSYNOption(got, tt.want) {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestParseSYNOptionMalformed(t *testing.T) {
	tests := []struct {
		name string
		wire []byte
		want error
	}{
		{"nil", nil, errTruncated},
		{"kind only", []byte{69}, errTruncated},
		{"wrong kind", []byte{68, 3, 0x23}, errWrongKind},
		{"option length 0", []byte{69, 0}, errBadOptionLen},
		{"option length 1", []byte{69, 1}, errBadOptionLen},
		{"option length past slice", []byte{69, 5, 0x23, 0x21}, errTruncated},
		{"bytes after option", []byte{69, 3, 0x23, 0x21}, errTrailing},
		{"39 content bytes", cat([]byte{69, 41}, seq(MinTEP, 39)), errSYNTooLong},
		{"option length 255", cat([]byte{69, 255}, make([]byte, 253)), errSYNTooLong},
		{"length byte at end", []byte{69, 4, 0x23, 0x88}, errLengthAtEnd},
		{"length byte alone", []byte{69, 3, 0x80}, errLengthAtEnd},
		{"length byte then TEP without v", []byte{69, 5, 0x80, 0x23, 0}, errLengthNotTEP},
		{"length byte then global", []byte{69, 5, 0x80, 0x01, 0}, errLengthNotTEP},
		{"length byte then length byte", []byte{69, 6, 0x80, 0x80, 0xa3, 0}, errLengthNotTEP},
		{"length byte without data", []byte{69, 4, 0x80, 0xa3}, errDataPastEnd},
		{"data past option", []byte{69, 6, 0x83, 0xa3, 0, 0}, errDataPastEnd},
		{"max nlen past option", cat([]byte{69, 35, 0x9f, 0xa3}, seq(0, 31)), errDataPastEnd},
		{"length byte then 0x9f", []byte{69, 5, 0x80, 0x9f, 0}, errLengthNotTEP},
		{"length byte then TEP 0x7f without v", []byte{69, 5, 0x80, 0x7f, 0}, errLengthNotTEP},
		{"ill-formed after a valid TEP", []byte{69, 6, 0x01, 0x23, 0x81, 0xa1}, errDataPastEnd},
		{"data past option after global", []byte{69, 8, 0x01, 0x21, 0x84, 0xa3, 1, 2}, errDataPastEnd},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseSYNOption(tt.wire)
			if err != tt.want {
				t.Fatalf("ParseSYNOption(% x) error = %v, want %v", tt.wire, err, tt.want)
			}
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not match ErrMalformed", err)
			}
			if !equalSYNOption(got, SYNOption{}) {
				t.Fatalf("malformed option returned a value: %+v", got)
			}
		})
	}
}

func TestAppendSYNOptionInvalid(t *testing.T) {
	tests := []struct {
		name string
		opt  SYNOption
		want error
	}{
		{"TEP below range", SYNOption{TEPs: []Suboption{{TEP: 0x1f}}}, ErrInvalidTEP},
		{"TEP with v bit", SYNOption{TEPs: []Suboption{{TEP: 0xa3}}}, ErrInvalidTEP},
		{"global out of range", SYNOption{Global: 0x20, HasGlobal: true}, ErrInvalidGlobal},
		// RFC 8547 §4.2: z bits MUST be set to zero in sent segments.
		{"z1 set", SYNOption{Global: 0x10, HasGlobal: true}, ErrInvalidGlobal},
		{"z3 set", SYNOption{Global: GlobalB | 0x04, HasGlobal: true}, ErrInvalidGlobal},
		{"all z set", SYNOption{Global: GlobalZMask, HasGlobal: true}, ErrInvalidGlobal},
		{"non-zero global omitted", SYNOption{Global: GlobalB}, ErrInvalidGlobal},
		{"data without v", SYNOption{TEPs: []Suboption{{TEP: 0x23, Data: []byte{1}}}}, ErrInvalidData},
		{"empty data not last", SYNOption{TEPs: []Suboption{{TEP: 0x23, HasData: true}, {TEP: 0x21}}}, ErrInvalidData},
		{"33 data bytes not last", SYNOption{TEPs: []Suboption{{TEP: 0x23, Data: seq(0, 33), HasData: true}, {TEP: 0x21}}}, ErrDataTooLong},
		{"37 data bytes last with global", SYNOption{HasGlobal: true, TEPs: []Suboption{{TEP: 0x23, Data: seq(0, 37), HasData: true}}}, ErrOptionTooLong},
		{"zero-value TEPs", SYNOption{TEPs: make([]Suboption, 3)}, ErrInvalidTEP},
		{"too many TEPs", SYNOption{TEPs: func() []Suboption {
			s := make([]Suboption, MaxSYNContents+1)
			for i := range s {
				s[i].TEP = 0x21
			}
			return s
		}()}, ErrOptionTooLong},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dst := []byte{1, 2, 3}
			got, err := AppendSYNOption(dst, tt.opt)
			if err != tt.want {
				t.Fatalf("error = %v, want %v", err, tt.want)
			}
			if !bytes.Equal(got, []byte{1, 2, 3}) {
				t.Fatalf("dst changed on error: % x", got)
			}
			if _, err := EncodedLen(tt.opt); err != tt.want {
				t.Fatalf("EncodedLen error = %v, want %v", err, tt.want)
			}
		})
	}
}

// TestParseSYNOptionDoesNotAlias checks that the decoded data survives
// the reuse of the packet buffer it came from.
func TestParseSYNOptionDoesNotAlias(t *testing.T) {
	wire := cat([]byte{69, 16, 0x88, 0xa3}, seq(1, 9), []byte{0xa1, 0xee, 0xff})
	o, err := ParseSYNOption(wire)
	if err != nil {
		t.Fatal(err)
	}
	for i := range wire {
		wire[i] = 0
	}
	if !bytes.Equal(o.TEPs[0].Data, seq(1, 9)) || !bytes.Equal(o.TEPs[1].Data, []byte{0xee, 0xff}) {
		t.Fatalf("decoded data changed with the input buffer: %+v", o)
	}
	// Appending to one TEP's data must not overwrite the next one's.
	_ = append(o.TEPs[0].Data, 0x55)
	if o.TEPs[1].Data[0] != 0xee {
		t.Fatal("TEP data slices share capacity")
	}
}

// TestLengthByteFollower checks RFC 8547 §4.4 item 2 for every octet: a
// length byte followed by 0x00-0x9f makes the option ill-formed, one
// followed by 0xa0-0xff (a TEP with v = 1) is well-formed.
func TestLengthByteFollower(t *testing.T) {
	for b := 0; b <= 0xff; b++ {
		wire := []byte{69, 5, 0x80, byte(b), 0x42}
		o, err := ParseSYNOption(wire)
		if b < 0xa0 {
			if err != errLengthNotTEP {
				t.Errorf("length byte then %#02x: error %v, want %v", b, err, errLengthNotTEP)
			}
			continue
		}
		if err != nil || len(o.TEPs) != 1 || o.TEPs[0].TEP != byte(b)&0x7f ||
			!o.TEPs[0].HasData || !bytes.Equal(o.TEPs[0].Data, []byte{0x42}) {
			t.Errorf("length byte then %#02x: %+v, %v", b, o, err)
		}
	}
}

func TestGlobalBits(t *testing.T) {
	// RFC 8547 §4.2, Figure 5: 0 0 0 z1 z2 z3 a b.
	if GlobalB != 0x01 || GlobalA != 0x02 || GlobalZMask != 0x1c {
		t.Fatalf("GlobalB=%#x GlobalA=%#x GlobalZMask=%#x, want 0x01 0x02 0x1c", GlobalB, GlobalA, GlobalZMask)
	}
	if GlobalB|GlobalA|GlobalZMask != 0x1f ||
		GlobalB&GlobalA != 0 || GlobalB&GlobalZMask != 0 || GlobalA&GlobalZMask != 0 {
		t.Fatal("global suboption masks do not partition bits 4..0")
	}
	tests := []struct {
		global  byte
		passive bool
		aware   bool
	}{
		{0x00, false, false},
		{0x01, true, false},
		{0x02, false, true},
		{0x03, true, true},
		{0x04, false, false}, // z3: not part of a
		{0x06, false, true},
		{0x08, false, false},
		{0x10, false, false},
		{0x1c, false, false},
		{0x1d, true, false},
		{0x1e, false, true},
		{0x1f, true, true},
	}
	for _, tt := range tests {
		o, err := ParseSYNOption([]byte{69, 3, tt.global})
		if err != nil {
			t.Fatalf("global %#x: %v", tt.global, err)
		}
		if o.Passive() != tt.passive || o.ApplicationAware() != tt.aware {
			t.Errorf("global %#x: Passive=%v ApplicationAware=%v, want %v %v",
				tt.global, o.Passive(), o.ApplicationAware(), tt.passive, tt.aware)
		}
		if o.Global&GlobalZMask != 0 {
			t.Errorf("global %#x: z bits kept: %#x", tt.global, o.Global)
		}
		// Accessors ignore z on a hand-built value too.
		h := SYNOption{Global: tt.global, HasGlobal: true}
		if h.Passive() != tt.passive || h.ApplicationAware() != tt.aware {
			t.Errorf("hand-built global %#x: Passive=%v ApplicationAware=%v", tt.global, h.Passive(), h.ApplicationAware())
		}
	}
	// RFC 8547 §4.2: without an explicit global suboption the global
	// suboption is the implicit 0x00, whatever the Global field holds.
	implicit := SYNOption{Global: GlobalA | GlobalB}
	if implicit.Passive() || implicit.ApplicationAware() {
		t.Fatal("an absent global suboption is not 0x00")
	}
	if NonSYNOption != [2]byte{OptionKind, 2} {
		t.Fatalf("NonSYNOption = % x", NonSYNOption)
	}
}

// TestParseSYNOptionIntoAllocatesNothing: with room in the caller's buffer
// the offer of a WAN SYN is read without a heap allocation (a SYN flood
// with ENO options makes no garbage), and its data aliases the input.
func TestParseSYNOptionIntoAllocatesNothing(t *testing.T) {
	wire := cat([]byte{69, 16, 0x88, 0xa3}, seq(1, 9), []byte{0x23, 0x21, 0x22})
	n := 0
	allocs := testing.AllocsPerRun(100, func() {
		var buf [8]Suboption
		o, err := ParseSYNOptionInto(wire, buf[:0])
		if err == nil {
			n = len(o.TEPs)
		}
	})
	if allocs != 0 || n != 4 {
		t.Errorf("%.0f allocations per parse, %d TEPs", allocs, n)
	}
	var buf [8]Suboption
	o, _ := ParseSYNOptionInto(wire, buf[:0])
	if want, _ := ParseSYNOption(wire); !equalSYNOption(o, want) || &o.TEPs[0].Data[0] != &wire[4] {
		t.Errorf("got %+v, want %+v aliasing the input", o, want)
	}
}
