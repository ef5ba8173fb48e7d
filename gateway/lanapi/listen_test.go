package lanapi

import (
	"bytes"
	"log/slog"
	"net"
	"slices"
	"strings"
	"testing"
)

// TestListenNotReady: addresses that cannot be bound yet (not on this
// machine, a zone naming no interface) are no error and are logged once;
// the ones that can are bound and served; only a malformed entry is an
// error. (Addresses that appear later: test/e2e/boot_test.go, which needs
// namespaces.)
func TestListenNotReady(t *testing.T) {
	if _, err := Listen(newSource(t), ListenConfig{Addrs: []string{"lan:8474"}}); err == nil {
		t.Error("a malformed address was accepted")
	}
	// A free port on loopback.
	probe, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	good := probe.Addr().String()
	probe.Close()
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	ls, err := Listen(newSource(t), ListenConfig{Addrs: []string{good, "192.0.2.77:8474", "[fe80::1%tcgwnosuch0]:8474"},
		LAN: []string{"tcgwnosuch1"}, LANPorts: []uint16{8474}, Log: log})
	if err != nil {
		t.Fatalf("Listen: %v", err)
	}
	defer ls.Close()
	if got := ls.Bound(); !slices.Equal(got, []string{good}) {
		t.Errorf("Bound = %v, want [%s]", got, good)
	}
	ls.sync() // a second try logs nothing new
	for _, want := range []string{"listen=192.0.2.77:8474", "listen=[fe80::1%tcgwnosuch0]:8474"} {
		if n := strings.Count(logs.String(), want); n != 1 {
			t.Errorf("%s logged %d times, want once:\n%s", want, n, logs.String())
		}
	}
	c, err := net.Dial("tcp", good)
	if err != nil {
		t.Fatalf("the bound address does not answer: %v", err)
	}
	c.Write([]byte("GET " + Path + "?local=127.0.0.1:1&remote=192.0.2.1:1 HTTP/1.0\r\n\r\n"))
	var b bytes.Buffer
	b.ReadFrom(c)
	c.Close()
	if !strings.Contains(b.String(), NotFound) {
		t.Errorf("answer %q", b.String())
	}
	ls.Close()
	if got := ls.Bound(); len(got) != 0 {
		t.Errorf("after Close, Bound = %v", got)
	}
	if _, err := net.Dial("tcp", good); err == nil {
		t.Error("still listening after Close")
	}
}
