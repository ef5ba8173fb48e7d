package downgrade

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var t0 = time.Unix(1_800_000_000, 0)

func TestRememberSeenExpires(t *testing.T) {
	m := New(4, time.Hour)
	a := netip.MustParseAddr("192.0.2.7")
	if _, ok := m.Seen(a, t0); ok {
		t.Fatal("an unknown peer is seen")
	}
	m.Remember(a, t0)
	if when, ok := m.Seen(netip.MustParseAddr("::ffff:192.0.2.7"), t0.Add(time.Minute)); !ok || !when.Equal(t0) {
		t.Fatalf("Seen (mapped form) = %v %v, want %v true", when, ok, t0)
	}
	if _, ok := m.Seen(a, t0.Add(time.Hour+time.Second)); ok {
		t.Fatal("seen after the TTL")
	}
	if m.Len() != 0 {
		t.Fatalf("expired entry kept: len %d", m.Len())
	}
}

func TestBoundedEvictsLeastRecent(t *testing.T) {
	m := New(3, time.Hour)
	addrs := []netip.Addr{netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2"), netip.MustParseAddr("2001:db8::3"), netip.MustParseAddr("192.0.2.4")}
	m.Remember(addrs[0], t0)
	m.Remember(addrs[1], t0)
	m.Remember(addrs[2], t0)
	m.Remember(addrs[0], t0.Add(time.Second)) // refreshed: now the most recent
	m.Remember(addrs[3], t0.Add(2*time.Second))
	if m.Len() != 3 {
		t.Fatalf("len %d, want 3", m.Len())
	}
	for i, want := range []bool{true, false, true, true} {
		if _, ok := m.Seen(addrs[i], t0.Add(3*time.Second)); ok != want {
			t.Errorf("%s seen %v, want %v", addrs[i], ok, want)
		}
	}
}

func TestNilMemoryRemembersNothing(t *testing.T) {
	for _, m := range []*Memory{New(0, time.Hour), New(10, 0)} {
		if m != nil {
			t.Fatal("New with a zero bound returned a memory")
		}
		m.Remember(netip.MustParseAddr("192.0.2.1"), t0)
		if _, ok := m.Seen(netip.MustParseAddr("192.0.2.1"), t0); ok || m.Len() != 0 {
			t.Fatal("a nil memory remembered")
		}
		if err := m.Save(filepath.Join(t.TempDir(), "x"), t0); err != nil {
			t.Fatal(err)
		}
	}
}

func TestSaveLoadRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "peers")
	m := New(10, time.Hour)
	m.Remember(netip.MustParseAddr("192.0.2.1"), t0.Add(-2*time.Hour)) // expired at save time
	m.Remember(netip.MustParseAddr("192.0.2.2"), t0)
	m.Remember(netip.MustParseAddr("2001:db8::2"), t0.Add(time.Second))
	if err := m.Save(path, t0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode().Perm())
	}
	want := fileHeader + "\n192.0.2.2 1800000000\n2001:db8::2 1800000001\n"
	if string(b) != want {
		t.Fatalf("file:\n%s\nwant:\n%s", b, want)
	}
	n := New(10, time.Hour)
	if err := n.Load(path, t0.Add(2*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if _, ok := n.Seen(netip.MustParseAddr("192.0.2.2"), t0.Add(2*time.Minute)); !ok {
		t.Error("192.0.2.2 lost across Save/Load")
	}
	if _, ok := n.Seen(netip.MustParseAddr("192.0.2.1"), t0.Add(2*time.Minute)); ok {
		t.Error("an expired peer came back")
	}
	// Loading where the entries have expired meanwhile keeps none.
	old := New(10, time.Hour)
	if err := old.Load(path, t0.Add(3*time.Hour)); err != nil || old.Len() != 0 {
		t.Fatalf("load after expiry: err %v, len %d", err, old.Len())
	}
}

func TestLoadMissingAndMalformed(t *testing.T) {
	dir := t.TempDir()
	m := New(10, time.Hour)
	if err := m.Load(filepath.Join(dir, "none"), t0); err != nil {
		t.Fatalf("missing file: %v", err)
	}
	for name, content := range map[string]string{
		"foreign": "hello\n",
		"badaddr": fileHeader + "\n192.0.2.1 1800000000\nnot-an-address 5\n",
		"badtime": fileHeader + "\n192.0.2.1 soon\n",
		"long":    fileHeader + "\n" + strings.Repeat("1", 500) + "\n",
	} {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(content), 0o600)
		m := New(10, time.Hour)
		err := m.Load(p, t0)
		if err == nil || !strings.Contains(err.Error(), p+":") {
			t.Errorf("%s: err %v, want one naming the file and line", name, err)
		}
		if m.Len() != 0 {
			t.Errorf("%s: %d peers taken from a malformed file", name, m.Len())
		}
	}
}
