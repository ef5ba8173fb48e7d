// Session cache for tcpcrypt resumption (RFC 8548 §3.5).
//
// After a connection that used ss[i-1], both ends may keep ss[i] (with the
// TEP, the AEAD and the role the host played in the original session) for
// a short time, keyed by the peer, and use it once to open a later
// connection without any public-key operation:
//
//  1. Both ends Put(peer, Conn.CacheEntry()) once the keys exist ("compute
//     and cache ss[i+1] ... and then erase ss[i]").
//  2. The active opener calls TakeForPeer and offers the entry with its
//     half of resume[i] and a nonce (OfferResume).
//  3. The passive opener calls TakeByResumeID with the offered half; on a
//     hit it answers with its own half (AnswerResume), which the opener
//     checks (ResumeAnswerMatches).
//
// Both takes remove the entry: each ss[i] is used at most once, in either
// role ("a host MUST NOT resume with a session secret if it has ever
// enabled encryption in the past with the same secret, in either role"); a
// taken entry is gone whether or not the resumption then succeeds, so the
// next offer from that chain can only be a later ss[i+1] (the "lowest
// value of i that has not already been used"). Secrets live in memory only
// ("SHOULD NOT write any session secrets to non-volatile storage"). The cache
// lives in memory only, holds at most maxEntries entries (the oldest goes
// first) and at most maxPerPeer per peer, and entries expire after ttl.
// Because every entry lives for the same ttl and a take removes it, the
// order of insertion is both the LRU order and the expiry order, so one
// list serves eviction and purging.

package endpoint

import (
	"crypto/subtle"
	"fmt"
	"slices"
	"sync"
	"time"

	"tcpcrypt-gw/crypto/tcpcrypt"
	"tcpcrypt-gw/eno"
)

// resumeHalfLen is how many bytes of resume[i] each side puts in its SYN:
// the first half if it played A in the original session, the second if B
// (RFC 8548 §3.5).
const resumeHalfLen = tcpcrypt.ResumeIDLen / 2

// maxPerPeer bounds the entries kept for one peer. Several connections to
// the same peer may start close together and each leaves its own ss[i],
// put in a different order at each end; enough are kept that the entry one
// end offers is still held at the other (with 4, a third of the resumption
// offers of 16 parallel connections missed in `make bench`), while one busy
// peer cannot fill the whole cache.
const maxPerPeer = 64

// Entry is one cached session secret ss[i] with the parameters it was
// negotiated under.
type Entry struct {
	TEP    tcpcrypt.TEP
	AEAD   tcpcrypt.AEADID
	Secret tcpcrypt.SessionSecret
	// OriginalRole is the role this host played in the session that
	// produced ss[0]: it picks the half of resume[i] the host sends and
	// the traffic keys it seals with in every resumed session (k_ab if A).
	OriginalRole eno.Role

	// resumeID is resume[i] as the cache computed it at Put (nil for an
	// entry made elsewhere): OfferResume, AnswerResume and
	// ResumeAnswerMatches use it instead of deriving it again, once per
	// use, on the SYN path.
	resumeID *[tcpcrypt.ResumeIDLen]byte
}

// resume returns resume[i] of e's secret (RFC 8548 §3.5).
func (e *Entry) resume() *[tcpcrypt.ResumeIDLen]byte {
	if e.resumeID != nil {
		return e.resumeID
	}
	id := e.Secret.ResumeID()
	return &id
}

// Format prints the TEP, AEAD and secret index only, so that an Entry in a
// log line never shows the secret.
func (e Entry) Format(f fmt.State, _ rune) {
	fmt.Fprintf(f, "Entry(%v, %v, ss[%d], originally %v)", e.TEP, e.AEAD, e.Secret.Index(), e.OriginalRole)
}

// cacheNode is one entry in the cache's insertion-ordered list.
type cacheNode struct {
	prev, next *cacheNode
	peer       string
	entry      Entry
	resumeID   *[tcpcrypt.ResumeIDLen]byte // resume[i], computed once at Put, shared with entry
	expires    time.Time
}

// Cache holds session secrets for resumption. It is safe for concurrent
// use. The zero value is not usable; call NewCache.
type Cache struct {
	maxEntries int
	ttl        time.Duration
	now        func() time.Time // time.Now; replaced in tests

	mu     sync.Mutex
	head   cacheNode // sentinel: head.next is the oldest, head.prev the newest
	count  int
	byPeer map[string][]*cacheNode // oldest first, at most maxPerPeer each
}

// NewCache makes a cache of at most maxEntries entries (at least 1) that
// expire ttl after they were put. A ttl of 0 or less makes every entry
// expire at once, which disables resumption.
func NewCache(maxEntries int, ttl time.Duration) *Cache {
	c := &Cache{
		maxEntries: max(maxEntries, 1),
		ttl:        ttl,
		now:        time.Now,
		byPeer:     make(map[string][]*cacheNode),
	}
	c.head.next, c.head.prev = &c.head, &c.head
	return c
}

// Put stores e for peer. It evicts expired entries, then the peer's oldest
// entry if the peer already has maxPerPeer, then the cache's oldest entry if
// the cache is full. An entry with an invalid secret is not stored.
func (c *Cache) Put(peer string, e Entry) {
	if !e.Secret.Valid() {
		return
	}
	id := e.Secret.ResumeID()
	e.resumeID = &id
	n := &cacheNode{peer: peer, entry: e, resumeID: e.resumeID}
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	c.purgeLocked(now)
	if c.ttl <= 0 {
		return
	}
	if nodes := c.byPeer[peer]; len(nodes) >= maxPerPeer {
		c.removeLocked(nodes[0])
	}
	if c.count >= c.maxEntries {
		c.removeLocked(c.head.next)
	}
	n.expires = now.Add(c.ttl)
	n.prev, n.next = c.head.prev, &c.head
	c.head.prev.next = n
	c.head.prev = n
	c.count++
	c.byPeer[peer] = append(c.byPeer[peer], n)
}

// TakeForPeer is the active opener's lookup: it removes and returns the
// newest live entry for peer.
func (c *Cache) TakeForPeer(peer string) (Entry, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.purgeLocked(c.now())
	nodes := c.byPeer[peer]
	if len(nodes) == 0 {
		return Entry{}, false
	}
	n := nodes[len(nodes)-1]
	e := n.entry
	c.removeLocked(n)
	return e, true
}

// TakeByResumeID is the passive opener's lookup: it removes and returns the
// live entry for peer whose resume[i] has half as the peer's half (the
// half of the role the peer played in the original session, RFC 8548
// §3.5). A half of any other length matches nothing.
func (c *Cache) TakeByResumeID(peer string, half []byte) (Entry, bool) {
	if len(half) != resumeHalfLen {
		return Entry{}, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.purgeLocked(c.now())
	for _, n := range c.byPeer[peer] {
		if subtle.ConstantTimeCompare(peerHalf(n.entry, n.resumeID), half) == 1 {
			e := n.entry
			c.removeLocked(n)
			return e, true
		}
	}
	return Entry{}, false
}

// Len is the number of entries held, expired ones included until the next
// Put, take or Purge.
func (c *Cache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.count
}

// Purge removes expired entries and returns how many it removed. Every
// operation purges anyway; call Purge from a timer to let idle entries go.
func (c *Cache) Purge() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.purgeLocked(c.now())
}

// purgeLocked removes entries from the oldest end while they are expired.
func (c *Cache) purgeLocked(now time.Time) int {
	purged := 0
	for n := c.head.next; n != &c.head && !now.Before(n.expires); n = c.head.next {
		c.removeLocked(n)
		purged++
	}
	return purged
}

// removeLocked unlinks n from the list and from its peer's slice.
func (c *Cache) removeLocked(n *cacheNode) {
	n.prev.next, n.next.prev = n.next, n.prev
	n.prev, n.next = nil, nil
	c.count--
	nodes := c.byPeer[n.peer]
	if i := slices.Index(nodes, n); i >= 0 {
		nodes = slices.Delete(nodes, i, i+1) // zeroes the freed slot
	}
	if len(nodes) == 0 {
		delete(c.byPeer, n.peer)
	} else {
		c.byPeer[n.peer] = nodes
	}
	n.entry = Entry{} // drop the secret's last reference held here
}
