/* Package flowtable keeps the gateway's per-connection state.
 *
 * The table is split into shards. The engine runs one worker goroutine per
 * shard (or sends each packet to worker Shard(key) % workers), so one flow
 * is always handled by one worker, in order, and workers do not contend.
 *
 * Locking is explicit. Each shard has one mutex:
 *
 *  1. A worker calls LockShard(i) once per batch of packets, then Get,
 *     Insert, Delete, Touch, Expire and EvictOne on shard i as often as it
 *     likes, then UnlockShard(i).
 *  2. Readers outside the worker (HTTP snapshots, the flows command) take
 *     the same lock briefly: LockShard, Range (copy out what they need),
 *     UnlockShard. Lookup takes the locks itself.
 *  3. Every method that takes a shard index requires the caller to hold that
 *     shard's lock; an Entry's fields may only be read or written with its
 *     shard's lock held.
 *
 * Only four things are shared across shards, all atomics: the flow count
 * (for the global MaxFlows cap), the ID counter, the byte budget, and the
 * count of inbound flows (for monitoring; the shards enforce their own
 * parts of the inbound share, below).
 *
 * The LAN reserve: flows opened from the WAN (InsertInbound) may take at
 * most MaxFlows-LANReserve entries, so that a WAN SYN flood, whatever its
 * rate, cannot stop the LAN from opening connections. That share is split
 * evenly between the shards and counted under each shard's lock: a slot an
 * engine frees by evicting a flow is its own to reuse. (With one shared
 * count, another worker would take it at once under a flood, and flows
 * would drift out of one shard until it had no victim left.)
 *
 * Inside a shard, flows live in a map by Key (lookup), a map by ID (for the
 * HTTP API), and a min-heap by deadline (expiry; see expiry.go).
 */
package flowtable

import (
	"errors"
	"math/bits"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults applied by New to zero or negative Config fields.
const (
	DefaultMaxFlows       = 1 << 16
	DefaultMaxBytesTotal  = 64 << 20
	DefaultExpireBatch    = 4096
	DefaultInitialTimeout = 10 * time.Second
	// DefaultLANReserveShare: a quarter of the table is kept for flows
	// opened from the LAN, unless Config.LANReserve says otherwise.
	DefaultLANReserveShare = 4
	// MaxShards bounds Config.Shards; more shards than this buys nothing on
	// any router and only costs memory.
	MaxShards = 1024
)

var (
	// ErrFull is returned by Insert when the table holds MaxFlows entries,
	// and by InsertInbound also when inbound flows fill their share.
	ErrFull = errors.New("flowtable: flow table full")
	// ErrExists is returned by Insert when the key is already present.
	ErrExists = errors.New("flowtable: flow already exists")
	// ErrWrongShard is returned by Insert when the shard index is out of
	// range or is not the shard that owns the key.
	ErrWrongShard = errors.New("flowtable: key does not belong to shard")
)

// Config sizes a Table. Zero or negative fields take the defaults above.
type Config struct {
	// Shards is the number of independently locked shards, normally the
	// number of engine workers. Default runtime.GOMAXPROCS(0), at most
	// MaxShards.
	Shards int
	// MaxFlows caps the number of entries across all shards.
	MaxFlows int
	// MaxBytesTotal caps the bytes reserved with Reserve across all flows.
	MaxBytesTotal int64
	// ExpireBatch bounds the heap entries one Expire call examines, so a
	// worker is never stalled for long by a mass expiry.
	ExpireBatch int
	// InitialTimeout sets the Deadline of a new entry (now+InitialTimeout)
	// until the engine calls Touch with its own.
	InitialTimeout time.Duration
	// LANReserve is the number of entries only Insert (flows opened from
	// the LAN) may use; InsertInbound stops at MaxFlows-LANReserve. Default
	// MaxFlows/DefaultLANReserveShare; at most MaxFlows-1.
	LANReserve int
}

// Entry is one flow. Key, ID and Created never change. LastActive and
// Deadline change only through Touch (writing Deadline directly would leave
// the expiry heap out of order). Value belongs to the engine. All fields are
// guarded by the owning shard's lock.
type Entry[V any] struct {
	Key        Key
	Value      V
	ID         uint64 // unique, assigned in increasing order of insertion
	Inbound    bool   // inserted by InsertInbound: counts against the inbound share
	heapIdx    int32  // position in owner.heap; -1 once deleted (beside Inbound: one word for both)
	Created    time.Time
	LastActive time.Time
	Deadline   time.Time

	owner *shard[V] // nil once deleted
	// heapKey is the deadline the heap orders this entry by, as
	// owner.tick(deadline); the heap slot holds a copy. Invariant:
	// heapKey <= tick(Deadline). Touch moves the entry in the heap only when
	// the deadline gets earlier; later deadlines are applied when the entry
	// reaches the top of the heap (see Expire).
	heapKey int64
}

// shard is one lock's worth of flows.
type shard[V any] struct {
	mu    sync.Mutex
	flows map[Key]*Entry[V]
	byID  map[uint64]*Entry[V]
	heap  []heapSlot[V]
	// epoch is the origin of heap keys (see tick).
	epoch time.Time
	// inbound counts the entries with Inbound set, at most maxInbound.
	inbound, maxInbound int
	// spare is an entry given back by Recycle, for the next insert.
	spare *Entry[V]
	// evictFrontier is EvictOne's scratch space, kept to avoid allocating.
	evictFrontier []int
	_             [64]byte // keep neighbouring shards' locks off this cache line
}

// Table is a sharded flow table with a global flow cap and byte budget.
type Table[V any] struct {
	shards         []*shard[V]
	maxFlows       int64
	maxBytes       int64
	maxInbound     int64
	expireBatch    int
	initialTimeout time.Duration
	epoch          time.Time

	count     atomic.Int64  // entries across all shards
	inbound   atomic.Int64  // entries with Inbound set (the shards count their own)
	nextID    atomic.Uint64 // last ID handed out
	bytesUsed atomic.Int64  // bytes reserved across all flows
}

// New returns an empty table sized by cfg (see Config for defaults).
func New[V any](cfg Config) *Table[V] {
	if cfg.Shards <= 0 {
		cfg.Shards = runtime.GOMAXPROCS(0)
	}
	cfg.Shards = min(cfg.Shards, MaxShards)
	if cfg.MaxFlows <= 0 {
		cfg.MaxFlows = DefaultMaxFlows
	}
	if cfg.MaxBytesTotal <= 0 {
		cfg.MaxBytesTotal = DefaultMaxBytesTotal
	}
	if cfg.ExpireBatch <= 0 {
		cfg.ExpireBatch = DefaultExpireBatch
	}
	if cfg.InitialTimeout <= 0 {
		cfg.InitialTimeout = DefaultInitialTimeout
	}
	if cfg.LANReserve <= 0 {
		cfg.LANReserve = cfg.MaxFlows / DefaultLANReserveShare
	}
	cfg.LANReserve = min(cfg.LANReserve, cfg.MaxFlows-1)
	t := &Table[V]{
		shards:         make([]*shard[V], cfg.Shards),
		maxFlows:       int64(cfg.MaxFlows),
		maxInbound:     int64(cfg.MaxFlows - cfg.LANReserve),
		maxBytes:       cfg.MaxBytesTotal,
		expireBatch:    cfg.ExpireBatch,
		initialTimeout: cfg.InitialTimeout,
		epoch:          time.Now(),
	}
	for i := range t.shards {
		t.shards[i] = &shard[V]{
			// The inbound share, split evenly (the first shards take the
			// remainder), so the shards' shares add up to MaxInbound.
			maxInbound:    int(t.maxInbound)/len(t.shards) + b2i(i < int(t.maxInbound)%len(t.shards)),
			epoch:         t.epoch,
			flows:         make(map[Key]*Entry[V]),
			byID:          make(map[uint64]*Entry[V]),
			evictFrontier: make([]int, 0, 2*evictScanLimit+2),
		}
	}
	return t
}

// Shards returns the number of shards.
func (t *Table[V]) Shards() int { return len(t.shards) }

// MaxFlows returns the global entry cap.
func (t *Table[V]) MaxFlows() int { return int(t.maxFlows) }

// MaxInbound returns the cap on inbound entries (MaxFlows - LANReserve).
func (t *Table[V]) MaxInbound() int { return int(t.maxInbound) }

// InboundLen returns the number of inbound entries. It takes no lock.
func (t *Table[V]) InboundLen() int { return int(t.inbound.Load()) }

// Shard returns the index of the shard (and worker) that owns k.
func (t *Table[V]) Shard(k Key) int {
	return ShardOf(k.Hash(), len(t.shards))
}

// ShardOf maps a key hash onto n shards by multiply-high (Lemire's
// reduction): uniform over [0, n) for a well-mixed hash, and cheaper than %.
// It returns 0 for n <= 0.
func ShardOf(hash uint64, n int) int {
	if n <= 0 {
		return 0
	}
	hi, _ := bits.Mul64(hash, uint64(n))
	return int(hi)
}

// LockShard takes shard i's lock. It panics if i is out of range, as
// indexing a slice would: that is a programming error, not bad input.
func (t *Table[V]) LockShard(i int) { t.shards[i].mu.Lock() }

// UnlockShard releases shard i's lock.
func (t *Table[V]) UnlockShard(i int) { t.shards[i].mu.Unlock() }

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// shardAt returns shard i, or nil when i is out of range.
func (t *Table[V]) shardAt(i int) *shard[V] {
	if uint(i) >= uint(len(t.shards)) {
		return nil
	}
	return t.shards[i]
}

// Get returns the entry for k in shard i. The caller holds shard i's lock.
// It does not allocate.
func (t *Table[V]) Get(i int, k Key) (*Entry[V], bool) {
	s := t.shardAt(i)
	if s == nil {
		return nil, false
	}
	e, ok := s.flows[k]
	return e, ok
}

// Insert adds a flow opened from the LAN for k to shard i with value v, a
// fresh ID, and Deadline now+Config.InitialTimeout. The caller holds shard
// i's lock, and i must be t.Shard(k). It returns ErrFull when the table
// already holds MaxFlows entries in total (the engine may then Evict and
// retry), ErrExists when k is present, and ErrWrongShard for a misrouted
// key.
func (t *Table[V]) Insert(i int, k Key, v V, now time.Time) (*Entry[V], error) {
	return t.insert(i, k, v, now, false)
}

// InsertInbound is Insert for a flow opened from the WAN: it also returns
// ErrFull when inbound entries fill shard i's part of their share
// (MaxInbound), whatever room the LAN reserve has left.
func (t *Table[V]) InsertInbound(i int, k Key, v V, now time.Time) (*Entry[V], error) {
	return t.insert(i, k, v, now, true)
}

func (t *Table[V]) insert(i int, k Key, v V, now time.Time, inbound bool) (*Entry[V], error) {
	s := t.shardAt(i)
	if s == nil || t.Shard(k) != i {
		return nil, ErrWrongShard
	}
	if _, ok := s.flows[k]; ok {
		return nil, ErrExists
	}
	// Claim the slots first, so concurrent inserts on other shards can
	// never push a total past its cap.
	if inbound && s.inbound >= s.maxInbound {
		return nil, ErrFull
	}
	if t.count.Add(1) > t.maxFlows {
		t.count.Add(-1)
		return nil, ErrFull
	}
	if inbound {
		s.inbound++
		t.inbound.Add(1)
	}
	deadline := now.Add(t.initialTimeout)
	e := s.spare
	if e != nil {
		s.spare = nil
	} else {
		e = new(Entry[V])
	}
	*e = Entry[V]{
		Key:        k,
		Value:      v,
		ID:         t.nextID.Add(1),
		Inbound:    inbound,
		Created:    now,
		LastActive: now,
		Deadline:   deadline,
		owner:      s,
		heapKey:    s.tick(deadline),
	}
	s.flows[k] = e
	s.byID[e.ID] = e
	s.heapPush(e)
	return e, nil
}

// Delete removes e from shard i. The caller holds shard i's lock. Deleting
// an entry twice, or with the wrong shard index, does nothing.
func (t *Table[V]) Delete(i int, e *Entry[V]) {
	s := t.shardAt(i)
	if s == nil || e == nil || e.owner != s {
		return
	}
	t.unlink(s, e)
}

// Recycle gives back an entry removed from shard i (by Evict, Expire or
// Delete), for the next insert into the shard to reuse: under a flood each
// new flow then takes the memory of the one it evicted instead of leaving
// it to the garbage collector. The caller holds shard i's lock and must not
// use e afterwards; an entry still in a table is ignored.
func (t *Table[V]) Recycle(i int, e *Entry[V]) {
	if s := t.shardAt(i); s != nil && e != nil && e.owner == nil {
		*e = Entry[V]{heapIdx: -1}
		s.spare = e
	}
}

// unlink removes e from s and from the table's counts.
func (t *Table[V]) unlink(s *shard[V], e *Entry[V]) {
	s.remove(e)
	t.count.Add(-1)
	if e.Inbound {
		s.inbound--
		t.inbound.Add(-1)
	}
}

// remove unlinks e from all of s's indexes.
func (s *shard[V]) remove(e *Entry[V]) {
	delete(s.flows, e.Key)
	delete(s.byID, e.ID)
	s.heapRemove(int(e.heapIdx))
	e.owner = nil
	e.heapIdx = -1
}

// Len returns the number of entries across all shards. It takes no lock.
func (t *Table[V]) Len() int { return int(t.count.Load()) }

// ShardLen returns the number of entries in shard i. The caller holds
// shard i's lock.
func (t *Table[V]) ShardLen(i int) int {
	s := t.shardAt(i)
	if s == nil {
		return 0
	}
	return len(s.flows)
}

// Range calls fn for each entry of shard i, in no particular order, until
// fn returns false. The caller holds shard i's lock; fn may Delete the entry
// it is given.
func (t *Table[V]) Range(i int, fn func(*Entry[V]) bool) {
	s := t.shardAt(i)
	if s == nil {
		return
	}
	for _, e := range s.flows {
		if !fn(e) {
			return
		}
	}
}

// GetByID returns the entry of shard i with the given ID. The caller holds
// shard i's lock. It does not allocate.
func (t *Table[V]) GetByID(i int, id uint64) (*Entry[V], bool) {
	s := t.shardAt(i)
	if s == nil {
		return nil, false
	}
	e, ok := s.byID[id]
	return e, ok
}

// Lookup finds the entry with the given ID and calls fn on it with its
// shard's lock held; fn must not keep e after it returns. It reports whether
// the ID was found. The caller must hold no shard lock. Cost: one map lookup
// per shard, each under that shard's lock, so it delays each worker by at
// most one lookup.
func (t *Table[V]) Lookup(id uint64, fn func(e *Entry[V])) bool {
	for _, s := range t.shards {
		s.mu.Lock()
		e, ok := s.byID[id]
		if ok {
			fn(e)
		}
		s.mu.Unlock()
		if ok {
			return true
		}
	}
	return false
}
