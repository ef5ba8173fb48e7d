package tcpcrypt

import "testing"

func TestTEPNames(t *testing.T) {
	wantLen := map[TEP]int{TEPP256: 35, TEPP521: 69, TEPCurve25519: 32, TEPCurve448: 56}
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
	for _, bad := range []TEP{0, 0x20, 0x25, 0xff} {
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
