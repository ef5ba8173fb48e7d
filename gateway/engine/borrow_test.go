package engine

import (
	"bytes"
	"net/netip"
	"testing"
	"time"

	"tcpcrypt-gw/gateway/packet"
)

// TestForwardBorrowsReadBuffer: a packet passed on unchanged from a read
// buffer lent with ProcessBuffer goes into the output batch as that buffer,
// not a copy; Reset gives the slot its own buffer back, and nothing is
// allocated per packet. Without the lent buffer it is copied, as before.
func TestForwardBorrowsReadBuffer(t *testing.T) {
	g := newGW(t, testConfig(t, netip.MustParsePrefix("10.0.0.0/8")))
	udp := []byte{0x45, 0, 0, 28, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 192, 0, 2, 1, 0x30, 0x39, 0, 53, 0, 8, 0, 0}
	off := g.out.Offset
	buf := make([]byte, off+len(udp), off+2048)
	copy(buf[off:], udp)
	now := time.Now()

	lk := g.e.Lock(now, &g.out)
	lk.ProcessBuffer(buf, packet.Offload{})
	lk.Unlock()
	pkts := g.out.Packets()
	if len(pkts) != 1 || !bytes.Equal(pkts[0][off:], udp) {
		t.Fatalf("output %x, want the packet unchanged", pkts)
	}
	if &pkts[0][off] != &buf[off] {
		t.Error("the packet was copied, not written from its read buffer")
	}
	g.out.Reset()
	if len(g.out.Bufs) > 0 && cap(g.out.Bufs[0]) > 0 && &g.out.Bufs[0][:1][0] == &buf[0] {
		t.Error("Reset left the read buffer in the output slot")
	}

	// A copy when the buffer is not lent (Process, ProcessOffload).
	lk = g.e.Lock(now, &g.out)
	lk.Process(buf[off:])
	lk.Unlock()
	if pkts := g.out.Packets(); len(pkts) != 1 || &pkts[0][off] == &buf[off] || !bytes.Equal(pkts[0][off:], udp) {
		t.Error("Process did not copy the packet into the output")
	}
	g.out.Reset()

	allocs := testing.AllocsPerRun(100, func() {
		lk := g.e.Lock(now, &g.out)
		for range 4 {
			lk.ProcessBuffer(buf, packet.Offload{})
		}
		lk.Unlock()
		g.out.Reset()
	})
	if allocs != 0 {
		t.Errorf("%.1f allocations per batch of borrowed packets", allocs)
	}
}
