package tcpcrypt

// Known-answer vectors (testdata/vectors.json). `go test -run TestVectors
// -update` regenerates the file from the fixed inputs below; TestVectors
// always reads the file, recomputes every output from the inputs it holds
// and compares. docs/protocol.md describes every field.

import (
	"bytes"
	"crypto/sha512"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"reflect"
	"testing"
)

var updateVectors = flag.Bool("update", false, "rewrite testdata/vectors.json")

const vectorsFile = "testdata/vectors.json"

type hexBytes []byte

func (h hexBytes) MarshalText() ([]byte, error) { return []byte(hex.EncodeToString(h)), nil }
func (h *hexBytes) UnmarshalText(b []byte) error {
	d, err := hex.DecodeString(string(b))
	*h = d
	return err
}

type vectorFile struct {
	Comment string      `json:"comment"`
	Vectors []tepVector `json:"vectors"`
}

type tepVector struct {
	// Inputs.
	TEP      byte     `json:"tep"`
	TEPName  string   `json:"tep_name"`
	APrivate hexBytes `json:"a_private"`
	BPrivate hexBytes `json:"b_private"`
	// BEncapsRandom is the 32-byte m of ML-KEM.Encaps_internal (FIPS 203
	// Algorithm 17) with which B encapsulates to A's key: x25519mlkem768
	// only (docs/pq-tep.md).
	BEncapsRandom hexBytes `json:"b_encaps_random,omitempty"`
	NonceA        hexBytes `json:"nonce_a"`
	NonceB        hexBytes `json:"nonce_b"`
	ENOSynA       hexBytes `json:"eno_syn_a"`
	ENOSynAckB    hexBytes `json:"eno_synack_b"`
	Init1Ciphers  hexBytes `json:"init1_ciphers"` // the 2*K bytes after nciphers
	Init1Ignored  hexBytes `json:"init1_ignored"` // empty: senders add none (RFC 8548 §4.1)
	Init2Cipher   uint16   `json:"init2_cipher"`
	Init2Ignored  hexBytes `json:"init2_ignored"`
	Generations   int      `json:"generations"`

	// Outputs.
	APublic       hexBytes    `json:"a_public"`
	BPublic       hexBytes    `json:"b_public"`
	ENOTranscript hexBytes    `json:"eno_transcript"`
	Init1         hexBytes    `json:"init1"`
	Init2         hexBytes    `json:"init2"`
	ES            hexBytes    `json:"es"`
	PRK           hexBytes    `json:"prk"`
	SS            []hexBytes  `json:"ss"`
	SessionID     []hexBytes  `json:"session_id"` // session_id[0] of the fresh session (sn empty)
	Resume        []hexBytes  `json:"resume"`
	MK            []hexBytes  `json:"mk"` // mk[j] of the fresh session, per generation
	Keys          []keyVector `json:"keys"`

	// Inputs and outputs: frames of the fresh session, under generations
	// 0, 1 and 2, both ways, for each AEAD.
	FrameRequests []frameVector `json:"frames"`

	Resumed resumedVector `json:"resumed"`
}

// keyVector holds whole traffic keys, K followed by NR, per generation.
type keyVector struct {
	AEAD     uint16     `json:"aead"`
	AEADName string     `json:"aead_name"`
	KAB      []hexBytes `json:"k_ab"`
	KBA      []hexBytes `json:"k_ba"`
}

type frameVector struct {
	// Inputs.
	AEAD       uint16   `json:"aead"`
	Direction  string   `json:"direction"`  // "a_to_b" (k_ab[generation]) or "b_to_a" (k_ba[generation])
	Generation uint32   `json:"generation"` // the key set it is sealed under
	Rekey      byte     `json:"rekey"`      // control's rekey bit: 1 on the first frame of a generation
	Flags      byte     `json:"flags"`
	Urgent     uint16   `json:"urgent"`
	Data       hexBytes `json:"data"`
	Offset     uint64   `json:"offset"`
	// Output.
	Frame hexBytes `json:"frame"`
}

// resumedVector is a session resumed from ss[1] (RFC 8548 §3.5) in which
// the host that played B in the original session opens the connection.
type resumedVector struct {
	// Inputs.
	Index              uint32   `json:"index"`
	OpenerOriginalRole string   `json:"opener_original_role"`
	NonceA             hexBytes `json:"nonce_a"` // sent with resume{0..8}, by the original A
	NonceB             hexBytes `json:"nonce_b"` // sent with resume{9..17}, by the original B
	// Outputs.
	SS        hexBytes      `json:"ss"`
	Resume    hexBytes      `json:"resume"`
	ENOSyn    hexBytes      `json:"eno_syn"`
	ENOSynAck hexBytes      `json:"eno_synack"`
	SN        hexBytes      `json:"sn"`
	SessionID hexBytes      `json:"session_id"`
	MK        []hexBytes    `json:"mk"`
	Keys      []keyVector   `json:"keys"`
	Frames    []frameVector `json:"frames"`
}

// fixedBytes derives fixed test inputs from a label.
func fixedBytes(label string, n int) []byte {
	sum := sha512.Sum512([]byte("tcpcrypt-gw known-answer vector: " + label))
	return sum[:n]
}

func vectorInputs(tep TEP) tepVector {
	v := tepVector{TEP: byte(tep), TEPName: tep.String(), Generations: 3}
	switch tep {
	case TEPX25519MLKEM768:
		// The ML-KEM-768 seed d | z (64 bytes), then the X25519 scalar; B
		// uses its X25519 scalar only.
		v.APrivate = append(fixedBytes(tep.String()+" A ML-KEM seed", 64), fixedBytes(tep.String()+" A X25519 private", 32)...)
		v.BPrivate = append(fixedBytes(tep.String()+" B ML-KEM seed", 64), fixedBytes(tep.String()+" B X25519 private", 32)...)
		v.BEncapsRandom = fixedBytes(tep.String()+" B encapsulation randomness", 32)
	case TEPP521:
		// A P-521 scalar is 66 bytes below the group order: pad 64 bytes.
		v.APrivate = append([]byte{0, 0}, fixedBytes("p521 A private", 64)...)
		v.BPrivate = append([]byte{0, 0}, fixedBytes("p521 B private", 64)...)
	default:
		n := map[TEP]int{TEPP256: 32, TEPCurve25519: 32, TEPCurve448: 56}[tep]
		v.APrivate = fixedBytes(tep.String()+" A private", n)
		v.BPrivate = fixedBytes(tep.String()+" B private", n)
	}
	if tep == TEPP256 {
		v.APrivate[0] &= 0x7f // below the P-256 order
		v.BPrivate[0] &= 0x7f
	}
	v.NonceA = fixedBytes(tep.String()+" N_A", NonceLen)
	v.NonceB = fixedBytes(tep.String()+" N_B", NonceLen)
	// A offers all four TEPs (kind 69, length 6); B answers b=1 and its choice.
	v.ENOSynA = []byte{0x45, 0x06, 0x23, 0x24, 0x21, 0x22}
	if tep == TEPX25519MLKEM768 { // A offers the hybrid TEP first, then the four
		v.ENOSynA = []byte{0x45, 0x07, 0x20, 0x23, 0x24, 0x21, 0x22}
	}
	v.ENOSynAckB = []byte{0x45, 0x04, 0x01, byte(tep)}
	for _, c := range []AEADID{ChaCha20Poly1305, AES128GCM, AES256GCM} {
		v.Init1Ciphers = binary.BigEndian.AppendUint16(v.Init1Ciphers, uint16(c))
	}
	v.Init1Ignored, v.Init2Ignored = hexBytes{}, hexBytes{}
	v.Init2Cipher = uint16(ChaCha20Poly1305)
	for _, aead := range allAEADs {
		// One stream each way: a frame under generation 0, then the first
		// frames of generations 1 and 2 (rekey = 1), one after the other.
		v.FrameRequests = append(v.FrameRequests,
			frameVector{AEAD: uint16(aead), Direction: "a_to_b", Generation: 0, Data: []byte("GET / HTTP/1.1\r\n\r\n")},
			frameVector{AEAD: uint16(aead), Direction: "a_to_b", Generation: 1, Rekey: 1, Data: []byte("after a rekey")},
			frameVector{AEAD: uint16(aead), Direction: "a_to_b", Generation: 2, Rekey: 1, Flags: FlagFIN},
			frameVector{AEAD: uint16(aead), Direction: "b_to_a", Generation: 0, Flags: FlagURG, Urgent: 5, Data: []byte("HTTP/1.1 200 OK")},
			frameVector{AEAD: uint16(aead), Direction: "b_to_a", Generation: 1, Rekey: 1},
			frameVector{AEAD: uint16(aead), Direction: "b_to_a", Generation: 2, Rekey: 1, Flags: FlagFIN, Data: []byte("bye")})
	}
	v.Resumed = resumedVector{Index: 1, OpenerOriginalRole: "B",
		NonceA: fixedBytes(tep.String()+" resumption nonce_a", MaxResumeNonceLen),
		NonceB: fixedBytes(tep.String()+" resumption nonce_b", MaxResumeNonceLen)}
	for _, aead := range allAEADs {
		v.Resumed.Frames = append(v.Resumed.Frames,
			frameVector{AEAD: uint16(aead), Direction: "a_to_b", Data: []byte("resumed from A")},
			frameVector{AEAD: uint16(aead), Direction: "b_to_a", Data: []byte("resumed from B")})
	}
	return v
}

// computeVector fills every output of v from its inputs, with the
// package's own code.
func computeVector(t testing.TB, in tepVector) tepVector {
	v := in
	tep := TEP(v.TEP)
	a, err := NewKeyPairFromPrivate(tep, v.APrivate)
	if err != nil {
		t.Fatalf("%v A: %v", tep, err)
	}
	b, err := NewKeyPairFromPrivate(tep, v.BPrivate)
	if err != nil {
		t.Fatalf("%v B: %v", tep, err)
	}
	v.APublic = a.PublicKey()
	var esB []byte
	if len(v.BEncapsRandom) > 0 {
		v.BPublic, esB, err = respondDeterministic(t, b, v.APublic, v.BEncapsRandom)
	} else {
		v.BPublic, esB, err = b.Respond(v.APublic)
	}
	if err != nil {
		t.Fatalf("%v B: %v", tep, err)
	}
	v.ENOTranscript = append(append([]byte(nil), v.ENOSynA...), v.ENOSynAckB...)

	i1 := Init1{PublicKey: v.APublic}
	for c := v.Init1Ciphers; len(c) >= 2; c = c[2:] {
		i1.Ciphers = append(i1.Ciphers, AEADID(binary.BigEndian.Uint16(c)))
	}
	copy(i1.NonceA[:], v.NonceA)
	v.Init1 = append(i1.Append(nil), v.Init1Ignored...)
	binary.BigEndian.PutUint32(v.Init1[4:], uint32(len(v.Init1)))
	i2 := Init2{Cipher: AEADID(v.Init2Cipher), PublicKey: v.BPublic}
	copy(i2.NonceB[:], v.NonceB)
	v.Init2 = append(i2.Append(nil), v.Init2Ignored...)
	binary.BigEndian.PutUint32(v.Init2[4:], uint32(len(v.Init2)))

	esA, err := a.SharedSecret(v.BPublic)
	if err != nil || !bytes.Equal(esA, esB) {
		t.Fatalf("%v: ES differ (%v)", tep, err)
	}
	v.ES = esA
	ss := FullHandshakeSecret(tep, v.ENOTranscript, v.Init1, v.Init2, v.ES, v.NonceA)
	v.PRK = ss.Bytes()

	v.SS, v.Resume = nil, nil
	secrets := []SessionSecret{}
	for range v.Generations {
		secrets = append(secrets, ss)
		r := ss.ResumeID()
		v.SS = append(v.SS, ss.Bytes())
		v.Resume = append(v.Resume, r[:])
		ss = ss.Next()
	}
	// B answered with the TEP byte v = 0: a fresh session, sn empty.
	v.SessionID = []hexBytes{secrets[0].SessionID(byte(tep), nil)}
	v.MK, v.Keys = keySets(t, secrets[0], nil, v.Generations)
	v.FrameRequests = sealFrames(t, secrets[0], nil, in.FrameRequests, map[string]uint64{
		"a_to_b": FirstFrameOffset(len(v.Init1)), "b_to_a": FirstFrameOffset(len(v.Init2))})

	r := &v.Resumed
	rs := secrets[r.Index]
	rid := rs.ResumeID()
	r.SS, r.Resume = rs.Bytes(), rid[:]
	// The opener (originally B) sends the second half with nonce_b; the
	// passive opener (originally A) answers b = 1 with the first half and
	// nonce_a (RFC 8548 §3.5 Figures 2 and 3).
	vByte := byte(tep) | 0x80
	r.ENOSyn = append([]byte{0x45, byte(2 + 1 + 9 + len(r.NonceB)), vByte}, rid[9:]...)
	r.ENOSyn = append(r.ENOSyn, r.NonceB...)
	r.ENOSynAck = append([]byte{0x45, byte(2 + 2 + 9 + len(r.NonceA)), 0x01, vByte}, rid[:9]...)
	r.ENOSynAck = append(r.ENOSynAck, r.NonceA...)
	r.SN = append(append([]byte(nil), r.NonceA...), r.NonceB...)
	r.SessionID = rs.SessionID(vByte, r.SN)
	r.MK, r.Keys = keySets(t, rs, r.SN, 1)
	r.Frames = sealFrames(t, rs, r.SN, in.Resumed.Frames, map[string]uint64{"a_to_b": 0, "b_to_a": 0})
	return v
}

// keySets lists mk[j] and, per AEAD, k_ab[j] | NR and k_ba[j] | NR for
// generations 0..gens-1, as the Sealer derives them.
func keySets(t testing.TB, ss SessionSecret, sn []byte, gens int) ([]hexBytes, []keyVector) {
	var mks []hexBytes
	var kvs []keyVector
	for _, aead := range allAEADs {
		kv := keyVector{AEAD: uint16(aead), AEADName: aead.String()}
		mk := ss.MasterKey(sn)
		gab, err := newKeyGeneration(aead, mk, KeysAB, 0)
		if err != nil {
			t.Fatal(err)
		}
		gba, err := newKeyGeneration(aead, mk, KeysBA, 0)
		if err != nil {
			t.Fatal(err)
		}
		for j := range gens {
			if aead == allAEADs[0] {
				mks = append(mks, append([]byte(nil), gab.get().mk[:]...))
			}
			kv.KAB = append(kv.KAB, trafficKeyOf(t, gab.get()))
			kv.KBA = append(kv.KBA, trafficKeyOf(t, gba.get()))
			if j+1 < gens {
				if gab, err = gab.get().next(); err != nil {
					t.Fatal(err)
				}
				if gba, err = gba.get().next(); err != nil {
					t.Fatal(err)
				}
			}
		}
		kvs = append(kvs, kv)
	}
	return mks, kvs
}

// trafficKeyOf re-derives the whole traffic key K | NR of g from its master
// key, and checks that g's NR is its tail.
func trafficKeyOf(t testing.TB, g *keyGeneration) []byte {
	k := make([]byte, g.aead.KeyLen()+NRLen)
	cprf(k, g.mk[:], byte(g.keys), nil)
	if !bytes.Equal(k[g.aead.KeyLen():], g.nr[:]) {
		t.Fatalf("NR of generation %d is not the tail of the traffic key", g.gen)
	}
	return k
}

// sealFrames seals each direction's frames in order with a Sealer of its
// own, rekeying before each frame whose generation is higher, at
// consecutive offsets from start[direction].
func sealFrames(t testing.TB, ss SessionSecret, sn []byte, reqs []frameVector, start map[string]uint64) []frameVector {
	out := append([]frameVector(nil), reqs...)
	type dir struct {
		s   *Sealer
		off uint64
	}
	sealers := map[string]*dir{}
	for i := range out {
		f := &out[i]
		aead := AEADID(f.AEAD)
		k := fmt.Sprint(aead, f.Direction)
		d := sealers[k]
		if d == nil {
			keys := KeysAB
			if f.Direction == "b_to_a" {
				keys = KeysBA
			}
			mk := ss.MasterKey(sn)
			s, err := NewSealer(aead, mk, keys)
			if err != nil {
				t.Fatal(err)
			}
			d = &dir{s: s, off: start[f.Direction]}
			sealers[k] = d
		}
		for d.s.Generation() < f.Generation {
			d.s.Rekey()
		}
		f.Offset = d.off
		f.Frame = d.s.SealFrame(nil, f.Offset, f.Flags, f.Urgent, f.Data)
		if got := f.Frame[0] & ControlRekey; got != f.Rekey {
			t.Fatalf("%v %s generation %d: rekey bit %d, want %d", aead, f.Direction, f.Generation, got, f.Rekey)
		}
		d.off += uint64(len(f.Frame))
	}
	return out
}

func TestVectors(t *testing.T) {
	if *updateVectors {
		file := vectorFile{Comment: "tcpcrypt (RFC 8548) known-answer vectors from tcpcrypt-gw; fields described in docs/protocol.md. All byte strings are hex."}
		for _, tep := range allTEPs {
			file.Vectors = append(file.Vectors, computeVector(t, vectorInputs(tep)))
		}
		out, err := json.MarshalIndent(file, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(vectorsFile, append(out, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	raw, err := os.ReadFile(vectorsFile)
	if err != nil {
		t.Fatalf("%v (regenerate with: go test -run TestVectors -update)", err)
	}
	var file vectorFile
	if err := json.Unmarshal(raw, &file); err != nil {
		t.Fatal(err)
	}
	if len(file.Vectors) != len(allTEPs) {
		t.Fatalf("%d vectors, want one per TEP", len(file.Vectors))
	}
	for _, want := range file.Vectors {
		got := computeVector(t, want)
		diffVectors(t, want.TEPName, reflect.ValueOf(got), reflect.ValueOf(want))
		openVectorFrames(t, want)
	}
}

// diffVectors reports every field where got and want differ.
func diffVectors(t *testing.T, path string, got, want reflect.Value) {
	t.Helper()
	switch got.Kind() {
	case reflect.Struct:
		for i := range got.NumField() {
			diffVectors(t, path+"."+got.Type().Field(i).Tag.Get("json"), got.Field(i), want.Field(i))
		}
	case reflect.Slice:
		if got.Type().Elem().Kind() == reflect.Uint8 {
			if !bytes.Equal(got.Bytes(), want.Bytes()) {
				t.Errorf("%s:\n got  %x\n want %x", path, got.Bytes(), want.Bytes())
			}
			return
		}
		if got.Len() != want.Len() {
			t.Errorf("%s: %d entries, want %d", path, got.Len(), want.Len())
			return
		}
		for i := range got.Len() {
			diffVectors(t, fmt.Sprintf("%s[%d]", path, i), got.Index(i), want.Index(i))
		}
	default:
		if !reflect.DeepEqual(got.Interface(), want.Interface()) {
			t.Errorf("%s: got %v want %v", path, got.Interface(), want.Interface())
		}
	}
}

// openVectorFrames opens every stored frame with the package's Opener, in
// stream order per direction, as a receiver would: the generation follows
// the rekey bits alone.
func openVectorFrames(t *testing.T, v tepVector) {
	open := func(ss []byte, sn []byte, frames []frameVector) {
		openers := map[string]*Opener{}
		for _, f := range frames {
			aead := AEADID(f.AEAD)
			k := fmt.Sprint(aead, f.Direction)
			o := openers[k]
			if o == nil {
				keys := KeysAB
				if f.Direction == "b_to_a" {
					keys = KeysBA
				}
				var err error
				if o, err = NewOpener(aead, SessionSecretFromBytes(0, ss).MasterKey(sn), keys); err != nil {
					t.Fatal(err)
				}
				openers[k] = o
			}
			flags, urgent, data, err := o.OpenFrame(append([]byte(nil), f.Frame...), f.Offset)
			if err != nil || flags != f.Flags || urgent != f.Urgent || !bytes.Equal(data, f.Data) || o.Generation() != f.Generation {
				t.Errorf("%s %v %s gen %d: stored frame does not open (%v)", v.TEPName, aead, f.Direction, f.Generation, err)
			}
		}
	}
	open(v.SS[0], nil, v.FrameRequests)
	open(v.Resumed.SS, v.Resumed.SN, v.Resumed.Frames)
}
