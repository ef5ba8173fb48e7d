// Package impair is the project's userspace network impairment: delay with
// jitter, loss, reordering, duplication, corruption, resegmentation, MSS
// clamping, TCP-ENO stripping, SYN dropping and FIN forging, per direction
// and deterministic from a seed. The tcpcrypt-impair command (cmd/) runs it
// as a router on a TUN device; the library runs without one, for tests.
//
// The flow of Impairer.Process, for one packet:
//  1. Classify: the destination address picks the direction (config.go).
//  2. Segments with SYN set: drop them if they carry the configured option
//     kind; strip the TCP-ENO option; clamp the MSS option.
//  3. Forge accounting: count the stream bytes of each flow, to inject one
//     bare FIN after the first flow that reaches the configured count.
//  4. Resegment: split the segment into 2-4 segments at random cut points.
//  5. For each resulting packet (deliver): loss, then corruption, then the
//     due time (delay, jitter, reordering), then emission, twice for a
//     duplicate.
//  6. The forged FIN, if step 3 fired, is emitted last, due with the packet
//     before it.
//
// Emitted packets go to an EmitFunc with their due time; Queue (queue.go) is
// the bounded scheduler that holds them until then. Everything a step
// rewrites keeps the checksums as they were: valid stays valid, and a packet
// that arrived with a bad TCP checksum is not resegmented (that would hide
// the error). Packets that are not well-formed IPv4/IPv6 TCP segments pass
// steps 2-4 unchanged.
package impair

import (
	"math/rand/v2"
	"net/netip"
	"time"
)

// EmitFunc receives each packet the impairer sends and the time it is due.
// pkt is valid only during the call (it may be the input packet or a scratch
// buffer): the function copies it, or drops it and returns false.
type EmitFunc func(pkt []byte, due time.Time) bool

// Impairer applies a Config to packets. Process is not safe for concurrent
// use; Stats is.
type Impairer struct {
	dirs    []direction // the configured directions, then the default
	scratch []byte      // resegmentation pieces and forged FINs are built here
}

// maxTrackedFlows bounds the flow table of FIN forging, per direction.
// Flows beyond it are not counted.
const maxTrackedFlows = 4096

type direction struct {
	name     string
	prefixes []netip.Prefix
	set      Settings
	rng      *rand.Rand
	floor    time.Time // due time of the last packet not reordered
	corruptN uint64    // segments seen by the corrupt-nth filter
	forged   bool      // the one forged FIN of this direction was sent
	flows    map[flowKey]flowProgress
	counters counters
}

type flowKey struct {
	src, dst         [16]byte
	srcPort, dstPort uint16
	v6               bool
}

// flowProgress is how far a flow's stream reached: the end of its highest
// segment, as an offset from the first data sequence number seen.
type flowProgress struct {
	base uint32
	end  uint32
}

// New returns an Impairer for the configuration.
func New(cfg Config) (*Impairer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	im := &Impairer{
		dirs:    make([]direction, len(cfg.Directions)+1),
		scratch: make([]byte, MaxPacket),
	}
	for i := range im.dirs {
		d := &im.dirs[i]
		if i < len(cfg.Directions) {
			d.name, d.set = cfg.Directions[i].Name, cfg.Directions[i].Settings
			for _, p := range cfg.Directions[i].Prefixes {
				d.prefixes = append(d.prefixes, p.Masked())
			}
		} else {
			d.name, d.set = DefaultName, cfg.Default
		}
		if d.set.ReorderPct > 0 && d.set.ReorderDelay == 0 {
			d.set.ReorderDelay = DefaultReorderDelay
		}
		// One stream per direction: a direction's decisions depend only on
		// its own packets, not on how the directions interleave.
		d.rng = rand.New(rand.NewPCG(cfg.Seed, uint64(i)+1))
		if d.set.ForgeFINAfterBytes > 0 {
			d.flows = make(map[flowKey]flowProgress)
		}
	}
	return im, nil
}

// Process impairs one packet received at now and emits what results. It may
// modify pkt in place.
func (im *Impairer) Process(pkt []byte, now time.Time, emit EmitFunc) {
	// 1. Classify.
	d := im.classify(pkt)
	d.counters.add(Packets)
	seg, ok := parseTCP(pkt)
	if !ok {
		d.deliver(pkt, nil, now, emit)
		return
	}
	flags := seg.flags()

	// 2. Handshake rewriting.
	if flags&flagSYN != 0 {
		if d.set.DropSYNWithOption != 0 && seg.hasOption(d.set.DropSYNWithOption) {
			d.counters.add(SYNDropped)
			return
		}
		if d.stripsENO(flags) || d.set.ClampMSS > 0 {
			opts := seg.payOff - seg.tcpOff - tcpMinHeader
			before := seg.wordsSum(seg.tcpOff+tcpMinHeader, seg.payOff)
			changed := false
			if d.stripsENO(flags) && seg.replaceOption(OptionENO) {
				d.counters.add(ENOStripped)
				changed = true
			}
			if d.set.ClampMSS > 0 && seg.clampMSS(d.set.ClampMSS) {
				d.counters.add(MSSClamped)
				changed = true
			}
			if changed && opts > 0 {
				seg.adjustTCPChecksum(before, seg.wordsSum(seg.tcpOff+tcpMinHeader, seg.payOff))
			}
		}
	}

	// 3. Forge accounting.
	forge := d.set.ForgeFINAfterBytes > 0 && !d.forged && len(seg.payload()) > 0 && d.track(&seg)

	// 4. Resegmentation, and 5. delivery.
	if d.resegments(&seg) {
		im.resegment(d, &seg, now, emit)
	} else {
		d.deliver(seg.pkt, &seg, now, emit)
	}

	// 6. The forged FIN.
	if forge {
		im.forgeFIN(d, &seg, now, emit)
	}
}

func (im *Impairer) classify(pkt []byte) *direction {
	last := len(im.dirs) - 1
	if a, ok := dstAddr(pkt); ok {
		for i := range im.dirs[:last] {
			for _, p := range im.dirs[i].prefixes {
				if p.Contains(a) {
					return &im.dirs[i]
				}
			}
		}
	}
	return &im.dirs[last]
}

// chance draws one decision that is true pct percent of the time. It draws
// nothing for 0, so an impairment that is off does not shift the stream.
func (d *direction) chance(pct float64) bool {
	return pct > 0 && d.rng.Float64()*100 < pct
}

func (d *direction) stripsENO(flags byte) bool {
	if flags&flagACK != 0 {
		return d.set.StripENO&StripSYNACK != 0
	}
	return d.set.StripENO&StripSYN != 0
}

// track counts the segment's stream bytes and reports whether this segment
// is the one that brought the first flow to ForgeFINAfterBytes.
func (d *direction) track(seg *segment) bool {
	k := flowKey{srcPort: seg.srcPort(), dstPort: seg.dstPort(), v6: seg.v6}
	src, dst := seg.addrs()
	copy(k.src[:], src)
	copy(k.dst[:], dst)
	p, ok := d.flows[k]
	if !ok {
		if len(d.flows) >= maxTrackedFlows {
			return false
		}
		p.base = seg.seq()
	}
	end := seg.seq() + uint32(len(seg.payload())) - p.base
	if end > maxForgeFIN || end <= p.end {
		d.flows[k] = p // an old retransmission, or data before the first seen
		return false
	}
	p.end = end
	if uint64(end) < d.set.ForgeFINAfterBytes {
		d.flows[k] = p
		return false
	}
	d.forged = true
	clear(d.flows) // no flow needs counting any more
	return true
}

// resegments decides whether the segment is split. SYN, RST and URG
// segments are not: SYN occupies sequence space before the payload, and the
// urgent pointer is relative to the sequence number.
func (d *direction) resegments(seg *segment) bool {
	return d.set.ResegmentPct > 0 && len(seg.payload()) >= 2 &&
		seg.flags()&(flagSYN|flagRST|flagURG) == 0 &&
		d.chance(d.set.ResegmentPct) && seg.tcpChecksumOK()
}

// resegment splits the segment's payload into 2-4 pieces at distinct random
// cut points and delivers each as a segment of its own: the headers are
// copied, then sequence number, IP length, IPv4 ID and checksums are fixed;
// only the last piece keeps FIN and PSH.
func (im *Impairer) resegment(d *direction, seg *segment, now time.Time, emit EmitFunc) {
	pay := seg.payload()
	n := len(pay)
	pieces := 2 + d.rng.IntN(3)
	pieces = min(pieces, n)

	// Floyd's sampling of pieces-1 distinct cut points in [1, n-1].
	var cuts [4]int
	m := pieces - 1
	for j := n - 1 - m; j < n-1; j++ {
		c := 1 + d.rng.IntN(j+1)
		for _, have := range cuts[:m] {
			if have == c {
				c = j + 1
				break
			}
		}
		cuts[j-(n-1-m)] = c
	}
	for i := 1; i < m; i++ { // insertion sort of at most 3
		for k := i; k > 0 && cuts[k] < cuts[k-1]; k-- {
			cuts[k], cuts[k-1] = cuts[k-1], cuts[k]
		}
	}
	cuts[m] = n

	d.counters.add(Resegmented)
	hdr := seg.payOff
	seq, flags := seg.seq(), seg.flags()
	var id uint16
	if !seg.v6 {
		id = seg.ipv4ID()
	}
	start := 0
	for i, end := range cuts[:pieces] {
		b := im.scratch[:hdr+end-start]
		copy(b, seg.pkt[:hdr])
		copy(b[hdr:], pay[start:end])
		p := segment{pkt: b, v6: seg.v6, tcpOff: seg.tcpOff, payOff: hdr}
		p.setSeq(seq + uint32(start))
		if i < pieces-1 {
			p.setFlags(flags &^ (flagFIN | flagPSH))
		}
		if !p.v6 {
			p.setIPv4ID(id + uint16(i))
		}
		p.setLength(len(b))
		p.fixTCPChecksum()
		d.counters.add(Pieces)
		d.deliver(b, &p, now, emit)
		start = end
	}
}

// forgeFIN emits the bare FIN: the segment's headers with FIN set (PSH and
// URG cleared), no payload, the sequence number at the segment's end, and a
// valid checksum, as an attacker would send it.
func (im *Impairer) forgeFIN(d *direction, seg *segment, now time.Time, emit EmitFunc) {
	hdr := seg.payOff
	b := im.scratch[:hdr]
	copy(b, seg.pkt[:hdr])
	f := segment{pkt: b, v6: seg.v6, tcpOff: seg.tcpOff, payOff: hdr}
	f.setSeq(seg.seq() + uint32(len(seg.payload())))
	f.setFlags(seg.flags()&^(flagPSH|flagURG) | flagFIN)
	if !f.v6 {
		f.setIPv4ID(seg.ipv4ID() + 0x8000) // distinct from the segments around it
	}
	f.setLength(hdr)
	f.fixTCPChecksum()
	d.counters.add(FINForged)
	d.send(b, later(now, d.floor), emit)
}

// deliver is step 5 for one packet; seg is nil for a packet that is not a
// TCP segment.
func (d *direction) deliver(pkt []byte, seg *segment, now time.Time, emit EmitFunc) {
	if d.chance(d.set.LossPct) {
		d.counters.add(Lost)
		return
	}
	if seg != nil && len(seg.payload()) > 0 && d.corruptible(seg) {
		d.corruptN++
		if d.set.CorruptNth != 0 && d.corruptN == d.set.CorruptNth || d.chance(d.set.CorruptPct) {
			d.corrupt(seg)
		}
	}
	due := now.Add(d.set.Delay)
	if j := d.set.Jitter; j > 0 {
		due = due.Add(time.Duration(d.rng.Int64N(2*int64(j)+1)) - j)
	}
	due = later(later(due, now), d.floor)
	if d.chance(d.set.ReorderPct) {
		d.counters.add(Reordered)
		due = due.Add(d.set.ReorderDelay)
	} else {
		d.floor = due
	}
	d.send(pkt, due, emit)
	if d.chance(d.set.DupPct) {
		d.counters.add(Duplicated)
		d.send(pkt, due, emit)
	}
}

func (d *direction) corruptible(seg *segment) bool {
	p := d.set.CorruptPort
	return (d.set.CorruptNth != 0 || d.set.CorruptPct > 0) &&
		(p == 0 || seg.srcPort() == p || seg.dstPort() == p)
}

// corrupt flips bits of one payload byte. The checksum is adjusted for the
// change unless CorruptBadChecksum; a single changed byte always breaks an
// unadjusted checksum, since it changes one 16-bit word by less than 0xffff.
func (d *direction) corrupt(seg *segment) {
	i := seg.payOff + d.rng.IntN(len(seg.payload()))
	before := seg.wordsSum(i, i+1)
	seg.pkt[i] ^= byte(1 + d.rng.IntN(255))
	if !d.set.CorruptBadChecksum {
		seg.adjustTCPChecksum(before, seg.wordsSum(i, i+1))
	}
	d.counters.add(Corrupted)
}

func (d *direction) send(pkt []byte, due time.Time, emit EmitFunc) {
	if emit(pkt, due) {
		d.counters.add(Sent)
	} else {
		d.counters.add(QueueFull)
	}
}

func later(a, b time.Time) time.Time {
	if a.Before(b) {
		return b
	}
	return a
}
