// Sequence-number arithmetic modulo 2^32 (RFC 9293 §3.4).

package engine

// Sequence-number arithmetic modulo 2^32 (RFC 9293 §3.4).
func seqLT(a, b uint32) bool { return int32(a-b) < 0 }

func seqLEQ(a, b uint32) bool { return int32(a-b) <= 0 }

func seqGT(a, b uint32) bool { return int32(a-b) > 0 }

func seqMax(a, b uint32) uint32 {
	if seqGT(a, b) {
		return a
	}
	return b
}

func b2u(b bool) uint32 {
	if b {
		return 1
	}
	return 0
}

func seqMin(a, b uint32) uint32 {
	if seqLT(a, b) {
		return a
	}
	return b
}
