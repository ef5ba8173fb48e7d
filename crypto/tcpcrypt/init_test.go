package tcpcrypt

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"testing"
)

func testInit1(t testing.TB, tep TEP, ignored []byte) *Init1 {
	kp, err := GenerateKeyPair(tep, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	m := &Init1{Ciphers: []AEADID{ChaCha20Poly1305, 0x7f, AES128GCM}, PublicKey: kp.PublicKey(), Ignored: ignored}
	rand.Read(m.NonceA[:])
	return m
}

func testInit2(t testing.TB, tep TEP, ignored []byte) *Init2 {
	m := &Init2{Cipher: AES256GCM, PublicKey: testPubB(t, tep), Ignored: ignored}
	rand.Read(m.NonceB[:])
	return m
}

// withIgnored appends ignored bytes to an encoded Init message and fixes
// its message_len, as a future extension of RFC 8548 might send them.
func withIgnored(msg, ignored []byte) []byte {
	msg = append(msg, ignored...)
	binary.BigEndian.PutUint32(msg[4:], uint32(len(msg)))
	return msg
}

func TestInitRoundTrip(t *testing.T) {
	for _, tep := range allTEPs {
		for _, ignored := range [][]byte{nil, {0xee}, bytes.Repeat([]byte("ext"), 100)} {
			m1 := testInit1(t, tep, ignored)
			prefix := []byte("prefix")
			enc := m1.Append(prefix)
			if !bytes.Equal(enc[:len(prefix)], prefix) || len(enc)-len(prefix) != m1.Len() {
				t.Fatalf("%v: Append clobbered dst or wrote %d bytes, Len %d", tep, len(enc)-len(prefix), m1.Len())
			}
			// RFC 8548 §4.1: a sender's message ends with Pub_A.
			if len(enc)-len(prefix) != 8+1+2*len(m1.Ciphers)+NonceLen+tep.PublicKeyLen() {
				t.Fatalf("%v: Init1 of %d bytes carries ignored bytes", tep, len(enc)-len(prefix))
			}
			msg := withIgnored(enc[len(prefix):], ignored)
			if n, need, err := InitMessageLen(Init1Magic, tep, msg[:8]); err != nil || need || n != len(msg) {
				t.Fatalf("%v: InitMessageLen = %d, %v, %v; want %d", tep, n, need, err, len(msg))
			}
			got, err := ParseInit1(tep, msg)
			if err != nil {
				t.Fatalf("%v: %v", tep, err)
			}
			if !equalAEADs(got.Ciphers, m1.Ciphers) || got.NonceA != m1.NonceA ||
				!bytes.Equal(got.PublicKey, m1.PublicKey) || !bytes.Equal(got.Ignored, m1.Ignored) {
				t.Errorf("%v: Init1 round trip differs", tep)
			}
			for i := range msg { // the parsed message must not alias msg
				msg[i] ^= 0xff
			}
			if !bytes.Equal(got.PublicKey, m1.PublicKey) || !bytes.Equal(got.Ignored, m1.Ignored) {
				t.Errorf("%v: ParseInit1 result aliases its input", tep)
			}

			m2 := testInit2(t, tep, ignored)
			msg = m2.Append(nil)
			if len(msg) != 8+2+NonceLen+tep.ResponseKeyLen() || binary.BigEndian.Uint16(msg[8:]) != uint16(AES256GCM) {
				t.Fatalf("%v: Init2 layout: %x", tep, msg[:10])
			}
			msg = withIgnored(msg, ignored)
			if n, need, err := InitMessageLen(Init2Magic, tep, msg); err != nil || need || n != len(msg) {
				t.Fatalf("%v: InitMessageLen(Init2) = %d, %v, %v", tep, n, need, err)
			}
			got2, err := ParseInit2(tep, msg)
			if err != nil {
				t.Fatalf("%v: %v", tep, err)
			}
			if got2.Cipher != m2.Cipher || got2.NonceB != m2.NonceB ||
				!bytes.Equal(got2.PublicKey, m2.PublicKey) || !bytes.Equal(got2.Ignored, m2.Ignored) {
				t.Errorf("%v: Init2 round trip differs", tep)
			}
		}
	}
}

func equalAEADs(a, b []AEADID) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// setLen rewrites message_len.
func setLen(msg []byte, m uint32) []byte {
	out := append([]byte(nil), msg...)
	binary.BigEndian.PutUint32(out[4:], m)
	return out
}

func TestParseInitRejects(t *testing.T) {
	for _, tep := range allTEPs {
		m1 := testInit1(t, tep, []byte{1, 2, 3})
		msg1 := m1.Append(nil)
		m2 := testInit2(t, tep, nil)
		msg2 := m2.Append(nil)
		pk, pkB := tep.PublicKeyLen(), tep.ResponseKeyLen()

		noCiphers := (&Init1{PublicKey: m1.PublicKey}).Append(nil)
		tooManyCiphers := append([]byte(nil), msg1...)
		tooManyCiphers[8] = 200 // K runs past the end of the message
		badCipher := append([]byte(nil), msg2...)
		badCipher[8] = 0x03
		wrongMagic := append([]byte(nil), msg1...)
		wrongMagic[0] ^= 1

		bad1 := map[string][]byte{
			"empty":              nil,
			"header only":        msg1[:8],
			"truncated":          msg1[:len(msg1)-1],
			"trailing byte":      append(append([]byte(nil), msg1...), 0),
			"wrong magic":        wrongMagic,
			"Init2 as Init1":     msg2,
			"no ciphers":         noCiphers,
			"K past end":         tooManyCiphers,
			"len too small":      setLen(msg1[:8+1+1+32+pk-1], uint32(8+1+1+32+pk-1)),
			"len beyond message": setLen(msg1, uint32(len(msg1)+1)),
		}
		for name, msg := range bad1 {
			if _, err := ParseInit1(tep, msg); err == nil {
				t.Errorf("%v: ParseInit1 accepted %s", tep, name)
			}
		}
		bad2 := map[string][]byte{
			"truncated":      msg2[:len(msg2)-1],
			"trailing byte":  append(append([]byte(nil), msg2...), 0),
			"Init1 as Init2": msg1,
			"unknown cipher": badCipher,
			"len too small":  setLen(msg2[:8+1+32+pkB-1], uint32(8+1+32+pkB-1)),
		}
		for name, msg := range bad2 {
			if _, err := ParseInit2(tep, msg); err == nil {
				t.Errorf("%v: ParseInit2 accepted %s", tep, name)
			}
		}
	}
	if _, err := ParseInit1(0x25, make([]byte, 100)); err == nil {
		t.Error("ParseInit1 accepted an invalid TEP")
	}
}

func TestInitMessageLenBounds(t *testing.T) {
	for _, tep := range allTEPs {
		for _, c := range []struct {
			magic  uint32
			minLen int
		}{{Init1Magic, 8 + 1 + 2 + 32 + tep.PublicKeyLen()}, {Init2Magic, 8 + 2 + 32 + tep.ResponseKeyLen()}} {
			hdr := func(m uint32) []byte {
				b := binary.BigEndian.AppendUint32(nil, c.magic)
				return binary.BigEndian.AppendUint32(b, m)
			}
			for i := range 8 {
				if _, need, err := InitMessageLen(c.magic, tep, hdr(100)[:i]); !need || err != nil {
					t.Errorf("%d header bytes: need %v err %v", i, need, err)
				}
			}
			for _, ok := range []int{c.minLen, c.minLen + 1, MaxInitLen} {
				if n, need, err := InitMessageLen(c.magic, tep, hdr(uint32(ok))); n != ok || need || err != nil {
					t.Errorf("%v magic %08x len %d: got %d %v %v", tep, c.magic, ok, n, need, err)
				}
			}
			for _, bad := range []uint32{0, uint32(c.minLen - 1), MaxInitLen + 1, 0xffffffff} {
				if _, _, err := InitMessageLen(c.magic, tep, hdr(bad)); err == nil {
					t.Errorf("%v magic %08x: len %d accepted", tep, c.magic, bad)
				}
			}
			wrong := hdr(uint32(c.minLen))
			wrong[3] ^= 0x80
			if _, _, err := InitMessageLen(c.magic, tep, wrong); err == nil {
				t.Errorf("%v: wrong magic accepted", tep)
			}
		}
	}
	if _, _, err := InitMessageLen(0x12345678, TEPCurve25519, make([]byte, 8)); err == nil {
		t.Error("unknown expected magic accepted")
	}
	if _, _, err := InitMessageLen(Init1Magic, 0, nil); err == nil {
		t.Error("invalid TEP accepted")
	}
}

func TestChooseCipher(t *testing.T) {
	cases := []struct {
		offered, acceptable []AEADID
		want                AEADID
		ok                  bool
	}{
		// B's order of preference decides (RFC 8548 §3.3).
		{[]AEADID{ChaCha20Poly1305, AES128GCM}, []AEADID{AES128GCM, ChaCha20Poly1305}, AES128GCM, true},
		{[]AEADID{ChaCha20Poly1305, AES128GCM}, []AEADID{ChaCha20Poly1305, AES128GCM}, ChaCha20Poly1305, true},
		{[]AEADID{0x7f, AES256GCM}, []AEADID{AES128GCM, AES256GCM}, AES256GCM, true},
		{[]AEADID{AES128GCM}, []AEADID{ChaCha20Poly1305}, 0, false},
		{[]AEADID{0x7f}, []AEADID{0x7f}, 0, false}, // unknown AEADs are never chosen
		{nil, []AEADID{AES128GCM}, 0, false},
	}
	for _, c := range cases {
		got, ok := ChooseCipher(c.offered, c.acceptable)
		if got != c.want || ok != c.ok {
			t.Errorf("ChooseCipher(%v, %v) = %v, %v; want %v, %v", c.offered, c.acceptable, got, ok, c.want, c.ok)
		}
	}
}
