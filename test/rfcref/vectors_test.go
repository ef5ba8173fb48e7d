package rfcref_test

// Rebuilds every field of crypto/tcpcrypt/testdata/vectors.json from the
// vector's inputs with the reference encoder in ref_test.go (which imports
// nothing from tcpcrypt-gw) and compares bytes.

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
)

// vectorsPath is the project's vector file; RFCREF_VECTORS overrides it.
const vectorsPath = "../../crypto/tcpcrypt/testdata/vectors.json"

// hexBytes decodes a lowercase hex JSON string.
type hexBytes []byte

func (h *hexBytes) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	if s != strings.ToLower(s) {
		return fmt.Errorf("hex string %q is not lowercase", s)
	}
	d, err := hex.DecodeString(s)
	if err != nil {
		return err
	}
	*h = d
	return nil
}

// hexList accepts either one hex string or an array of them.
type hexList []hexBytes

func (l *hexList) UnmarshalJSON(b []byte) error {
	if bytes.HasPrefix(bytes.TrimSpace(b), []byte("[")) {
		var a []hexBytes
		if err := json.Unmarshal(b, &a); err != nil {
			return err
		}
		*l = a
		return nil
	}
	var one hexBytes
	if err := json.Unmarshal(b, &one); err != nil {
		return err
	}
	*l = hexList{one}
	return nil
}

type vecKeys struct {
	AEAD     uint16     `json:"aead"`
	AEADName string     `json:"aead_name"`
	KAB      []hexBytes `json:"k_ab"`
	KBA      []hexBytes `json:"k_ba"`
}

type vecFrame struct {
	AEAD       uint16   `json:"aead"`
	Direction  string   `json:"direction"`
	Generation int      `json:"generation"`
	Rekey      int      `json:"rekey"`
	Flags      byte     `json:"flags"`
	Urgent     uint16   `json:"urgent"`
	Data       hexBytes `json:"data"`
	Offset     uint64   `json:"offset"`
	Frame      hexBytes `json:"frame"`
}

type vecResumed struct {
	Index              int        `json:"index"`
	SS                 hexBytes   `json:"ss"`
	Resume             hexBytes   `json:"resume"`
	OpenerOriginalRole string     `json:"opener_original_role"`
	NonceA             hexBytes   `json:"nonce_a"`
	NonceB             hexBytes   `json:"nonce_b"`
	ENOSyn             hexBytes   `json:"eno_syn"`
	ENOSynAck          hexBytes   `json:"eno_synack"`
	SN                 hexBytes   `json:"sn"`
	SessionID          hexBytes   `json:"session_id"`
	MK                 []hexBytes `json:"mk"`
	Keys               []vecKeys  `json:"keys"`
	Frames             []vecFrame `json:"frames"`
}

type vector struct {
	TEP      byte     `json:"tep"`
	TEPName  string   `json:"tep_name"`
	APrivate hexBytes `json:"a_private"`
	BPrivate hexBytes `json:"b_private"`
	// BEncapsRandom: x25519mlkem768 only (docs/pq-tep.md section 10).
	BEncapsRandom hexBytes `json:"b_encaps_random"`
	NonceA        hexBytes `json:"nonce_a"`
	NonceB        hexBytes `json:"nonce_b"`
	ENOSynA       hexBytes `json:"eno_syn_a"`
	ENOSynAckB    hexBytes `json:"eno_synack_b"`
	Init1Ciphers  hexBytes `json:"init1_ciphers"`
	Init1Ignored  hexBytes `json:"init1_ignored"`
	Init2Cipher   uint16   `json:"init2_cipher"`
	Init2Ignored  hexBytes `json:"init2_ignored"`
	Generations   int      `json:"generations"`

	APublic       hexBytes   `json:"a_public"`
	BPublic       hexBytes   `json:"b_public"`
	ENOTranscript hexBytes   `json:"eno_transcript"`
	Init1         hexBytes   `json:"init1"`
	Init2         hexBytes   `json:"init2"`
	ES            hexBytes   `json:"es"`
	PRK           hexBytes   `json:"prk"`
	SS            []hexBytes `json:"ss"`
	SessionID     hexList    `json:"session_id"`
	Resume        []hexBytes `json:"resume"`
	MK            []hexBytes `json:"mk"`
	Keys          []vecKeys  `json:"keys"`
	Frames        []vecFrame `json:"frames"`
	Resumed       vecResumed `json:"resumed"`
}

type vectorFile struct {
	Comment string   `json:"comment"`
	Vectors []vector `json:"vectors"`
}

// requiredFields are the keys every vector of the current format has; the
// old dialect lacks at least "mk" and "resumed".
var requiredFields = []string{
	"tep", "a_private", "b_private", "nonce_a", "nonce_b", "eno_syn_a",
	"eno_synack_b", "init1_ciphers", "init1_ignored", "init2_cipher",
	"init2_ignored", "generations", "a_public", "b_public", "eno_transcript",
	"init1", "init2", "es", "prk", "ss", "session_id", "resume", "mk", "keys",
	"frames", "resumed",
}

var requiredResumedFields = []string{
	"index", "ss", "resume", "opener_original_role", "nonce_a", "nonce_b",
	"eno_syn", "eno_synack", "sn", "session_id", "mk", "keys", "frames",
}

var wantAEADs = []uint16{aeadAES128GCM, aeadAES256GCM, aeadChaCha20Poly1305}

// loadVectors reads the vectors file and fails the test (never skips) if
// it is missing or in the old format.
func loadVectors(t *testing.T) []vector {
	t.Helper()
	path := filepath.FromSlash(vectorsPath)
	if alt := os.Getenv("RFCREF_VECTORS"); alt != "" {
		path = alt // e.g. a file produced by another implementation
	}
	return loadVectorsFrom(t, path)
}

func loadVectorsFrom(t *testing.T, path string) []vector {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("reading vectors: %v", err)
	}
	var shape struct {
		Vectors []map[string]json.RawMessage `json:"vectors"`
	}
	if err := json.Unmarshal(raw, &shape); err != nil {
		t.Fatalf("vectors.json: %v", err)
	}
	for i, v := range shape.Vectors {
		for _, k := range requiredFields {
			if _, ok := v[k]; !ok {
				t.Fatalf("vectors.json vector %d has no %q: the file is in the old format or incomplete; regenerate it", i, k)
			}
		}
		var r map[string]json.RawMessage
		if err := json.Unmarshal(v["resumed"], &r); err != nil {
			t.Fatalf("vectors.json vector %d: resumed: %v", i, err)
		}
		for _, k := range requiredResumedFields {
			if _, ok := r[k]; !ok {
				t.Fatalf("vectors.json vector %d: resumed has no %q", i, k)
			}
		}
	}
	var f vectorFile
	dec := json.NewDecoder(bytes.NewReader(raw))
	if err := dec.Decode(&f); err != nil {
		t.Fatalf("vectors.json: %v", err)
	}
	return f.Vectors
}

func eqBytes(t *testing.T, field string, vec, ref []byte) bool {
	t.Helper()
	if bytes.Equal(vec, ref) {
		return true
	}
	t.Errorf("%s mismatch:\n  vector: %x\n  rfcref: %x", field, vec, ref)
	return false
}

func eqList(t *testing.T, field string, vec []hexBytes, ref [][]byte) {
	t.Helper()
	if len(vec) != len(ref) {
		t.Errorf("%s: vector has %d entries, want %d", field, len(vec), len(ref))
	}
	for i := range min(len(vec), len(ref)) {
		eqBytes(t, fmt.Sprintf("%s[%d]", field, i), vec[i], ref[i])
	}
}

func TestVectorsCounts(t *testing.T) {
	vs := loadVectors(t)
	if len(vs) != 5 {
		t.Fatalf("%d vectors, want 5 (one per TEP: RFC 8548's four and docs/pq-tep.md's)", len(vs))
	}
	var teps []byte
	for _, v := range vs {
		teps = append(teps, v.TEP)
	}
	slices.Sort(teps)
	if !bytes.Equal(teps, []byte{tepX25519MLKEM768, tepP256, tepP521, tepCurve25519, tepCurve448}) {
		t.Fatalf("TEPs %x, want 2021222324", teps)
	}
	for _, v := range vs {
		t.Run(v.TEPName, func(t *testing.T) {
			if v.Generations != 3 {
				t.Errorf("generations = %d, want 3", v.Generations)
			}
			if len(v.SS) != 3 || len(v.Resume) != 3 || len(v.MK) != 3 || len(v.SessionID) < 1 {
				t.Errorf("len ss/resume/mk/session_id = %d/%d/%d/%d", len(v.SS), len(v.Resume), len(v.MK), len(v.SessionID))
			}
			checkKeyCounts(t, "keys", v.Keys, 3)
			checkKeyCounts(t, "resumed.keys", v.Resumed.Keys, 1)
			// Frames: every AEAD, both directions, generations 0, 1 and 2.
			for _, id := range wantAEADs {
				for _, dir := range []string{"a_to_b", "b_to_a"} {
					seen := map[int]bool{}
					for _, f := range v.Frames {
						if f.AEAD == id && f.Direction == dir {
							seen[f.Generation] = true
						}
					}
					for g := range 3 {
						if !seen[g] {
							t.Errorf("frames: no %s frame for %s generation %d", dir, aeadName(id), g)
						}
					}
					n := 0
					for _, f := range v.Resumed.Frames {
						if f.AEAD == id && f.Direction == dir {
							n++
						}
					}
					if n != 1 {
						t.Errorf("resumed.frames: %d %s frames for %s, want 1", n, dir, aeadName(id))
					}
				}
			}
			for i, f := range slices.Concat(v.Frames, v.Resumed.Frames) {
				if f.Direction != "a_to_b" && f.Direction != "b_to_a" {
					t.Errorf("frame %d: direction %q", i, f.Direction)
				}
			}
			if len(v.Resumed.MK) != 1 {
				t.Errorf("resumed.mk has %d entries, want 1", len(v.Resumed.MK))
			}
		})
	}
}

func checkKeyCounts(t *testing.T, field string, ks []vecKeys, gens int) {
	t.Helper()
	var ids []uint16
	for _, k := range ks {
		ids = append(ids, k.AEAD)
		if len(k.KAB) != gens || len(k.KBA) != gens {
			t.Errorf("%s[%s]: %d k_ab, %d k_ba, want %d each", field, aeadName(k.AEAD), len(k.KAB), len(k.KBA), gens)
		}
		if k.AEADName != aeadName(k.AEAD) {
			t.Errorf("%s: aead %#04x named %q, want %q", field, k.AEAD, k.AEADName, aeadName(k.AEAD))
		}
	}
	slices.Sort(ids)
	if !slices.Equal(ids, wantAEADs) {
		t.Errorf("%s: AEADs %x, want %x", field, ids, wantAEADs)
	}
}

func inputsOf(t *testing.T, v vector) refInputs {
	t.Helper()
	if len(v.Init1Ciphers)%2 != 0 {
		t.Fatalf("init1_ciphers has odd length %d: must be 2 bytes per sym_cipher (Section 4.1)", len(v.Init1Ciphers))
	}
	var ciphers []uint16
	for i := 0; i < len(v.Init1Ciphers); i += 2 {
		ciphers = append(ciphers, uint16(v.Init1Ciphers[i])<<8|uint16(v.Init1Ciphers[i+1]))
	}
	return refInputs{
		tep: v.TEP, privA: v.APrivate, privB: v.BPrivate,
		nA: v.NonceA, nB: v.NonceB,
		enoSynA: v.ENOSynA, enoSynAckB: v.ENOSynAckB,
		ciphers: ciphers, init1Ign: v.Init1Ignored, init2Ign: v.Init2Ignored,
		cipher: v.Init2Cipher, generations: v.Generations, secrets: len(v.SS),
		encapsRandom: v.BEncapsRandom,
	}
}

func TestVectorsReference(t *testing.T) {
	vs := loadVectors(t)
	if len(vs) == 0 {
		t.Fatal("no vectors")
	}
	for _, v := range vs {
		t.Run(v.TEPName, func(t *testing.T) { checkVector(t, v) })
	}
}

func checkVector(t *testing.T, v vector) {
	in := inputsOf(t, v)
	if len(v.NonceA) != nALen || len(v.NonceB) != nBLen {
		t.Errorf("nonce lengths %d/%d, want %d/%d (Section 5)", len(v.NonceA), len(v.NonceB), nALen, nBLen)
	}
	if len(v.Init1Ignored) != 0 || len(v.Init2Ignored) != 0 {
		t.Errorf("ignored fields are not empty (%x, %x): senders MUST NOT add them (Section 4.1)", v.Init1Ignored, v.Init2Ignored)
	}
	if !slices.Contains(in.ciphers, in.cipher) {
		t.Errorf("init2_cipher %#04x is not in sym_cipher_list %x (Section 3.3)", in.cipher, in.ciphers)
	}
	s, err := computeSession(in)
	if err != nil {
		t.Fatalf("reference: %v", err)
	}
	eqBytes(t, "a_public", v.APublic, s.pubA)
	eqBytes(t, "b_public", v.BPublic, s.pubB)
	eqBytes(t, "eno_transcript", v.ENOTranscript, s.transcript)
	eqBytes(t, "init1", v.Init1, s.init1)
	eqBytes(t, "init2", v.Init2, s.init2)
	eqBytes(t, "es", v.ES, s.es)
	eqBytes(t, "prk", v.PRK, s.prk)
	eqList(t, "ss", v.SS, s.ss)
	eqList(t, "session_id", v.SessionID, s.sessionIDs)
	eqList(t, "resume", v.Resume, s.resume)
	eqList(t, "mk", v.MK, s.mk)

	// The vector's public keys parse back to points on the curve and give
	// the same ES from both sides.
	var esA, esB []byte
	var errA, errB error
	if v.TEP == tepX25519MLKEM768 {
		// B's side is an encapsulation: it rebuilds Pub_B from Pub_A.
		if len(v.BEncapsRandom) != 32 {
			t.Errorf("b_encaps_random is %d bytes, want 32 (docs/pq-tep.md section 10)", len(v.BEncapsRandom))
		}
		esA, errA = pqShared(v.APrivate, v.BPublic)
		var pubB []byte
		pubB, esB, errB = pqRespond(v.BPrivate, v.APublic, v.BEncapsRandom)
		eqBytes(t, "b_public (B's private, vector a_public)", v.BPublic, pubB)
	} else {
		esA, errA = sharedSecret(v.TEP, v.APrivate, v.BPublic)
		esB, errB = sharedSecret(v.TEP, v.BPrivate, v.APublic)
	}
	if errA != nil || errB != nil {
		t.Errorf("ES from the vector's public keys: A: %v, B: %v", errA, errB)
	} else {
		eqBytes(t, "es (A's private, vector b_public)", v.ES, esA)
		eqBytes(t, "es (B's private, vector a_public)", v.ES, esB)
	}
	// And the vector's Init messages parse with the figures' offsets.
	if m1, err := parseInit1(v.TEP, v.Init1); err != nil {
		t.Errorf("parse vector init1: %v", err)
	} else {
		eqBytes(t, "init1 N_A field", m1.nA, v.NonceA)
		eqBytes(t, "init1 Pub_A field", m1.pubA, v.APublic)
		if !slices.Equal(m1.ciphers, in.ciphers) {
			t.Errorf("init1 sym_cipher list %x, want %x", m1.ciphers, in.ciphers)
		}
	}
	if m2, err := parseInit2(v.TEP, v.Init2); err != nil {
		t.Errorf("parse vector init2: %v", err)
	} else {
		eqBytes(t, "init2 N_B field", m2.nB, v.NonceB)
		eqBytes(t, "init2 Pub_B field", m2.pubB, v.BPublic)
		if m2.cipher != v.Init2Cipher {
			t.Errorf("init2 sym_cipher %#04x, want %#04x", m2.cipher, v.Init2Cipher)
		}
	}

	// Traffic keys: k_ab[j], k_ba[j] for every AEAD.
	refKeys := map[uint16][2][][]byte{}
	for _, id := range wantAEADs {
		var ab, ba [][]byte
		for _, mk := range s.mk {
			kab, kba := trafficKeys(mk, id)
			ab, ba = append(ab, kab), append(ba, kba)
		}
		refKeys[id] = [2][][]byte{ab, ba}
	}
	for _, k := range v.Keys {
		rk, ok := refKeys[k.AEAD]
		if !ok {
			t.Errorf("keys: unknown AEAD %#04x", k.AEAD)
			continue
		}
		eqList(t, "keys["+aeadName(k.AEAD)+"].k_ab", k.KAB, rk[0])
		eqList(t, "keys["+aeadName(k.AEAD)+"].k_ba", k.KBA, rk[1])
	}

	startOffset := map[string]uint64{"a_to_b": uint64(len(s.init1)), "b_to_a": uint64(len(s.init2))}
	checkFrames(t, "frames", v.Frames, refKeys, startOffset)
	checkResumed(t, v, s)
}

// checkFrames reseals every frame from its inputs, opens the vector's
// frame, and checks the stream-level rules of Sections 3.6-3.8 per
// (AEAD, direction) stream.
func checkFrames(t *testing.T, field string, frames []vecFrame, keys map[uint16][2][][]byte, startOffset map[string]uint64) {
	t.Helper()
	type streamKey struct {
		aead uint16
		dir  string
	}
	streams := map[streamKey][]vecFrame{}
	for i, f := range frames {
		name := fmt.Sprintf("%s[%d](%s %s gen %d @%d)", field, i, aeadName(f.AEAD), f.Direction, f.Generation, f.Offset)
		rk, ok := keys[f.AEAD]
		if !ok {
			t.Errorf("%s: unknown AEAD", name)
			continue
		}
		set := rk[0]
		if f.Direction == "b_to_a" {
			set = rk[1]
		} else if f.Direction != "a_to_b" {
			t.Errorf("%s: direction %q", name, f.Direction)
			continue
		}
		if f.Generation < 0 || f.Generation >= len(set) {
			t.Errorf("%s: generation out of range", name)
			continue
		}
		if f.Rekey != 0 && f.Rekey != 1 {
			t.Errorf("%s: rekey = %d", name, f.Rekey)
		}
		if f.Flags&^(flagFIN|flagURG) != 0 {
			t.Errorf("%s: reserved fres bits set in flags %#02x (Section 4.2.1)", name, f.Flags)
		}
		tk := set[f.Generation]
		in := framePlain{rekey: f.Rekey == 1, flags: f.Flags, urgent: f.Urgent, data: f.Data}
		got, err := sealFrame(f.AEAD, tk, f.Offset, in)
		if err != nil {
			t.Errorf("%s: seal: %v", name, err)
			continue
		}
		eqBytes(t, name+".frame", f.Frame, got)
		// Open the vector's bytes with the reference decoder.
		p, err := openFrame(f.AEAD, tk, f.Offset, f.Frame)
		if err != nil {
			t.Errorf("%s: reference cannot open the vector's frame: %v", name, err)
		} else {
			if p.rekey != in.rekey || p.flags != in.flags || !bytes.Equal(p.data, in.data) ||
				(in.flags&flagURG != 0 && p.urgent != in.urgent) {
				t.Errorf("%s: opened %+v, want %+v", name, p, in)
			}
			if f.Frame[0]&^0x01 != 0 {
				t.Errorf("%s: reserved cres bits set in control %#02x (Section 4.2)", name, f.Frame[0])
			}
		}
		streams[streamKey{f.AEAD, f.Direction}] = append(streams[streamKey{f.AEAD, f.Direction}], f)
	}
	for sk, fs := range streams {
		sort.SliceStable(fs, func(i, j int) bool { return fs[i].Offset < fs[j].Offset })
		name := fmt.Sprintf("%s %s %s stream", field, aeadName(sk.aead), sk.dir)
		next := startOffset[sk.dir]
		gen := 0
		for i, f := range fs {
			if f.Offset < next {
				t.Errorf("%s: frame at offset %d overlaps the stream before it (next free offset %d; Init bytes count, Section 3.6)", name, f.Offset, next)
			}
			next = f.Offset + uint64(len(f.Frame))
			// Section 3.8: rekey = 1 exactly on the first frame of a
			// generation, and the receiver advances by one per rekey.
			switch {
			case f.Generation == gen && f.Rekey == 0:
			case f.Generation == gen+1 && f.Rekey == 1:
				gen++
			default:
				t.Errorf("%s: frame %d (offset %d) has generation %d, rekey %d after generation %d (Section 3.8)", name, i, f.Offset, f.Generation, f.Rekey, gen)
				gen = f.Generation
			}
			if f.Flags&flagFIN != 0 && i != len(fs)-1 {
				t.Errorf("%s: FINp set on a frame that is not the last (Section 3.7)", name)
			}
		}
	}
}

// checkResumed rebuilds the resumed session of Section 3.5.
func checkResumed(t *testing.T, v vector, s *refSession) {
	r := v.Resumed
	i := r.Index
	if i < 1 || i >= len(s.ss) {
		t.Fatalf("resumed.index = %d", i)
	}
	eqBytes(t, "resumed.ss", r.SS, s.ss[i])
	eqBytes(t, "resumed.resume", r.Resume, s.resume[i])
	ss, resume := s.ss[i], s.resume[i]
	if len(r.NonceA) > maxResumeNonce || len(r.NonceB) > maxResumeNonce {
		t.Errorf("resumption nonces %d/%d bytes, at most %d (Section 3.5)", len(r.NonceA), len(r.NonceB), maxResumeNonce)
	}
	tepV := v.TEP | 0x80
	subA := resumeSubopt(v.TEP, resume, true, r.NonceA)  // Figure 2
	subB := resumeSubopt(v.TEP, resume, false, r.NonceB) // Figure 3
	var syn, synack []byte
	switch r.OpenerOriginalRole {
	case "B":
		syn = buildENO(subB)
		synack = buildENO([]byte{0x01}, subA)
	case "A":
		syn = buildENO(subA)
		synack = buildENO([]byte{0x01}, subB)
	default:
		t.Fatalf("resumed.opener_original_role = %q", r.OpenerOriginalRole)
	}
	eqBytes(t, "resumed.eno_syn", r.ENOSyn, syn)
	eqBytes(t, "resumed.eno_synack", r.ENOSynAck, synack)

	// The vector's options negotiate the TEP with v = 1, and the two
	// identifier halves they carry reassemble resume[i].
	oSyn, err1 := parseENO(r.ENOSyn)
	oAck, err2 := parseENO(r.ENOSynAck)
	if err1 != nil || err2 != nil {
		t.Errorf("resumed ENO options: %v / %v", err1, err2)
	} else {
		b, ok := negotiatedTEP(oSyn, oAck)
		if !ok || b != tepV {
			t.Errorf("resumed ENO negotiates %#02x (ok %v), want %#02x", b, ok, tepV)
		}
		if len(oSyn.subopts) == 1 && len(oAck.subopts) == 1 {
			halves := map[string][]byte{}
			for _, so := range []enoSubopt{oSyn.subopts[0], oAck.subopts[0]} {
				if len(so.data) < resumeHalf {
					t.Errorf("resumption suboption data %x shorter than 9 bytes", so.data)
					continue
				}
				if bytes.Equal(so.data[:resumeHalf], resume[:resumeHalf]) {
					halves["first"] = so.data[:resumeHalf]
				}
				if bytes.Equal(so.data[:resumeHalf], resume[resumeHalf:]) {
					halves["second"] = so.data[:resumeHalf]
				}
			}
			if len(halves) != 2 {
				t.Errorf("resumed ENO options do not carry both halves of resume[%d]", i)
			}
		}
		if oSyn.global&0x01 != 0 || oAck.global&0x01 == 0 {
			t.Errorf("resumed ENO roles: opener b=%d, passive b=%d", oSyn.global&1, oAck.global&1)
		}
	}

	sn := cat(r.NonceA, r.NonceB) // sn[i] = nonce_a | nonce_b
	eqBytes(t, "resumed.sn", r.SN, sn)
	eqBytes(t, "resumed.session_id", r.SessionID, sessionID(tepV, ss, sn))
	mk := masterKeys(ss, sn, 1)
	eqList(t, "resumed.mk", r.MK, mk)
	keys := map[uint16][2][][]byte{}
	for _, id := range wantAEADs {
		kab, kba := trafficKeys(mk[0], id)
		keys[id] = [2][][]byte{{kab}, {kba}}
	}
	for _, k := range r.Keys {
		rk, ok := keys[k.AEAD]
		if !ok {
			t.Errorf("resumed.keys: unknown AEAD %#04x", k.AEAD)
			continue
		}
		eqList(t, "resumed.keys["+aeadName(k.AEAD)+"].k_ab", k.KAB, rk[0])
		eqList(t, "resumed.keys["+aeadName(k.AEAD)+"].k_ba", k.KBA, rk[1])
	}
	for j, f := range r.Frames {
		if f.Offset != 0 {
			t.Errorf("resumed.frames[%d]: offset %d, want 0 (no Init in a resumed session)", j, f.Offset)
		}
	}
	checkFrames(t, "resumed.frames", r.Frames, keys, map[string]uint64{})
}
