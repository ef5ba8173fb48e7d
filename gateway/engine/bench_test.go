package engine

import (
	"net/netip"
	"runtime"
	"testing"
	"time"

	"tcpcrypt-gw/crypto/tcpcrypt"
	"tcpcrypt-gw/gateway/packet"
)

// BenchmarkDataPath moves one 1400-byte segment per iteration from the
// client through gateway A (encrypt) and gateway B (decrypt) to the server,
// and the server's ACK back through both, so the rings stay small. It shows
// the per-packet cost and that the path allocates nothing.
func BenchmarkDataPath(b *testing.B) { dataPath(b, true) }

// BenchmarkDataPathCopy is BenchmarkDataPath with the frames copied into
// the output batch (no Output.Lend), for comparison.
func BenchmarkDataPathCopy(b *testing.B) { dataPath(b, false) }

// dataPath runs with offload headers, as the dataplane's own I/O does;
// each output batch is written by fakeWrite (lend: from the iovecs,
// Output.Vec).
func dataPath(b *testing.B, lend bool) {
	t := &testing.T{}
	c := newPair(t)
	c.handshake()
	if t.Failed() {
		b.Fatal("handshake failed")
	}
	for _, g := range []*gw{c.a, c.b} {
		g.out.Offload, g.out.Offset, g.out.Lend = true, 16, lend
	}
	payload := make([]byte, 1400)
	segBuf := make([]byte, 2048)
	ackBuf := make([]byte, 2048)
	wire := make([]byte, 0, 70000)
	var ow packet.OptionWriter
	ow.Timestamp(1, 1)
	opts := ow.Bytes()
	b.SetBytes(int64(len(payload)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		h := packet.Header{Src: clientAddr.Addr(), Dst: serverAddr.Addr(), SrcPort: clientAddr.Port(), DstPort: serverAddr.Port(),
			Seq: c.client.seq, Ack: c.client.ack, Flags: packet.FlagACK, Window: 5000, TTL: 64, Options: opts, Payload: payload}
		seg := packet.Build(segBuf, &h)
		c.client.seq += uint32(len(payload))
		runOne(c.a, seg, c)
		wire = fakeWrite(&c.a.out, 0, wire)
		lk := c.b.e.Lock(c.now, &c.b.out)
		lk.ProcessOffload(wire, c.a.out.Meta[0])
		lk.Unlock()
		wire = fakeWrite(&c.b.out, 0, wire)
		c.b.out.Reset()
		c.a.out.Reset()
		ackBack(c, ackBuf, opts)
	}
	b.StopTimer()
	if fa := c.a.flow(t); fa.Stats.CipherBytesOut < uint64(b.N*len(payload)) {
		b.Fatalf("%d bytes framed in %d iterations of %d: the flow stalled", fa.Stats.CipherBytesOut, b.N, len(payload))
	}
}

// fakeWrite copies packet i of out into wire, as the kernel does from the
// slices a write or writev passes it (Output.Vec), and returns it without
// its virtio-net header.
func fakeWrite(out *Output, i int, wire []byte) []byte {
	wire = wire[:0]
	for _, v := range out.Vec(i) {
		wire = append(wire, v...)
	}
	return wire[packet.OffloadLen:]
}

func ackBack(c *pair, buf, opts []byte) {
	ah := packet.Header{Src: serverAddr.Addr(), Dst: clientAddr.Addr(), SrcPort: serverAddr.Port(), DstPort: clientAddr.Port(),
		Seq: c.server.seq, Ack: c.client.seq, Flags: packet.FlagACK, Window: 5000, TTL: 64, Options: opts}
	runOne(c.b, packet.Build(buf, &ah), c)
	wanAck := c.b.out.Packets()[0][c.b.out.Offset:]
	lk := c.a.e.Lock(c.now, &c.a.out)
	lk.ProcessOffload(wanAck[:packetLen(wanAck)], c.b.out.Meta[0])
	lk.Unlock()
	c.a.out.Reset()
	c.b.out.Reset()
}

func runOne(g *gw, pkt []byte, c *pair) {
	lk := g.e.Lock(c.now, &g.out)
	lk.Process(pkt)
	lk.Unlock()
}

func packetLen(b []byte) int {
	return int(b[2])<<8 | int(b[3])
}

// BenchmarkIdleFlowMemory opens b.N encrypted flows through a gateway pair,
// one request and its ACK each, lets them go idle (releaseIdle), and
// reports the live heap each idle flow costs a gateway (both gateways'
// growth, halved), after a GC. `make bench` reports the same as RSS.
func BenchmarkIdleFlowMemory(b *testing.B) { idleFlowMemory(b) }

// BenchmarkIdleFlowMemoryPQ is BenchmarkIdleFlowMemory with flows keyed by
// x25519mlkem768 (the default TEP): its keys and Init messages (1.2-1.3 KB
// each) must not stay in the flow once the keys exist (2 KiB per flow).
func BenchmarkIdleFlowMemoryPQ(b *testing.B) {
	idleFlowMemory(b, tcpcrypt.TEPX25519MLKEM768, tcpcrypt.TEPCurve25519)
}

// idleFlowMemory measures the live heap per idle encrypted flow, keyed by
// the first of teps (the test configuration's when none are given).
func idleFlowMemory(b *testing.B, teps ...tcpcrypt.TEP) {
	t := &testing.T{}
	c := newPair(t)
	c.a, c.b = newGWFlows(t, testConfig(t, lanA), 2*b.N+16), newGWFlows(t, testConfig(t, lanB), 2*b.N+16) // inbound flows get 3/4 of a table
	if len(teps) > 0 {
		for _, g := range []*gw{c.a, c.b} {
			keys := tcpcrypt.NewKeyPool(teps, time.Minute)
			defer keys.Close()
			cfg := g.e.Config()
			cfg.TEPs, cfg.Keys = teps, keys
		}
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		port := uint16(1024 + i%60000)
		c.client = &host{addr: netip.AddrPortFrom(clientAddr.Addr(), port), peer: serverAddr, seq: uint32(1000 + i)}
		c.server = &host{addr: serverAddr, peer: c.client.addr, seq: uint32(5000 + i)}
		c.a.client, c.b.client = c.client.addr, c.client.addr
		c.handshake()
		msg := []byte("x")
		wan := one(t, c.a.process(c.client.seg(packet.FlagACK|packet.FlagPSH, msg, nil), c.now))
		c.client.seq++
		one(t, c.b.process(wan, c.now))
		c.server.ack = c.client.seq
		c.a.process(one(t, c.b.process(c.server.seg(packet.FlagACK, nil, nil), c.now)), c.now)
	}
	b.StopTimer()
	if t.Failed() {
		b.Fatal("a handshake failed")
	}
	later := c.now.Add(idleAfter + idleScanEvery + time.Second)
	c.a.tick(later)
	c.b.tick(later)
	runtime.GC()
	runtime.ReadMemStats(&after)
	if len(teps) > 0 && c.a.flow(t).tep != teps[0] {
		b.Fatalf("flows keyed by %v, want %v", c.a.flow(t).tep, teps[0])
	}
	b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/float64(b.N)/2, "heapB/flow")
	runtime.KeepAlive(c)
}

// BenchmarkSuperPacketPath is BenchmarkDataPath with offload headers: one
// 44-segment GSO super-packet from the client per iteration through A
// (frames, joined into super-packets) and B (plaintext to the server, joined
// again), and the server's ACK back. Bytes per second compare with
// BenchmarkDataPath's; allocations must stay 0.
func BenchmarkSuperPacketPath(b *testing.B) { superPacketPath(b, true) }

// BenchmarkSuperPacketPathCopy is BenchmarkSuperPacketPath with the frames
// copied into the output batch (no Output.Lend), for comparison.
func BenchmarkSuperPacketPathCopy(b *testing.B) { superPacketPath(b, false) }

func superPacketPath(b *testing.B, lend bool) {
	t := &testing.T{}
	c := newPair(t)
	c.handshake()
	if t.Failed() {
		b.Fatal("handshake failed")
	}
	for _, g := range []*gw{c.a, c.b} {
		g.out.Offload, g.out.Offset, g.out.Lend = true, 16, lend
	}
	mss := 1460 - 20 - 12
	payload := make([]byte, 44*mss)
	segBuf := make([]byte, 70000)
	ackBuf := make([]byte, 2048)
	wanBuf := make([]byte, 0, 70000)
	lanBuf := make([]byte, 0, 70000)
	var ow packet.OptionWriter
	ow.Timestamp(1, 1)
	opts := ow.Bytes()
	in := packet.Offload{Flags: packet.OffloadNeedsCsum, GSOType: packet.GSOTCPv4, GSOSize: uint16(mss), CsumStart: 20, CsumOffset: 16}
	b.SetBytes(int64(len(payload)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		h := packet.Header{Src: clientAddr.Addr(), Dst: serverAddr.Addr(), SrcPort: clientAddr.Port(), DstPort: serverAddr.Port(),
			Seq: c.client.seq, Ack: c.client.ack, Flags: packet.FlagACK, Window: 5000, TTL: 64, Options: opts, Payload: payload,
			PartialChecksum: true}
		seg := packet.Build(segBuf, &h)
		c.client.seq += uint32(len(payload))
		lk := c.a.e.Lock(c.now, &c.a.out)
		lk.ProcessOffload(seg, in)
		lk.Unlock()
		for k := 0; k < c.a.out.N; k++ {
			wan := fakeWrite(&c.a.out, k, wanBuf)
			lk := c.b.e.Lock(c.now, &c.b.out)
			lk.ProcessOffload(wan, c.a.out.Meta[k])
			lk.Unlock()
		}
		for k := 0; k < c.b.out.N; k++ {
			lanBuf = fakeWrite(&c.b.out, k, lanBuf)
		}
		c.a.out.Reset()
		c.b.out.Reset()
		ackBack(c, ackBuf, opts)
	}
	b.StopTimer()
	if fa := c.a.flow(t); fa.Stats.CipherBytesOut < uint64(b.N*len(payload)) || c.a.stats.BadChecksum.Load() != 0 {
		b.Fatalf("%d bytes framed in %d iterations of %d: the flow stalled", fa.Stats.CipherBytesOut, b.N, len(payload))
	}
}
