// Package downgrade remembers the WAN peers that completed tcpcrypt with
// the gateway, so that a later connection to one of them that comes back
// without TCP-ENO can be flagged as a suspected downgrade (an active
// attacker stripping ENO from the SYN-ACK, RFC 8547 §10; RFC 8548 §8).
//
// The flow:
//  1. The engine calls Remember when a key exchange with a peer it
//     connected to (role A) completes.
//  2. When that peer's SYN-ACK lacks ENO (or the SYN had to fall back to
//     plain), the engine asks Seen: a peer remembered and not expired is a
//     suspected downgrade.
//  3. The memory is bounded (the least recently remembered peer goes when
//     it is full) and every entry expires after the TTL.
//  4. Optionally (Save/Load) the addresses and their times are kept in a
//     file across restarts: addresses only, never a key or session secret.
//
// It is safe for concurrent use; it is touched once per completed handshake
// and once per plain SYN-ACK, never per data packet.
package downgrade

import (
	"bufio"
	"container/list"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Memory is a bounded, expiring set of peer addresses.
type Memory struct {
	mu    sync.Mutex
	max   int
	ttl   time.Duration
	byIP  map[netip.Addr]*list.Element
	order list.List // of *entry, most recently remembered first
	dirty bool
}

type entry struct {
	addr netip.Addr
	seen time.Time // last completed key exchange
}

// New returns a memory of at most max peers, each kept for ttl after its
// last completed key exchange. max <= 0 or ttl <= 0 returns nil, and a nil
// Memory remembers nothing.
func New(max int, ttl time.Duration) *Memory {
	if max <= 0 || ttl <= 0 {
		return nil
	}
	return &Memory{max: max, ttl: ttl, byIP: make(map[netip.Addr]*list.Element)}
}

// Remember records that addr completed tcpcrypt at now.
func (m *Memory) Remember(addr netip.Addr, now time.Time) {
	if m == nil {
		return
	}
	addr = addr.Unmap().WithZone("")
	m.mu.Lock()
	defer m.mu.Unlock()
	m.put(addr, now)
}

func (m *Memory) put(addr netip.Addr, seen time.Time) {
	m.dirty = true
	if el, ok := m.byIP[addr]; ok {
		e := el.Value.(*entry)
		if seen.After(e.seen) {
			e.seen = seen
		}
		m.order.MoveToFront(el)
		return
	}
	for m.order.Len() >= m.max {
		old := m.order.Back()
		delete(m.byIP, old.Value.(*entry).addr)
		m.order.Remove(old)
	}
	m.byIP[addr] = m.order.PushFront(&entry{addr: addr, seen: seen})
}

// Seen reports whether addr completed tcpcrypt within the TTL before now,
// and when it last did.
func (m *Memory) Seen(addr netip.Addr, now time.Time) (time.Time, bool) {
	if m == nil {
		return time.Time{}, false
	}
	addr = addr.Unmap().WithZone("")
	m.mu.Lock()
	defer m.mu.Unlock()
	el, ok := m.byIP[addr]
	if !ok {
		return time.Time{}, false
	}
	e := el.Value.(*entry)
	if now.Sub(e.seen) > m.ttl {
		delete(m.byIP, addr)
		m.order.Remove(el)
		m.dirty = true
		return time.Time{}, false
	}
	return e.seen, true
}

// Len is the number of peers remembered (expired ones included until they
// are looked up or saved).
func (m *Memory) Len() int {
	if m == nil {
		return 0
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.order.Len()
}

// fileHeader opens a persistence file; a file without it is not ours.
const fileHeader = "# tcpcrypt-gw downgrade memory v1: address unix-seconds (addresses only, no secrets)"

// maxLineLen bounds one line of the file when reading it back.
const maxLineLen = 128

// Save writes the peers not expired at now to path, atomically (a
// temporary file renamed over it), mode 0600. It writes only when something
// changed since the last Save or Load.
func (m *Memory) Save(path string, now time.Time) error {
	if m == nil {
		return nil
	}
	m.mu.Lock()
	if !m.dirty {
		m.mu.Unlock()
		return nil
	}
	var b strings.Builder
	b.WriteString(fileHeader + "\n")
	// Oldest first, so that Load, remembering in file order, rebuilds the
	// same recency order.
	for el := m.order.Back(); el != nil; el = el.Prev() {
		e := el.Value.(*entry)
		if now.Sub(e.seen) <= m.ttl {
			fmt.Fprintf(&b, "%s %d\n", e.addr, e.seen.Unix())
		}
	}
	m.dirty = false
	m.mu.Unlock()

	tmp, err := os.CreateTemp(filepath.Dir(path), ".downgrade-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.WriteString(b.String()); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// Load adds the peers of the file at path that have not expired at now. A
// missing file is no error (the first start). A malformed file is an error
// naming the line; nothing of it is used then.
func (m *Memory) Load(path string, now time.Time) error {
	if m == nil {
		return nil
	}
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	type rec struct {
		a netip.Addr
		t time.Time
	}
	var recs []rec
	sc := bufio.NewScanner(io.LimitReader(f, int64(m.max+1)*maxLineLen))
	sc.Buffer(make([]byte, maxLineLen), maxLineLen)
	line := 0
	for sc.Scan() {
		line++
		text := strings.TrimSpace(sc.Text())
		if line == 1 {
			if text != fileHeader {
				return fmt.Errorf("%s:1: not a tcpcrypt-gw downgrade memory file", path)
			}
			continue
		}
		if text == "" {
			continue
		}
		as, ts, ok := strings.Cut(text, " ")
		a, aerr := netip.ParseAddr(as)
		sec, terr := strconv.ParseInt(ts, 10, 64)
		if !ok || aerr != nil || terr != nil || a.Zone() != "" {
			return fmt.Errorf("%s:%d: want \"address unix-seconds\", got %q", path, line, text)
		}
		recs = append(recs, rec{a.Unmap(), time.Unix(sec, 0)})
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("%s:%d: %w", path, line+1, err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, r := range recs {
		if now.Sub(r.t) <= m.ttl && !r.t.After(now.Add(m.ttl)) {
			m.put(r.a, r.t)
		}
	}
	m.dirty = false
	return nil
}
