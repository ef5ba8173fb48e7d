package tcpcrypt

import (
	"bytes"
	"crypto/rand"
	"strings"
	"testing"
)

func TestTEPNames(t *testing.T) {
	wantLen := map[TEP]int{TEPP256: 35, TEPP521: 69, TEPCurve25519: 32, TEPCurve448: 56, TEPX25519MLKEM768: 1220}
	for _, tep := range allTEPs {
		if !tep.Valid() {
			t.Errorf("%v not valid", tep)
		}
		if tep.PublicKeyLen() != wantLen[tep] {
			t.Errorf("%v PublicKeyLen %d, want %d", tep, tep.PublicKeyLen(), wantLen[tep])
		}
		got, err := ParseTEP(tep.String())
		if err != nil || got != tep {
			t.Errorf("ParseTEP(%q) = %v, %v", tep.String(), got, err)
		}
	}
	for _, bad := range []TEP{0, 0x1f, 0x25, 0x7f, 0xa0, 0xff} {
		if bad.Valid() || bad.PublicKeyLen() != 0 {
			t.Errorf("TEP 0x%02x accepted", byte(bad))
		}
	}
	for _, name := range []string{"", "curve", "p384", "curve25519x"} {
		if _, err := ParseTEP(name); err == nil {
			t.Errorf("ParseTEP(%q) accepted", name)
		}
	}
}

func TestAEADNames(t *testing.T) {
	wantLen := map[AEADID]int{AES128GCM: 16, AES256GCM: 32, ChaCha20Poly1305: 32}
	for _, a := range allAEADs {
		if !a.Valid() || a.KeyLen() != wantLen[a] {
			t.Errorf("%v: valid %v keylen %d", a, a.Valid(), a.KeyLen())
		}
		got, err := ParseAEAD(a.String())
		if err != nil || got != a {
			t.Errorf("ParseAEAD(%q) = %v, %v", a.String(), got, err)
		}
	}
	for _, bad := range []AEADID{0, 0x03, 0x11, 0xff} {
		if bad.Valid() || bad.KeyLen() != 0 {
			t.Errorf("AEAD 0x%02x accepted", byte(bad))
		}
	}
	if _, err := ParseAEAD("aes192gcm"); err == nil {
		t.Error("ParseAEAD accepted aes192gcm")
	}
}

func TestFrameOverheadConstant(t *testing.T) {
	// The engine clamps MSS by FrameOverhead: it must be the real overhead.
	s := mustSealer(t, AES128GCM, testKey(AES128GCM, "overhead"))
	for _, n := range []int{0, 1, 100} {
		if got := len(s.SealFrame(nil, 0, 0, 0, make([]byte, n))) - n; got != FrameOverhead {
			t.Errorf("overhead for %d bytes = %d, want %d", n, got, FrameOverhead)
		}
	}
}

// TestTEPTable checks each row of the TEP table against what its key
// operations produce, so that a new row with a wrong length or a name
// ParseTEP cannot find fails here.
func TestTEPTable(t *testing.T) {
	if len(TEPs()) != len(tepTable) || len(allTEPs) != len(tepTable) {
		t.Fatalf("TEPs() %v, tests' allTEPs %v, table %d rows", TEPs(), allTEPs, len(tepTable))
	}
	pool := NewKeyPool(nil, 0)
	t.Cleanup(pool.Close)
	for _, s := range tepTable {
		for _, n := range append([]string{s.name, " " + s.name + " "}, s.aliases...) {
			if got, err := ParseTEP(n); err != nil || got != s.tep {
				t.Errorf("ParseTEP(%q) = %v, %v; want %v", n, got, err, s.tep)
			}
		}
		a, err := GenerateKeyPair(s.tep, rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		b, err := pool.Get(s.tep)
		if err != nil || b.TEP() != s.tep {
			t.Fatalf("pool.Get(%v) = %v, %v", s.tep, b, err)
		}
		if len(a.PublicKey()) != s.tep.PublicKeyLen() {
			t.Errorf("%v: Pub_A is %d bytes, table says %d", s.tep, len(a.PublicKey()), s.tep.PublicKeyLen())
		}
		pubB, esB, err := b.Respond(a.PublicKey())
		if err != nil || len(pubB) != s.tep.ResponseKeyLen() {
			t.Fatalf("%v: Respond: %d bytes, %v; table says %d", s.tep, len(pubB), err, s.tep.ResponseKeyLen())
		}
		esA, err := a.SharedSecret(pubB)
		if err != nil || !bytes.Equal(esA, esB) || isAllZero(esA) {
			t.Errorf("%v: ES differ (%v)", s.tep, err)
		}
	}
	if _, err := ParseTEP("p384"); err == nil || !strings.Contains(err.Error(), tepTable[0].name) {
		t.Errorf("ParseTEP(p384) error %v does not list the table's names", err)
	}
}
