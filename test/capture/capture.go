// Package capture records the packets of a namespace with tcpdump and
// summarises what an observer on the wire sees of a connection: the TCP-ENO
// options on its SYNs and whether a plaintext marker is visible. The
// end-to-end tests and `tcpcrypt-gw demo` use it.
package capture

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/google/gopacket/pcapgo"

	"tcpcrypt-gw/gateway/packet"
	"tcpcrypt-gw/test/netns"
)

// Capture is a running tcpdump.
type Capture struct {
	proc *netns.Proc
	file string
	log  string
}

// Log returns what tcpdump printed (for diagnosing an empty capture).
func (c *Capture) Log() string {
	b, _ := os.ReadFile(c.log)
	st, err := os.Stat(c.file)
	size := int64(-1)
	if err == nil {
		size = st.Size()
	}
	return fmt.Sprintf("%s (pcap file: %d bytes)", b, size)
}

// Start captures on every interface of ns into dir, with a BPF filter.
func Start(ns *netns.NS, dir, filter string) (*Capture, error) {
	bin, err := exec.LookPath("tcpdump")
	if err != nil {
		bin = "/usr/bin/tcpdump"
		if _, err := os.Stat(bin); err != nil {
			return nil, fmt.Errorf("tcpdump is not installed (Debian package tcpdump)")
		}
	}
	c := &Capture{file: filepath.Join(dir, "wan.pcap"), log: filepath.Join(dir, "tcpdump.log")}
	// -y LINUX_SLL: the classic cooked header, which pcapgo reads.
	p, err := ns.Start(context.Background(), c.log, bin, "-i", "any", "-y", "LINUX_SLL", "--immediate-mode", "-U", "-B", "16384", "-s", "0", "-w", c.file, filter)
	if err != nil {
		return nil, err
	}
	c.proc = p
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) { // the file appears when tcpdump is ready
		if st, err := os.Stat(c.file); err == nil && st.Size() > 0 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond)
	return c, nil
}

// Stop ends the capture and returns the TCP packets it saw.
func (c *Capture) Stop() ([]packet.Packet, error) {
	time.Sleep(300 * time.Millisecond)
	c.proc.Stop()
	f, err := os.Open(c.file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r, err := pcapgo.NewReader(f)
	if err != nil {
		return nil, err
	}
	skip := 0
	switch r.LinkType() {
	case 113: // LINUX_SLL
		skip = 16
	case 1: // Ethernet
		skip = 14
	default:
		return nil, fmt.Errorf("capture: unexpected link type %d", r.LinkType())
	}
	var res []packet.Packet
	for {
		data, _, err := r.ReadPacketData()
		if err != nil {
			break
		}
		if len(data) <= skip {
			continue
		}
		if p, err := packet.Parse(append([]byte(nil), data[skip:]...)); err == nil {
			res = append(res, p)
		}
	}
	return res, nil
}

// Facts is what the wire showed of the connections to or from a port.
type Facts struct {
	SYNWithENO, SYNACKWithENO bool
	PayloadBytes              int
	MarkerSeen                bool
	Packets                   int
}

// FactsFor summarises pkts for port.
func FactsFor(pkts []packet.Packet, port uint16, marker []byte) Facts {
	var f Facts
	for i := range pkts {
		p := &pkts[i]
		if p.SrcPort != port && p.DstPort != port {
			continue
		}
		f.Packets++
		if o, err := packet.ParseOptions(p.Options()); err == nil && o.ENO != nil && p.Flags&packet.FlagSYN != 0 {
			if p.Flags&packet.FlagACK != 0 {
				f.SYNACKWithENO = true
			} else {
				f.SYNWithENO = true
			}
		}
		f.PayloadBytes += len(p.Payload())
		if len(marker) > 0 && bytes.Contains(p.Payload(), marker) {
			f.MarkerSeen = true
		}
	}
	return f
}

// StreamStart reassembles the first bytes of one direction of the first
// connection to port that the capture shows: toPort picks the direction
// of the connection's SYN (client to server), otherwise that of its
// SYN-ACK. It returns up to max contiguous bytes from the first byte after
// the SYN, and the stream offsets at which a segment with PSH ends. A
// packet seen twice (on two interfaces) counts once.
func StreamStart(pkts []packet.Packet, port uint16, toPort bool, max int) (data []byte, pshEnds map[int]bool) {
	var isn uint32
	var src, dst uint16
	found := false
	for i := range pkts {
		p := &pkts[i]
		syn, ack := p.Flags&packet.FlagSYN != 0, p.Flags&packet.FlagACK != 0
		if syn && (toPort && !ack && p.DstPort == port || !toPort && ack && p.SrcPort == port) {
			isn, src, dst, found = p.Seq, p.SrcPort, p.DstPort, true
			break
		}
	}
	if !found {
		return nil, nil
	}
	buf := make([]byte, max)
	have := make([]bool, max)
	pshEnds = map[int]bool{}
	for i := range pkts {
		p := &pkts[i]
		if p.SrcPort != src || p.DstPort != dst || p.Flags&packet.FlagSYN != 0 {
			continue
		}
		off := int(p.Seq - isn - 1)
		pay := p.Payload()
		if off < 0 || off >= max || len(pay) == 0 {
			continue
		}
		n := copy(buf[off:], pay)
		for j := off; j < off+n; j++ {
			have[j] = true
		}
		if p.Flags&packet.FlagPSH != 0 {
			pshEnds[off+len(pay)] = true
		}
	}
	n := 0
	for n < max && have[n] {
		n++
	}
	return buf[:n], pshEnds
}
