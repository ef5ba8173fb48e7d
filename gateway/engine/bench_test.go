package engine

import (
	"testing"

	"tcpcrypt-gw/gateway/packet"
)

// BenchmarkDataPath moves one 1400-byte segment per iteration from the
// client through gateway A (encrypt) and gateway B (decrypt) to the server,
// and the server's ACK back through both, so the rings stay small. It shows
// the per-packet cost and that the path allocates nothing.
func BenchmarkDataPath(b *testing.B) {
	t := &testing.T{}
	c := newPair(t)
	c.handshake()
	if t.Failed() {
		b.Fatal("handshake failed")
	}
	payload := make([]byte, 1400)
	segBuf := make([]byte, 2048)
	ackBuf := make([]byte, 2048)
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
		wan := c.a.out.Bufs[0][c.a.out.Offset : c.a.out.Offset+len(payload)+tcpcryptOverheadWithHeaders(seg)]
		runOne(c.b, wan, c)
		c.b.out.Reset()
		c.a.out.Reset()
		ah := packet.Header{Src: serverAddr.Addr(), Dst: clientAddr.Addr(), SrcPort: serverAddr.Port(), DstPort: clientAddr.Port(),
			Seq: c.server.seq, Ack: c.client.seq, Flags: packet.FlagACK, Window: 5000, TTL: 64, Options: opts}
		ack := packet.Build(ackBuf, &ah)
		runOne(c.b, ack, c)
		wanAck := c.b.out.Bufs[0][c.b.out.Offset:]
		runOne(c.a, wanAck[:packetLen(wanAck)], c)
		c.a.out.Reset()
		c.b.out.Reset()
	}
}

func runOne(g *gw, pkt []byte, c *pair) {
	g.table.LockShard(0)
	g.e.Process(pkt, c.now, &g.out)
	g.table.UnlockShard(0)
}

// tcpcryptOverheadWithHeaders: the frame adds 20 bytes to the payload; the
// headers stay the same size.
func tcpcryptOverheadWithHeaders(seg []byte) int {
	p, _ := packet.Parse(seg)
	return p.IPLen + p.TCPLen + 20
}

func packetLen(b []byte) int {
	return int(b[2])<<8 | int(b[3])
}
