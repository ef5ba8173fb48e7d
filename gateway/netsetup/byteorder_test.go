package netsetup

import (
	"encoding/binary"
	"testing"

	"golang.org/x/sys/unix"
)

// TestRuleIPProtoOnTheWire: netlink writes Rule.IPProto as four bytes in
// the host's order and the kernel reads the first one (FRA_IP_PROTO is a
// u8); that byte must be TCP on either byte order. make test-cross runs
// this for big-endian mips, where plain IPPROTO_TCP puts 0 there.
func TestRuleIPProtoOnTheWire(t *testing.T) {
	var b [4]byte
	binary.NativeEndian.PutUint32(b[:], uint32(ruleIPProtoTCP))
	if b[0] != unix.IPPROTO_TCP || b[1] != 0 || b[2] != 0 || b[3] != 0 {
		t.Fatalf("FRA_IP_PROTO attribute % x: the kernel reads protocol %d, want %d", b, b[0], unix.IPPROTO_TCP)
	}
	// And what the kernel sends back (one byte, zero padding) reads as the
	// same value, so rules the gateway finds are recognised as its own.
	back := [4]byte{unix.IPPROTO_TCP, 0, 0, 0}
	if got := int(binary.NativeEndian.Uint32(back[:])); got != ruleIPProtoTCP {
		t.Fatalf("rule read back as %#x, want %#x", got, ruleIPProtoTCP)
	}
}
