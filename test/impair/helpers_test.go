package impair

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

// Addresses of the synthetic packets: a's side and b's side.
var (
	addrA4 = net.IP{10, 91, 1, 2}
	addrB4 = net.IP{10, 91, 3, 2}
	addrA6 = net.ParseIP("fd91:1::2")
	addrB6 = net.ParseIP("fd91:3::2")
)

// seg describes a synthetic TCP segment.
type seg struct {
	v6               bool
	toA              bool // towards a (b2a) instead of towards b
	srcPort, dstPort uint16
	seq, ack         uint32
	syn, ack_, fin   bool
	psh, rst         bool
	id               uint16
	opts             []layers.TCPOption
	payload          []byte
}

func (s seg) ips() (src, dst net.IP) {
	a, b := addrA4, addrB4
	if s.v6 {
		a, b = addrA6, addrB6
	}
	if s.toA {
		return b, a
	}
	return a, b
}

// build serializes the segment with gopacket, checksums computed.
func (s seg) build(t testing.TB) []byte {
	t.Helper()
	src, dst := s.ips()
	tcp := &layers.TCP{
		SrcPort: layers.TCPPort(s.srcPort), DstPort: layers.TCPPort(s.dstPort),
		Seq: s.seq, Ack: s.ack, SYN: s.syn, ACK: s.ack_, FIN: s.fin, PSH: s.psh, RST: s.rst,
		Window: 65535, Options: s.opts,
	}
	var ip gopacket.SerializableLayer
	if s.v6 {
		l := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolTCP, SrcIP: src, DstIP: dst}
		tcp.SetNetworkLayerForChecksum(l)
		ip = l
	} else {
		l := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolTCP, SrcIP: src, DstIP: dst, Id: s.id, Flags: layers.IPv4DontFragment}
		tcp.SetNetworkLayerForChecksum(l)
		ip = l
	}
	buf := gopacket.NewSerializeBuffer()
	opts := gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}
	if err := gopacket.SerializeLayers(buf, opts, ip, tcp, gopacket.Payload(s.payload)); err != nil {
		t.Fatalf("serialize: %v", err)
	}
	return append([]byte(nil), buf.Bytes()...)
}

// decoded is a packet decoded by gopacket, independent of the package's
// own parser.
type decoded struct {
	v4      *layers.IPv4
	v6      *layers.IPv6
	tcp     *layers.TCP
	payload []byte
}

func decode(t testing.TB, pkt []byte) decoded {
	t.Helper()
	first := layers.LayerTypeIPv4
	if pkt[0]>>4 == 6 {
		first = layers.LayerTypeIPv6
	}
	p := gopacket.NewPacket(pkt, first, gopacket.DecodeOptions{NoCopy: true})
	if el := p.ErrorLayer(); el != nil {
		t.Fatalf("decode: %v", el.Error())
	}
	var d decoded
	if l, ok := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4); ok {
		d.v4 = l
	}
	if l, ok := p.Layer(layers.LayerTypeIPv6).(*layers.IPv6); ok {
		d.v6 = l
	}
	tcp, ok := p.Layer(layers.LayerTypeTCP).(*layers.TCP)
	if !ok {
		t.Fatalf("no TCP layer in %x", pkt)
	}
	d.tcp = tcp
	d.payload = tcp.Payload
	return d
}

// checkValid asserts that the packet's lengths and checksums are what
// gopacket computes: it re-serializes the decoded layers with FixLengths and
// ComputeChecksums and compares the bytes.
func checkValid(t testing.TB, pkt []byte) decoded {
	t.Helper()
	d := decode(t, pkt)
	var ip gopacket.SerializableLayer
	if d.v4 != nil {
		c := *d.v4
		c.Checksum = 0
		ip = &c
		d.tcp.SetNetworkLayerForChecksum(&c)
	} else {
		c := *d.v6
		ip = &c
		d.tcp.SetNetworkLayerForChecksum(&c)
	}
	tcp := *d.tcp
	tcp.Checksum = 0
	buf := gopacket.NewSerializeBuffer()
	opts := gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}
	if err := gopacket.SerializeLayers(buf, opts, ip, &tcp, gopacket.Payload(d.payload)); err != nil {
		t.Fatalf("re-serialize: %v", err)
	}
	if !bytes.Equal(buf.Bytes(), pkt) {
		t.Fatalf("packet differs from its re-serialization with correct lengths and checksums:\n got  %x\n want %x", pkt, buf.Bytes())
	}
	return d
}

// out is one emitted packet.
type out struct {
	pkt []byte
	due time.Time
}

// collector gathers what an Impairer emits.
type collector struct{ got []out }

func (c *collector) emit(pkt []byte, due time.Time) bool {
	c.got = append(c.got, out{append([]byte(nil), pkt...), due})
	return true
}

// testConfig is the usual a2b/b2a configuration.
func testConfig(a2b, b2a, def Settings) Config {
	return Config{
		Seed: 7,
		Directions: []Direction{
			{Name: "a2b", Prefixes: mustPrefixes("10.91.3.0/24", "fd91:3::/64"), Settings: a2b},
			{Name: "b2a", Prefixes: mustPrefixes("10.91.1.0/24", "fd91:1::/64"), Settings: b2a},
		},
		Default: def,
	}
}

func mustPrefixes(ss ...string) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range ss {
		p, err := parsePrefix(s)
		if err != nil {
			panic(fmt.Sprint(s, err))
		}
		out = append(out, p)
	}
	return out
}

func newImpairer(t testing.TB, cfg Config) *Impairer {
	t.Helper()
	im, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return im
}

func stats(im *Impairer, dir string) [NumCounters]uint64 {
	for _, s := range im.Stats() {
		if s.Name == dir {
			return s.Counts
		}
	}
	panic("no direction " + dir)
}

func payloadOf(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7) + seed
	}
	return b
}
