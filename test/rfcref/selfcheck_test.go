package rfcref_test

// Self-checks of the reference encoder that do not depend on the
// project's vector file.

import (
	"bytes"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"go/parser"
	"go/token"
	"math/big"
	"strconv"
	"strings"
	"testing"
)

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// RFC 5869 Appendix A.1 (Test Case 1), L = 42: two HMAC blocks.
func TestHKDFRFC5869(t *testing.T) {
	ikm := bytes.Repeat([]byte{0x0b}, 22)
	salt := unhex(t, "000102030405060708090a0b0c")
	info := unhex(t, "f0f1f2f3f4f5f6f7f8f9")
	prk := extract(salt, ikm)
	eqBytes(t, "PRK", unhex(t, "077709362c2e32df0ddc3f0dc47bba6390b6c73bb50f9c3122ec844ad7c2b3e5"), prk)
	okm := cprf(prk, info, 42)
	eqBytes(t, "OKM", unhex(t, "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"), okm)
}

// The hand-written Figure 1 Expand agrees with crypto/hkdf at every
// length a tcpcrypt key needs (18, 28, 32, 44) and across block edges.
func TestHKDFMatchesStdlib(t *testing.T) {
	prk := make([]byte, 32)
	rand.Read(prk)
	for _, info := range [][]byte{{constREKEY}, cat([]byte{constSESSID}, bytes.Repeat([]byte{7}, 16))} {
		for _, l := range []int{1, 18, 28, 32, 33, 44, 64, 65, 100} {
			want, err := hkdf.Expand(sha256.New, prk, string(info), l)
			if err != nil {
				t.Fatal(err)
			}
			eqBytes(t, "expand", want, cprf(prk, info, l))
		}
	}
}

// Compressed NIST points round-trip and agree with the uncompressed
// encoding of crypto/ecdh, for both parities of y.
func TestPointCompression(t *testing.T) {
	for _, tep := range []byte{tepP256, tepP521} {
		ec, c, _ := nistCurve(tep)
		parity := map[byte]bool{}
		for range 32 {
			k, err := ec.GenerateKey(rand.Reader)
			if err != nil {
				t.Fatal(err)
			}
			w, err := pubWire(tep, k.Bytes())
			if err != nil {
				t.Fatal(err)
			}
			if len(w) != pubWireLen(tep) {
				t.Fatalf("TEP %#02x: wire length %d", tep, len(w))
			}
			parity[w[2]] = true
			x, y, err := parseNISTPub(c, w)
			if err != nil {
				t.Fatal(err)
			}
			eqBytes(t, "decompressed", k.PublicKey().Bytes(), uncompressed(c, x, y))
		}
		if !parity[0x02] || !parity[0x03] {
			t.Errorf("TEP %#02x: parities seen %v", tep, parity)
		}
		// x >= p must be rejected.
		bad := append([]byte{0x02}, c.Params().P.FillBytes(make([]byte, coordLen(c)))...)
		if _, _, err := decompressPoint(c, bad); err == nil {
			t.Errorf("TEP %#02x: x = p accepted", tep)
		}
		// About half of all x have no point; one of them must be rejected.
		rejected := false
		for i := int64(0); i < 256 && !rejected; i++ {
			b := append([]byte{0x03}, big.NewInt(i).FillBytes(make([]byte, coordLen(c)))...)
			_, _, err := decompressPoint(c, b)
			rejected = err != nil
		}
		if !rejected {
			t.Errorf("TEP %#02x: no x in [0, 256) rejected", tep)
		}
	}
}

// The Go reference agrees with an independent Python implementation
// (testdata/gen_python_vectors.py) on every field of the vector format.
func TestReferenceAgainstPython(t *testing.T) {
	vs := loadVectorsFrom(t, "testdata/python_vectors.json")
	if len(vs) != 4 {
		t.Fatalf("%d python vectors", len(vs))
	}
	for _, v := range vs {
		t.Run(v.TEPName, func(t *testing.T) { checkVector(t, v) })
	}
}

// Frames open with the reference decoder only at their own offset,
// generation and direction.
func TestFrameBinding(t *testing.T) {
	mk := masterKeys(bytes.Repeat([]byte{1}, 32), nil, 2)
	for _, id := range wantAEADs {
		kab0, kba0 := trafficKeys(mk[0], id)
		kab1, _ := trafficKeys(mk[1], id)
		f, err := sealFrame(id, kab0, 100, framePlain{flags: flagURG, urgent: 3, data: []byte("abc")})
		if err != nil {
			t.Fatal(err)
		}
		if p, err := openFrame(id, kab0, 100, f); err != nil || string(p.data) != "abc" || p.urgent != 3 {
			t.Fatalf("%s: open %+v %v", aeadName(id), p, err)
		}
		for name, try := range map[string]func() error{
			"offset":     func() error { _, err := openFrame(id, kab0, 101, f); return err },
			"generation": func() error { _, err := openFrame(id, kab1, 100, f); return err },
			"direction":  func() error { _, err := openFrame(id, kba0, 100, f); return err },
			"control": func() error {
				g := bytes.Clone(f)
				g[0] ^= 1
				_, err := openFrame(id, kab0, 100, g)
				return err
			},
		} {
			if try() == nil {
				t.Errorf("%s: frame opened with wrong %s", aeadName(id), name)
			}
		}
	}
}

// The reference encoder and everything it is checked with must stay
// independent of the code under test: only interop_test.go may import
// tcpcrypt-gw packages.
func TestReferenceIsIndependent(t *testing.T) {
	fset := token.NewFileSet()
	for _, name := range []string{"ref_test.go", "vectors_test.go", "selfcheck_test.go", "peer_test.go", "pq_test.go"} {
		f, err := parser.ParseFile(fset, name, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range f.Imports {
			if path, _ := strconv.Unquote(imp.Path.Value); strings.HasPrefix(path, "tcpcrypt-gw") {
				t.Errorf("%s imports %s: the reference must not use the project's code", name, path)
			}
		}
	}
}
