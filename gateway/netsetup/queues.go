// The TUN device's queues. One queue is what the tun package creates
// (tun.CreateTUN). With Params.Queues > 1 the device is created with
// IFF_MULTI_QUEUE and attached once per queue:
//
//  1. The first queue is opened here with the tun package's flags plus
//     IFF_MULTI_QUEUE and handed to tun.CreateTUNFromFile, which sets the
//     device's offloads (TUNSETOFFLOAD applies to the device, not the
//     queue) and watches its state, exactly as for one queue.
//  2. Each further queue is another open of /dev/net/tun attached to the
//     same name with the same flags (the kernel refuses different ones);
//     it is non-blocking and polled by the Go runtime like the first.
//
// The kernel then puts each packet it sends into the TUN on one queue:
// the queue on which the gateway last wrote a packet of the same flow
// (the tun driver learns that from every write, by the skb's symmetric
// flow hash, so both directions of a connection count; an entry lives
// 3 s after the last write), and for a flow it has not learnt, the queue
// its flow hash picks (tun_automq_select_queue in drivers/net/tun.c). The
// dataplane writes each flow's packets on the queue of the worker that
// owns the flow, so after a flow's first packet the kernel delivers it to
// its owner (gateway/gateway.go).

package netsetup

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
	"golang.zx2c4.com/wireguard/tun"
)

// MaxQueues bounds Params.Queues (the kernel's MAX_TAP_QUEUES is 256; a
// router has far fewer cores).
const MaxQueues = 64

// tunFlags are the tun package's flags (tun.CreateTUN).
const tunFlags = unix.IFF_TUN | unix.IFF_NO_PI | unix.IFF_VNET_HDR

// createTUN creates the TUN device with n queues: the tun package's
// device on the first, and the files of the others.
func createTUN(name string, mtu, n int) (tun.Device, []*os.File, error) {
	if n <= 1 {
		dev, err := tun.CreateTUN(name, mtu)
		return dev, nil, err
	}
	first, err := openQueue(name)
	if err != nil {
		return nil, nil, fmt.Errorf("queue 0: %w", err)
	}
	dev, err := tun.CreateTUNFromFile(first, mtu)
	if err != nil {
		first.Close()
		return nil, nil, err
	}
	var more []*os.File
	for i := 1; i < n; i++ {
		f, err := openQueue(name)
		if err != nil {
			for _, f := range more {
				f.Close()
			}
			dev.Close()
			return nil, nil, fmt.Errorf("queue %d: %w", i, err)
		}
		more = append(more, f)
	}
	return dev, more, nil
}

// openQueue opens one queue of the multi-queue TUN device name, creating
// the device with the first.
func openQueue(name string) (*os.File, error) {
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	ifr.SetUint16(tunFlags | unix.IFF_MULTI_QUEUE)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("TUNSETIFF (multi-queue): %w", err)
	}
	// Non-blocking before os.NewFile, so that the runtime poller takes it.
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, err
	}
	return os.NewFile(uintptr(fd), "/dev/net/tun"), nil
}
