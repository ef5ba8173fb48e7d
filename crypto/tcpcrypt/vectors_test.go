package tcpcrypt

// Known-answer vectors (testdata/vectors.json). `go test -run TestVectors
// -update` regenerates the file from the fixed inputs below; TestVectors
// always reads the file, recomputes every output from the inputs it holds
// and compares. docs/protocol.md describes every field.

import (
	"bytes"
	"crypto/hkdf"
	"crypto/sha256"
	"crypto/sha512"
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
	TEP          byte     `json:"tep"`
	TEPName      string   `json:"tep_name"`
	APrivate     hexBytes `json:"a_private"`
	BPrivate     hexBytes `json:"b_private"`
	NonceA       hexBytes `json:"nonce_a"`
	NonceB       hexBytes `json:"nonce_b"`
	ENOSynA      hexBytes `json:"eno_syn_a"`
	ENOSynAckB   hexBytes `json:"eno_synack_b"`
	Init1Ciphers hexBytes `json:"init1_ciphers"`
	Init1Ignored hexBytes `json:"init1_ignored"`
	Init2Cipher  byte     `json:"init2_cipher"`
	Init2Ignored hexBytes `json:"init2_ignored"`
	Generations  int      `json:"generations"`

	// Outputs.
	APublic       hexBytes    `json:"a_public"`
	BPublic       hexBytes    `json:"b_public"`
	ENOTranscript hexBytes    `json:"eno_transcript"`
	Init1         hexBytes    `json:"init1"`
	Init2         hexBytes    `json:"init2"`
	ES            hexBytes    `json:"es"`
	PRK           hexBytes    `json:"prk"`
	SS            []hexBytes  `json:"ss"`
	SessionID     []hexBytes  `json:"session_id"`
	Resume        []hexBytes  `json:"resume"`
	Keys          []keyVector `json:"keys"`

	// Inputs and outputs, one frame per direction and AEAD.
	FrameRequests []frameVector `json:"frames"`
}

type keyVector struct {
	AEAD      byte       `json:"aead"`
	AEADName  string     `json:"aead_name"`
	KAB       []hexBytes `json:"k_ab"`
	KBA       []hexBytes `json:"k_ba"`
	KABRekey1 hexBytes   `json:"k_ab_rekey1"`
	KBARekey1 hexBytes   `json:"k_ba_rekey1"`
}

type frameVector struct {
	// Inputs.
	AEAD       byte     `json:"aead"`
	Direction  string   `json:"direction"`  // "a_to_b" (key k_ab[0]) or "b_to_a" (k_ba[0])
	Generation uint32   `json:"generation"` // rekeys applied to that key first
	Flags      byte     `json:"flags"`
	Urgent     uint16   `json:"urgent"`
	Data       hexBytes `json:"data"`
	// Outputs.
	Offset uint64   `json:"offset"` // first frame of its direction: len(Init1) or len(Init2)
	Frame  hexBytes `json:"frame"`
}

// fixedBytes derives fixed test inputs from a label.
func fixedBytes(label string, n int) []byte {
	sum := sha512.Sum512([]byte("tcpcrypt-gw known-answer vector: " + label))
	return sum[:n]
}

func vectorInputs(tep TEP) tepVector {
	v := tepVector{TEP: byte(tep), TEPName: tep.String(), Generations: 3}
	switch tep {
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
	v.ENOSynAckB = []byte{0x45, 0x04, 0x01, byte(tep)}
	v.Init1Ciphers = []byte{byte(ChaCha20Poly1305), byte(AES128GCM), byte(AES256GCM)}
	v.Init1Ignored = []byte("ext1")
	v.Init2Cipher = byte(ChaCha20Poly1305)
	v.Init2Ignored = []byte{0x00, 0xff}
	for _, aead := range allAEADs {
		v.FrameRequests = append(v.FrameRequests,
			frameVector{AEAD: byte(aead), Direction: "a_to_b", Generation: 0, Flags: 0,
				Data: []byte("GET / HTTP/1.1\r\n\r\n")},
			frameVector{AEAD: byte(aead), Direction: "b_to_a", Generation: 1, Flags: FlagURG | FlagFIN, Urgent: 5,
				Data: []byte("bye")})
	}
	return v
}

// computeVector fills every output of v from its inputs.
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
	v.APublic, v.BPublic = a.PublicKey(), b.PublicKey()
	v.ENOTranscript = append(append([]byte(nil), v.ENOSynA...), v.ENOSynAckB...)

	i1 := Init1{PublicKey: v.APublic, Ignored: v.Init1Ignored}
	for _, c := range v.Init1Ciphers {
		i1.Ciphers = append(i1.Ciphers, AEADID(c))
	}
	copy(i1.NonceA[:], v.NonceA)
	v.Init1 = i1.Append(nil)
	i2 := Init2{Cipher: AEADID(v.Init2Cipher), PublicKey: v.BPublic, Ignored: v.Init2Ignored}
	copy(i2.NonceB[:], v.NonceB)
	v.Init2 = i2.Append(nil)

	esA, err := a.SharedSecret(v.BPublic)
	if err != nil {
		t.Fatal(err)
	}
	esB, err := b.SharedSecret(v.APublic)
	if err != nil || !bytes.Equal(esA, esB) {
		t.Fatalf("%v: ES differ (%v)", tep, err)
	}
	v.ES = esA
	ss := FullHandshakeSecret(tep, v.ENOTranscript, v.Init1, v.Init2, v.ES, v.NonceA)
	v.PRK = ss.Bytes()

	v.SS, v.SessionID, v.Resume, v.Keys = nil, nil, nil, nil
	secrets := []SessionSecret{}
	for range v.Generations {
		secrets = append(secrets, ss)
		r := ss.ResumeID()
		v.SS = append(v.SS, ss.Bytes())
		v.SessionID = append(v.SessionID, ss.SessionID(tep))
		v.Resume = append(v.Resume, r[:])
		ss = ss.Next()
	}
	for _, aead := range allAEADs {
		kv := keyVector{AEAD: byte(aead), AEADName: aead.String()}
		for _, s := range secrets {
			kv.KAB = append(kv.KAB, s.KeyAB(aead))
			kv.KBA = append(kv.KBA, s.KeyBA(aead))
		}
		kv.KABRekey1 = rekeyOnce(t, aead, secrets[0].KeyAB(aead))
		kv.KBARekey1 = rekeyOnce(t, aead, secrets[0].KeyBA(aead))
		v.Keys = append(v.Keys, kv)
	}

	v.FrameRequests = append([]frameVector(nil), in.FrameRequests...)
	for i := range v.FrameRequests {
		f := &v.FrameRequests[i]
		aead := AEADID(f.AEAD)
		key := secrets[0].KeyAB(aead)
		f.Offset = FirstFrameOffset(len(v.Init1))
		if f.Direction == "b_to_a" {
			key = secrets[0].KeyBA(aead)
			f.Offset = FirstFrameOffset(len(v.Init2))
		}
		s := mustSealer(t, aead, key)
		for range f.Generation {
			s.Rekey()
		}
		f.Frame = s.SealFrame(nil, f.Offset, f.Flags, f.Urgent, f.Data)
	}
	return v
}

// rekeyOnce is the key after one rekey, as the Sealer derives it.
func rekeyOnce(t testing.TB, aead AEADID, key []byte) []byte {
	g, err := newKeyGeneration(aead, key, 0)
	if err != nil {
		t.Fatal(err)
	}
	next, err := g.get().next()
	if err != nil {
		t.Fatal(err)
	}
	return append([]byte(nil), next.get().key[:aead.KeyLen()]...)
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
		checkVectorIndependently(t, want)
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

// checkVectorIndependently re-derives parts of a stored vector without the
// package's key schedule and frame code: PRK with the standard HKDF, the
// session keys from ss, the frames with a plain AEAD.
func checkVectorIndependently(t *testing.T, v tepVector) {
	ikm := bytes.Join([][]byte{v.ENOTranscript, v.Init1, v.Init2, v.ES}, nil)
	prk, err := hkdf.Extract(sha256.New, ikm, v.NonceA)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(prk, v.PRK) || !bytes.Equal(v.SS[0], v.PRK) {
		t.Errorf("%s: prk / ss[0] disagree with HKDF-Extract(N_A, transcript|Init1|Init2|ES)", v.TEPName)
	}
	for _, k := range v.Keys {
		aead := AEADID(k.AEAD)
		for i, ss := range v.SS {
			if !bytes.Equal(k.KAB[i], refCPRF(t, ss, 0x04, aead.KeyLen())) || !bytes.Equal(k.KBA[i], refCPRF(t, ss, 0x05, aead.KeyLen())) {
				t.Errorf("%s %v: k_ab/k_ba[%d] disagree with HKDF-Expand", v.TEPName, aead, i)
			}
		}
		if !bytes.Equal(k.KABRekey1, refCPRF(t, k.KAB[0], 0x03, aead.KeyLen())) || !bytes.Equal(k.KBARekey1, refCPRF(t, k.KBA[0], 0x03, aead.KeyLen())) {
			t.Errorf("%s %v: rekeyed keys disagree with HKDF-Expand", v.TEPName, aead)
		}
	}
	for i := 1; i < len(v.SS); i++ {
		if !bytes.Equal(v.SS[i], refCPRF(t, v.SS[i-1], 0x01, 32)) {
			t.Errorf("%s: ss[%d] is not CPRF(ss[%d], CONST_NEXTK)", v.TEPName, i, i-1)
		}
	}
	for _, f := range v.FrameRequests {
		aead := AEADID(f.AEAD)
		var key []byte
		for _, k := range v.Keys {
			if k.AEAD == f.AEAD {
				key = k.KAB[0]
				if f.Direction == "b_to_a" {
					key = k.KBA[0]
				}
			}
		}
		for range f.Generation {
			key = refCPRF(t, key, 0x03, aead.KeyLen())
		}
		pt, err := refOpen(t, aead, key, f.Frame, f.Offset)
		if err != nil || pt[0] != f.Flags || !bytes.HasSuffix(pt, f.Data) || f.Frame[0] != byte(f.Generation&1) {
			t.Errorf("%s %v %s: stored frame does not open with the reference AEAD (%v)", v.TEPName, aead, f.Direction, err)
		}
	}
}
