package endpoint

import (
	"bytes"
	"crypto/elliptic"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"

	"tcpcrypt-gw/crypto/tcpcrypt"
	"tcpcrypt-gw/eno"
)

// bigTransfer is the largest stream each way in TestTransferAllPairs.
func bigTransfer() int64 {
	if raceEnabled {
		return 2 << 20
	}
	return 16 << 20
}

// wantRekeys is how many rekeys a stream of n bytes makes with RekeyBytes
// r: one at every multiple of r that more data follows.
func wantRekeys(n, r int64) uint64 {
	if n == 0 {
		return 0
	}
	return uint64((n - 1) / r)
}

func isInit1(b []byte) bool {
	return len(b) >= 4 && binary.BigEndian.Uint32(b) == tcpcrypt.Init1Magic
}

// TestTransferAllPairs carries 0 B, 1 B, 64 KiB and 16 MiB both ways at
// once over loopback TCP for every TEP and AEAD, with random read and write
// sizes and rekeys every 1/16 of the largest stream.
func TestTransferAllPairs(t *testing.T) {
	big := bigTransfer()
	rekeyBytes := big / 16
	frameSizes := []int{0, 16 << 10, tcpcrypt.MaxFrameData} // 0: DefaultMaxFrame
	pair := 0
	for _, tep := range allTEPs {
		for _, aead := range allAEADs {
			maxFrame := frameSizes[pair%len(frameSizes)]
			seed := uint64(pair) << 8
			pair++
			t.Run(fmt.Sprintf("%v/%v", tep, aead), func(t *testing.T) {
				t.Parallel()
				for _, size := range []int64{0, 1, 64 << 10, big} {
					t.Run(strconv.FormatInt(size, 10), func(t *testing.T) {
						out := simulateENO(t, enoHost{teps: []tcpcrypt.TEP{tep}}, enoHost{teps: allTEPs})
						if out.tep != tep || out.resumeA != nil {
							t.Fatalf("ENO chose %v (resume %v), want %v", out.tep, out.resumeA != nil, tep)
						}
						cfgA, cfgB := configs(out, aead)
						cfgA.RekeyBytes, cfgB.RekeyBytes = rekeyBytes, rekeyBytes
						cfgA.MaxFrame, cfgB.MaxFrame = maxFrame, maxFrame
						rawA, rawB := tcpPair(t)
						wireA := &recordConn{TCPConn: rawA, limit: 8}
						a, b := handshakePair(t, wireA, rawB, cfgA, cfgB)

						if a.AEAD() != aead || b.AEAD() != aead || a.TEP() != tep || b.TEP() != tep {
							t.Fatalf("negotiated A %v/%v, B %v/%v; want %v/%v", a.TEP(), a.AEAD(), b.TEP(), b.AEAD(), tep, aead)
						}
						if a.Resumed() || b.Resumed() {
							t.Fatal("full handshake reports Resumed")
						}
						if !isInit1(wireA.firstBytes()) {
							t.Fatalf("A's stream does not start with Init1: %x", wireA.firstBytes())
						}
						checkSessionIDs(t, a, b, byte(tep))

						exchange(t, a, b, size, size, seed+uint64(size))

						// Each end rekeys at least every rekeyBytes of its
						// own data; it also answers the peer's rekeys (RFC
						// 8548 §3.8), so it may rekey more often. Every
						// rekey sent before the FIN frame is followed by
						// the peer.
						want := wantRekeys(size, rekeyBytes)
						if size == big && want < 2 {
							t.Fatalf("test bug: only %d rekeys in the big stream", want)
						}
						if a.RekeysSent() < want || b.RekeysSent() < want {
							t.Errorf("rekeys: A sent %d, B sent %d; want at least %d each", a.RekeysSent(), b.RekeysSent(), want)
						}
						if a.RekeysSent() != b.RekeysReceived() || b.RekeysSent() != a.RekeysReceived() {
							t.Errorf("rekeys: A sent %d, B received %d, B sent %d, A received %d",
								a.RekeysSent(), b.RekeysReceived(), b.RekeysSent(), a.RekeysReceived())
						}
						a.Close()
						b.Close()
					})
				}
			})
		}
	}
}

// checkSessionIDs checks that both ends have the same session ID, the TEP
// byte host B sent (first) followed by 32 bytes (RFC 8548 §3.4).
func checkSessionIDs(t testing.TB, a, b *Conn, first byte) {
	t.Helper()
	sa, sb := a.SessionID(), b.SessionID()
	if len(sa) != 1+tcpcrypt.KeyLen || sa[0] != first {
		t.Fatalf("session id %x: want the TEP byte %#02x and 32 bytes", sa, first)
	}
	if !bytes.Equal(sa, sb) {
		t.Fatalf("session ids differ: A %x, B %x", sa, sb)
	}
}

// resumeStep is one resumed connection of TestResume's chain.
type resumeStep struct {
	opener      eno.Role // the original role of the host that opens it (plays A now)
	openerNonce int      // resumption nonce lengths
	answerNonce int
}

// resumeSteps cover both role layouts, 8-byte and empty nonces, and nonces
// of different lengths at the two ends.
var resumeSteps = []resumeStep{
	{eno.RoleA, 8, 8},
	{eno.RoleB, 8, 8}, // role swap: the original B opens
	{eno.RoleA, 0, 0},
	{eno.RoleB, 0, 0},
	{eno.RoleB, 8, 0},
	{eno.RoleA, 0, 8},
}

// TestResume runs, for every TEP and AEAD, a full connection between host
// X (A) and host Y (B), then a chain of resumed ones (ss[1], ss[2], ...),
// opened in turn by X (the original A) and by Y (the original B, a role
// swap). Each end must send the half of resume[i] of its ORIGINAL role,
// use sn[i] = nonce_a | nonce_b (nonce_a being the original A's), get the
// session ID TEP|v=1 | CPRF(ss[i], CONST_SESSID | sn[i]) and seal with the
// traffic keys of its original role: k_ab for X, k_ba for Y (RFC 8548
// §3.3-§3.5).
func TestResume(t *testing.T) {
	for _, tep := range allTEPs {
		for _, aead := range allAEADs {
			t.Run(fmt.Sprintf("%v/%v", tep, aead), func(t *testing.T) {
				t.Parallel()
				cacheX, cacheY := NewCache(16, time.Minute), NewCache(16, time.Minute)
				hostX := enoHost{teps: []tcpcrypt.TEP{tep}, cache: cacheX, peer: "host-y"}
				hostY := enoHost{teps: allTEPs, cache: cacheY, peer: "host-x"}

				out := simulateENO(t, hostX, hostY)
				if out.offeredA || out.resumeA != nil {
					t.Fatal("resumption offered with an empty cache")
				}
				cfgA, cfgB := configs(out, aead)
				rawA, rawB := tcpPair(t)
				prevX, prevY := handshakePair(t, rawA, rawB, cfgA, cfgB)
				checkSessionIDs(t, prevX, prevY, byte(tep)) // fresh: v = 0
				if prevX.CacheEntry().OriginalRole != eno.RoleA || prevY.CacheEntry().OriginalRole != eno.RoleB {
					t.Fatalf("cache entries after the full handshake: X %v, Y %v", prevX.CacheEntry(), prevY.CacheEntry())
				}
				exchange(t, prevX, prevY, 10_000, 20_000, 1)
				prevX.Close()
				prevY.Close()

				for i, step := range resumeSteps {
					idx := uint32(i + 1)
					cacheX.Put(hostX.peer, prevX.CacheEntry())
					cacheY.Put(hostY.peer, prevY.CacheEntry())
					opener, answerer := hostX, hostY
					if step.opener == eno.RoleB {
						opener, answerer = hostY, hostX
					}
					opener.nonceLen, answerer.nonceLen = step.openerNonce, step.answerNonce
					name := fmt.Sprintf("connection %d (ss[%d], opened by the original %v, nonces %d/%d)",
						i+2, idx, step.opener, step.openerNonce, step.answerNonce)

					out := simulateENO(t, opener, answerer)
					if out.resumeA == nil {
						t.Fatalf("%s: not resumed", name)
					}
					if cacheX.Len() != 0 || cacheY.Len() != 0 {
						t.Fatalf("%s: cache entries left after resuming: X %d, Y %d", name, cacheX.Len(), cacheY.Len())
					}
					eA, eB := *out.resumeA, *out.resumeB
					if eA.OriginalRole != step.opener || eB.OriginalRole == step.opener {
						t.Fatalf("%s: entries originally %v (opener) and %v (answerer)", name, eA.OriginalRole, eB.OriginalRole)
					}
					for _, e := range []Entry{eA, eB} {
						if e.Secret.Index() != idx || e.TEP != tep || e.AEAD != aead {
							t.Fatalf("%s: resumed %v, want ss[%d] %v/%v", name, e, idx, tep, aead)
						}
					}
					if !sameSecret(eA, eB) {
						t.Fatalf("%s: the ends resumed different secrets", name)
					}

					// The suboptions: TEP | own half of resume[i] | nonce.
					id := eA.Secret.ResumeID()
					origA, origB := out.offer, out.answer // suboptions of the original A and B
					if step.opener == eno.RoleB {
						origA, origB = out.answer, out.offer
					}
					if !origA.HasData || !bytes.Equal(origA.Data[:9], id[0:9]) || len(origA.Data) > 17 {
						t.Fatalf("%s: the original A sent %x, want resume[i]{0..8} = %x | nonce", name, origA.Data, id[0:9])
					}
					if !origB.HasData || !bytes.Equal(origB.Data[:9], id[9:18]) || len(origB.Data) > 17 {
						t.Fatalf("%s: the original B sent %x, want resume[i]{9..17} = %x | nonce", name, origB.Data, id[9:18])
					}
					if len(out.offer.Data) != 9+step.openerNonce || len(out.answer.Data) != 9+step.answerNonce {
						t.Fatalf("%s: suboption data of %d and %d bytes", name, len(out.offer.Data), len(out.answer.Data))
					}
					sn := append(slices.Clone(origA.Data[9:]), origB.Data[9:]...) // nonce_a | nonce_b
					if !bytes.Equal(out.snA, sn) || !bytes.Equal(out.snB, sn) {
						t.Fatalf("%s: sn[i] is %x at A and %x at B, want nonce_a | nonce_b = %x", name, out.snA, out.snB, sn)
					}

					cfgA, cfgB := configs(out, aead)
					rawA, rawB := tcpPair(t)
					wireA := &recordConn{TCPConn: rawA, limit: 4096}
					wireB := &recordConn{TCPConn: rawB, limit: 4096}
					a, b := handshakePair(t, wireA, wireB, cfgA, cfgB)
					if !a.Resumed() || !b.Resumed() || a.AEAD() != aead || b.AEAD() != aead || a.Role() != eno.RoleA || b.Role() != eno.RoleB {
						t.Fatalf("%s: resumed = %v/%v, AEAD %v/%v, roles %v/%v", name, a.Resumed(), b.Resumed(), a.AEAD(), b.AEAD(), a.Role(), b.Role())
					}
					x, y, wireX, wireY := a, b, wireA, wireB
					if step.opener == eno.RoleB {
						x, y, wireX, wireY = b, a, wireB, wireA
					}
					checkSessionIDs(t, a, b, byte(tep)|0x80)
					if want := eA.Secret.SessionID(byte(tep)|0x80, sn); !bytes.Equal(a.SessionID(), want) {
						t.Fatalf("%s: session id %x, want TEP|v=1 | CPRF(ss[i], CONST_SESSID | sn[i]) = %x", name, a.SessionID(), want)
					}
					if bytes.Equal(a.SessionID(), prevX.SessionID()) || bytes.Equal(x.next.Bytes(), prevX.next.Bytes()) {
						t.Fatalf("%s: resumed session reuses the previous session's secret", name)
					}
					if x.CacheEntry().OriginalRole != eno.RoleA || y.CacheEntry().OriginalRole != eno.RoleB {
						t.Fatalf("%s: original roles not kept: X %v, Y %v", name, x.CacheEntry(), y.CacheEntry())
					}

					exchange(t, a, b, 3000, 5000, uint64(i)<<4)

					// No Init messages: each stream starts with frames at
					// offset 0, X's under k_ab and Y's under k_ba of mk[0]
					// = CPRF(ss[i], CONST_REKEY | sn[i]), whoever opened.
					mk := eA.Secret.MasterKey(sn)
					for _, w := range []struct {
						host       string
						wire       []byte
						keys, not  tcpcrypt.TrafficKeys
						keysString string
					}{
						{"X", wireX.firstBytes(), tcpcrypt.KeysAB, tcpcrypt.KeysBA, "k_ab"},
						{"Y", wireY.firstBytes(), tcpcrypt.KeysBA, tcpcrypt.KeysAB, "k_ba"},
					} {
						if isInit1(w.wire) {
							t.Fatalf("%s: %s sent Init1 in a resumed session", name, w.host)
						}
						if n, err := openFrames(w.wire, 0, aead, mk, w.keys); n < 2 || err != nil {
							t.Fatalf("%s: %s's frames under %s: %d opened, %v", name, w.host, w.keysString, n, err)
						}
						if n, _ := openFrames(w.wire, 0, aead, mk, w.not); n != 0 {
							t.Fatalf("%s: %s's first frame opens under the keys of its current role's peer", name, w.host)
						}
						if len(sn) > 0 {
							if n, _ := openFrames(w.wire, 0, aead, eA.Secret.MasterKey(nil), w.keys); n != 0 {
								t.Fatalf("%s: %s's first frame opens without the session nonce", name, w.host)
							}
						}
					}
					a.Close()
					b.Close()
					prevX, prevY = x, y
				}
			})
		}
	}
}

// TestResumeCacheMiss: A offers a cached secret that B does not hold (B
// forgot it, holds another, or holds the same secret but as the original A
// too, so that A's half is not the half B expects from its peer); B falls
// back to the ordinary TEP and both run a full handshake.
func TestResumeCacheMiss(t *testing.T) {
	tep, aead := tcpcrypt.TEPCurve25519, tcpcrypt.ChaCha20Poly1305
	for _, bHolds := range []string{"nothing", "another secret", "the secret as original A"} {
		t.Run(bHolds, func(t *testing.T) {
			cacheA, cacheB := NewCache(16, time.Minute), NewCache(16, time.Minute)
			cacheA.Put("127.0.0.1", testEntry("cached-at-A"))
			switch bHolds {
			case "another secret":
				cacheB.Put("127.0.0.1", testEntry("cached-at-B"))
			case "the secret as original A":
				cacheB.Put("127.0.0.1", testEntry("cached-at-A"))
			}
			out := simulateENO(t,
				enoHost{teps: []tcpcrypt.TEP{tep}, cache: cacheA, peer: "127.0.0.1", nonceLen: 8},
				enoHost{teps: allTEPs, cache: cacheB, peer: "127.0.0.1", nonceLen: 8})
			if !out.offeredA {
				t.Fatal("A did not offer resumption")
			}
			if out.resumeA != nil || out.resumeB != nil || out.tep != tep || out.answer.HasData {
				t.Fatalf("cache miss resumed anyway (tep %v, answer %+v)", out.tep, out.answer)
			}
			cfgA, cfgB := configs(out, aead)
			rawA, rawB := tcpPair(t)
			wireA := &recordConn{TCPConn: rawA, limit: 8}
			a, b := handshakePair(t, wireA, rawB, cfgA, cfgB)
			if a.Resumed() || b.Resumed() || !isInit1(wireA.firstBytes()) {
				t.Fatalf("fallback is no full handshake: resumed %v/%v, wire %x", a.Resumed(), b.Resumed(), wireA.firstBytes())
			}
			checkSessionIDs(t, a, b, byte(tep))
			exchange(t, a, b, 1000, 1000, 7)
		})
	}
}

// TestResumeShortOfferIsFresh: a suboption with v = 1 but fewer than 9
// bytes of data is an offer of fresh key exchange with that TEP (RFC 8548
// §3.5): B answers with v = 0 and both run a full handshake; the cached
// entry B holds is not spent.
func TestResumeShortOfferIsFresh(t *testing.T) {
	tep, aead := tcpcrypt.TEPCurve448, tcpcrypt.AES128GCM
	e := testEntry("short offer")
	e.TEP, e.OriginalRole = tep, eno.RoleB // B's entry; A was the original A
	for _, n := range []int{0, 1, 8} {
		t.Run(strconv.Itoa(n), func(t *testing.T) {
			cacheB := NewCache(16, time.Minute)
			cacheB.Put("peer", e)
			id := e.Secret.ResumeID()
			short := eno.Suboption{TEP: byte(tep), Data: slices.Clone(id[:n]), HasData: true}
			if _, _, ok := AcceptResume(cacheB, "peer", short); ok {
				t.Fatalf("%d bytes of data accepted as a resumption", n)
			}
			if cacheB.Len() != 1 {
				t.Fatal("a short offer spent the cached entry")
			}

			// The whole exchange, A sending only the short suboption.
			offer := eno.Offer([]eno.Suboption{short})
			aOpt, err := eno.AppendSYNOption(nil, offer)
			if err != nil {
				t.Fatal(err)
			}
			seen, err := eno.ParseSYNOption(aOpt)
			if err != nil {
				t.Fatal(err)
			}
			chosen, ok := eno.Choose(seen, func(s eno.Suboption) bool {
				if s.HasData && len(s.Data) >= resumeHalfLen {
					_, _, ok := AcceptResume(cacheB, "peer", s)
					return ok
				}
				return slices.Contains(allTEPs, tcpcrypt.TEP(s.TEP))
			})
			if !ok || chosen.TEP != byte(tep) {
				t.Fatalf("B chose %+v, %v", chosen, ok)
			}
			bOpt, err := eno.AppendSYNOption(nil, eno.Answer(eno.Suboption{TEP: chosen.TEP}))
			if err != nil {
				t.Fatal(err)
			}
			answer, err := eno.ParseSYNOption(bOpt)
			if err != nil {
				t.Fatal(err)
			}
			got, err := eno.Negotiated(offer, answer, nil)
			if err != nil || got.HasData || got.TEP != byte(tep) {
				t.Fatalf("A negotiated %+v, %v; want %v without data", got, err, tep)
			}
			if cacheB.Len() != 1 {
				t.Fatal("the negotiation spent the cached entry")
			}
			out := enoOutcome{tep: tep, transcript: eno.Transcript(aOpt, bOpt)}
			cfgA, cfgB := configs(out, aead)
			rawA, rawB := tcpPair(t)
			wireA := &recordConn{TCPConn: rawA, limit: 8}
			a, b := handshakePair(t, wireA, rawB, cfgA, cfgB)
			if a.Resumed() || b.Resumed() || !isInit1(wireA.firstBytes()) {
				t.Fatalf("not a full handshake: resumed %v/%v", a.Resumed(), b.Resumed())
			}
			checkSessionIDs(t, a, b, byte(tep))
			exchange(t, a, b, 100, 100, 9)
		})
	}
}

// TestResumeSuboptions: OfferResume and AnswerResume send TEP | v=1 | the
// half of resume[i] of the host's original role | its nonce (RFC 8548
// §3.5 Figures 2 and 3), whatever role the host plays now.
func TestResumeSuboptions(t *testing.T) {
	for _, orig := range []eno.Role{eno.RoleA, eno.RoleB} {
		e := testEntry("suboptions")
		e.OriginalRole = orig
		id := e.Secret.ResumeID()
		half := id[0:9]
		if orig == eno.RoleB {
			half = id[9:18]
		}
		for _, nonce := range [][]byte{nil, {1}, []byte("12345678")} {
			for name, s := range map[string]eno.Suboption{"offer": OfferResume(e, nonce), "answer": AnswerResume(e, nonce)} {
				want := append(slices.Clone(half), nonce...)
				if s.TEP != byte(e.TEP) || !s.HasData || !bytes.Equal(s.Data, want) {
					t.Errorf("originally %v, %s with nonce %x: %+v, want TEP %v data %x", orig, name, nonce, s, e.TEP, want)
				}
			}
		}
	}
	for _, n := range []int{-1, 0, 3, 8, 9, 100} {
		if got, want := len(NewResumeNonce(n)), min(max(n, 0), 8); got != want {
			t.Errorf("NewResumeNonce(%d) has %d bytes, want %d", n, got, want)
		}
	}
	if bytes.Equal(NewResumeNonce(8), NewResumeNonce(8)) {
		t.Error("two 8-byte resumption nonces are equal: not random")
	}
}

// TestSessionNonce: sn[i] = nonce_a | nonce_b, nonce_a being the nonce of
// the host that was A in the original session, whichever end computes it
// and whichever role it plays now (RFC 8548 §3.5).
func TestSessionNonce(t *testing.T) {
	na, nb := []byte("nonce-A!"), []byte("nonceB")
	eA, eB := testEntry("sn"), testEntry("sn")
	eB.OriginalRole = eno.RoleB
	if got := SessionNonce(eA, na, nb); !bytes.Equal(got, []byte("nonce-A!nonceB")) {
		t.Errorf("original A (own nonce first): %q", got)
	}
	if got := SessionNonce(eB, nb, na); !bytes.Equal(got, []byte("nonce-A!nonceB")) {
		t.Errorf("original B (peer's nonce first): %q", got)
	}
	if got := SessionNonce(eA, nil, nil); len(got) != 0 {
		t.Errorf("empty nonces: %x", got)
	}
	if got := SessionNonce(eB, nil, na); !bytes.Equal(got, na) {
		t.Errorf("original B with an empty nonce: %q", got)
	}
	// The result does not alias the inputs.
	own := []byte("own")
	got := SessionNonce(eA, own, nil)
	got[0] = 'X'
	if own[0] != 'o' {
		t.Error("SessionNonce aliases its input")
	}
}

// TestResumeAnswerChecked: the active opener accepts the passive opener's
// resumption answer only with the other half of resume[i] (that of the
// peer's original role) under the same TEP and with 9..17 bytes of data; a
// forged answer is ignored (RFC 8548 §3.5), which makes negotiation fail.
// The peer's nonce comes back.
func TestResumeAnswerChecked(t *testing.T) {
	for _, orig := range []eno.Role{eno.RoleA, eno.RoleB} {
		t.Run("opener originally "+orig.String(), func(t *testing.T) {
			e := testEntry("answer")
			e.OriginalRole = orig
			peer := e
			peer.OriginalRole = eno.RoleA + eno.RoleB - orig
			nonce := []byte("peernonc")
			offer := eno.Offer([]eno.Suboption{OfferResume(e, []byte("mynonce")), {TEP: byte(tcpcrypt.TEPCurve448)}})
			good := AnswerResume(peer, nonce)
			var gotNonce []byte
			accept := func(offered, answered eno.Suboption) bool {
				if !offered.HasData {
					return false
				}
				n, ok := ResumeAnswerMatches(e, answered)
				gotNonce = n
				return ok
			}
			if got, err := eno.Negotiated(offer, eno.Answer(good), accept); err != nil || !got.HasData {
				t.Fatalf("good answer rejected: %v", err)
			}
			if !bytes.Equal(gotNonce, nonce) {
				t.Fatalf("peer nonce %x, want %x", gotNonce, nonce)
			}
			if n, ok := ResumeAnswerMatches(e, AnswerResume(peer, nil)); !ok || len(n) != 0 {
				t.Fatalf("answer with an empty nonce: %x, %v", n, ok)
			}
			for i := range 9 {
				bad := AnswerResume(peer, nonce)
				bad.Data[i] ^= 0x80
				if _, ok := ResumeAnswerMatches(e, bad); ok {
					t.Fatalf("answer with byte %d of the half flipped accepted", i)
				}
				if _, err := eno.Negotiated(offer, eno.Answer(bad), accept); err == nil {
					t.Fatal("forged resumption answer accepted")
				}
			}
			// The opener's own half echoed back is no proof that the peer
			// holds the secret.
			if _, ok := ResumeAnswerMatches(e, OfferResume(e, nonce)); ok {
				t.Fatal("own half accepted as the peer's answer")
			}
			other := AnswerResume(peer, nonce)
			other.TEP = byte(tcpcrypt.TEPP256)
			if _, ok := ResumeAnswerMatches(e, other); ok {
				t.Fatal("answer under another TEP accepted")
			}
			long := AnswerResume(peer, []byte("123456789")) // 18 bytes of data
			if _, ok := ResumeAnswerMatches(e, long); ok {
				t.Fatal("answer with a 9-byte nonce accepted")
			}
			short := AnswerResume(peer, nil)
			short.Data = short.Data[:8]
			if _, ok := ResumeAnswerMatches(e, short); ok {
				t.Fatal("answer with 8 bytes of data accepted")
			}
		})
	}
}

// TestAcceptResume: the passive opener resumes an offered secret only if
// the offered half is the one its peer's original role sends, with 9..17
// bytes of data; a matching entry is taken out of the cache (spent)
// exactly once, and the peer's nonce comes back.
func TestAcceptResume(t *testing.T) {
	for _, orig := range []eno.Role{eno.RoleA, eno.RoleB} {
		t.Run("passive opener originally "+orig.String(), func(t *testing.T) {
			held := testEntry("accept")
			held.OriginalRole = orig
			offerer := held
			offerer.OriginalRole = eno.RoleA + eno.RoleB - orig
			nonce := []byte("ABCDEFGH")

			c := NewCache(4, time.Minute)
			c.Put("p", held)
			if _, _, ok := AcceptResume(c, "p", OfferResume(held, nonce)); ok {
				t.Fatal("the holder's own half accepted")
			}
			if _, _, ok := AcceptResume(c, "q", OfferResume(offerer, nonce)); ok {
				t.Fatal("offer from another peer accepted")
			}
			short := OfferResume(offerer, nil)
			short.Data = short.Data[:8]
			if _, _, ok := AcceptResume(c, "p", short); ok {
				t.Fatal("8 bytes of data accepted as a resumption")
			}
			long := OfferResume(offerer, []byte("123456789"))
			if _, _, ok := AcceptResume(c, "p", long); ok {
				t.Fatal("18 bytes of data accepted as a resumption")
			}
			if c.Len() != 1 {
				t.Fatalf("a rejected offer spent the entry: Len %d", c.Len())
			}
			got, gotNonce, ok := AcceptResume(c, "p", OfferResume(offerer, nonce))
			if !ok || !sameSecret(got, held) || got.OriginalRole != orig || !bytes.Equal(gotNonce, nonce) {
				t.Fatalf("right offer: %v, nonce %x, %v", got, gotNonce, ok)
			}
			if c.Len() != 0 {
				t.Fatal("the resumed entry is still cached")
			}
			if _, _, ok := AcceptResume(c, "p", OfferResume(offerer, nonce)); ok {
				t.Fatal("the same secret resumed twice")
			}
			// An empty nonce is valid: exactly 9 bytes of data.
			c.Put("p", held)
			if _, n, ok := AcceptResume(c, "p", OfferResume(offerer, nil)); !ok || len(n) != 0 {
				t.Fatalf("offer with an empty nonce: %x, %v", n, ok)
			}
		})
	}
}

// TestAcceptResumeWrongTEP: B does not resume a secret that A offers under
// another TEP than it was cached with, and the entry is spent anyway.
func TestAcceptResumeWrongTEP(t *testing.T) {
	c := NewCache(4, time.Minute)
	e := testEntry("tep") // cached under curve25519, originally A
	offerer := e
	offerer.OriginalRole = eno.RoleB
	c.Put("p", e)
	off := OfferResume(offerer, nil)
	off.TEP = byte(tcpcrypt.TEPP256)
	if _, _, ok := AcceptResume(c, "p", off); ok {
		t.Fatal("resumed under the wrong TEP")
	}
	if c.Len() != 0 {
		t.Fatal("an entry offered under the wrong TEP stays usable")
	}
	c.Put("p", e)
	if got, _, ok := AcceptResume(c, "p", OfferResume(offerer, nil)); !ok || !sameSecret(got, e) {
		t.Fatal("right offer not accepted")
	}
}

// flipPositions are the byte/bit positions of the first frame (1000 bytes
// of data: 1020 on the wire) whose flip is tested: every bit of the header
// (control, clen), the flags byte, data, and tag.
func flipPositions() [][2]int {
	const frameLen = 1000 + tcpcrypt.FrameOverhead
	var ps [][2]int
	for j := range tcpcrypt.FrameHeaderLen {
		for k := range 8 {
			ps = append(ps, [2]int{j, k})
		}
	}
	for _, j := range []int{3, 4, 500, frameLen - tcpcrypt.TagLen - 1, frameLen - tcpcrypt.TagLen, frameLen - 8, frameLen - 1} {
		for _, k := range []int{0, 3, 7} {
			ps = append(ps, [2]int{j, k})
		}
	}
	return ps
}

// TestBitFlip flips one bit of the first frame after the handshake on the
// wire: the receiver must report ErrAuth and deliver none of its data.
func TestBitFlip(t *testing.T) {
	tep := tcpcrypt.TEPCurve25519
	first := bytes.Repeat([]byte("first frame "), 100)[:1000]
	rest := make([]byte, 100<<10) // enough that a clen grown by a flip is filled
	for _, aead := range allAEADs {
		t.Run(aead.String(), func(t *testing.T) {
			t.Parallel()
			init1Len := (&tcpcrypt.Init1{Ciphers: []tcpcrypt.AEADID{aead}, PublicKey: make([]byte, tep.PublicKeyLen())}).Len()
			for _, p := range flipPositions() {
				t.Run(fmt.Sprintf("byte%d/bit%d", p[0], p[1]), func(t *testing.T) {
					out := simulateENO(t, enoHost{teps: []tcpcrypt.TEP{tep}}, enoHost{teps: allTEPs})
					cfgA, cfgB := configs(out, aead)
					cfgA.Ciphers = []tcpcrypt.AEADID{aead}
					cfgA.MaxFrame = len(first)
					rawA, rawB := tcpPair(t)
					wire := &flipConn{TCPConn: rawA, pos: int64(init1Len + p[0]), bit: uint(p[1])}
					a, b := handshakePair(t, wire, rawB, cfgA, cfgB)

					sent := make(chan struct{})
					go func() {
						defer close(sent)
						if _, err := a.Write(first); err != nil {
							return
						}
						if _, err := a.Write(rest); err != nil {
							return
						}
						a.CloseWrite()
					}()
					got, err := readAll(b)
					if !errors.Is(err, ErrAuth) {
						t.Fatalf("receiver error %v, want ErrAuth", err)
					}
					if len(got) != 0 {
						t.Fatalf("receiver delivered %d bytes of a corrupted frame", len(got))
					}
					if _, err := b.Read(make([]byte, 10)); !errors.Is(err, ErrAuth) {
						t.Fatalf("second Read: %v, want ErrAuth again", err)
					}
					<-sent
					if _, err := readAll(a); err == nil || errors.Is(err, io.EOF) {
						t.Fatalf("sender's Read after the receiver's abort: %v, want an error", err)
					}
				})
			}
		})
	}
}

// TestAuthFailureResets: the receiver of a corrupted frame resets the TCP
// connection, so the sender sees ECONNRESET rather than an orderly end.
func TestAuthFailureResets(t *testing.T) {
	tep, aead := tcpcrypt.TEPCurve25519, tcpcrypt.AES128GCM
	out := simulateENO(t, enoHost{teps: []tcpcrypt.TEP{tep}}, enoHost{teps: allTEPs})
	cfgA, cfgB := configs(out, aead)
	cfgA.Ciphers = []tcpcrypt.AEADID{aead}
	init1Len := (&tcpcrypt.Init1{Ciphers: cfgA.Ciphers, PublicKey: make([]byte, tep.PublicKeyLen())}).Len()
	rawA, rawB := tcpPair(t)
	// Flip the last tag byte of a 100-byte frame.
	wire := &flipConn{TCPConn: rawA, pos: int64(init1Len + 100 + tcpcrypt.FrameOverhead - 1), bit: 2}
	a, b := handshakePair(t, wire, rawB, cfgA, cfgB)
	if _, err := a.Write(make([]byte, 100)); err != nil {
		t.Fatal(err)
	}
	if _, err := readAll(b); !errors.Is(err, ErrAuth) {
		t.Fatalf("receiver: %v, want ErrAuth", err)
	}
	if _, err := readAll(a); !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("sender: %v, want ECONNRESET", err)
	}
}

// TestTruncation: a stream that ends without a FIN frame, at a frame
// boundary or inside a frame, gives ErrTruncated after the whole frames,
// never io.EOF.
func TestTruncation(t *testing.T) {
	tep, aead := tcpcrypt.TEPCurve448, tcpcrypt.AES256GCM
	data := make([]byte, 5000)
	for i := range data {
		data[i] = byte(i * 7)
	}
	const frame = 1000
	init1Len := (&tcpcrypt.Init1{Ciphers: []tcpcrypt.AEADID{aead}, PublicKey: make([]byte, tep.PublicKeyLen())}).Len()
	for _, tc := range []struct {
		name   string
		cutAt  int64 // stream bytes that get through; -1: all of the data frames
		wantOK int   // plaintext bytes delivered before the error
	}{
		{"no FIN frame", -1, len(data)},
		{"inside a header", int64(init1Len + 2*(frame+tcpcrypt.FrameOverhead) + 2), 2 * frame},
		{"inside a frame", int64(init1Len + 3*(frame+tcpcrypt.FrameOverhead) + 500), 3 * frame},
		{"before any frame", int64(init1Len), 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := simulateENO(t, enoHost{teps: []tcpcrypt.TEP{tep}}, enoHost{teps: allTEPs})
			cfgA, cfgB := configs(out, aead)
			cfgA.Ciphers = []tcpcrypt.AEADID{aead}
			cfgA.MaxFrame = frame
			rawA, rawB := tcpPair(t)
			var connA net.Conn = rawA
			if tc.cutAt >= 0 {
				connA = &cutConn{TCPConn: rawA, limit: tc.cutAt}
			}
			a, b := handshakePair(t, connA, rawB, cfgA, cfgB)
			if _, err := a.Write(data); err != nil {
				t.Fatal(err)
			}
			rawA.CloseWrite() // a TCP FIN with no FIN frame
			got, err := readAll(b)
			if !errors.Is(err, ErrTruncated) {
				t.Fatalf("Read error %v, want ErrTruncated", err)
			}
			if !bytes.Equal(got, data[:tc.wantOK]) {
				t.Fatalf("delivered %d bytes, want the first %d sent", len(got), tc.wantOK)
			}
			if _, err := b.Read(make([]byte, 1)); !errors.Is(err, ErrTruncated) {
				t.Fatalf("second Read: %v, want ErrTruncated again", err)
			}
		})
	}
}

// TestCloseSendsFIN: Close without CloseWrite still ends the stream with a
// FIN frame, so the peer sees io.EOF after all the data.
func TestCloseSendsFIN(t *testing.T) {
	out := simulateENO(t, enoHost{teps: allTEPs}, enoHost{teps: allTEPs})
	cfgA, cfgB := configs(out, tcpcrypt.AES128GCM)
	rawA, rawB := tcpPair(t)
	a, b := handshakePair(t, rawA, rawB, cfgA, cfgB)
	msg := []byte("last words")
	if _, err := a.Write(msg); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	got, err := readAll(b)
	if err != io.EOF || !bytes.Equal(got, msg) {
		t.Fatalf("got %q, %v; want %q, io.EOF", got, err, msg)
	}
	if _, err := a.Write(msg); err == nil {
		t.Fatal("Write after Close succeeded")
	}
}

// TestWriteAfterCloseWrite: the own direction stays closed; the other one
// still works.
func TestWriteAfterCloseWrite(t *testing.T) {
	out := simulateENO(t, enoHost{teps: allTEPs}, enoHost{teps: allTEPs})
	cfgA, cfgB := configs(out, tcpcrypt.ChaCha20Poly1305)
	rawA, rawB := tcpPair(t)
	a, b := handshakePair(t, rawA, rawB, cfgA, cfgB)
	if err := a.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Write([]byte("x")); err == nil {
		t.Fatal("Write after CloseWrite succeeded")
	}
	if err := a.Rekey(); err == nil {
		t.Fatal("Rekey after CloseWrite succeeded")
	}
	if got, err := readAll(b); err != io.EOF || len(got) != 0 {
		t.Fatalf("B read %q, %v; want io.EOF", got, err)
	}
	if _, err := b.Write([]byte("reply")); err != nil {
		t.Fatal(err)
	}
	b.CloseWrite()
	if got, err := readAll(a); err != io.EOF || string(got) != "reply" {
		t.Fatalf("A read %q, %v", got, err)
	}
}

// TestManualRekey: Rekey takes effect at the next frame; several calls
// before it make one rekey, which the peer follows.
func TestManualRekey(t *testing.T) {
	out := simulateENO(t, enoHost{teps: allTEPs}, enoHost{teps: allTEPs})
	cfgA, cfgB := configs(out, tcpcrypt.AES256GCM)
	rawA, rawB := tcpPair(t)
	a, b := handshakePair(t, rawA, rawB, cfgA, cfgB)
	var sent []byte
	write := func(s string) {
		t.Helper()
		sent = append(sent, s...)
		if _, err := a.Write([]byte(s)); err != nil {
			t.Fatal(err)
		}
	}
	write("gen0 ")
	for range 3 {
		if err := a.Rekey(); err != nil {
			t.Fatal(err)
		}
	}
	write("gen1 ")
	a.Rekey()
	write("gen2 ")
	a.Rekey()
	a.CloseWrite() // the FIN frame carries the last rekey
	got, err := readAll(b)
	if err != io.EOF || !bytes.Equal(got, sent) {
		t.Fatalf("got %q, %v; want %q, io.EOF", got, err, sent)
	}
	if a.RekeysSent() != 3 || b.RekeysReceived() != 3 {
		t.Fatalf("A sent %d rekeys, B followed %d; want 3", a.RekeysSent(), b.RekeysReceived())
	}
	// B, which has sent no FIN, answers each of A's rekeys with a frame of
	// its own (RFC 8548 §3.8), the one carried by A's FIN frame included;
	// A follows all three.
	if !waitFor(5*time.Second, func() bool { return b.RekeysSent() == 3 }) {
		t.Fatalf("B answered %d of A's 3 rekeys", b.RekeysSent())
	}
	b.CloseWrite()
	if got, err := readAll(a); err != io.EOF || len(got) != 0 {
		t.Fatalf("A read %q, %v; want io.EOF", got, err)
	}
	if a.RekeysReceived() != 3 {
		t.Fatalf("A followed %d of B's rekey answers, want 3", a.RekeysReceived())
	}
}

// TestReadDeadline: a read deadline is an ordinary, recoverable error.
func TestReadDeadline(t *testing.T) {
	out := simulateENO(t, enoHost{teps: allTEPs}, enoHost{teps: allTEPs})
	cfgA, cfgB := configs(out, tcpcrypt.AES128GCM)
	rawA, rawB := tcpPair(t)
	a, b := handshakePair(t, rawA, rawB, cfgA, cfgB)
	b.SetReadDeadline(time.Now().Add(-time.Second))
	if _, err := b.Read(make([]byte, 10)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Read past the deadline: %v", err)
	}
	b.SetReadDeadline(time.Now().Add(testTimeout))
	a.Write([]byte("after the deadline"))
	a.CloseWrite()
	if got, err := readAll(b); err != io.EOF || string(got) != "after the deadline" {
		t.Fatalf("got %q, %v", got, err)
	}
}

// rawPeer runs Handshake at one end of a TCP connection while the test
// plays the other end by hand.
type rawPeer struct {
	conn *net.TCPConn // the test's end
	done chan error   // Handshake's error
}

func startHandshake(t *testing.T, cfg Config) rawPeer {
	t.Helper()
	rawA, rawB := tcpPair(t)
	own, peer := rawB, rawA
	if cfg.Role == eno.RoleA {
		own, peer = rawA, rawB
	}
	done := make(chan error, 1)
	go func() {
		c, err := Handshake(own, cfg)
		if c != nil {
			c.Close()
		}
		done <- err
	}()
	return rawPeer{conn: peer, done: done}
}

// wantHandshakeAbort checks that the handshake failed on the peer's bytes
// (not by waiting for a deadline) and that the connection was reset.
func (p rawPeer) wantHandshakeAbort(t *testing.T) {
	t.Helper()
	err := <-p.done
	if !errors.Is(err, ErrHandshake) || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Handshake error %v, want ErrHandshake", err)
	}
	buf := make([]byte, 1<<16)
	for range 100 {
		_, rerr := p.conn.Read(buf)
		if rerr == nil {
			continue // bytes sent before the abort (Init1)
		}
		if !errors.Is(rerr, syscall.ECONNRESET) {
			t.Fatalf("peer read %v, want a reset", rerr)
		}
		return
	}
	t.Fatal("peer kept receiving data")
}

func validInit1(t *testing.T, tep tcpcrypt.TEP, ciphers ...tcpcrypt.AEADID) []byte {
	t.Helper()
	kp, err := testKeys.Get(tep)
	if err != nil {
		t.Fatal(err)
	}
	return (&tcpcrypt.Init1{Ciphers: ciphers, PublicKey: kp.PublicKey()}).Append(nil)
}

func validInit2(t *testing.T, tep tcpcrypt.TEP, cipher tcpcrypt.AEADID) []byte {
	t.Helper()
	kp, err := testKeys.Get(tep)
	if err != nil {
		t.Fatal(err)
	}
	return (&tcpcrypt.Init2{Cipher: cipher, PublicKey: kp.PublicKey()}).Append(nil)
}

func withLen(msg []byte, n uint32) []byte {
	msg = slices.Clone(msg)
	binary.BigEndian.PutUint32(msg[4:], n)
	return msg
}

// TestBadInit1: B aborts (RST) on an Init1 it cannot accept, as soon as it
// can tell, without waiting for more bytes.
func TestBadInit1(t *testing.T) {
	tep := tcpcrypt.TEPCurve25519
	good := validInit1(t, tep, tcpcrypt.AES128GCM)
	badMagic := slices.Clone(good)
	binary.BigEndian.PutUint32(badMagic, tcpcrypt.Init2Magic)
	zeroKey := slices.Clone(good)
	clear(zeroKey[len(zeroKey)-32:]) // X25519 low-order point: all-zero ES
	for _, tc := range []struct {
		name     string
		send     []byte
		closeAft bool
	}{
		{"wrong magic", badMagic, false},
		{"absurd length", withLen(good[:8], 0xffffffff), false},
		{"length above MaxInitLen", withLen(good[:8], tcpcrypt.MaxInitLen+1), false},
		{"length below minimum", withLen(good[:8], 9), false},
		{"truncated", good[:40], true},
		{"no acceptable cipher", validInit1(t, tep, 0x7e), false},
		{"all-zero public key", zeroKey, false},
		{"empty stream", nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := startHandshake(t, Config{Role: eno.RoleB, TEP: tep, Ciphers: allAEADs, Keys: testKeys})
			if _, err := p.conn.Write(tc.send); err != nil {
				t.Fatal(err)
			}
			if tc.closeAft {
				p.conn.CloseWrite()
			}
			p.wantHandshakeAbort(t)
		})
	}
}

// TestBadInit2: A aborts on an Init2 it cannot accept.
func TestBadInit2(t *testing.T) {
	tep := tcpcrypt.TEPP256
	good := validInit2(t, tep, tcpcrypt.AES128GCM)
	badMagic := slices.Clone(good)
	binary.BigEndian.PutUint32(badMagic, tcpcrypt.Init1Magic)
	pkLen := tep.PublicKeyLen() // pubkey_len[2] | 02/03 | X[32]
	offPoint := slices.Clone(good)
	copy(offPoint[len(good)-pkLen+2:], offCurveP256(t))
	badPrefix := slices.Clone(good)
	badPrefix[len(good)-pkLen+2] = 0x04 // uncompressed tag on 33 bytes
	badLenField := slices.Clone(good)
	binary.BigEndian.PutUint16(badLenField[len(good)-pkLen:], 34)
	unknown := slices.Clone(good)
	binary.BigEndian.PutUint16(unknown[8:], 0x7e7e) // sym_cipher, 2 bytes
	for _, tc := range []struct {
		name string
		send []byte
	}{
		{"wrong magic", badMagic},
		{"absurd length", withLen(good[:8], 0x7fffffff)},
		{"cipher not offered", validInit2(t, tep, tcpcrypt.ChaCha20Poly1305)},
		{"unknown cipher", unknown},
		{"point not on curve", offPoint},
		{"point not compressed", badPrefix},
		{"wrong pubkey_len", badLenField},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := startHandshake(t, Config{Role: eno.RoleA, TEP: tep, Ciphers: []tcpcrypt.AEADID{tcpcrypt.AES128GCM}, Keys: testKeys})
			if _, err := p.conn.Write(tc.send); err != nil {
				t.Fatal(err)
			}
			p.wantHandshakeAbort(t)
		})
	}
}

// offCurveP256 is a compressed P-256 point (02 | X) whose X is no point's
// x-coordinate: x^3 - 3x + b is not a square mod p. It is the smallest such
// X, so the test is deterministic.
func offCurveP256(t *testing.T) []byte {
	t.Helper()
	params := elliptic.P256().Params()
	for x := int64(1); x < 1000; x++ {
		bx := big.NewInt(x)
		rhs := new(big.Int).Exp(bx, big.NewInt(3), params.P)
		rhs.Sub(rhs, new(big.Int).Mul(bx, big.NewInt(3)))
		rhs.Add(rhs, params.B)
		rhs.Mod(rhs, params.P)
		if new(big.Int).ModSqrt(rhs, params.P) == nil {
			out := make([]byte, 33)
			out[0] = 2
			bx.FillBytes(out[1:])
			return out
		}
	}
	t.Fatal("no X off the curve below 1000")
	return nil
}

// TestTranscriptBinding: ends that saw different ENO transcripts (an
// attacker rewrote the SYN options) get different keys: the first frame
// fails authentication.
func TestTranscriptBinding(t *testing.T) {
	out := simulateENO(t, enoHost{teps: allTEPs}, enoHost{teps: allTEPs})
	cfgA, cfgB := configs(out, tcpcrypt.AES128GCM)
	cfgB.Transcript = slices.Clone(cfgB.Transcript)
	cfgB.Transcript[len(cfgB.Transcript)-1] ^= 1
	rawA, rawB := tcpPair(t)
	a, b := handshakePair(t, rawA, rawB, cfgA, cfgB)
	if bytes.Equal(a.SessionID(), b.SessionID()) {
		t.Fatal("session ids agree despite different transcripts")
	}
	a.Write([]byte("hello"))
	if got, err := readAll(b); !errors.Is(err, ErrAuth) || len(got) != 0 {
		t.Fatalf("got %q, %v; want nothing and ErrAuth", got, err)
	}
}

// panicConn fails the test on any use: Handshake must not touch the
// stream when its Config is invalid.
type panicConn struct{ net.Conn }

func TestConfigErrors(t *testing.T) {
	valid := Config{Role: eno.RoleA, TEP: tcpcrypt.TEPCurve25519, Ciphers: allAEADs}
	resume := func(mutate func(*Entry)) func(*Config) {
		return func(c *Config) {
			e := testEntry("r")
			mutate(&e)
			c.Resume = &e
		}
	}
	for name, mutate := range map[string]func(*Config){
		"no role":                func(c *Config) { c.Role = 0 },
		"bad TEP":                func(c *Config) { c.TEP = 0x30 },
		"no ciphers":             func(c *Config) { c.Ciphers = nil },
		"unknown cipher":         func(c *Config) { c.Ciphers = []tcpcrypt.AEADID{0x55} },
		"256 ciphers":            func(c *Config) { c.Ciphers = slices.Repeat([]tcpcrypt.AEADID{tcpcrypt.AES128GCM}, 256) },
		"negative rekey":         func(c *Config) { c.RekeyBytes = -1 },
		"frame too big":          func(c *Config) { c.MaxFrame = tcpcrypt.MaxFrameData + 1 },
		"negative frame":         func(c *Config) { c.MaxFrame = -5 },
		"invalid resume secret":  resume(func(e *Entry) { e.Secret = tcpcrypt.SessionSecret{} }),
		"resume without AEAD":    resume(func(e *Entry) { e.AEAD = 0 }),
		"resume, unknown AEAD":   resume(func(e *Entry) { e.AEAD = 0x0003 }),
		"resume, no orig. role":  resume(func(e *Entry) { e.OriginalRole = 0 }),
		"resume, bad orig. role": resume(func(e *Entry) { e.OriginalRole = 3 }),
		"resume under other TEP": resume(func(e *Entry) { e.TEP = tcpcrypt.TEPP256 }),
		"session nonce too long": func(c *Config) {
			resume(func(*Entry) {})(c)
			c.SessionNonce = make([]byte, 2*tcpcrypt.MaxResumeNonceLen+1)
		},
	} {
		cfg := valid
		mutate(&cfg)
		if c, err := Handshake(panicConn{}, cfg); err == nil || c != nil {
			t.Errorf("%s: Handshake accepted the config", name)
		}
	}
	// A valid resumption touches no stream either (no Init messages).
	for _, role := range []eno.Role{eno.RoleA, eno.RoleB} {
		for _, orig := range []eno.Role{eno.RoleA, eno.RoleB} {
			cfg := valid
			cfg.Role, cfg.Ciphers = role, nil
			resume(func(e *Entry) { e.OriginalRole = orig })(&cfg)
			cfg.SessionNonce = make([]byte, 2*tcpcrypt.MaxResumeNonceLen)
			c, err := Handshake(panicConn{}, cfg)
			if err != nil || c == nil || !c.Resumed() || c.Role() != role || c.CacheEntry().OriginalRole != orig {
				t.Errorf("role %v, originally %v: valid resumption: %v", role, orig, err)
			}
		}
	}
}

// TestFormatHidesSecrets: printing a Conn shows no key material.
func TestFormatHidesSecrets(t *testing.T) {
	out := simulateENO(t, enoHost{teps: allTEPs}, enoHost{teps: allTEPs})
	cfgA, cfgB := configs(out, tcpcrypt.AES128GCM)
	rawA, rawB := tcpPair(t)
	a, _ := handshakePair(t, rawA, rawB, cfgA, cfgB)
	s := fmt.Sprintf("%v %+v %#v %s", a, a, a, a)
	for _, secret := range [][]byte{a.next.Bytes(), a.next.MasterKey(nil), a.next.Next().Bytes()} {
		if bytes.Contains([]byte(s), []byte(fmt.Sprintf("%x", secret))) || bytes.Contains([]byte(s), secret) {
			t.Fatalf("formatted Conn shows a secret: %s", s)
		}
	}
	if !bytes.Contains([]byte(s), []byte("aes128gcm")) {
		t.Fatalf("formatted Conn lacks its parameters: %s", s)
	}
}
