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
//     dropped, the rest still go. A packet whose frames the engine lent
//     from a flow's ring (engine.Output.Lend) is one writev(2): its
//     headers, then the ring's bytes, with no copy in user space.

package gateway

import (
	"errors"
	"os"
	"sync"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
	"golang.zx2c4.com/wireguard/tun"

	"tcpcrypt-gw/gateway/engine"
	"tcpcrypt-gw/gateway/packet"
)

// vnetBatch is how many packets (each up to a 64 KiB super-packet) one read
// takes at most.
const vnetBatch = 16

// vnetIO reads and writes a TUN device's packets with their virtio-net
// headers. The state of one read or write lives in the struct, and the
// functions the runtime poller calls are bound once, so that neither
// allocates per call. One goroutine reads and one writes at a time
// (gateway.go: the queue's reader, and writers serialized by wmu).
type vnetIO struct {
	rc syscall.RawConn

	rbufs   [][]byte
	rsizes  []int
	roffs   []packet.Offload
	rn      int
	rerr    error
	readFn  func(fd uintptr) bool
	wmu     sync.Mutex
	wout    *engine.Output
	wi      int
	iov     []unix.Iovec // writev's, kept: unix.Writev allocates per call
	refused int
	wlast   error
	wfatal  error
	writeFn func(fd uintptr) bool
}

// newVnetIO returns the whole-packet I/O of dev, or nil if dev has no
// virtio-net headers (the tun package reports a batch size above 1 exactly
// when it enabled them).
func newVnetIO(dev tun.Device) *vnetIO {
	nt, ok := dev.(interface{ File() *os.File })
	if !ok || dev.BatchSize() <= 1 || OffloadsOff() {
		return nil
	}
	return newVnetIOFile(nt.File())
}

// OffloadsOff reports whether TCPCRYPT_GW_OFFLOAD=0 asks for the tun
// package's I/O (for comparison, docs/architecture.md); a multi-queue
// device needs the whole-packet I/O, so then it has one queue.
func OffloadsOff() bool { return os.Getenv("TCPCRYPT_GW_OFFLOAD") == "0" }

// newVnetIOFile returns the whole-packet I/O of one queue of a TUN device
// opened with IFF_VNET_HDR, or nil if the file cannot be polled.
func newVnetIOFile(f *os.File) *vnetIO {
	rc, err := f.SyscallConn()
	if err != nil {
		return nil
	}
	v := &vnetIO{rc: rc}
	v.readFn, v.writeFn = v.readFd, v.writeFd
	return v
}

// read reads up to len(bufs) packets; packet i is the sizes[i] bytes at
// bufs[i][headroom:], its virtio-net header just before it.
func (v *vnetIO) read(bufs [][]byte, sizes []int, offs []packet.Offload) (int, error) {
	v.rbufs, v.rsizes, v.roffs, v.rn, v.rerr = bufs, sizes, offs, 0, nil
	err := v.rc.Read(v.readFn)
	if v.rn > 0 {
		return v.rn, nil
	}
	return 0, closedErr(errors.Join(err, v.rerr))
}

// readFd reads queued packets until none is left or the batch is full; it
// reports false (wait for the poller) while it has none.
func (v *vnetIO) readFd(fd uintptr) bool {
	for v.rn < len(v.rbufs) {
		b := v.rbufs[v.rn][headroom-packet.OffloadLen:]
		m, err := unix.Read(int(fd), b)
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN:
			return v.rn > 0
		case err != nil:
			v.rerr = err
			return true
		case m < packet.OffloadLen:
			continue // cannot happen with IFF_VNET_HDR; skip rather than misparse
		}
		v.roffs[v.rn] = packet.DecodeOffload(b)
		v.rsizes[v.rn] = m - packet.OffloadLen
		v.rn++
	}
	return true
}

// write writes each packet of out (headroom before each, its virtio-net
// header at the end of it: Output.EncodeOffloads). A packet the kernel
// refuses is dropped and counted in refused, with the last such error in
// lastErr; err is the error that ends the device.
func (v *vnetIO) write(out *engine.Output) (refused int, lastErr, err error) {
	v.wmu.Lock()
	defer v.wmu.Unlock()
	v.wout, v.wi, v.refused, v.wlast, v.wfatal = out, 0, 0, nil, nil
	err = v.rc.Write(v.writeFn)
	v.wout = nil
	if err == nil {
		err = v.wfatal
	}
	return v.refused, v.wlast, closedErr(err)
}

// writeFd writes the packets not yet written; false waits for the poller.
func (v *vnetIO) writeFd(fd uintptr) bool {
	for v.wi < v.wout.N {
		err := v.writePacket(int(fd), v.wout.Vec(v.wi))
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN:
			return false
		case err == unix.EBADFD:
			v.wfatal = err
			return true
		case err != nil:
			v.refused++
			v.wlast = err
		}
		v.wi++
	}
	return true
}

// writePacket writes one packet given as slices (Output.Vec): a plain
// write(2) when it is one, else writev(2). A TUN write takes a whole
// packet or none, so a short write cannot happen.
func (v *vnetIO) writePacket(fd int, vec [][]byte) error {
	if len(vec) == 1 {
		_, err := unix.Write(fd, vec[0])
		return err
	}
	v.iov = v.iov[:0]
	for _, b := range vec {
		if len(b) == 0 {
			continue
		}
		io := unix.Iovec{Base: &b[0]}
		io.SetLen(len(b))
		v.iov = append(v.iov, io)
	}
	_, _, e := unix.Syscall(unix.SYS_WRITEV, uintptr(fd), uintptr(unsafe.Pointer(&v.iov[0])), uintptr(len(v.iov)))
	clear(v.iov) // drop the pointers into the batch
	if e != 0 {
		return e
	}
	return nil
}

// closedErr maps the errors of a closed TUN file to os.ErrClosed.
func closedErr(err error) error {
	if errors.Is(err, unix.EBADFD) || errors.Is(err, os.ErrClosed) {
		return os.ErrClosed
	}
	return err
}
