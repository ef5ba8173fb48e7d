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

// bAnswer is a SYN-form option from B: explicit global b=1, then teps.
func bAnswer(teps ...Suboption) SYNOption {
	return SYNOption{Global: GlobalB, HasGlobal: true, TEPs: teps}
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
		{"global b=0 with a", SYNOption{Global: GlobalA, HasGlobal: true, TEPs: []Suboption{tep(0x23)}}, supports(0x23), tep(0x23), true},
		{"A claims role B", SYNOption{Global: GlobalB, HasGlobal: true, TEPs: []Suboption{tep(0x23)}}, supports(0x23), Suboption{}, false},
		{"A claims role B with a and z", SYNOption{Global: 0x1f, HasGlobal: true, TEPs: []Suboption{tep(0x23)}}, supports(0x23), Suboption{}, false},
		// RFC 8547 §4.2: no explicit global suboption means 0x00, b = 0.
		{"b in Global without HasGlobal is implicit 0", SYNOption{Global: GlobalB, TEPs: []Suboption{tep(0x23)}}, supports(0x23), tep(0x23), true},
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
	// RFC 8547 §4.2, §4.5, §6 Figure 9: explicit global(b=1), then the
	// chosen TEP, e.g. 69 04 01 23.
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
	acceptAll := func(offered, answered Suboption) bool { return true }
	wrongB := seq(0x30, 9)
	plainOffer := Offer([]Suboption{tep(0x23), tep(0x21), tep(0x22)})
	resumeOffer := Offer([]Suboption{tepData(0x23, resumeA), tep(0x21)})
	tests := []struct {
		name   string
		offer  SYNOption
		answer SYNOption
		accept func(offered, answered Suboption) bool
		want   Suboption
		err    error
	}{
		{"single answer", plainOffer, Answer(tep(0x21)), nil, tep(0x21), nil},
		{"last offered TEP wins", plainOffer, bAnswer(tep(0x23), tep(0x21)), nil, tep(0x21), nil},
		{"last wins against A's order", plainOffer, bAnswer(tep(0x21), tep(0x23)), nil, tep(0x23), nil},
		{"trailing unoffered TEP skipped", plainOffer, bAnswer(tep(0x21), tep(0x7e)), nil, tep(0x21), nil},
		{"global after TEP", plainOffer, SYNOption{Global: GlobalB, HasGlobal: true, TEPs: []Suboption{tep(0x22)}}, nil, tep(0x22), nil},
		{"b with a", plainOffer, SYNOption{Global: GlobalB | GlobalA, HasGlobal: true, TEPs: []Suboption{tep(0x22)}}, nil, tep(0x22), nil},
		{"TEP never offered", plainOffer, Answer(tep(0x24)), nil, Suboption{}, ErrNoCommonTEP},
		{"vacuous answer", plainOffer, bAnswer(), nil, Suboption{}, ErrInvalidAnswer},
		{"vacuous offer", Offer(nil), Answer(tep(0x23)), nil, Suboption{}, ErrNoCommonTEP},

		// RFC 8547 §4.2, §4.3, §4.6: B MUST send an explicit b = 1.
		{"answer without global", plainOffer, SYNOption{TEPs: []Suboption{tep(0x22)}}, nil, Suboption{}, ErrInvalidAnswer},
		{"answer without global, b in Global field", plainOffer, SYNOption{Global: GlobalB, TEPs: []Suboption{tep(0x22)}}, nil, Suboption{}, ErrInvalidAnswer},
		{"explicit zero global", plainOffer, SYNOption{HasGlobal: true, TEPs: []Suboption{tep(0x22)}}, nil, Suboption{}, ErrInvalidAnswer},
		{"global with a only", plainOffer, SYNOption{Global: GlobalA, HasGlobal: true, TEPs: []Suboption{tep(0x23)}}, nil, Suboption{}, ErrInvalidAnswer},
		{"global with z only", plainOffer, SYNOption{Global: GlobalZMask, HasGlobal: true, TEPs: []Suboption{tep(0x23)}}, nil, Suboption{}, ErrInvalidAnswer},
		{"offer claims role B", SYNOption{Global: GlobalB, HasGlobal: true, TEPs: []Suboption{tep(0x23)}}, Answer(tep(0x23)), nil, Suboption{}, ErrInvalidAnswer},
		{"echoed offer (load balancer, RFC 8547 §8.1)", plainOffer, plainOffer, nil, Suboption{}, ErrInvalidAnswer},

		// RFC 8548 §3.5: resumption accepted when acceptData says so.
		{"resumption accepted", Offer([]Suboption{tepData(0x23, resumeA), tep(0x23)}), Answer(tepData(0x23, resumeB)),
			checkResume, tepData(0x23, resumeB), nil},
		{"resumption accepted, A's data offered after its plain suboption", Offer([]Suboption{tep(0x23), tepData(0x23, resumeA)}),
			Answer(tepData(0x23, resumeB)), checkResume, tepData(0x23, resumeB), nil},
		{"matching resumption last wins over earlier fresh TEP", resumeOffer, bAnswer(tep(0x21), tepData(0x23, resumeB)),
			checkResume, tepData(0x23, resumeB), nil},

		// RFC 8548 §3.5: a v = 1 suboption acceptData refuses MUST be
		// ignored, and the walk goes on.
		{"resumption data rejected", Offer([]Suboption{tepData(0x23, resumeA)}), Answer(tepData(0x23, wrongB)),
			checkResume, Suboption{}, ErrNoCommonTEP},
		{"data with nil acceptData", Offer([]Suboption{tepData(0x23, resumeA)}), Answer(tepData(0x23, resumeB)),
			nil, Suboption{}, ErrNoCommonTEP},
		{"data on a TEP offered without", plainOffer, Answer(tepData(0x21, []byte{1})), checkResume, Suboption{}, ErrNoCommonTEP},
		{"rejected data falls back to earlier TEP", plainOffer,
			bAnswer(tep(0x22), tepData(0x21, []byte{1})), checkResume, tep(0x22), nil},
		{"mismatched resumption ignored, earlier fresh TEP", resumeOffer,
			bAnswer(tep(0x21), tepData(0x23, wrongB)), checkResume, tep(0x21), nil},
		{"mismatched resumption ignored, earlier fresh same TEP", Offer([]Suboption{tepData(0x23, resumeA)}),
			bAnswer(tep(0x23), tepData(0x23, wrongB)), checkResume, tep(0x23), nil},
		{"unoffered TEP with data skipped even if acceptData says yes", plainOffer,
			bAnswer(tep(0x22), tepData(0x24, []byte{1})), acceptAll, tep(0x22), nil},

		// RFC 8548 §3.2: the negotiated TEP ignores the v bits. B's v = 0
		// suboption is negotiated (fresh key agreement) even if A only
		// offered that TEP with data, whatever acceptData would say.
		{"resumption refused, full exchange", Offer([]Suboption{tepData(0x23, resumeA), tep(0x23)}), Answer(tep(0x23)),
			checkResume, tep(0x23), nil},
		{"resumption-only offer, fresh answer", Offer([]Suboption{tepData(0x23, resumeA)}), Answer(tep(0x23)),
			checkResume, tep(0x23), nil},
		{"resumption-only offer, fresh answer, nil acceptData", Offer([]Suboption{tepData(0x23, resumeA)}), Answer(tep(0x23)),
			nil, tep(0x23), nil},
		{"fresh answer after a rejected resumption", resumeOffer, bAnswer(tepData(0x23, wrongB), tep(0x23)),
			checkResume, tep(0x23), nil},

		// RFC 8547 §6, Figure 9 and Figure 12 (X=0x21, Y=0x22, Z=0x24).
		{"Figure 9", Offer([]Suboption{tep(0x21), tep(0x22)}), bAnswer(tep(0x22)), nil, tep(0x22), nil},
		{"Figure 12 simultaneous open", Offer([]Suboption{tep(0x22), tep(0x21)}), bAnswer(tep(0x21), tep(0x22), tep(0x24)), nil, tep(0x22), nil},
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

// TestNegotiatedAcceptDataCalls checks what acceptData sees: only B's
// suboptions with data (RFC 8548 §3.2: a v = 0 answer needs no check), each
// paired with A's suboptions of the same TEP id.
func TestNegotiatedAcceptDataCalls(t *testing.T) {
	resumeA, resumeB := seq(0x10, 9), seq(0x20, 9)
	type call struct{ offered, answered Suboption }
	var calls []call
	record := func(ret bool) func(offered, answered Suboption) bool {
		return func(offered, answered Suboption) bool {
			calls = append(calls, call{offered, answered})
			return ret
		}
	}

	// A v = 0 answer never reaches acceptData, even when A sent data.
	calls = nil
	offer := Offer([]Suboption{tepData(0x23, resumeA), tep(0x21)})
	if got, err := Negotiated(offer, Answer(tep(0x23)), record(false)); err != nil || got.TEP != 0x23 || got.HasData {
		t.Fatalf("Negotiated = %+v, %v", got, err)
	}
	if len(calls) != 0 {
		t.Fatalf("acceptData called for a v = 0 answer: %+v", calls)
	}

	// A v = 1 answer is offered to every A suboption with its TEP id, in
	// A's order, and never to another TEP's.
	calls = nil
	offer = Offer([]Suboption{tep(0x23), tep(0x21), tepData(0x23, resumeA)})
	if _, err := Negotiated(offer, Answer(tepData(0x23, resumeB)), record(false)); err != ErrNoCommonTEP {
		t.Fatalf("error = %v, want %v", err, ErrNoCommonTEP)
	}
	if len(calls) != 2 ||
		calls[0].offered.TEP != 0x23 || calls[0].offered.HasData ||
		calls[1].offered.TEP != 0x23 || !calls[1].offered.HasData || !bytes.Equal(calls[1].offered.Data, resumeA) {
		t.Fatalf("acceptData calls: %+v", calls)
	}
	for _, c := range calls {
		if c.answered.TEP != 0x23 || !c.answered.HasData || !bytes.Equal(c.answered.Data, resumeB) {
			t.Fatalf("acceptData got answered %+v", c.answered)
		}
	}

	// The first true stops the search.
	calls = nil
	if got, err := Negotiated(offer, Answer(tepData(0x23, resumeB)), record(true)); err != nil || !got.HasData {
		t.Fatalf("Negotiated = %+v, %v", got, err)
	}
	if len(calls) != 1 {
		t.Fatalf("acceptData called %d times after accepting", len(calls))
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
		{"a is not b", SYNOption{Global: GlobalA, HasGlobal: true}, a, 0, ErrRoleConflict},
		{"z is not b", SYNOption{Global: GlobalZMask, HasGlobal: true}, a, 0, ErrRoleConflict},
		{"b with z and a", SYNOption{Global: 0x1f, HasGlobal: true}, a, RoleB, nil},
		// RFC 8547 §4.2: an absent global suboption is 0x00, so b = 0.
		{"b in Global without HasGlobal is implicit 0", SYNOption{Global: GlobalB}, a, 0, ErrRoleConflict},
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
