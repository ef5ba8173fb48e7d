package endpoint

import (
	"bytes"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"tcpcrypt-gw/crypto/tcpcrypt"
	"tcpcrypt-gw/eno"
)

// fakeClock is a settable clock for the cache.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func newTestCache(maxEntries int, ttl time.Duration) (*Cache, *fakeClock) {
	clk := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	c := NewCache(maxEntries, ttl)
	c.now = clk.now
	return c, clk
}

// testEntry is an entry with a secret that depends on label only, held by
// the host that played A in the original session.
func testEntry(label string) Entry {
	b := bytes.Repeat([]byte(label), tcpcrypt.KeyLen/len(label)+1)[:tcpcrypt.KeyLen]
	return Entry{TEP: tcpcrypt.TEPCurve25519, AEAD: tcpcrypt.AES128GCM, Secret: tcpcrypt.SessionSecretFromBytes(1, b), OriginalRole: eno.RoleA}
}

func sameSecret(a, b Entry) bool { return bytes.Equal(a.Secret.Bytes(), b.Secret.Bytes()) }

// peerID is the half of resume[i] the PEER of the host holding e sends
// (RFC 8548 §3.5 Figures 2 and 3): resume[i]{9..17} if the holder was A in
// the original session (so the peer was B), resume[i]{0..8} otherwise. It
// is what TakeByResumeID must match.
func peerID(e Entry) []byte {
	id := e.Secret.ResumeID()
	if e.OriginalRole == eno.RoleA {
		return id[9:18]
	}
	return id[0:9]
}

// ownID is the half the holder of e sends itself.
func ownID(e Entry) []byte {
	id := e.Secret.ResumeID()
	if e.OriginalRole == eno.RoleA {
		return id[0:9]
	}
	return id[9:18]
}

func TestCacheSingleUse(t *testing.T) {
	c, _ := newTestCache(16, time.Minute)
	e := testEntry("one")
	c.Put("10.0.0.1", e)
	got, ok := c.TakeForPeer("10.0.0.1")
	if !ok || !sameSecret(got, e) || got.TEP != e.TEP || got.AEAD != e.AEAD {
		t.Fatalf("TakeForPeer = %v, %v; want the entry put", got, ok)
	}
	if _, ok := c.TakeForPeer("10.0.0.1"); ok {
		t.Fatal("second TakeForPeer found the entry again")
	}

	c.Put("10.0.0.1", e)
	if got, ok := c.TakeByResumeID("10.0.0.1", peerID(e)); !ok || !sameSecret(got, e) {
		t.Fatal("TakeByResumeID missed the entry")
	}
	if _, ok := c.TakeByResumeID("10.0.0.1", peerID(e)); ok {
		t.Fatal("second TakeByResumeID found the entry again")
	}
	if c.Len() != 0 {
		t.Fatalf("Len = %d after taking everything", c.Len())
	}
}

func TestCacheWrongID(t *testing.T) {
	c, _ := newTestCache(16, time.Minute)
	e := testEntry("two")
	c.Put("peer", e)
	id := peerID(e)

	flipped := bytes.Clone(id)
	flipped[8] ^= 0x01
	full := e.Secret.ResumeID()
	for name, tc := range map[string]struct {
		peer string
		id   []byte
	}{
		"flipped bit":  {"peer", flipped},
		"own half":     {"peer", ownID(e)},
		"short":        {"peer", id[:8]},
		"long":         {"peer", full[:]},
		"empty":        {"peer", nil},
		"other peer":   {"peer2", id},
		"peer+suffix":  {"peer ", id},
		"empty peer":   {"", id},
		"prefix match": {"pee", id},
	} {
		if _, ok := c.TakeByResumeID(tc.peer, tc.id); ok {
			t.Errorf("%s: TakeByResumeID matched", name)
		}
	}
	if c.Len() != 1 {
		t.Fatalf("a failed lookup removed an entry: Len = %d", c.Len())
	}
	if _, ok := c.TakeByResumeID("peer", id); !ok {
		t.Fatal("the right id no longer matches")
	}
}

func TestCacheTTL(t *testing.T) {
	c, clk := newTestCache(16, 10*time.Second)
	c.Put("a", testEntry("a1"))
	clk.advance(6 * time.Second)
	c.Put("b", testEntry("b1"))
	clk.advance(4 * time.Second) // a1 now exactly 10 s old: expired

	if _, ok := c.TakeForPeer("a"); ok {
		t.Fatal("entry older than the TTL was returned")
	}
	if got, ok := c.TakeForPeer("b"); !ok || !sameSecret(got, testEntry("b1")) {
		t.Fatal("live entry missing")
	}

	c.Put("c", testEntry("c1"))
	e := testEntry("c2")
	c.Put("c", e)
	clk.advance(9 * time.Second)
	if n := c.Purge(); n != 0 {
		t.Fatalf("Purge removed %d live entries", n)
	}
	clk.advance(time.Second)
	if n := c.Purge(); n != 2 {
		t.Fatalf("Purge removed %d expired entries, want 2", n)
	}
	if c.Len() != 0 {
		t.Fatalf("Len = %d after purge", c.Len())
	}
	if _, ok := c.TakeByResumeID("c", peerID(e)); ok {
		t.Fatal("expired entry found by resume id")
	}
}

func TestCacheZeroTTLStoresNothing(t *testing.T) {
	c, _ := newTestCache(16, 0)
	c.Put("a", testEntry("a"))
	if c.Len() != 0 {
		t.Fatal("cache with TTL 0 kept an entry")
	}
	if _, ok := c.TakeForPeer("a"); ok {
		t.Fatal("cache with TTL 0 returned an entry")
	}
}

func TestCacheInvalidSecretNotStored(t *testing.T) {
	c, _ := newTestCache(16, time.Minute)
	c.Put("a", Entry{TEP: tcpcrypt.TEPCurve25519, AEAD: tcpcrypt.AES128GCM})
	if c.Len() != 0 {
		t.Fatal("entry without a secret was stored")
	}
	// The all-zero resume id of an invalid secret must not match anything.
	var zero [resumeHalfLen]byte
	if _, ok := c.TakeByResumeID("a", zero[:]); ok {
		t.Fatal("zero id matched")
	}
}

func TestCacheLRUBound(t *testing.T) {
	const maxEntries = 8
	c, clk := newTestCache(maxEntries, time.Hour)
	var entries []Entry
	for i := range 3 * maxEntries {
		e := testEntry("entry-" + strconv.Itoa(i))
		entries = append(entries, e)
		c.Put("peer"+strconv.Itoa(i), e)
		clk.advance(time.Millisecond)
		if c.Len() > maxEntries {
			t.Fatalf("Len = %d > %d after %d puts", c.Len(), maxEntries, i+1)
		}
	}
	if c.Len() != maxEntries {
		t.Fatalf("Len = %d, want %d", c.Len(), maxEntries)
	}
	for i, e := range entries {
		_, ok := c.TakeByResumeID("peer"+strconv.Itoa(i), peerID(e))
		if want := i >= len(entries)-maxEntries; ok != want {
			t.Errorf("entry %d present = %v, want %v (the oldest go first)", i, ok, want)
		}
	}
}

func TestCachePerPeerBound(t *testing.T) {
	c, clk := newTestCache(100, time.Hour)
	other := testEntry("other")
	c.Put("other", other)
	var entries []Entry
	for i := range maxPerPeer + 3 {
		e := testEntry("busy-" + strconv.Itoa(i))
		entries = append(entries, e)
		c.Put("busy", e)
		clk.advance(time.Millisecond)
	}
	if c.Len() != maxPerPeer+1 {
		t.Fatalf("Len = %d, want %d", c.Len(), maxPerPeer+1)
	}
	if _, ok := c.TakeByResumeID("other", peerID(other)); !ok {
		t.Fatal("a busy peer evicted another peer's entry")
	}
	// TakeForPeer hands out the newest first.
	for i := len(entries) - 1; i >= len(entries)-maxPerPeer; i-- {
		got, ok := c.TakeForPeer("busy")
		if !ok || !sameSecret(got, entries[i]) {
			t.Fatalf("TakeForPeer did not return entry %d (newest first)", i)
		}
	}
	if _, ok := c.TakeForPeer("busy"); ok {
		t.Fatal("more than maxPerPeer entries were kept")
	}
}

func TestCacheByIDAmongSeveral(t *testing.T) {
	c, _ := newTestCache(100, time.Hour)
	a, b, d := testEntry("x1"), testEntry("x2"), testEntry("x3")
	c.Put("p", a)
	c.Put("p", b)
	c.Put("p", d)
	if got, ok := c.TakeByResumeID("p", peerID(b)); !ok || !sameSecret(got, b) {
		t.Fatal("middle entry not found by its id")
	}
	if got, ok := c.TakeForPeer("p"); !ok || !sameSecret(got, d) {
		t.Fatal("TakeForPeer after removing the middle entry")
	}
	if got, ok := c.TakeForPeer("p"); !ok || !sameSecret(got, a) {
		t.Fatal("oldest entry lost")
	}
}

func TestCacheFormatHidesSecret(t *testing.T) {
	e := testEntry("secret-label")
	for _, s := range []string{
		fmt.Sprint(e), fmt.Sprintf("%v %+v %#v %s %x %q", e, e, e, e, e, e),
		fmt.Sprintf("%v %+v %#v %x", struct{ E Entry }{e}, struct{ E Entry }{e}, struct{ E Entry }{e}, struct{ E Entry }{e}),
	} {
		if bytes.Contains([]byte(s), []byte("secret-label")) || bytes.Contains([]byte(s), []byte(fmt.Sprintf("%x", e.Secret.Bytes()))) {
			t.Fatalf("formatted entry shows the secret: %s", s)
		}
	}
	if s := fmt.Sprint(e); !bytes.Contains([]byte(s), []byte("curve25519")) {
		t.Fatalf("formatted entry lacks the TEP: %s", s)
	}
}

// TestCacheConcurrent runs puts and takes from several goroutines (run with
// -race) and checks that no entry is ever handed out twice.
func TestCacheConcurrent(t *testing.T) {
	c := NewCache(64, time.Hour)
	const workers, perWorker = 8, 500
	var mu sync.Mutex
	seen := make(map[string]int)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perWorker {
				peer := "peer" + strconv.Itoa(i%5)
				e := testEntry(fmt.Sprintf("w%d-%d", w, i))
				c.Put(peer, e)
				var got Entry
				var ok bool
				if i%2 == 0 {
					got, ok = c.TakeForPeer(peer)
				} else {
					got, ok = c.TakeByResumeID(peer, peerID(e))
				}
				if ok {
					mu.Lock()
					seen[string(got.Secret.Bytes())]++
					mu.Unlock()
				}
				c.Purge()
			}
		}()
	}
	wg.Wait()
	for p := range 5 {
		for {
			got, ok := c.TakeForPeer("peer" + strconv.Itoa(p))
			if !ok {
				break
			}
			seen[string(got.Secret.Bytes())]++
		}
	}
	if c.Len() != 0 {
		t.Fatalf("Len = %d after draining", c.Len())
	}
	if len(seen) == 0 {
		t.Fatal("no entry was ever taken")
	}
	for k, n := range seen {
		if n != 1 {
			t.Fatalf("entry %x taken %d times", k[:4], n)
		}
	}
}

// TestCacheTakeByPeerHalf: the passive opener's cache matches the half of
// resume[i] the peer sends, which depends on the role each host played in
// the original session (RFC 8548 §3.5), not on who opens now.
func TestCacheTakeByPeerHalf(t *testing.T) {
	for _, orig := range []eno.Role{eno.RoleA, eno.RoleB} {
		t.Run("originally "+orig.String(), func(t *testing.T) {
			c, _ := newTestCache(16, time.Minute)
			e := testEntry("half-" + orig.String())
			e.OriginalRole = orig
			id := e.Secret.ResumeID()
			wantHalf, otherHalf := id[9:18], id[0:9] // the peer was B
			if orig == eno.RoleB {
				wantHalf, otherHalf = id[0:9], id[9:18] // the peer was A
			}
			c.Put("peer", e)
			if _, ok := c.TakeByResumeID("peer", otherHalf); ok {
				t.Fatal("the holder's own half matched")
			}
			got, ok := c.TakeByResumeID("peer", wantHalf)
			if !ok || !sameSecret(got, e) || got.OriginalRole != orig {
				t.Fatalf("peer's half: got %v, %v; want the entry, originally %v", got, ok, orig)
			}
			if c.Len() != 0 {
				t.Fatalf("Len = %d after the take", c.Len())
			}
			if _, ok := c.TakeByResumeID("peer", wantHalf); ok {
				t.Fatal("the entry was taken twice")
			}
		})
	}
}

// TestCachedResumeIDIsTheSecrets: an entry taken from the cache carries the
// resume[i] computed at Put, and what the SYN path builds from it (the
// offer, the answer check) is what the secret itself gives, for both
// original roles.
func TestCachedResumeIDIsTheSecrets(t *testing.T) {
	for _, role := range []eno.Role{eno.RoleA, eno.RoleB} {
		c, _ := newTestCache(16, time.Minute)
		e := testEntry("rid")
		e.OriginalRole = role
		c.Put("10.0.0.1", e)
		got, ok := c.TakeForPeer("10.0.0.1")
		if !ok || got.resumeID == nil {
			t.Fatalf("%v: TakeForPeer = %v, %v, resume[i] cached %v", role, got, ok, got.resumeID != nil)
		}
		if want := e.Secret.ResumeID(); *got.resumeID != want {
			t.Fatalf("%v: cached resume[i] %x, the secret's %x", role, *got.resumeID, want)
		}
		nonce := []byte{1, 2, 3}
		if a, b := OfferResume(got, nonce), OfferResume(e, nonce); !bytes.Equal(a.Data, b.Data) || !bytes.Equal(a.Data[:9], ownID(e)) {
			t.Fatalf("%v: offer %x from the cached entry, %x from the secret", role, a.Data, b.Data)
		}
		answer := eno.Suboption{TEP: byte(e.TEP), Data: append(peerID(e), 9), HasData: true}
		if n, ok := ResumeAnswerMatches(got, answer); !ok || !bytes.Equal(n, []byte{9}) {
			t.Fatalf("%v: the peer's half did not match the cached entry", role)
		}
		answer.Data[0] ^= 1
		if _, ok := ResumeAnswerMatches(got, answer); ok {
			t.Fatalf("%v: a wrong half matched the cached entry", role)
		}
	}
}
