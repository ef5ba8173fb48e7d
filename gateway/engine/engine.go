// Package engine rewrites the packets of TCP connections routed between a
// LAN and a WAN so that the WAN leg of each connection to a tcpcrypt-capable
// peer is encrypted (TCP-ENO, RFC 8547; tcpcrypt, RFC 8548), while both
// endpoints keep their own, unmodified TCP.
//
// The gateway does not terminate TCP. Each flow lives in two sequence
// spaces: the plaintext space (P) the LAN host sees, and the ciphertext
// space (C) on the WAN. Both start at the same initial sequence numbers; C
// grows ahead of P by the Init message (none when resumed), 20 bytes per
// frame, and the gateway's own empty frames that answer a peer's rekey.
//
// The flow of one packet through Locked.Process (the files in the order a
// packet meets them: docs/architecture.md):
//  1. Parse the IP and TCP headers (package packet; dispatch.go, process:
//     from here on the packet's context is a pkt). Anything that is not a
//     well-formed TCP packet between a LAN and a WAN address passes as it is.
//     A GSO super-packet is one segment with a large payload (emit.go).
//  2. Find the flow by its LAN and WAN endpoints; a SYN creates it.
//  3. By the flow's state (dispatch.go):
//     - handshake (syn.go, keyexchange.go): add, check and strip TCP-ENO,
//     clamp MSS, start the key exchange, consume the peer's Init message;
//     - encrypted, each segment to both directions (lanSegment, wanSegment:
//     the ACK to one, then the data to the other), each its own type;
//     - LAN to WAN (encrypt.go, encState): new plaintext becomes one frame
//     per segment, a LAN retransmission re-sends the frames first sent, the
//     WAN peer's ACKs and SACKs of those frames are mapped from C to P; the
//     peer's rekeys are answered with frames of the gateway's own (rekey.go);
//     - WAN to LAN (decrypt.go, decState): the C stream is reassembled,
//     complete frames are authenticated and delivered as plaintext, the LAN
//     host's ACKs and SACKs of that plaintext are mapped from P to C;
//     - passthrough: forwarded as it is.
//  4. Every packet the engine sends is written to the Output batch, runs of
//     segments of one flow joined into super-packets, with the windows
//     capped to what the flow can hold (emit.go).
//
// Tick (called periodically by the same worker) retransmits the gateway's own
// bytes (Init messages, empty rekey frames) and expires idle flows.
//
// Concurrency: an Engine belongs to one worker goroutine and one shard of
// the flow table. Packets are processed only through a Locked (Engine.Lock),
// which holds the shard's lock for a batch and the configuration of the
// batch.
package engine

import (
	"net/netip"
	"sync/atomic"
	"time"

	"tcpcrypt-gw/crypto/endpoint"
	"tcpcrypt-gw/crypto/tcpcrypt"
	"tcpcrypt-gw/flowtable"
	"tcpcrypt-gw/gateway/downgrade"
	"tcpcrypt-gw/gateway/packet"
)

// Config is the policy the engine applies. All fields are read-only while
// the engine runs; a reload swaps the whole Config.
type Config struct {
	IsLAN  func(netip.Addr) bool
	Bypass func(lan, wan netip.AddrPort) bool
	// AppAware says whether the gateway sends TCP-ENO's application-aware
	// bit for a flow and whether it requires it from the peer (RFC 8547
	// §4.2); nil: never.
	AppAware func(lan, wan netip.AddrPort) (set, mandatory bool)
	// RequireEncryption says whether a flow must never be plain
	// (require_encryption, refuse.go); nil: none must.
	RequireEncryption func(lan, wan netip.AddrPort) bool
	// RequirePostQuantum says whether a flow must be keyed by a
	// post-quantum TEP (require_encryption.post_quantum, refuse.go); such
	// a flow must not be plain either. nil: none must.
	RequirePostQuantum func(lan, wan netip.AddrPort) bool
	// Peers remembers the WAN peers that completed tcpcrypt with us as role
	// A (downgrade detection, refuse.go); nil: no detection.
	Peers *downgrade.Memory
	// BlockDowngrade says whether a suspected downgrade towards a peer is
	// reset (true) or only flagged; nil: only flagged.
	BlockDowngrade func(wan netip.Addr) bool
	// NoSYNFallback says whether the SYN towards a peer keeps its ENO
	// whatever happens to it (downgrade.no_syn_fallback); nil: none.
	NoSYNFallback func(wan netip.Addr) bool
	// Paths remembers RFC 8547 §9 failures per peer, and the paths where
	// encryption fails after the handshake (fallback.go); nil: none.
	Paths *downgrade.Paths
	// Warn logs a warning (a suspected downgrade); nil: none.
	Warn func(msg string, args ...any)

	TEPs    []tcpcrypt.TEP    // offered in this order
	Ciphers []tcpcrypt.AEADID // offered (role A) / accepted (role B), in this order
	Keys    KeySource
	// Cache holds the next session secret per peer for resumption (RFC
	// 8548 §3.5); nil turns resumption off.
	Cache *endpoint.Cache
	// ResumeNonceLen is the length of our resumption nonces, 0..8 (RFC
	// 8548 §3.5: the gateway cannot prevent the reuse of session secrets
	// after a VM clone or snapshot, so the default must be 8).
	ResumeNonceLen int

	SYNFallbackRetries int           // LAN SYN retransmissions after which the SYN goes without ENO (0 = never)
	InitTimeout        time.Duration // give up the Init exchange after this long
	HandshakeTimeout   time.Duration
	IdleTimeout        time.Duration
	ClosingTimeout     time.Duration
	MaxBufferPerFlow   int           // bytes held per flow (held plaintext, unacked ciphertext, reassembly)
	RekeyBytes         int64         // rekey a direction after this many plaintext bytes (0 = never by count)
	RekeyInterval      time.Duration // and after this long (0 = never by time)
}

// KeySource hands out our key pair for a TEP (tcpcrypt.KeyPool does); an
// interface so that tests can make it fail (refuse.go: a required flow is
// reset when it cannot be had).
type KeySource interface {
	Get(tcpcrypt.TEP) (*tcpcrypt.KeyPair, error)
}

// Stats are counters shared by every engine of a gateway.
type Stats struct {
	FlowsEncrypted   atomic.Uint64
	FlowsPostQuantum atomic.Uint64 // of FlowsEncrypted, keyed by a post-quantum TEP (tcpcrypt.TEP.PostQuantum)
	FlowsPlain       atomic.Uint64
	AuthFailures     atomic.Uint64
	Truncations      atomic.Uint64
	InitTimeouts     atomic.Uint64
	Malformed        atomic.Uint64
	TableFull        atomic.Uint64
	BufferDrops      atomic.Uint64
	LANReordered     atomic.Uint64 // LAN segments that arrived beyond a hole in their stream and waited for it
	PacketsIn        atomic.Uint64
	PacketsOut       atomic.Uint64
	SYNFallbacks     atomic.Uint64
	BadChecksum      atomic.Uint64
	PassedUnparsable atomic.Uint64
	UnknownResets    atomic.Uint64 // mid-connection segments of unknown flows, answered with RST
	Resumptions      atomic.Uint64 // connections that started from a cached secret
	ResumeOffered    atomic.Uint64 // role A: SYNs that offered resumption
	ResumeMisses     atomic.Uint64 // role A: offers the peer answered with a full handshake
	RekeysOut        atomic.Uint64
	RekeysIn         atomic.Uint64
	// Evictions counts flows evicted to make room for a new one, by kind
	// (EvictHalfOpen, ...).
	Evictions    [NumEvictKinds]atomic.Uint64
	WriteErrors  atomic.Uint64 // packets the TUN device refused
	IdleReleases atomic.Uint64 // flows that gave back their AEAD states when they went idle
	ParkedBytes  atomic.Int64  // buffers kept by empty rings of busy flows (parkRing), at most an eighth of flows.max_buffer_total
	// DowngradesSuspected counts outbound flows to a remembered tcpcrypt
	// peer answered without ENO; DowngradesBlocked those of them reset.
	DowngradesSuspected atomic.Uint64
	DowngradesBlocked   atomic.Uint64
	// ENOFailuresType1 counts SYN fallbacks the peer answered (RFC 8547
	// §9 type 1: the path dropped SYNs with ENO); ENOFailuresType2
	// outbound flows that negotiated ENO and then died without progress
	// (type 2). BrokenPathPlain counts flows sent plain because of type-2
	// failures before; SYNFallbacksRefused fallbacks not made because of
	// downgrade.no_syn_fallback (refuse.go, synFallback).
	ENOFailuresType1    atomic.Uint64
	ENOFailuresType2    atomic.Uint64
	BrokenPathPlain     atomic.Uint64
	SYNFallbacksRefused atomic.Uint64
	// SYNFallbacksDeferred: fallbacks not made (yet) because the flow
	// table was full within fullHold (refuse.go, synFallback): the
	// gateway itself was overloaded.
	SYNFallbacksDeferred atomic.Uint64
	// RequiredResets counts flows of require_encryption reset because they
	// could not be encrypted.
	RequiredResets atomic.Uint64
	// Handshakes counts completed key exchanges by how long they took from
	// the first SYN (bucket upper bounds in HandshakeBuckets).
	Handshakes [len(HandshakeBuckets) + 1]atomic.Uint64
}

// HandshakeBuckets are the upper bounds of the Handshakes histogram.
var HandshakeBuckets = [...]time.Duration{time.Millisecond, 5 * time.Millisecond, 20 * time.Millisecond,
	100 * time.Millisecond, 500 * time.Millisecond, 2 * time.Second, 10 * time.Second}

func (s *Stats) observeHandshake(d time.Duration) {
	i := 0
	for i < len(HandshakeBuckets) && d > HandshakeBuckets[i] {
		i++
	}
	s.Handshakes[i].Add(1)
}

// Engine processes the packets of one shard of the flow table. It keeps
// only what outlives a packet; what one packet is processed with is its
// pkt.
type Engine struct {
	config atomic.Pointer[Config]
	table  *flowtable.Table[*Flow]
	shard  int
	stats  *Stats
	// Flush, if set, writes and empties an Output that has grown to
	// SpillAt packets in the middle of a long loop (ResetAll, Tick).
	Flush func(*Output)

	pending   []*Flow             // flows whose own Init bytes are not yet acknowledged
	spare     spares              // an evicted flow's memory, for the next new ones (recycle)
	idleScan  time.Time           // when Tick last looked for idle flows (releaseIdle)
	fullAt    time.Time           // when insert last found the table full (synFallback waits)
	optWriter packet.OptionWriter // builds the options of the segment being emitted
	sack      [4]packet.SACKBlock
}

// pkt is the context one packet is processed in (and one Tick or
// ResetAll): the engine, the configuration snapshot, the clock, the output
// batch, and what the packet brings that its data keeps on the other side.
// It lives on the stack of the entry point (Locked.ctx) and is passed down explicitly,
// so nothing of one packet is left in the Engine for the next.
type pkt struct {
	*Engine
	cfg *Config // the batch's, loaded once by Engine.Lock
	now time.Time
	out *Output
	// dirLimit is what one direction of a flow may hold under cfg
	// (budget.go), derived once per batch with it.
	dirLimit int

	rxOffload packet.Offload // of the packet being processed (forward keeps it)
	rxSegs    uint64         // the segments it stands for
	// rxBuf is the read buffer the packet lies in after out.Offset bytes
	// of headroom, when the caller lent it (ProcessBuffer): forward then
	// writes it from there.
	rxBuf []byte

	// lendPin and lendBuf name the ring (its pin and buffer) the payload
	// of the segment being sent lies in, while a frame or kept plaintext
	// is sent from it (lendFrom): emit then lends it (Output.Lend).
	lendPin *ringPin
	lendBuf []byte

	// The IP TOS byte (DSCP and the ECN field, RFC 3168 §5) and the ECE
	// and CWR flags (§6.1) of the segment being processed, given to the
	// data it carries when that data leaves on the other side: ECT and CE
	// marks and the hosts' ECN feedback travel with the bytes, as through
	// any router, so that ECN works end to end (RFC 6040 §4 states the
	// same rule for a tunnel's ends). Packets the gateway originates
	// (Init messages, its own ACKs and retransmissions on a timer) carry
	// 0: not-ECT, no flags. Held data keeps its own (encState.heldTOS).
	tosToWAN, tosToLAN uint8
	ecnToWAN, ecnToLAN uint8
}

// Locked is an Engine while it holds its shard's lock, for one batch of
// packets, one Tick or one ResetAll: Lock takes the lock and the
// configuration the batch is processed with, Unlock gives the lock back and
// ends the handle (using it after panics). The engine's packet methods
// exist only on a Locked, so that nothing processes a packet without the
// lock, and one batch sees one configuration. The lock guards every Flow
// of the shard and the Engine's own fields (pending, spare, idleScan,
// optWriter, sack); a pkt is made only from a Locked (ctx).
type Locked struct {
	e        *Engine
	cfg      *Config
	dirLimit int // dirLimit(cfg)
	now      time.Time
	out      *Output
}

// Lock takes the engine's shard lock for a batch processed at now into out.
func (e *Engine) Lock(now time.Time, out *Output) Locked {
	e.table.LockShard(e.shard)
	cfg := e.config.Load()
	return Locked{e: e, cfg: cfg, dirLimit: dirLimit(cfg), now: now, out: out}
}

// Unlock releases the shard lock; l is dead after it.
func (l *Locked) Unlock() {
	l.e.table.UnlockShard(l.e.shard)
	*l = Locked{}
}

// ecnFlags are the TCP flags of ECN (RFC 3168 §6.1).
const ecnFlags = packet.FlagECE | packet.FlagCWR

// The ECN field of the IP TOS byte (RFC 3168 §5): ECT(0) 10, ECT(1) 01,
// CE 11.
const (
	ecnMask = 0x03
	ecnCE   = 0x03
)

// New returns the engine of shard `shard` of table.
func New(cfg *Config, table *flowtable.Table[*Flow], shard int, stats *Stats) *Engine {
	e := &Engine{table: table, shard: shard, stats: stats}
	e.config.Store(cfg)
	return e
}

// SetConfig replaces the policy (SIGHUP); established flows keep their state.
func (e *Engine) SetConfig(cfg *Config) { e.config.Store(cfg) }

// Config returns the current policy.
func (e *Engine) Config() *Config { return e.config.Load() }

// segment is a parsed packet with its options.
type segment struct {
	*packet.Packet
	opts *packet.Options
}

func (s *segment) has(flag uint8) bool { return s.Flags&flag != 0 }

// Tick retransmits the gateway's own Init messages and expires flows.
func (l *Locked) Tick() {
	c := l.ctx()
	c.tick()
}

func (c *pkt) tick() {
	e, now := c.Engine, c.now
	kept := e.pending[:0]
	for _, f := range e.pending {
		c.flushIfFull()
		en := &f.enc
		if f.State != StateKeyExchange && f.State != StateEncrypted {
			continue
		}
		if f.dec.initAckOwed {
			c.ackWAN(f) // nothing has acknowledged B's Init2 since it came (gotInit2)
		}
		if !en.initAcked && now.Sub(en.initStart) > c.cfg.InitTimeout {
			e.stats.InitTimeouts.Add(1)
			f.Reason = "init exchange timed out"
			c.pathFailure(f, f.Reason, true)
			c.abort(f)
			continue
		}
		if en.initAcked && !f.enc.ownTailUnacked() {
			en.retxAt = time.Time{}
			continue
		}
		if !now.Before(en.retxAt) {
			if !en.initAcked {
				c.sendInit(f)
			} else {
				f.enc.resendOwnTail(c, f)
			}
			en.rto = min(2*en.rto, 4*time.Second)
			en.retxAt = now.Add(en.rto)
		}
		kept = append(kept, f)
	}
	clear(e.pending[len(kept):])
	e.pending = kept
	if now.Sub(e.idleScan) >= idleScanEvery {
		e.idleScan = now
		e.releaseIdle(now)
	}
	e.table.Expire(e.shard, now, func(en *flowtable.Entry[*Flow]) {
		en.Value.release(e.table, e.stats)
	})
}

// An encrypted flow with nothing in flight that has seen no packet for
// idleAfter gives back what it only needs while busy (releaseIdle).
const (
	idleAfter     = 10 * time.Second
	idleScanEvery = 5 * time.Second
)

// releaseIdle drops the AEAD states and spare buffers of idle flows: an
// idle connection then holds its Flow, its keys (master keys, nonce
// randomizers) and its session ID. The next packet builds the AEAD again
// (tcpcrypt.Sealer.Release). It visits every flow of the shard, once per
// idleScanEvery.
func (e *Engine) releaseIdle(now time.Time) {
	e.table.Range(e.shard, func(en *flowtable.Entry[*Flow]) bool {
		f := en.Value
		if f.State != StateEncrypted || now.Sub(en.LastActive) < idleAfter || f.buffered() > 0 ||
			f.enc.recs.len() > 0 || f.dec.recs.len() > 0 || len(f.dec.partial) > 0 || f.dec.ooo.len() > 0 || f.enc.ooo.len() > 0 {
			return true
		}
		if !f.enc.sealer.Released() {
			e.stats.IdleReleases.Add(1)
		}
		f.enc.sealer.Release()
		f.dec.opener.Release()
		f.enc.ring.free()
		parkRing(e, &f.enc.ring) // gives back what it parked
		f.dec.ring.free()
		parkRing(e, &f.dec.ring)
		f.dec.partial, f.dec.ooo.segs, f.enc.ooo.segs = nil, nil, nil
		return true
	})
}

// ResetAll resets both ends of every flow the engine rewrites: at shutdown
// the kernel will forward these connections' packets directly, and a LAN
// host must never take ciphertext for data.
func (l *Locked) ResetAll() {
	c := l.ctx()
	e := l.e
	e.table.Range(e.shard, func(en *flowtable.Entry[*Flow]) bool {
		if en.Value.rewrites() {
			en.Value.Reason = reasonStopped
			c.abort(en.Value)
			c.flushIfFull()
		}
		return true
	})
}
