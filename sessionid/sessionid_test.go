package sessionid

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"tcpcrypt-gw/flowtable"
	"tcpcrypt-gw/gateway/engine"
	"tcpcrypt-gw/gateway/lanapi"
)

var (
	local  = netip.MustParseAddrPort("127.0.0.1:40000")
	remote = netip.MustParseAddrPort("203.0.113.5:443")
)

// gatewayWith serves the real endpoint over a table holding flows.
func gatewayWith(t *testing.T, flows ...*engine.Flow) *Client {
	tb := flowtable.New[*engine.Flow](flowtable.Config{Shards: 2, MaxFlows: 16, MaxBytesTotal: 1 << 20})
	for _, f := range flows {
		k := flowtable.Key{LAN: f.LAN, WAN: f.WAN}
		i := tb.Shard(k)
		tb.LockShard(i)
		tb.Insert(i, k, f, time.Now())
		tb.UnlockShard(i)
	}
	srv := httptest.NewServer(lanapi.Handler(&lanapi.Source{Table: tb}))
	t.Cleanup(srv.Close)
	return &Client{Gateway: strings.TrimPrefix(srv.URL, "http://")}
}

func TestPlainAndUnknown(t *testing.T) {
	c := gatewayWith(t, &engine.Flow{Role: engine.RoleA, State: engine.StatePassthrough, Reason: "peer did not answer ENO", LAN: local, WAN: remote})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	info, err := c.LookupAddrs(ctx, local, remote)
	if !errors.Is(err, ErrNotEncrypted) || info == nil || info.Reason != "peer did not answer ENO" || info.Local != local || info.Remote != remote {
		t.Fatalf("plain connection: %+v %v", info, err)
	}
	if _, err := c.LookupAddrs(ctx, netip.AddrPortFrom(local.Addr(), 40001), remote); !errors.Is(err, ErrUnknown) {
		t.Fatalf("unknown connection: %v", err)
	}
}

func TestWaitsForTheKeyExchange(t *testing.T) {
	var asked atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("local") != local.String() || r.URL.Query().Get("remote") != remote.String() {
			http.Error(w, `{"error":"bad query"}`, 400)
			return
		}
		if asked.Add(1) < 3 {
			w.Write([]byte(`{"state":"key-exchange","encrypted":false}`))
			return
		}
		w.Write([]byte(`{"local":"127.0.0.1:40000","remote":"203.0.113.5:443","state":"encrypted","encrypted":true,"session_id":"21abcd","tep":"curve25519","cipher":"aes128gcm"}`))
	}))
	defer srv.Close()
	c := &Client{Gateway: strings.TrimPrefix(srv.URL, "http://"), Poll: time.Millisecond}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	info, err := c.LookupAddrs(ctx, local, remote)
	if err != nil || !bytes.Equal(info.SessionID, []byte{0x21, 0xab, 0xcd}) || info.TEP != "curve25519" || asked.Load() != 3 {
		t.Fatalf("info %+v err %v after %d questions", info, err, asked.Load())
	}
	// A key exchange that never ends ends with the context.
	asked.Store(-1000)
	short, cancel2 := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel2()
	if _, err := c.LookupAddrs(short, local, remote); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("endless key exchange: %v", err)
	}
}

func TestLookupConnAsksFromItsOwnAddress(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		t.Skip("no 127.0.0.2:", err)
	}
	defer l.Close()
	go func() {
		if c, err := l.Accept(); err == nil {
			defer c.Close()
			time.Sleep(time.Second)
		}
	}()
	conn, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	la, ra := conn.LocalAddr().(*net.TCPAddr).AddrPort(), conn.RemoteAddr().(*net.TCPAddr).AddrPort()
	c := gatewayWith(t, &engine.Flow{Role: engine.RoleA, State: engine.StatePassthrough, Reason: "bypass rule", LAN: la, WAN: ra})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if info, err := c.Lookup(ctx, conn); !errors.Is(err, ErrNotEncrypted) || info.Reason != "bypass rule" {
		t.Fatalf("Lookup(conn): %+v %v", info, err)
	}
}

func TestDefaultRouteParsing(t *testing.T) {
	v4 := strings.Fields("eth0	00000000	0101A8C0	0003	0	0	0	00000000	0	0	0")
	if a, ok := parseIPv4Route(v4); !ok || a != netip.MustParseAddr("192.168.1.1") {
		t.Errorf("IPv4 default route: %v %v", a, ok)
	}
	if _, ok := parseIPv4Route(strings.Fields("eth0	0001A8C0	00000000	0001	0	0	0	00FFFFFF	0	0	0")); ok {
		t.Error("a connected route taken for the default")
	}
	v6 := strings.Fields("00000000000000000000000000000000 00 00000000000000000000000000000000 00 fe800000000000000000000000000001 00000400 00000001 00000000 00000003 eth0")
	if a, ok := parseIPv6Route(v6); !ok || a != netip.MustParseAddr("fe80::1%eth0") {
		t.Errorf("IPv6 default route: %v %v", a, ok)
	}
	if _, ok := parseIPv6Route(strings.Fields("fd910001000000000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001 eth0")); ok {
		t.Error("a prefix route taken for the default")
	}
}
