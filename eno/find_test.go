package eno

import (
	"bytes"
	"errors"
	"testing"
)

// Option areas as Linux writes them.
var (
	// SYN: MSS 1460, SACK-permitted, timestamps, NOP, window scale 7.
	linuxSYN = []byte{
		2, 4, 0x05, 0xb4,
		4, 2,
		8, 10, 0x9a, 0x3c, 0x11, 0x02, 0, 0, 0, 0,
		1,
		3, 3, 7,
	}
	// SYN-ACK without timestamps: MSS, NOP, NOP, SACK-permitted, NOP, WS.
	linuxSYNACK = []byte{2, 4, 0x05, 0xb4, 1, 1, 4, 2, 1, 3, 3, 7}
	// ACK with timestamps: NOP, NOP, TS.
	linuxACK = []byte{1, 1, 8, 10, 0x9a, 0x3c, 0x11, 0x50, 0x01, 0x02, 0x03, 0x04}
)

func TestFindOption(t *testing.T) {
	offer := []byte{69, 4, 0x23, 0x21}
	answer := []byte{69, 4, 0x01, 0x23}
	tests := []struct {
		name  string
		area  []byte
		want  []byte // nil: not found
		start int    // offset of the option within area
	}{
		{"empty area", nil, nil, 0},
		{"Linux SYN", linuxSYN, nil, 0},
		{"Linux SYN-ACK", linuxSYNACK, nil, 0},
		{"Linux ACK", linuxACK, nil, 0},
		{"Linux SYN + ENO offer", cat(linuxSYN, offer), offer, len(linuxSYN)},
		{"ENO first", cat(offer, linuxSYN), offer, 0},
		{"ENO between", cat(linuxSYN[:6], offer, linuxSYN[6:]), offer, 6},
		{"SYN-ACK + answer padded", cat(linuxSYNACK, answer, []byte{1, 1, 1, 1}), answer, len(linuxSYNACK)},
		{"ACK + non-SYN ENO", cat(linuxACK, NonSYNOption[:], []byte{1, 1}), NonSYNOption[:], len(linuxACK)},
		{"non-SYN ENO with contents", []byte{69, 3, 0xff, 0}, []byte{69, 3, 0xff}, 0},
		{"ENO after EOL ignored", cat(linuxSYNACK, []byte{0}, offer), nil, 0},
		{"garbage after EOL ignored", cat([]byte{2, 4, 5, 0xb4, 0}, []byte{69, 0, 0xff}), nil, 0},
		{"ENO then EOL then ENO", cat(answer, []byte{0}, offer), answer, 0},
		{"40 bytes", cat(linuxSYN, offer, make([]byte, 16)), offer, len(linuxSYN)},
		{"max SYN form", cat([]byte{69, 40}, seq(MinTEP, 38)), cat([]byte{69, 40}, seq(MinTEP, 38)), 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, found, err := FindOption(tt.area)
			if err != nil {
				t.Fatalf("FindOption(% x): %v", tt.area, err)
			}
			if found != (tt.want != nil) {
				t.Fatalf("found = %v, want %v", found, tt.want != nil)
			}
			if !found {
				if got != nil {
					t.Fatalf("not found but returned % x", got)
				}
				return
			}
			if !bytes.Equal(got, tt.want) {
				t.Fatalf("got % x, want % x", got, tt.want)
			}
			if &got[0] != &tt.area[tt.start] {
				t.Fatal("option is not a sub-slice of the options area at its offset")
			}
			if cap(got) != len(got) {
				t.Fatalf("cap %d: appending to the option would overwrite the next one", cap(got))
			}
		})
	}
}

func TestFindOptionMalformed(t *testing.T) {
	offer := []byte{69, 3, 0x23}
	tests := []struct {
		name string
		area []byte
		want error
	}{
		{"kind without length at end", cat(linuxSYNACK, []byte{2}), errOptionNoLength},
		{"ENO kind without length", []byte{1, 69}, errOptionNoLength},
		{"length 0", []byte{2, 0, 5, 0xb4}, errOptionBadLength},
		{"length 1", cat([]byte{8, 1}, offer), errOptionBadLength},
		{"ENO length 1", []byte{69, 1, 1, 1}, errOptionBadLength},
		{"option past end", []byte{8, 10, 0, 0, 0, 0}, errOptionPastEnd},
		{"ENO past end", cat(linuxSYNACK, []byte{69, 5, 0x23}), errOptionPastEnd},
		{"malformed after ENO", cat(offer, []byte{3, 3}), errOptionPastEnd},
		{"41 bytes", cat(linuxSYN, offer, make([]byte, 18)), errOptionsTooLong},
		// RFC 8547 §4.1: more than one ENO option in a SYN segment means
		// no ENO, even when they are identical or one is empty.
		{"two ENO options", cat(offer, []byte{1}, offer), errDuplicateENOption},
		{"two ENO options around others", cat(offer, linuxSYNACK, []byte{69, 2}), errDuplicateENOption},
		{"second ENO option malformed-looking", cat(offer, []byte{69, 3, 0x88}), errDuplicateENOption},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, found, err := FindOption(tt.area)
			if err != tt.want {
				t.Fatalf("FindOption(% x) error = %v, want %v", tt.area, err, tt.want)
			}
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not match ErrMalformed", err)
			}
			if found || got != nil {
				t.Fatalf("malformed area returned found=%v opt=% x", found, got)
			}
		})
	}
}

// TestFindNonSYNOption: in a non-SYN segment ENO only distinguishes
// presence from absence; several ENO options count as one and their
// contents are ignored (RFC 8547 §4.1).
func TestFindNonSYNOption(t *testing.T) {
	tests := []struct {
		name  string
		area  []byte
		want  []byte // nil: not found
		start int
	}{
		{"empty area", nil, nil, 0},
		{"Linux ACK", linuxACK, nil, 0},
		{"ACK + non-SYN ENO", cat(linuxACK, NonSYNOption[:], []byte{1, 1}), NonSYNOption[:], len(linuxACK)},
		{"contents ignored", []byte{69, 4, 0xff, 0x88}, []byte{69, 4, 0xff, 0x88}, 0},
		{"ill-formed SYN form is still presence", []byte{69, 3, 0x88, 0}, []byte{69, 3, 0x88}, 0},
		{"two ENO options count as one", cat(NonSYNOption[:], []byte{1, 1}, NonSYNOption[:]), NonSYNOption[:], 0},
		{"first of two returned", cat(linuxACK, []byte{69, 3, 7}, []byte{69, 2}), []byte{69, 3, 7}, len(linuxACK)},
		{"ENO after EOL ignored", cat(linuxACK, []byte{0}, NonSYNOption[:]), nil, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, found, err := FindNonSYNOption(tt.area)
			if err != nil {
				t.Fatalf("FindNonSYNOption(% x): %v", tt.area, err)
			}
			if found != (tt.want != nil) {
				t.Fatalf("found = %v, want %v", found, tt.want != nil)
			}
			if !found {
				if got != nil {
					t.Fatalf("not found but returned % x", got)
				}
				return
			}
			if !bytes.Equal(got, tt.want) || &got[0] != &tt.area[tt.start] || cap(got) != len(got) {
				t.Fatalf("got % x (cap %d), want % x at offset %d", got, cap(got), tt.want, tt.start)
			}
		})
	}
	// A malformed options area is still an error.
	for _, area := range [][]byte{
		{1, 69},
		cat(NonSYNOption[:], []byte{8, 10, 0}),
		cat(linuxACK, NonSYNOption[:], make([]byte, 27)),
	} {
		if got, found, err := FindNonSYNOption(area); !errors.Is(err, ErrMalformed) || found || got != nil {
			t.Fatalf("FindNonSYNOption(% x) = % x, %v, %v; want ErrMalformed", area, got, found, err)
		}
	}
}

func TestFindOptionAllocs(t *testing.T) {
	area := cat(linuxSYN, []byte{69, 4, 0x23, 0x21})
	allocs := testing.AllocsPerRun(100, func() {
		if _, found, err := FindOption(area); !found || err != nil {
			t.Fatal("option not found")
		}
	})
	if allocs != 0 {
		t.Fatalf("FindOption allocates %.1f times per call", allocs)
	}
	bad := cat(linuxSYN, []byte{69, 9})
	allocs = testing.AllocsPerRun(100, func() {
		if _, _, err := FindOption(bad); err == nil {
			t.Fatal("malformed area accepted")
		}
	})
	if allocs != 0 {
		t.Fatalf("FindOption allocates %.1f times per malformed call", allocs)
	}
	twice := cat(linuxACK, NonSYNOption[:], NonSYNOption[:])
	allocs = testing.AllocsPerRun(100, func() {
		if _, found, err := FindNonSYNOption(twice); !found || err != nil {
			t.Fatal("option not found")
		}
	})
	if allocs != 0 {
		t.Fatalf("FindNonSYNOption allocates %.1f times per call", allocs)
	}
}
