// Sequence numbers, one type per space. A flow numbers its bytes twice
// (RFC 9293 §3.4, modulo 2^32): in P, the plaintext the LAN host sees, and
// in C, the ciphertext on the WAN. Mixing the two up is this engine's
// typical bug, so each space is a type of its own: a pSeq cannot be used
// where a cSeq is expected.
//
//  1. A seqNum enters from the wire by a conversion named after its space
//     (pSeq(h.Seq), cSeq(h.Ack)) and leaves as uint32(v).
//  2. Within a space: comparison modulo 2^32 (lt, leq, gt, geq, max, min),
//     a value moved by a length (add) and the length between two values
//     (since).
//  3. Between the spaces only through what links them: a frame record
//     (frameRec: the C bytes of a frame and the P bytes it carries) or a
//     distance in bytes (an int).
//
// The model is gVisor's seqnum.Value; the space is a type parameter that
// only names the space (pSpace, cSpace), so the methods are written once
// and compile to plain uint32 arithmetic.

package engine

// space names a sequence space: pSpace or cSpace.
type space interface{ pSpace | cSpace }

type (
	pSpace struct{} // the plaintext the LAN host sends or receives
	cSpace struct{} // the ciphertext on the WAN
)

// seqNum is a sequence number in space S.
type seqNum[S space] uint32

type (
	pSeq = seqNum[pSpace]
	cSeq = seqNum[cSpace]
)

func (a seqNum[S]) lt(b seqNum[S]) bool  { return int32(a-b) < 0 }
func (a seqNum[S]) leq(b seqNum[S]) bool { return int32(a-b) <= 0 }
func (a seqNum[S]) gt(b seqNum[S]) bool  { return int32(a-b) > 0 }
func (a seqNum[S]) geq(b seqNum[S]) bool { return int32(a-b) >= 0 }

// add is a moved by n bytes (n < 0: back).
func (a seqNum[S]) add(n int) seqNum[S] { return a + seqNum[S](uint32(n)) }

// since is the number of bytes from b up to a (a at or after b).
func (a seqNum[S]) since(b seqNum[S]) int { return int(uint32(a - b)) }

func (a seqNum[S]) max(b seqNum[S]) seqNum[S] {
	if a.gt(b) {
		return a
	}
	return b
}

func (a seqNum[S]) min(b seqNum[S]) seqNum[S] {
	if a.lt(b) {
		return a
	}
	return b
}

// b2i is 1 for true: the sequence number a SYN or FIN takes.
func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}
