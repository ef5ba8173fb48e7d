// Package gateway runs the data plane: packets routed into the TUN device
// are read in batches, spread over workers by flow, rewritten by the engine,
// and written back into the TUN device.
//
// There are three forms. One worker (the default on one or two cores): the
// reader goroutine processes its own batches (runInline). Several workers
// on a multi-queue TUN device: each worker reads and writes its own queue
// (runQueues, below). Several workers on one queue (a device without
// virtio-net headers): one reader hands batches to the workers, as follows.
//
// The flow of a batch:
//  1. The reader goroutine reads a batch from the TUN device: whole
//     packets with their virtio-net headers, GSO super-packets unsplit
//     (vnet.go), or, on a device without those headers, through the tun
//     package.
//  2. For each packet it finds the flow key and so the shard, and moves the
//     packet into that shard's pending batch: it swaps its read buffer with
//     a free one of the batch, no copy. Packets of one flow always go to
//     the same worker, in order.
//  3. Each worker takes its batch, holds its shard's lock while the engine
//     processes the packets into an output batch, and writes the output
//     batch into the TUN device (the engine has built super-packets where
//     it could; without virtio-net headers, the tun package coalesces).
//     A packet passed on unchanged is not copied: the output batch points
//     at its read buffer (engine.Locked.ProcessBuffer), so every form
//     writes its output before it reads into those buffers again.
//  4. Every worker also ticks: it retransmits the gateway's own Init
//     messages and expires flows of its shard.
package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"golang.zx2c4.com/wireguard/tun"

	"tcpcrypt-gw/flowtable"
	"tcpcrypt-gw/gateway/engine"
	"tcpcrypt-gw/gateway/packet"
)

const (
	// headroom before each packet: the TUN device's virtio-net header.
	headroom  = 16
	bufSize   = headroom + engine.MaxPacket + 40 // an IPv6 super-packet
	tickEvery = 50 * time.Millisecond
)

// Dataplane moves packets between a TUN device and the engines.
type Dataplane struct {
	dev     tun.Device
	vnet    *vnetIO   // nil: read and write through the tun package
	queues  []*vnetIO // a multi-queue device: worker i's queue; else nil
	table   *flowtable.Table[*engine.Flow]
	engines []*engine.Engine
	Stats   *engine.Stats
	log     *slog.Logger
	// Workers counts, per worker of a multi-queue device, the packets
	// read from its queue and those of them another worker owned.
	Workers []WorkerStats

	idleReturned uint64 // IdleReleases at the last returnIdleMemory

	cfgMu sync.Mutex
	cfg   *engine.Config
}

// WorkerStats are one worker's counters (multi-queue device only).
type WorkerStats struct {
	// Packets read from the worker's queue (a super-packet counts once).
	Packets atomic.Uint64
	// Foreign is how many of them belonged to another worker's flows:
	// processed under that worker's shard lock and written on its queue.
	Foreign atomic.Uint64
}

// NewDataplane prepares one engine per shard of table (workers shards).
// queues are the TUN device's further queues (netsetup.Setup.Queues):
// none, or workers-1 of them, which needs the whole-packet I/O (vnet.go).
func NewDataplane(dev tun.Device, queues []*os.File, table *flowtable.Table[*engine.Flow], cfg *engine.Config, workers int, log *slog.Logger) (*Dataplane, error) {
	d := &Dataplane{dev: dev, vnet: newVnetIO(dev), table: table, Stats: new(engine.Stats), log: log, cfg: cfg}
	if table.Shards() != workers {
		return nil, fmt.Errorf("gateway: %d workers for a flow table of %d shards", workers, table.Shards())
	}
	if len(queues) > 0 {
		if len(queues) != workers-1 {
			return nil, fmt.Errorf("gateway: %d TUN queues for %d workers (want one each)", len(queues)+1, workers)
		}
		if d.vnet == nil {
			return nil, errors.New("gateway: a multi-queue TUN device needs virtio-net headers (TCPCRYPT_GW_OFFLOAD=0 takes one queue)")
		}
		d.queues = []*vnetIO{d.vnet}
		for i, f := range queues {
			v := newVnetIOFile(f)
			if v == nil {
				return nil, fmt.Errorf("gateway: TUN queue %d cannot be polled", i+1)
			}
			d.queues = append(d.queues, v)
		}
		d.Workers = make([]WorkerStats, workers)
	}
	for i := 0; i < workers; i++ {
		e := engine.New(cfg, table, i, d.Stats)
		// Long loops write as they go, under the shard lock; on a
		// multi-queue device on the shard's own queue.
		io := d.vnet
		if d.queues != nil {
			io = d.queues[i]
		}
		e.Flush = func(out *engine.Output) { d.flushTo(io, out) }
		d.engines = append(d.engines, e)
	}
	return d, nil
}

// SetConfig swaps the policy of every engine (SIGHUP).
func (d *Dataplane) SetConfig(cfg *engine.Config) {
	d.cfgMu.Lock()
	d.cfg = cfg
	d.cfgMu.Unlock()
	for _, e := range d.engines {
		e.SetConfig(cfg)
	}
}

// ResetAll resets every encrypted flow, before the gateway stops (see
// engine.Locked.ResetAll).
func (d *Dataplane) ResetAll() {
	out := d.newOutput()
	for _, e := range d.engines {
		lk := e.Lock(time.Now(), out)
		lk.ResetAll()
		e.Flush(out) // under the lock: the batch holds lent ring bytes (engine.Output.Lend)
		lk.Unlock()
	}
}

// Offloads reports whether the dataplane reads and writes whole packets
// with virtio-net headers (super-packets, checksums left to the kernel).
func (d *Dataplane) Offloads() bool { return d.vnet != nil }

// Config is the policy in force.
func (d *Dataplane) Config() *engine.Config { return d.currentConfig() }

// Table is the flow table (for monitoring).
func (d *Dataplane) Table() *flowtable.Table[*engine.Flow] { return d.table }

// newOutput returns an empty output batch for this device.
func (d *Dataplane) newOutput() *engine.Output {
	// The tun package's Write takes whole packets: only our own writev
	// path may be lent the rings' bytes (engine.Output.Lend).
	return &engine.Output{Offset: headroom, Offload: d.vnet != nil, Lend: d.vnet != nil}
}

// batchSize is how many packets one read takes at most.
func (d *Dataplane) batchSize() int {
	if d.vnet != nil {
		return vnetBatch
	}
	return d.dev.BatchSize()
}

// readBufs returns the buffers of one read.
func (d *Dataplane) readBufs() (bufs [][]byte, sizes []int, offs []packet.Offload) {
	bs := d.batchSize()
	bufs = make([][]byte, bs)
	for i := range bufs {
		bufs[i] = make([]byte, bufSize)
	}
	return bufs, make([]int, bs), make([]packet.Offload, bs)
}

// batch is a set of packets for one worker: packet k is the sizes[k]
// bytes at bufs[k][headroom:]. Its buffers are swapped with the reader's,
// not copied into: the reader reads its next batch into the buffers the
// batch brought.
type batch struct {
	bufs  [][]byte
	sizes []int
	offs  []packet.Offload
	n     int
}

// Run processes packets until ctx ends or the device fails.
func (d *Dataplane) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		// The tun package's netlink listener blocks once its event
		// channel is full; nothing here needs the events (MTU changes).
		for range d.dev.Events() {
		}
	}()
	nw := len(d.engines)
	if nw == 1 {
		return d.runInline(ctx)
	}
	if d.queues != nil {
		return d.runQueues(ctx)
	}
	// Each worker gets 4 batches to fill and hand back; only the workers'
	// form needs them (a batch is up to 16 super-packets of 64 KiB).
	bs := d.batchSize()
	work := make([]chan *batch, nw)
	free := make([]chan *batch, nw)
	for i := range work {
		work[i] = make(chan *batch, 4)
		free[i] = make(chan *batch, 4)
		for j := 0; j < 4; j++ {
			b := &batch{bufs: make([][]byte, bs), sizes: make([]int, bs), offs: make([]packet.Offload, bs)}
			for k := range b.bufs {
				b.bufs[k] = make([]byte, bufSize)
			}
			free[i] <- b
		}
	}
	var wg sync.WaitGroup
	for i := 0; i < nw; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			d.worker(ctx, i, work[i], free[i])
		}(i)
	}
	err := d.read(ctx, work, free)
	cancel()
	wg.Wait()
	return err
}

// read is the reader goroutine's loop (steps 1 and 2).
func (d *Dataplane) read(ctx context.Context, work, free []chan *batch) error {
	bufs, sizes, offs := d.readBufs()
	pend := make([]*batch, len(work))
	for {
		n, err := d.readBatch(ctx, d.vnet, bufs, sizes, offs)
		if err != nil || n < 0 {
			return err
		}
		cfg := d.currentConfig()
		for i := 0; i < n; i++ {
			pkt := bufs[i][headroom : headroom+sizes[i]]
			w := max(0, d.shardOf(cfg, pkt))
			b := pend[w]
			if b == nil {
				select {
				case b = <-free[w]:
				case <-ctx.Done():
					return nil
				}
				pend[w] = b
			}
			b.bufs[b.n], bufs[i] = bufs[i], b.bufs[b.n]
			b.sizes[b.n] = sizes[i]
			b.offs[b.n] = offs[i]
			b.n++
			if b.n == len(b.bufs) {
				work[w] <- b
				pend[w] = nil
			}
		}
		for w, b := range pend {
			if b != nil {
				work[w] <- b
				pend[w] = nil
			}
		}
	}
}

// readBatch reads one batch from the TUN device: from the queue of io, or
// with io nil through the tun package. It returns n < 0 with a nil error
// when the device was closed on purpose, and n == 0 for a batch to skip.
func (d *Dataplane) readBatch(ctx context.Context, io *vnetIO, bufs [][]byte, sizes []int, offs []packet.Offload) (int, error) {
	var n int
	var err error
	if io != nil {
		n, err = io.read(bufs, sizes, offs)
	} else {
		n, err = d.dev.Read(bufs, sizes, headroom)
	}
	switch {
	case err == nil:
		return n, nil
	case ctx.Err() != nil || errors.Is(err, os.ErrClosed):
		return -1, nil
	case errors.Is(err, tun.ErrTooManySegments):
		d.log.Warn("tun read: too many segments", "err", err)
		return 0, nil
	}
	return -1, fmt.Errorf("tun read: %w", err)
}

func (d *Dataplane) currentConfig() *engine.Config {
	d.cfgMu.Lock()
	defer d.cfgMu.Unlock()
	return d.cfg
}

// shardOf picks the worker of a packet: by flow for TCP between LAN and
// WAN, and -1 (any worker: the engine passes it on unchanged, touching no
// flow) for anything else.
func (d *Dataplane) shardOf(cfg *engine.Config, pkt []byte) int {
	p, err := packet.Parse(pkt)
	if err != nil {
		return -1
	}
	key, _, ok := engine.KeyOf(cfg, &p)
	if !ok {
		return -1
	}
	return d.table.Shard(key)
}

// worker is one worker goroutine's loop (steps 3 and 4).
func (d *Dataplane) worker(ctx context.Context, i int, work <-chan *batch, free chan<- *batch) {
	runtime.LockOSThread() // hand-offs to a thread of its own are cheaper than Go scheduler wake-ups here (measured)
	e := d.engines[i]
	out := d.newOutput()
	tick := time.NewTicker(tickEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case b := <-work:
			now := time.Now()
			lk := e.Lock(now, out)
			for k := 0; k < b.n; k++ {
				lk.ProcessBuffer(b.bufs[k][:headroom+b.sizes[k]], b.offs[k])
			}
			d.flush(out) // under the lock (engine.Output.Lend)
			lk.Unlock()
			b.n = 0
			free <- b
		case now := <-tick.C:
			d.tick(e, now, out)
			if i == 0 {
				d.returnIdleMemory()
			}
		}
	}
}

// runInline is the single-worker form: the reader goroutine processes its
// batches itself, with no hand-off between goroutines (on a small router a
// hand-off costs more than the work); the ticker goroutine (tickAll)
// shares the shard lock for the timers.
func (d *Dataplane) runInline(ctx context.Context) error {
	e := d.engines[0]
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go d.tickAll(ctx)
	bufs, sizes, offs := d.readBufs()
	out := d.newOutput()
	for {
		n, err := d.readBatch(ctx, d.vnet, bufs, sizes, offs)
		if err != nil || n < 0 {
			return err
		}
		now := time.Now()
		lk := e.Lock(now, out)
		for i := 0; i < n; i++ {
			lk.ProcessBuffer(bufs[i][:headroom+sizes[i]], offs[i])
		}
		d.flush(out) // under the lock (engine.Output.Lend)
		lk.Unlock()
	}
}

// tick runs e's timers at now and writes what they send (step 4).
func (d *Dataplane) tick(e *engine.Engine, now time.Time, out *engine.Output) {
	lk := e.Lock(now, out)
	lk.Tick()
	e.Flush(out) // under the lock (engine.Output.Lend)
	lk.Unlock()
}

// returnIdleMemoryAfter is how many flows must have gone idle since the
// last time before the gateway hands its free memory back to the kernel.
const returnIdleMemoryAfter = 1024

// returnIdleMemory gives the memory freed by flows that went idle back to
// the kernel once many have (a burst of connections has ended): the Go
// runtime would otherwise keep it for the next burst, and on a router
// the idle connections are what memory must be sized for. The full
// collection this costs happens at most once per 1,024 flows gone idle.
func (d *Dataplane) returnIdleMemory() {
	n := d.Stats.IdleReleases.Load()
	if n-d.idleReturned < returnIdleMemoryAfter {
		return
	}
	d.idleReturned = n
	debug.FreeOSMemory()
}

// flush writes out on the first queue (or through the tun package).
func (d *Dataplane) flush(out *engine.Output) { d.flushTo(d.vnet, out) }

// flushTo writes out on the queue of io, or with io nil through the tun
// package, and empties it. It runs under the shard lock of the engine
// that filled out: the batch may hold bytes lent from that shard's flows'
// rings, pinned until out.Reset (engine.Output.Lend), and only the lock
// keeps another worker from changing those flows before.
func (d *Dataplane) flushTo(io *vnetIO, out *engine.Output) {
	if out.N == 0 {
		return
	}
	if io != nil {
		out.EncodeOffloads()
		if refused, last, _ := io.write(out); refused > 0 {
			d.Stats.WriteErrors.Add(uint64(refused))
			d.log.Debug("tun write", "refused", refused, "err", last)
		}
	} else if _, err := d.dev.Write(out.Packets(), headroom); err != nil && !errors.Is(err, os.ErrClosed) {
		d.log.Debug("tun write", "err", err)
	}
	out.Reset()
}
