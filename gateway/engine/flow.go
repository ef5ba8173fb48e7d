// The state of one connection. A Flow is created by the first SYN, goes
// through the ENO handshake and the Init exchange, and then either carries
// tcpcrypt (StateEncrypted) or passes untouched (StatePassthrough) for the
// rest of its life. Each direction keeps its own state, a type with its
// own methods: enc (encState, encrypt.go) for LAN-to-WAN data (plaintext
// in, ciphertext out) and dec (decState, decrypt.go) for WAN-to-LAN data;
// both start at the key exchange (initDirections).

package engine

import (
	"net/netip"
	"time"

	"tcpcrypt-gw/crypto/endpoint"
	"tcpcrypt-gw/crypto/tcpcrypt"
	"tcpcrypt-gw/eno"
)

// Role is the gateway's tcpcrypt role in a flow (RFC 8547 §4.3): A for
// connections opened from the LAN, B for connections opened from the WAN.
type Role uint8

const (
	RoleA Role = 1
	RoleB Role = 2
)

func (r Role) String() string {
	if r == RoleA {
		return "outbound"
	}
	return "inbound"
}

// State is where a flow is in its life.
type State uint8

const (
	StateSYNSent     State = iota + 1 // A: LAN SYN sent with ENO
	StateACKPending                   // A: WAN SYN-ACK accepted ENO; waiting for the LAN host's ACK
	StateSYNReceived                  // B: WAN SYN with ENO forwarded to the LAN server
	StateSYNACKSent                   // B: LAN SYN-ACK sent with our ENO answer
	StateKeyExchange                  // ENO negotiated; Init messages in flight
	StateEncrypted                    // keys on both directions
	StatePassthrough                  // plain TCP, untouched
	StateClosed                       // RST seen
	StateReset                        // reset by the gateway (authentication failure, truncation, timeout)
)

var stateNames = [...]string{"", "syn-sent", "ack-pending", "syn-received", "synack-sent", "key-exchange", "encrypted", "plain", "closed", "reset"}

func (s State) String() string {
	if int(s) < len(stateNames) {
		return stateNames[s]
	}
	return "unknown"
}

// Flow is one TCP connection between a LAN host and a WAN host.
type Flow struct {
	Role        Role
	State       State
	V6          bool
	synAckSeen  bool   // the responder's SYN-ACK passed (its ISN is in lanISN or wanISN, by role)
	established bool   // the opener acknowledged that SYN-ACK: the three-way handshake is complete
	Downgrade   bool   // a remembered tcpcrypt peer answered without ENO (refuse.go)
	pathFailed  bool   // counted as a type-2 failure of its path (fallback.go)
	Reason      string // why the flow is plain or was reset
	LAN         netip.AddrPort
	WAN         netip.AddrPort

	// *handshake holds what only the handshake needs; it is dropped once
	// the flow is encrypted (returnUnheld), so an established flow is
	// smaller. Plain flows keep it (a LAN host may still retransmit its SYN).
	*handshake

	lanISN, wanISN uint32

	// *connParams is what the gateway learns of the two endpoints and
	// negotiates for them. A plain flow opened from the WAN, what a SYN
	// flood creates, does without it (newInbound).
	*connParams

	// syn is all role B keeps from A's SYN to A's first non-SYN segment,
	// instead of *handshake and *connParams (expandSYN).
	syn *synRecord

	// *streams is the data state of both directions. It exists from the
	// start of the key exchange (initDirections) on: a half-open or plain
	// flow, what a SYN flood creates, does without it.
	*streams

	Stats FlowStats
}

// connParams are the TCP parameters of the two endpoints and what was
// negotiated with the peer: what a flow needs to rewrite its packets,
// besides the data state of its streams.
type connParams struct {
	tep          tcpcrypt.TEP
	aead         tcpcrypt.AEADID
	sessionID    []byte
	peerMSS      int // largest C payload the WAN peer accepts
	lanMSS       int // largest P payload the LAN host accepts
	sackOK, tsOK bool
	enoPending   bool   // role A: keep sending the non-SYN ENO option (RFC 8547 §4.6)
	lanTSval     uint32 // last timestamp option values seen from each side (RFC 7323)
	lanTSecr     uint32
	wanTSval     uint32
	wanTSecr     uint32
	lanWin       uint16   // last raw window from the LAN host
	wanWin       uint16   // last raw window from the WAN peer
	lanWS        uint8    // the LAN host's window scale, when both sides use it
	wanWS        uint8    // the WAN peer's window scale, when both sides use it
	originalRole eno.Role // our role in the session that produced ss[0]: picks our traffic keys
	Resumed      bool     // the session started from a cached secret, no Init messages
	appAware     bool     // we send a = 1 (RFC 8547 §4.2)
	appMandatory bool     // and require a = 1 from the peer
	PeerAppAware bool     // the peer's SYN or SYN-ACK had a = 1
	lanSynAcked  bool     // the LAN host has been sent an ACK (role B: of its SYN-ACK)
}

// streams is what a flow needs to rewrite data in both directions.
type streams struct {
	enc encState
	dec decState
}

// handshake is the part of a Flow that only the ENO handshake and the key
// exchange use.
type handshake struct {
	synRetries   int
	fellBack     bool   // the SYN went without ENO (synFallback); cleared when the peer answers it
	offer        []byte // A's SYN ENO option as sent (first half of eno_transcript)
	answer       []byte // B's SYN-ACK ENO option as sent
	keyPair      *tcpcrypt.KeyPair
	ownInit      []byte // role A: our Init1 as sent, until the keys exist
	nonce        [tcpcrypt.NonceLen]byte
	chosen       eno.Suboption   // role B: the TEP chosen from A's offer
	resume       *endpoint.Entry // the cached secret offered (A) or accepted (B)
	resumeNonce  []byte          // our resumption nonce, with resume (RFC 8548 §3.5)
	sessionNonce []byte          // sn[i] = nonce_a | nonce_b once resumption is agreed
}

// synRecord is what role B keeps of a flow it negotiates, from A's SYN
// (newInbound) through the LAN server's SYN-ACK (lanSYNACK) to A's first
// non-SYN segment (RFC 8547 §4.6), when the key exchange starts and it
// becomes the handshake state and connection parameters (expandSYN). A
// SYN flood with ENO offers makes only these: one allocation of 64 bytes,
// its fields at their wire sizes, against 320 bytes in four
// (BenchmarkHalfOpenFlowMemory).
type synRecord struct {
	wanTSval, lanTSval, lanTSecr uint32 // timestamp values of A's SYN and of the SYN-ACK (RFC 7323)
	peerMSS, lanMSS, lanWin      uint16
	offer                        [eno.MaxOptionLen]byte // A's ENO option as received; its length is offer[1]
	tep                          tcpcrypt.TEP           // chosen from A's offer
	wanWS, lanWS                 uint8
	flags                        uint8 // synSACK, ...
}

// synRecord.flags
const (
	synSACK         = 1 << iota // both SYNs carried SACK-permitted
	synTS                       // both carried timestamps
	synPeerAppAware             // A's offer had a = 1 (RFC 8547 §4.2)
	synAppAware                 // we answer with a = 1
)

// FlowStats counts a flow's traffic.
type FlowStats struct {
	PlainBytesOut, PlainBytesIn   uint64 // LAN-side payload bytes, to and from the WAN
	CipherBytesOut, CipherBytesIn uint64 // WAN-side payload bytes
	PacketsOut, PacketsIn         uint64
	RekeysOut, RekeysIn           uint64
	Started                       time.Time
	HandshakeDone                 time.Time
}

// encState is the LAN-to-WAN direction: plaintext in, ciphertext out.
type encState struct {
	ring          byteRing[cSpace] // C bytes first sent and not yet acknowledged: [first rec's cStart, cNxt)
	recs          recRing          // frames (and our Init) not yet acknowledged by the WAN peer
	held          byteRing[pSpace] // LAN plaintext that arrived before the keys existed
	ooo           oooQueue[pSpace] // LAN plaintext that arrived beyond a hole in the LAN host's stream (queueBeyondLANHole)
	heldFIN       bool
	heldTOS       uint8  // the TOS of the held data's segment (pkt.tosToWAN)
	pNxt          pSeq   // next P byte expected from the LAN host
	cNxt          cSeq   // C sequence of the next frame
	offNxt        uint64 // tcpcrypt stream offset of cNxt (RFC 8548 §3.6 frame ID)
	pAcked        pSeq   // the acknowledgment given to this direction's sender, the LAN host, in P: the end of the last whole frame the WAN acknowledged (dec.cAcked is its counterpart)
	cAckSeen      cSeq   // the highest acknowledgment the WAN peer has sent, in C (ackFromWAN)
	sealer        *tcpcrypt.Sealer
	sinceRekey    int64
	framesThisKey int32 // frames sealed under the current key: rekey at tcpcrypt.SafeFramesPerKey
	lastRekey     time.Time

	initLen   int
	initAcked bool
	initStart time.Time
	retxAt    time.Time // next re-send of our own bytes (Init, empty rekey frames); zero: none due
	rto       time.Duration
	finSent   bool

	reserved int // bytes reserved for this direction (budget.go)
}

// decState is the WAN-to-LAN direction: ciphertext in, plaintext out.
type decState struct {
	initBuf []byte // the peer's Init message, as it arrives
	keyed   bool
	cRcv    cSeq   // next C byte the frame parser needs
	offRcv  uint64 // stream offset of the frame that starts at cRcv - len(partial)
	partial []byte // bytes of a frame cut across segments
	ooo     oooQueue[cSpace]
	ring    byteRing[pSpace] // P bytes delivered to the LAN host and not yet acknowledged by it
	recs    recRing          // frames delivered, not yet acknowledged by the LAN host
	pRcv    pSeq             // next P byte to deliver
	pAck    pSeq             // highest acknowledgment from the LAN host
	cAcked  cSeq             // the acknowledgment given to this direction's sender, the WAN peer, in C: the end of the last frame the LAN host acknowledged whole (enc.pAcked is its counterpart)
	opener  *tcpcrypt.Opener

	finFrame     bool // a frame with the FIN flag was authenticated
	finC         cSeq // C sequence of the TCP FIN that must follow it
	finDelivered bool
	pendingCE    bool // a CE mark waits for the next plaintext to the LAN host (wanSegment)
	initAckOwed  bool // role A: B's Init2 is complete and no segment of ours has acknowledged it yet (gotInit2)

	reserved int // bytes reserved for this direction (budget.go)
}

// Encrypted reports whether the flow's keys were established; it stays so
// after the flow closes. Call with the shard lock held.
func (f *Flow) Encrypted() bool { return f.connParams != nil && f.sessionID != nil }

// Info is a snapshot of a flow for monitoring. It holds no secret.
type Info struct {
	Role      string
	State     string
	Encrypted bool
	Reason    string
	LAN, WAN  netip.AddrPort
	TEP       string
	Cipher    string
	// PostQuantum: the flow was keyed by a post-quantum TEP
	// (tcpcrypt.TEP.PostQuantum: x25519mlkem768), directly or by resuming
	// such a session.
	PostQuantum bool
	SessionID   []byte
	Resumed     bool
	// PeerAppAware is the application-aware bit of the peer's ENO option
	// (RFC 8547 §4.2: applications must be able to examine it).
	PeerAppAware bool
	// Downgrade: a peer that completed tcpcrypt before answered this
	// flow without ENO (a suspected downgrade attack).
	Downgrade bool
	Stats     FlowStats
	Seq       SeqInfo
}

// SeqInfo is the sequence bookkeeping of a flow, relative to the initial
// sequence numbers, for troubleshooting.
type SeqInfo struct {
	EncPNxt, EncCNxt, EncPUna uint32
	EncFrames, EncRing        int
	DecPRcv, DecCRcv, DecCAck uint32
	DecPAck                   uint32
	DecFrames, DecRing        int
	DecPartial, DecOOO        int
	DecOOOBytes, Accounted    int
}

// PostQuantum reports whether the flow is encrypted under keys from a
// post-quantum TEP (or a resumption of such a session: ss[i] descends
// from its ES).
func (f *Flow) PostQuantum() bool {
	return f.connParams != nil && f.Encrypted() && f.tep.PostQuantum()
}

// Snapshot describes f. Call with the shard lock held.
func (f *Flow) Snapshot() Info {
	// Encrypted: the flow's keys were established; it stays so after close.
	in := Info{Role: f.Role.String(), State: f.State.String(), Encrypted: f.Encrypted(),
		Reason: f.Reason, LAN: f.LAN, WAN: f.WAN, Stats: f.Stats, Downgrade: f.Downgrade}
	if f.syn != nil {
		in.TEP, in.PeerAppAware = f.syn.tep.String(), f.syn.has(synPeerAppAware)
	}
	if f.connParams == nil {
		return in
	}
	in.Resumed, in.PeerAppAware = f.Resumed, f.PeerAppAware
	if f.tep != 0 {
		in.TEP = f.tep.String()
	}
	in.PostQuantum = f.PostQuantum()
	if f.aead != 0 {
		in.Cipher = f.aead.String()
	}
	if f.sessionID != nil {
		in.SessionID = append([]byte(nil), f.sessionID...)
	}
	if f.sessionID != nil && f.streams != nil {
		l, w := f.lanISN, f.wanISN
		in.Seq = SeqInfo{EncPNxt: uint32(f.enc.pNxt) - l, EncCNxt: uint32(f.enc.cNxt) - l, EncPUna: uint32(f.enc.pAcked) - l,
			EncFrames: f.enc.recs.len(), EncRing: f.enc.ring.len(),
			DecPRcv: uint32(f.dec.pRcv) - w, DecCRcv: uint32(f.dec.cRcv) - w, DecCAck: uint32(f.dec.cAcked) - w, DecPAck: uint32(f.dec.pAck) - w,
			DecFrames: f.dec.recs.len(), DecRing: f.dec.ring.len(), DecPartial: len(f.dec.partial),
			DecOOO: f.dec.ooo.len(), DecOOOBytes: f.dec.ooo.bytes, Accounted: f.buffered()}
	}
	return in
}
