// The multi-queue form of the data plane: one TUN queue per worker
// (netsetup, queues.go), each worker reading and writing its own, with no
// hand-off between goroutines on the way of a packet.
//
//  1. Worker i reads a batch from its queue and finds each packet's owner:
//     the shard of its flow (flowtable.Table.Shard), which is worker i's
//     for nearly every packet; a packet of no flow (not TCP between LAN
//     and WAN) is worker i's own.
//  2. It processes its own packets under its shard's lock and writes the
//     output on its queue. Writing teaches the kernel: the tun driver
//     remembers, by the symmetric flow hash, the queue a flow's packets
//     were last written on and puts the flow's next packets, in both
//     directions, on that queue (tun_flow_update, tun_automq_select_queue
//     in drivers/net/tun.c).
//  3. A packet owned by another worker w (the first packets of a flow,
//     which the kernel places by its own hash, a flow idle for more than
//     the kernel's 3 s, or beyond the kernel's 4,096 remembered flows) is
//     processed by worker i under w's shard lock, since the flow's state
//     lives in w's shard, and its output written on w's queue, which
//     moves the flow there for the kernel. The hand-over is the lock, not
//     a queue between goroutines: nothing to bound, no wake-up, and the
//     packets of one flow still meet its state in one shard, one at a
//     time. Packets of a flow read from two queues while the kernel moves
//     it may be reordered, as the kernel's own queue switch does; the
//     engine takes reordered segments as TCP does.
//  4. A ticker goroutine ticks every shard in turn (timers, expiry) and
//     writes each shard's output on the shard's queue.
//
// The kernel's hash cannot be computed here (its seed is the kernel's
// secret), so the owner is the flow table's shard and the kernel learns
// it from the writes, rather than the other way round.

package gateway

import (
	"context"
	"sync"
	"time"

	"tcpcrypt-gw/gateway/engine"
	"tcpcrypt-gw/gateway/packet"
)

// runQueues runs one worker per queue and the ticker until ctx ends or a
// queue fails (steps 1-4).
func (d *Dataplane) runQueues(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		d.tickAll(ctx)
	}()
	errs := make(chan error, len(d.queues))
	for i := range d.queues {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			errs <- d.queueWorker(ctx, i)
			cancel() // one queue ended: the device is gone or failed
		}(i)
	}
	for range d.queues {
		if err := <-errs; err != nil {
			// The other workers stay in their reads until the caller
			// closes the device (run.go does on return).
			return err
		}
	}
	wg.Wait()
	return nil
}

// tickAll is step 4: every engine's timers, from one goroutine (beside
// the queue workers, or beside runInline's reader).
func (d *Dataplane) tickAll(ctx context.Context) {
	out := d.newOutput()
	tick := time.NewTicker(tickEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			for _, e := range d.engines {
				d.tick(e, now, out)
			}
			d.returnIdleMemory()
		}
	}
}

// queueWorker is worker i's loop (steps 1-3).
func (d *Dataplane) queueWorker(ctx context.Context, i int) error {
	io, st := d.queues[i], &d.Workers[i]
	bufs, sizes, offs := d.readBufs()
	owner := make([]int, len(bufs))
	out := d.newOutput()
	for {
		n, err := d.readBatch(ctx, io, bufs, sizes, offs)
		if err != nil || n < 0 {
			return err
		}
		cfg := d.currentConfig()
		foreign := 0
		for k := 0; k < n; k++ {
			w := d.shardOf(cfg, bufs[k][headroom:headroom+sizes[k]])
			if w < 0 {
				w = i
			}
			owner[k] = w
			if w != i {
				foreign++
			}
		}
		st.Packets.Add(uint64(n))
		now := time.Now()
		d.processOwned(now, i, out, bufs[:n], sizes, offs, owner)
		if foreign == 0 {
			continue
		}
		st.Foreign.Add(uint64(foreign))
		for w := range d.engines {
			if w != i {
				d.processOwned(now, w, out, bufs[:n], sizes, offs, owner)
			}
		}
	}
}

// processOwned processes, in order, the packets of bufs that worker w
// owns, under w's shard lock, and writes the output on w's queue.
func (d *Dataplane) processOwned(now time.Time, w int, out *engine.Output, bufs [][]byte, sizes []int, offs []packet.Offload, owner []int) {
	var lk engine.Locked
	locked := false
	e := d.engines[w]
	for k := range bufs {
		if owner[k] != w {
			continue
		}
		if !locked {
			lk, locked = e.Lock(now, out), true
		}
		lk.ProcessBuffer(bufs[k][:headroom+sizes[k]], offs[k]) // bufs stay untouched until the flush below
	}
	if locked {
		e.Flush(out) // under w's lock: out holds bytes lent from w's rings (engine.Output.Lend)
		lk.Unlock()
	}
}
