package tcpcrypt

import (
	"bytes"
	"crypto/rand"
	"sync"
	"testing"
)

// TestDHCacheSameResults: a key pair that met a peer's key before gives
// the same ES without the scalar multiplication (one allocation, the
// copy, where computing it takes several), in a slice of its own; other
// peers still get their own ES, also after more peers than the cache
// holds; a key that fails validation fails every time.
func TestDHCacheSameResults(t *testing.T) {
	for _, tep := range []TEP{TEPCurve25519, TEPP256, TEPP521} {
		t.Run(tep.String(), func(t *testing.T) {
			a, _ := GenerateKeyPair(tep, rand.Reader)
			var peers []*KeyPair
			for range dhCacheLen + 3 {
				p, _ := GenerateKeyPair(tep, rand.Reader)
				peers = append(peers, p)
			}
			for round := range 2 {
				for i, p := range peers {
					es, err := a.SharedSecret(p.PublicKey())
					if err != nil {
						t.Fatal(err)
					}
					want, _ := p.SharedSecret(a.PublicKey())
					if !bytes.Equal(es, want) {
						t.Fatalf("round %d, peer %d: ES %x, the peer's %x", round, i, es, want)
					}
					es[0] ^= 0xff // the caller's copy: the cache must not change
				}
			}
			p := peers[len(peers)-1]
			again, _ := a.SharedSecret(p.PublicKey())
			want, _ := p.SharedSecret(a.PublicKey())
			if !bytes.Equal(again, want) {
				t.Fatal("a caller's change reached the cached ES")
			}
			if n := testing.AllocsPerRun(50, func() { a.SharedSecret(p.PublicKey()) }); n > 1 {
				t.Errorf("a peer key met before: %v allocations per SharedSecret (the computation again?)", n)
			}
		})
	}
	a, _ := GenerateKeyPair(TEPCurve25519, rand.Reader)
	lowOrder := make([]byte, 32) // the all-zero point: an all-zero X25519 result
	for range 3 {
		if _, err := a.SharedSecret(lowOrder); err == nil {
			t.Fatal("a low-order peer key was accepted")
		}
	}
}

// TestDHCacheConcurrent: connections of several workers share a pooled
// key pair (run with -race).
func TestDHCacheConcurrent(t *testing.T) {
	a, _ := GenerateKeyPair(TEPCurve25519, rand.Reader)
	var peers []*KeyPair
	for range 4 {
		p, _ := GenerateKeyPair(TEPCurve25519, rand.Reader)
		peers = append(peers, p)
	}
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 50 {
				p := peers[(w+i)%len(peers)]
				es, err := a.SharedSecret(p.PublicKey())
				want, _ := p.SharedSecret(a.PublicKey())
				if err != nil || !bytes.Equal(es, want) {
					t.Errorf("worker %d: ES %x, %v; want %x", w, es, err, want)
					return
				}
			}
		}()
	}
	wg.Wait()
}

// TestHybridRespondReusesParsedKey: B responding to the same Pub_A twice
// parses A's encapsulation key once, and still encapsulates afresh each
// time: two ciphertexts, two ML-KEM secrets, each of which A recovers.
func TestHybridRespondReusesParsedKey(t *testing.T) {
	a, _ := GenerateKeyPair(TEPX25519MLKEM768, rand.Reader)
	b, _ := GenerateKeyPair(TEPX25519MLKEM768, rand.Reader)
	var pubs, secrets [][]byte
	for range 2 {
		pubB, esB, err := b.Respond(a.PublicKey())
		if err != nil {
			t.Fatal(err)
		}
		esA, err := a.SharedSecret(pubB)
		if err != nil || !bytes.Equal(esA, esB) {
			t.Fatalf("A's ES %x (%v), B's %x", esA, err, esB)
		}
		pubs, secrets = append(pubs, pubB), append(secrets, esB)
	}
	if bytes.Equal(pubs[0], pubs[1]) || bytes.Equal(secrets[0][:32], secrets[1][:32]) {
		t.Fatal("two responses to the same Pub_A share their ciphertext or ML-KEM secret")
	}
	if !bytes.Equal(secrets[0][32:], secrets[1][32:]) {
		t.Fatal("the X25519 halves differ for the same two keys")
	}
	hk := (*b.key.get()).(*hybridKey)
	raw := a.PublicKey()[hybridIDLen : len(a.PublicKey())-hybridXLen]
	ek1, err1 := hk.eks.parse(raw)
	ek2, err2 := hk.eks.parse(raw)
	if err1 != nil || err2 != nil || ek1 != ek2 {
		t.Fatalf("the encapsulation key was parsed again (%p, %p, %v, %v)", ek1, ek2, err1, err2)
	}
	bad := bytes.Clone(a.PublicKey())
	for i := hybridIDLen; i < hybridIDLen+384; i++ {
		bad[i] = 0xff // coefficients >= q: FIPS 203 §7.2 rejects the key
	}
	for range 2 {
		if _, _, err := b.Respond(bad); err == nil {
			t.Fatal("an invalid encapsulation key was accepted")
		}
	}
}
