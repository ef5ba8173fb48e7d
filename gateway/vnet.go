// Whole-packet I/O on a TUN device opened with IFF_VNET_HDR, which the tun
// package does for every device that supports it.
//
// The tun package's own Read splits each GSO super-packet into MTU-sized
// packets and computes every checksum the kernel left undone, and its
// Write joins them again and recomputes the header sums. The engine needs
// neither: it frames a super-packet's payload as it frames a segment's, and
// it builds its packets with partial checksums and super-packets itself
// (engine.Output.Offload). So the dataplane reads and writes the device's
// file directly, each packet behind its virtio-net header
// (packet.Offload):
//
//  1. read: one wake-up of the runtime poller, then as many packets as are
//     queued, up to the batch size, each read whole into its own buffer.
//  2. write: every packet of the output batch, one write each (a TUN device
//     has no batch write); a packet the kernel refuses is counted and
//     dropped, the rest still go.

package gateway

import (
	"errors"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
	"golang.zx2c4.com/wireguard/tun"

	"tcpcrypt-gw/gateway/packet"
)

// vnetBatch is how many packets (each up to a 64 KiB super-packet) one read
// takes at most.
const vnetBatch = 16

// vnetIO reads and writes a TUN device's packets with their virtio-net
// headers.
type vnetIO struct {
	rc syscall.RawConn
}

// newVnetIO returns the whole-packet I/O of dev, or nil if dev has no
// virtio-net headers (the tun package reports a batch size above 1 exactly
// when it enabled them).
func newVnetIO(dev tun.Device) *vnetIO {
	nt, ok := dev.(interface{ File() *os.File })
	if !ok || dev.BatchSize() <= 1 || os.Getenv("TCPCRYPT_GW_OFFLOAD") == "0" {
		return nil
	}
	rc, err := nt.File().SyscallConn()
	if err != nil {
		return nil
	}
	return &vnetIO{rc: rc}
}

// read reads up to len(bufs) packets; packet i is the sizes[i] bytes at
// bufs[i][headroom:], its virtio-net header just before it.
func (v *vnetIO) read(bufs [][]byte, sizes []int, offs []packet.Offload) (int, error) {
	n := 0
	var rerr error
	err := v.rc.Read(func(fd uintptr) bool {
		for n < len(bufs) {
			m, err := unix.Read(int(fd), bufs[n][headroom-packet.OffloadLen:])
			switch {
			case err == unix.EINTR:
				continue
			case err == unix.EAGAIN:
				return n > 0 // nothing queued: wait for the poller unless we have some
			case err != nil:
				rerr = err
				return true
			case m < packet.OffloadLen:
				continue // cannot happen with IFF_VNET_HDR; skip rather than misparse
			}
			offs[n] = packet.DecodeOffload(bufs[n][headroom-packet.OffloadLen:])
			sizes[n] = m - packet.OffloadLen
			n++
		}
		return true
	})
	if n > 0 {
		return n, nil
	}
	return 0, closedErr(errors.Join(err, rerr))
}

// write writes each packet of pkts (headroom before each, its virtio-net
// header at the end of it). A packet the kernel refuses is dropped and
// counted in refused, with the last such error in lastErr; err is the
// error that ends the device.
func (v *vnetIO) write(pkts [][]byte) (refused int, lastErr, err error) {
	i := 0
	err = v.rc.Write(func(fd uintptr) bool {
		for i < len(pkts) {
			_, werr := unix.Write(int(fd), pkts[i][headroom-packet.OffloadLen:])
			switch {
			case werr == unix.EINTR:
				continue
			case werr == unix.EAGAIN:
				return false
			case werr == unix.EBADFD:
				err = werr
				return true
			case werr != nil:
				refused++
				lastErr = werr
			}
			i++
		}
		return true
	})
	return refused, lastErr, closedErr(err)
}

// closedErr maps the errors of a closed TUN file to os.ErrClosed.
func closedErr(err error) error {
	if errors.Is(err, unix.EBADFD) || errors.Is(err, os.ErrClosed) {
		return os.ErrClosed
	}
	return err
}
