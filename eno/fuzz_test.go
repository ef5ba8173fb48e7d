package eno

import (
	"bytes"
	"errors"
	"testing"
)

func FuzzParseSYNOption(f *testing.F) {
	for _, seed := range [][]byte{
		{69, 2},
		{69, 3, 0x01},
		{69, 4, 0x01, 0x23},
		{69, 5, 0x23, 0x21, 0x22},
		cat([]byte{69, 13, 0x21, 0xa3}, seq(1, 9)),
		cat([]byte{69, 14, 0x88, 0xa3}, seq(1, 9), []byte{0x21}),
		cat([]byte{69, 37, 0x9f, 0xb0}, seq(0, 32), []byte{0x21}),
		cat([]byte{69, 40, 0x01, 0xa4}, seq(0, 36)),
		{69, 4, 0x23, 0x01},
		{69, 4, 0x23, 0xa1},
		{69, 6, 0x81, 0xa3, 5, 6},
		{69, 4, 0x23, 0x88},
		{69, 5, 0x80, 0x23, 0},
		{69, 6, 0x83, 0xa3, 0, 0},
		{69, 4, 0x01, 0x01},
		{69, 5, 0x00, 0x23, 0x01},
		{69, 3, 0x1f},
		{69, 4, 0x1c, 0xa3},
		{69, 5, 0x80, 0x9f, 0},
		{69, 5, 0x80, 0xa0, 0},
		{69, 1},
		{68, 2},
		{},
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, wire []byte) {
		in := append([]byte(nil), wire...)
		o, err := ParseSYNOption(wire)
		if string(in) != string(wire) {
			t.Fatal("ParseSYNOption modified its input")
		}
		if wantOK, first := refSYNOption(wire); (err == nil) != wantOK {
			t.Fatalf("ParseSYNOption(% x) error = %v, reference well-formed = %v", wire, err, wantOK)
		} else if err == nil && (o.HasGlobal != (first >= 0) || first >= 0 && o.Global != byte(first)&^GlobalZMask) {
			t.Fatalf("ParseSYNOption(% x) global = %#x/%v, want the first one %#x without z bits", wire, o.Global, o.HasGlobal, first)
		}
		// ParseSYNOptionInto reads the same, into a caller's buffer.
		var buf [4]Suboption
		into, errInto := ParseSYNOptionInto(wire, buf[:0])
		if (errInto == nil) != (err == nil) || err != nil && errInto.Error() != err.Error() || err == nil && !equalSYNOption(o, into) {
			t.Fatalf("ParseSYNOptionInto(% x) = %+v, %v; ParseSYNOption %+v, %v", wire, into, errInto, o, err)
		}
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not match ErrMalformed", err)
			}
			return
		}
		if len(wire) > MaxOptionLen || wire[0] != OptionKind || int(wire[1]) != len(wire) {
			t.Fatalf("accepted an option with bad framing: % x", wire)
		}
		for _, s := range o.TEPs {
			if s.TEP < MinTEP || s.TEP > MaxTEP || (!s.HasData && len(s.Data) != 0) {
				t.Fatalf("decoded an invalid suboption %+v from % x", s, wire)
			}
		}
		again, err := AppendSYNOption(nil, o)
		if err != nil {
			t.Fatalf("re-encoding %+v (from % x): %v", o, wire, err)
		}
		// The canonical form is never longer: it only drops a length byte
		// on the last TEP.
		if len(again) > len(wire) {
			t.Fatalf("re-encoded % x is longer than % x", again, wire)
		}
		back, err := ParseSYNOption(again)
		if err != nil {
			t.Fatalf("re-encoded % x (from % x) does not parse: %v", again, wire, err)
		}
		if !equalSYNOption(o, back) {
			t.Fatalf("round trip changed the option: % x -> %+v -> % x -> %+v", wire, o, again, back)
		}
	})
}

func FuzzFindOption(f *testing.F) {
	for _, seed := range [][]byte{
		linuxSYN,
		linuxSYNACK,
		linuxACK,
		cat(linuxSYN, []byte{69, 4, 0x23, 0x21}),
		cat(linuxSYNACK, []byte{69, 4, 0x01, 0x23, 1, 1, 1, 1}),
		cat(linuxACK, NonSYNOption[:]),
		cat(linuxSYNACK, []byte{0}, []byte{69, 3, 0x23}),
		{69, 3, 0x23, 1, 69, 3, 0x23},
		{2, 0, 5, 0xb4},
		{8, 10, 0, 0},
		{1, 69},
		{},
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, area []byte) {
		opt, found, err := FindOption(area)
		if err != nil {
			if !errors.Is(err, ErrMalformed) || found || opt != nil {
				t.Fatalf("error %v with found=%v opt=% x", err, found, opt)
			}
			return
		}
		if !found {
			if opt != nil {
				t.Fatalf("not found but returned % x", opt)
			}
			return
		}
		if len(opt) < 2 || opt[0] != OptionKind || int(opt[1]) != len(opt) {
			t.Fatalf("returned a badly framed option % x", opt)
		}
		// The option must lie inside the area, kind byte at an option
		// boundary the area's own framing agrees on.
		at := -1
		for i := range area {
			if &area[i] == &opt[0] {
				at = i
			}
		}
		if at < 0 || at+len(opt) > len(area) {
			t.Fatal("option is not a sub-slice of the area")
		}
		// Whatever the SYN-form verdict, parsing must not panic.
		_, _ = ParseSYNOption(opt)
	})
}

// FuzzFindNonSYNOption checks FindNonSYNOption against FindOption: they
// agree on the framing and on the first ENO option; only a second ENO
// option separates them (RFC 8547 §4.1).
func FuzzFindNonSYNOption(f *testing.F) {
	for _, seed := range [][]byte{
		linuxACK,
		cat(linuxACK, NonSYNOption[:]),
		{69, 3, 0x23, 1, 69, 3, 0x23},
		{69, 2, 69, 2, 0, 69},
		{1, 69},
		{},
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, area []byte) {
		nOpt, nFound, nErr := FindNonSYNOption(area)
		sOpt, sFound, sErr := FindOption(area)
		switch {
		case sErr == errDuplicateENOption:
			// FindOption stops at the second ENO option; FindNonSYNOption
			// goes on and may still meet a malformed option after it.
			if nErr == nil && !nFound {
				t.Fatal("duplicate ENO options: FindNonSYNOption found none")
			}
		case (sErr == nil) != (nErr == nil) || sFound != nFound || !bytes.Equal(sOpt, nOpt):
			t.Fatalf("FindOption = % x, %v, %v; FindNonSYNOption = % x, %v, %v", sOpt, sFound, sErr, nOpt, nFound, nErr)
		}
		if nErr == nil && nFound && (len(nOpt) < 2 || nOpt[0] != OptionKind || int(nOpt[1]) != len(nOpt)) {
			t.Fatalf("returned a badly framed option % x", nOpt)
		}
	})
}

// refSYNOption is an independent reading of RFC 8547 §4.1, §4.2 and §4.4,
// written from the RFC text rather than from option.go: whether wire is a
// well-formed SYN-form ENO option, and the first global suboption byte
// (-1 if none).
func refSYNOption(wire []byte) (ok bool, firstGlobal int) {
	firstGlobal = -1
	if len(wire) < 2 || wire[0] != 69 || int(wire[1]) != len(wire) || len(wire) > 40 {
		return false, -1
	}
	rest := wire[2:]
	for len(rest) > 0 {
		b := rest[0]
		switch {
		case b < 0x20: // global suboption; all but the first ignored
			if firstGlobal < 0 {
				firstGlobal = int(b)
			}
			rest = rest[1:]
		case b < 0x80: // TEP, v = 0
			rest = rest[1:]
		case b < 0xa0: // length byte: TEP with v = 1 and nnnnn+1 bytes must follow
			n := int(b-0x80) + 1
			if len(rest) < 2 || rest[1] < 0xa0 || len(rest) < 2+n {
				return false, -1
			}
			rest = rest[2+n:]
		default: // TEP, v = 1: data to the end of the option
			rest = nil
		}
	}
	return true, firstGlobal
}
