// The data path: TUN -> impairer -> queue -> TUN.
//
//  1. The reader takes batches of packets from the TUN device (the device
//     splits the kernel's GSO super-packets into ordinary segments), runs
//     each through the impairer under the queue's lock, and wakes the
//     writer.
//  2. The writer sleeps until the earliest packet is due (or it is woken
//     because an earlier one arrived), takes every due packet out of the
//     queue and writes them back into the TUN one per Write call: within a
//     call the device coalesces adjacent segments of a flow (GRO), which
//     would undo resegmentation and reordering.
//
// Both stop when the TUN device is closed.

package main

import (
	"errors"
	"log"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"tcpcrypt-gw/test/impair"

	"golang.zx2c4.com/wireguard/tun"
)

// tunOffset is the headroom in front of each packet, enough for the
// device's virtio-net header.
const tunOffset = 16

// writeBatch bounds the due packets the writer takes out of the queue at
// once.
const writeBatch = 128

// maxLoggedErrors bounds the log lines about failed reads and writes.
const maxLoggedErrors = 10

type dataPath struct {
	dev   tun.Device
	im    *impair.Impairer
	mu    sync.Mutex // guards im's Process and queue
	queue *impair.Queue
	wake  chan struct{}

	readErrors, writeErrors atomic.Uint64
}

func newDataPath(dev tun.Device, im *impair.Impairer, queueLimit, mtu int) *dataPath {
	return &dataPath{
		dev:   dev,
		im:    im,
		queue: impair.NewQueue(queueLimit, mtu, tunOffset),
		wake:  make(chan struct{}, 1),
	}
}

// read is step 1; it returns when the device is closed.
func (p *dataPath) read(mtu int) {
	n := p.dev.BatchSize()
	bufs := make([][]byte, n)
	sizes := make([]int, n)
	for i := range bufs {
		bufs[i] = make([]byte, tunOffset+mtu)
	}
	emit := p.queue.Push
	for {
		count, err := p.dev.Read(bufs, sizes, tunOffset)
		if err != nil {
			if errors.Is(err, os.ErrClosed) {
				return
			}
			if p.readErrors.Add(1) <= maxLoggedErrors {
				log.Printf("read from TUN: %v", err)
			}
			if count == 0 {
				continue
			}
		}
		now := time.Now()
		p.mu.Lock()
		for i := range count {
			p.im.Process(bufs[i][tunOffset:tunOffset+sizes[i]], now, emit)
		}
		p.mu.Unlock()
		select {
		case p.wake <- struct{}{}:
		default:
		}
	}
}

// write is step 2; it returns when the device is closed or stop is closed.
func (p *dataPath) write(stop <-chan struct{}) {
	var (
		due   [writeBatch][]byte
		one   [1][]byte
		timer = time.NewTimer(time.Hour)
	)
	defer timer.Stop()
	for {
		p.mu.Lock()
		now := time.Now()
		n := 0
		for n < len(due) {
			slot, ok := p.queue.PopDue(now)
			if !ok {
				break
			}
			due[n] = slot
			n++
		}
		next, pending := p.queue.Next()
		p.mu.Unlock()

		for _, slot := range due[:n] {
			one[0] = slot
			if _, err := p.dev.Write(one[:], tunOffset); err != nil {
				if errors.Is(err, os.ErrClosed) {
					return
				}
				if p.writeErrors.Add(1) <= maxLoggedErrors {
					log.Printf("write to TUN: %v", err)
				}
			}
		}
		if n > 0 {
			p.mu.Lock()
			for i, slot := range due[:n] {
				p.queue.Release(slot)
				due[i] = nil
			}
			p.mu.Unlock()
			continue // more may have become due while writing
		}

		wait := time.Hour
		if pending {
			wait = max(time.Until(next), 0)
		}
		timer.Reset(wait)
		select {
		case <-timer.C:
		case <-p.wake:
		case <-stop:
			return
		}
	}
}

// queued returns the number of packets still waiting.
func (p *dataPath) queued() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.queue.Len()
}
