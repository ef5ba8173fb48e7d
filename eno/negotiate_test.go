package eno

import (
	"bytes"
	"slices"
	"testing"
)

func tep(id byte) Suboption { return Suboption{TEP: id} }

func tepData(id byte, data []byte) Suboption {
	return Suboption{TEP: id, Data: data, HasData: true}
}

func supports(ids ...byte) func(Suboption) bool {
	return func(s Suboption) bool { return !s.HasData && slices.Contains(ids, s.TEP) }
}

func TestChoose(t *testing.T) {
	tests := []struct {
		name   string
		offer  SYNOption
		accept func(Suboption) bool
		want   Suboption
		wantOK bool
	}{
		{"A's first preference", Offer([]Suboption{tep(0x23), tep(0x21)}), supports(0x21, 0x23), tep(0x23), true},
		{"A's order, not B's", Offer([]Suboption{tep(0x22), tep(0x21), tep(0x23)}), supports(0x23, 0x21), tep(0x21), true},
		{"unknown TEP skipped", Offer([]Suboption{tep(0x7e), tep(0x23)}), supports(0x23), tep(0x23), true},
		{"nothing supported", Offer([]Suboption{tep(0x22), tep(0x24)}), supports(0x21, 0x23), Suboption{}, false},
		{"no TEPs", SYNOption{}, supports(0x23), Suboption{}, false},
		{"global b=0 with aa", SYNOption{Global: 0x02, HasGlobal: true, TEPs: []Suboption{tep(0x23)}}, supports(0x23), tep(0x23), true},
		{"A claims role B", SYNOption{Global: GlobalB, HasGlobal: true, TEPs: []Suboption{tep(0x23)}}, supports(0x23), Suboption{}, false},
		{"data passed to accept", Offer([]Suboption{tepData(0x23, []byte{9, 9}), tep(0x21)}),
			func(s Suboption) bool { return s.HasData && bytes.Equal(s.Data, []byte{9, 9}) },
			tepData(0x23, []byte{9, 9}), true},
		{"data refused, plain fallback", Offer([]Suboption{tepData(0x23, []byte{9}), tep(0x23)}), supports(0x23), tep(0x23), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := Choose(tt.offer, tt.accept)
			if ok != tt.wantOK || !equalSYNOption(SYNOption{TEPs: []Suboption{got}}, SYNOption{TEPs: []Suboption{tt.want}}) {
				t.Fatalf("Choose = %+v, %v; want %+v, %v", got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

func TestOfferCopies(t *testing.T) {
	teps := []Suboption{tep(0x23), tep(0x21)}
	o := Offer(teps)
	teps[0].TEP = 0x22
	if o.TEPs[0].TEP != 0x23 || o.HasGlobal || o.Passive() {
		t.Fatalf("Offer = %+v", o)
	}
}

func TestAnswerWire(t *testing.T) {
	// Digest §1.4 step 2: global(b=1) then the chosen TEP, e.g. 69 04 01 23.
	a := Answer(tep(0x23))
	got, err := AppendSYNOption(nil, a)
	if err != nil {
		t.Fatal(err)
	}
	if want := []byte{69, 4, 0x01, 0x23}; !bytes.Equal(got, want) {
		t.Fatalf("Answer encodes to % x, want % x", got, want)
	}
	if !a.Passive() {
		t.Fatal("Answer does not set b")
	}
	got, err = AppendSYNOption(nil, Answer(tepData(0x23, seq(0x10, 9))))
	if err != nil {
		t.Fatal(err)
	}
	if want := cat([]byte{69, 13, 0x01, 0xa3}, seq(0x10, 9)); !bytes.Equal(got, want) {
		t.Fatalf("Answer with data encodes to % x, want % x", got, want)
	}
}

func TestNegotiated(t *testing.T) {
	resumeA, resumeB := seq(0x10, 9), seq(0x20, 9)
	checkResume := func(offered, answered Suboption) bool {
		return offered.HasData && answered.HasData &&
			bytes.Equal(offered.Data, resumeA) && bytes.Equal(answered.Data, resumeB)
	}
	plainOffer := Offer([]Suboption{tep(0x23), tep(0x21), tep(0x22)})
	tests := []struct {
		name   string
		offer  SYNOption
		answer SYNOption
		accept func(offered, answered Suboption) bool
		want   Suboption
		err    error
	}{
		{"single answer", plainOffer, Answer(tep(0x21)), nil, tep(0x21), nil},
		{"answer without global", plainOffer, SYNOption{TEPs: []Suboption{tep(0x22)}}, nil, tep(0x22), nil},
		{"last offered TEP wins", plainOffer, SYNOption{Global: GlobalB, HasGlobal: true, TEPs: []Suboption{tep(0x23), tep(0x21)}}, nil, tep(0x21), nil},
		{"last wins against A's preference", plainOffer, SYNOption{TEPs: []Suboption{tep(0x21), tep(0x23)}}, nil, tep(0x23), nil},
		{"trailing unoffered TEP skipped", plainOffer, SYNOption{TEPs: []Suboption{tep(0x21), tep(0x7e)}}, nil, tep(0x21), nil},
		{"global after TEP", plainOffer, SYNOption{Global: GlobalB, HasGlobal: true, TEPs: []Suboption{tep(0x22)}}, nil, tep(0x22), nil},
		{"TEP never offered", plainOffer, Answer(tep(0x24)), nil, Suboption{}, ErrNoCommonTEP},
		{"no TEP", plainOffer, SYNOption{Global: GlobalB, HasGlobal: true}, nil, Suboption{}, ErrInvalidAnswer},
		{"global without b", plainOffer, SYNOption{Global: 0x02, HasGlobal: true, TEPs: []Suboption{tep(0x23)}}, nil, Suboption{}, ErrInvalidAnswer},
		{"offer claims role B", SYNOption{Global: GlobalB, HasGlobal: true, TEPs: []Suboption{tep(0x23)}}, Answer(tep(0x23)), nil, Suboption{}, ErrInvalidAnswer},
		{"resumption accepted", Offer([]Suboption{tepData(0x23, resumeA), tep(0x23)}), Answer(tepData(0x23, resumeB)),
			checkResume, tepData(0x23, resumeB), nil},
		{"resumption data rejected", Offer([]Suboption{tepData(0x23, resumeA)}), Answer(tepData(0x23, seq(0x30, 9))),
			checkResume, Suboption{}, ErrNoCommonTEP},
		{"data with nil acceptData", Offer([]Suboption{tepData(0x23, resumeA)}), Answer(tepData(0x23, resumeB)),
			nil, Suboption{}, ErrNoCommonTEP},
		{"resumption refused, full exchange", Offer([]Suboption{tepData(0x23, resumeA), tep(0x23)}), Answer(tep(0x23)),
			checkResume, tep(0x23), nil},
		{"data on a TEP offered without", plainOffer, Answer(tepData(0x21, []byte{1})), checkResume, Suboption{}, ErrNoCommonTEP},
		{"rejected data falls back to earlier TEP", plainOffer,
			SYNOption{TEPs: []Suboption{tep(0x22), tepData(0x21, []byte{1})}}, checkResume, tep(0x22), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Negotiated(tt.offer, tt.answer, tt.accept)
			if err != tt.err {
				t.Fatalf("error = %v, want %v", err, tt.err)
			}
			if !equalSYNOption(SYNOption{TEPs: []Suboption{got}}, SYNOption{TEPs: []Suboption{tt.want}}) {
				t.Fatalf("Negotiated = %+v, want %+v", got, tt.want)
			}
		})
	}
}

// TestHandshakeOverTheWire runs both sides through the codec, the way the
// engine does: encode, find in an options area, parse, decide.
func TestHandshakeOverTheWire(t *testing.T) {
	resumeA, resumeB := seq(0x10, 9), seq(0x20, 9)
	aOpt, err := AppendSYNOption(nil, Offer([]Suboption{tepData(0x23, resumeA), tep(0x23), tep(0x21)}))
	if err != nil {
		t.Fatal(err)
	}
	synArea := cat(linuxSYN, aOpt)

	// B: finds and parses A's option, refuses resumption, picks 0x23.
	found, ok, err := FindOption(synArea)
	if err != nil || !ok {
		t.Fatalf("B cannot find A's option: %v", err)
	}
	offerAtB, err := ParseSYNOption(found)
	if err != nil {
		t.Fatal(err)
	}
	chosen, ok := Choose(offerAtB, supports(0x21, 0x23))
	if !ok || chosen.TEP != 0x23 || chosen.HasData {
		t.Fatalf("B chose %+v, %v", chosen, ok)
	}
	bOpt, err := AppendSYNOption(nil, Answer(chosen))
	if err != nil {
		t.Fatal(err)
	}

	// A: parses B's answer and validates it against its own offer.
	found, ok, err = FindOption(cat(linuxSYNACK, bOpt))
	if err != nil || !ok {
		t.Fatalf("A cannot find B's option: %v", err)
	}
	answerAtA, err := ParseSYNOption(found)
	if err != nil {
		t.Fatal(err)
	}
	offerAtA, err := ParseSYNOption(aOpt)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Negotiated(offerAtA, answerAtA, func(o, a Suboption) bool {
		return bytes.Equal(o.Data, resumeA) && bytes.Equal(a.Data, resumeB)
	})
	if err != nil || got.TEP != 0x23 || got.HasData {
		t.Fatalf("A negotiated %+v, %v", got, err)
	}

	tr := Transcript(aOpt, found)
	if !bytes.Equal(tr, cat(aOpt, bOpt)) {
		t.Fatalf("transcript % x, want % x", tr, cat(aOpt, bOpt))
	}
}

func TestSimultaneousRoles(t *testing.T) {
	a := Offer([]Suboption{tep(0x23)})
	b := SYNOption{Global: GlobalB, HasGlobal: true, TEPs: []Suboption{tep(0x23)}}
	zeroGlobal := SYNOption{HasGlobal: true, TEPs: []Suboption{tep(0x23)}}
	tests := []struct {
		name          string
		local, remote SYNOption
		want          Role
		err           error
	}{
		{"local b", b, a, RoleB, nil},
		{"remote b", a, b, RoleA, nil},
		{"remote b, local explicit zero", zeroGlobal, b, RoleA, nil},
		{"both b", b, b, 0, ErrRoleConflict},
		{"neither b", a, a, 0, ErrRoleConflict},
		{"neither b, explicit zero", zeroGlobal, a, 0, ErrRoleConflict},
		{"aa is not b", SYNOption{Global: 0x06, HasGlobal: true}, a, 0, ErrRoleConflict},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := SimultaneousRoles(tt.local, tt.remote)
			if got != tt.want || err != tt.err {
				t.Fatalf("SimultaneousRoles = %v, %v; want %v, %v", got, err, tt.want, tt.err)
			}
		})
	}
}

func TestTranscript(t *testing.T) {
	a := []byte{69, 4, 0x23, 0x21}
	b := []byte{69, 4, 0x01, 0x23}
	tr := Transcript(a, b)
	if !bytes.Equal(tr, []byte{69, 4, 0x23, 0x21, 69, 4, 0x01, 0x23}) {
		t.Fatalf("Transcript = % x", tr)
	}
	a[2], b[2] = 0, 0
	if tr[2] != 0x23 || tr[6] != 0x01 {
		t.Fatal("transcript aliases its inputs")
	}
	// Order matters: the transcript binds who said what.
	if bytes.Equal(Transcript(a, b), Transcript(b, a)) {
		t.Fatal("transcript does not depend on order")
	}
	buf := []byte{0xaa}
	if got := AppendTranscript(buf, a, b); !bytes.Equal(got, cat([]byte{0xaa}, a, b)) {
		t.Fatalf("AppendTranscript = % x", got)
	}
}

func TestRoleString(t *testing.T) {
	if RoleA.String() != "A" || RoleB.String() != "B" || Role(0).String() != "invalid" {
		t.Fatalf("Role strings: %v %v %v", RoleA, RoleB, Role(0))
	}
}
