package e2e

import (
	"testing"

	"tcpcrypt-gw/gateway/packet"
	"tcpcrypt-gw/test/capture"
	"tcpcrypt-gw/test/netns"
)

// wanCapture records the wan namespace for the length of a test.
type wanCapture struct {
	t *testing.T
	c *capture.Capture
}

func startCapture(t *testing.T, ns *netns.NS, filter string) *wanCapture {
	t.Helper()
	c, err := capture.Start(ns, t.TempDir(), filter)
	if err != nil {
		t.Fatalf("capture: %v", err)
	}
	return &wanCapture{t: t, c: c}
}

func (w *wanCapture) packets() []packet.Packet {
	w.t.Helper()
	p, err := w.c.Stop()
	if err != nil {
		w.t.Fatalf("capture: %v", err)
	}
	w.t.Logf("capture: %d TCP packets; tcpdump: %s", len(p), w.c.Log())
	return p
}

func factsFor(pkts []packet.Packet, port uint16, marker []byte) capture.Facts {
	return capture.FactsFor(pkts, port, marker)
}
