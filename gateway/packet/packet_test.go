package packet

import (
	"bytes"
	"net/netip"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

func sampleHeader(v6 bool) Header {
	src, dst := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("192.0.2.9")
	if v6 {
		src, dst = netip.MustParseAddr("fd00::1"), netip.MustParseAddr("2001:db8::9")
	}
	var ow OptionWriter
	ow.Raw([]byte{OptMSS, 4, 0x05, 0xb4})
	ow.Timestamp(7, 9)
	return Header{V6: v6, Src: src, Dst: dst, SrcPort: 40000, DstPort: 443, Seq: 1 << 31, Ack: 77,
		Flags: FlagACK | FlagPSH, Window: 512, TTL: 63, TOS: 0x02, IPID: 42, Flow: 0x12345,
		Options: append([]byte(nil), ow.Bytes()...), Payload: []byte("hello, tcpcrypt")}
}

// TestBuildParseRoundTrip builds packets and checks them with gopacket, an
// independent decoder, including both checksums.
func TestBuildParseRoundTrip(t *testing.T) {
	for _, v6 := range []bool{false, true} {
		h := sampleHeader(v6)
		b := Build(make([]byte, h.Len()), &h)
		p, err := Parse(b)
		if err != nil {
			t.Fatal(err)
		}
		if p.Src != h.Src || p.Dst != h.Dst || p.Seq != h.Seq || p.Ack != h.Ack || p.Flags != h.Flags ||
			p.Window != h.Window || !bytes.Equal(p.Payload(), h.Payload) || !bytes.Equal(p.Options(), h.Options) || p.V6 != v6 {
			t.Fatalf("v6=%v: parsed %+v", v6, p)
		}
		if !p.VerifyChecksum() {
			t.Fatal("checksum does not verify")
		}
		first := layers.LayerTypeIPv4
		if v6 {
			first = layers.LayerTypeIPv6
		}
		gp := gopacket.NewPacket(b, first, gopacket.Default)
		tcp, _ := gp.Layer(layers.LayerTypeTCP).(*layers.TCP)
		if tcp == nil || gp.ErrorLayer() != nil {
			t.Fatalf("gopacket: %v", gp.ErrorLayer())
		}
		if !v6 {
			ip := gp.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
			want := ip.Checksum
			ip.Checksum = 0
			buf := gopacket.NewSerializeBuffer()
			ip.SerializeTo(buf, gopacket.SerializeOptions{ComputeChecksums: true})
			got := buf.Bytes()
			if uint16(got[10])<<8|uint16(got[11]) != want {
				t.Fatal("IPv4 header checksum differs from gopacket's")
			}
		}
		// flip one payload bit: the checksum must no longer verify
		b[len(b)-1] ^= 1
		q, _ := Parse(b)
		if q.VerifyChecksum() {
			t.Fatal("corrupted packet verifies")
		}
	}
}

func TestParseRejects(t *testing.T) {
	h := sampleHeader(false)
	good := Build(make([]byte, h.Len()), &h)
	frag := append([]byte(nil), good...)
	frag[6] |= 0x20 // MF
	udp := append([]byte(nil), good...)
	udp[9] = 17
	badOff := append([]byte(nil), good...)
	badOff[20+12] = 0xf0 // data offset 60 > packet
	cases := map[string]struct {
		b    []byte
		want error
	}{
		"empty":      {nil, ErrShort},
		"version":    {[]byte{0x75, 0, 0, 0}, ErrVersion},
		"short v4":   {good[:10], ErrShort},
		"fragment":   {frag, ErrFragment},
		"udp":        {udp, ErrNotTCP},
		"tcp offset": {badOff, ErrBadLength},
		"ip length":  {good[:30], ErrBadLength},
	}
	for name, c := range cases {
		if _, err := Parse(c.b); err != c.want {
			t.Errorf("%s: err %v, want %v", name, err, c.want)
		}
	}
}

func TestOptions(t *testing.T) {
	opts := []byte{OptMSS, 4, 5, 0xb4, OptSACKPerm, 2, OptTimestamp, 10, 0, 0, 0, 1, 0, 0, 0, 2, OptNOP, OptWScale, 3, 7,
		OptENO, 3, 0x23, OptNOP}
	o, err := ParseOptions(opts)
	if err != nil || !o.HasMSS || o.MSS != 1460 || !o.SACKPerm || !o.HasTS || o.TSval != 1 || o.TSecr != 2 ||
		o.WScale != 7 || !bytes.Equal(o.ENO, []byte{OptENO, 3, 0x23}) {
		t.Fatalf("%+v %v", o, err)
	}
	var w OptionWriter
	w.CopyExcept(opts, 1400, OptENO)
	got, _ := ParseOptions(w.Bytes())
	if got.ENO != nil || got.MSS != 1400 || !got.HasTS || len(w.Bytes())%4 != 0 {
		t.Fatalf("CopyExcept: %+v", got)
	}
	for _, bad := range [][]byte{{OptMSS}, {OptMSS, 1}, {OptMSS, 9, 1, 2}} {
		if _, err := ParseOptions(bad); err == nil {
			t.Errorf("%x parsed", bad)
		}
	}
	// SACK blocks are cut to what fits
	w.Reset()
	w.Timestamp(1, 2)
	blocks := []SACKBlock{{1, 2}, {3, 4}, {5, 6}, {7, 8}}
	w.SACK(blocks, 12)
	o, _ = ParseOptions(w.Bytes())
	if o.NSACK != 1 {
		t.Fatalf("SACK within 12 bytes: %d blocks", o.NSACK)
	}
}

func TestBuildAllocatesNothing(t *testing.T) {
	h := sampleHeader(true)
	buf := make([]byte, 2048)
	if n := testing.AllocsPerRun(100, func() { Build(buf, &h) }); n != 0 {
		t.Fatalf("Build allocates %v", n)
	}
}

func FuzzParse(f *testing.F) {
	for _, v6 := range []bool{false, true} {
		h := sampleHeader(v6)
		f.Add(Build(make([]byte, h.Len()), &h))
	}
	f.Add([]byte{0x45, 0, 0, 20})
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := Parse(b)
		if err != nil {
			return
		}
		p.VerifyChecksum()
		o, err := ParseOptions(p.Options())
		if err != nil {
			return
		}
		var w OptionWriter
		w.CopyExcept(p.Options(), 1000, OptENO)
		w.SACK(o.SACK[:o.NSACK], 40)
		if len(w.Bytes()) > MaxTCPOption {
			t.Fatal("options over 40 bytes")
		}
	})
}
