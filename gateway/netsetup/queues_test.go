package netsetup

import (
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

// tunFlagsOf reads the flags of the TUN queue f (TUNGETIFF).
func tunFlagsOf(t *testing.T, f *os.File, name string) uint16 {
	t.Helper()
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := f.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var ierr error
	if err := rc.Control(func(fd uintptr) { ierr = unix.IoctlIfreq(int(fd), unix.TUNGETIFF, ifr) }); err != nil || ierr != nil {
		t.Fatalf("TUNGETIFF: %v %v", err, ierr)
	}
	return ifr.Uint16()
}

// TestMultiQueueTUN: Queues 3 makes a multi-queue device with virtio-net
// headers on every queue, the first one the tun package's; Close removes
// the device with all its queues. Queues 0 keeps the single-queue device.
func TestMultiQueueTUN(t *testing.T) {
	inNewNS(t, func() {
		addDummies(t, "lan0", "lan1", "wan0")
		p := testParams()
		p.Queues = 3
		s, err := Apply(p)
		if err != nil {
			t.Fatal(err)
		}
		if len(s.Queues) != 2 {
			s.Close()
			t.Fatalf("%d further queues, want 2", len(s.Queues))
		}
		first := s.Device.(interface{ File() *os.File }).File()
		for i, f := range append([]*os.File{first}, s.Queues...) {
			if got := tunFlagsOf(t, f, p.TUN); got&unix.IFF_MULTI_QUEUE == 0 || got&unix.IFF_VNET_HDR == 0 {
				t.Errorf("queue %d: flags %#x, want IFF_MULTI_QUEUE and IFF_VNET_HDR", i, got)
			}
		}
		if s.Device.BatchSize() <= 1 {
			t.Errorf("the tun package saw no virtio-net headers (batch size %d)", s.Device.BatchSize())
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if linkExists(p.TUN) {
			t.Error("TUN left behind after Close")
		}

		p.Queues = 0
		s, err = Apply(p)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if len(s.Queues) != 0 {
			t.Errorf("%d further queues with Queues 0", len(s.Queues))
		}
		if got := tunFlagsOf(t, s.Device.(interface{ File() *os.File }).File(), p.TUN); got&unix.IFF_MULTI_QUEUE != 0 {
			t.Errorf("single queue: flags %#x include IFF_MULTI_QUEUE", got)
		}
	})
}
