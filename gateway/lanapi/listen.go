// Listening on addresses that come and go.
//
// The session endpoint listens on the LAN side, usually on every address of
// the LAN interfaces. At a router's boot and after every ifup those are not
// ready when the gateway starts: an IPv6 address is tentative for the 1-2 s
// of duplicate address detection (RFC 4862 §5.4), and binding it fails with
// EADDRNOTAVAIL; an interface may appear only later (a bridge, a USB or
// PPPoE link), or be deleted and re-created with a new index. None of that
// may stop the gateway, so Listeners keeps the bound set in step:
//  1. Wanted: every literal address (a link-local one's zone resolved to
//     the index its interface has now), and on each LAN port every address
//     of every LAN interface that is usable: neither tentative nor failed
//     DAD. A link-local address is keyed with its interface's index, so a
//     re-created interface's address is a new one.
//  2. Sync: close the listeners no longer wanted, bind the wanted ones not
//     bound. A bind that fails is retried at the next sync (the failure is
//     logged once per address).
//  3. Sync runs at once (so what is ready is bound when Listen returns), on
//     every netlink link or address event (gathered for settleDelay), and
//     every retryEvery as a safety net, until Close.
//
// Every listener has its own smallhttp server, closed with it.

package lanapi

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"tcpcrypt-gw/gateway/smallhttp"
)

const (
	// settleDelay gathers the burst of events an ifup sends into one sync.
	settleDelay = 50 * time.Millisecond
	// retryEvery is the sync without an event (a lost netlink message, a
	// failed subscription).
	retryEvery = 5 * time.Second
	// maxListeners bounds the listeners (an interface can carry many
	// addresses).
	maxListeners = 64
)

// ListenConfig says where the endpoint listens.
type ListenConfig struct {
	Addrs    []string // literal "IP:PORT" addresses ("[fe80::1%lan0]:8474" names its interface)
	LANPorts []uint16 // ports to listen on at every address of the LAN interfaces
	LAN      []string // the LAN interfaces
	Log      *slog.Logger
}

// Listeners is the endpoint's set of listeners, kept in step with the
// interfaces and their addresses.
type Listeners struct {
	src *Source
	cfg ListenConfig

	mu      sync.Mutex
	bound   map[string]*listener // by key (see wanted)
	failing map[string]bool      // keys whose bind failure was logged
	closed  bool

	done chan struct{}
	wg   sync.WaitGroup
}

type listener struct {
	addr string // as bound
	l    net.Listener
	srv  *smallhttp.Server
}

// Listen binds what is ready now and keeps the listeners in step until
// Close. An error is returned only for an entry that can never be bound (a
// malformed address).
func Listen(src *Source, cfg ListenConfig) (*Listeners, error) {
	for _, a := range cfg.Addrs {
		if _, err := netip.ParseAddrPort(a); err != nil {
			return nil, fmt.Errorf("session endpoint: %q: %w", a, err)
		}
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	ls := &Listeners{src: src, cfg: cfg, bound: map[string]*listener{}, failing: map[string]bool{},
		done: make(chan struct{})}
	ls.sync() // incomplete: watch syncs again at once
	ls.wg.Add(1)
	go ls.watch()
	return ls, nil
}

// Bound lists the addresses listened on now, sorted.
func (ls *Listeners) Bound() []string {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	var out []string
	for _, b := range ls.bound {
		out = append(out, b.addr)
	}
	slices.Sort(out)
	return out
}

// Close stops the watching and closes every listener and its connections.
func (ls *Listeners) Close() error {
	ls.mu.Lock()
	if ls.closed {
		ls.mu.Unlock()
		return nil
	}
	ls.closed = true
	ls.mu.Unlock()
	close(ls.done)
	ls.wg.Wait()
	ls.mu.Lock()
	defer ls.mu.Unlock()
	for k, b := range ls.bound {
		b.srv.Close()
		delete(ls.bound, k)
	}
	return nil
}

// watch is step 3.
func (ls *Listeners) watch() {
	defer ls.wg.Done()
	tick := time.NewTicker(retryEvery)
	defer tick.Stop()
	var links chan netlink.LinkUpdate
	var addrs chan netlink.AddrUpdate
	var subDone chan struct{}
	subscribe := func() {
		if subDone != nil {
			close(subDone)
		}
		subDone = make(chan struct{})
		links, addrs = make(chan netlink.LinkUpdate, 64), make(chan netlink.AddrUpdate, 64)
		onErr := func(err error) {
			select {
			case <-ls.done: // the subscription ends with Close
			default:
				ls.cfg.Log.Debug("session endpoint: netlink subscription", "err", err)
			}
		}
		if err := netlink.LinkSubscribeWithOptions(links, subDone, netlink.LinkSubscribeOptions{ErrorCallback: onErr}); err != nil {
			onErr(err)
			links = nil
		}
		if err := netlink.AddrSubscribeWithOptions(addrs, subDone, netlink.AddrSubscribeOptions{ErrorCallback: onErr}); err != nil {
			onErr(err)
			addrs = nil
		}
	}
	subscribe()
	defer func() { close(subDone) }()
	// An event between Listen's sync and the subscription would be lost:
	// sync once more now that events are coming.
	again := make(chan struct{}, 1)
	resync := func() {
		if !ls.sync() {
			time.AfterFunc(settleDelay, func() {
				select {
				case again <- struct{}{}:
				default:
				}
			})
		}
	}
	resync()
	for {
		select {
		case <-ls.done:
			return
		case <-again:
		case _, ok := <-links:
			if !ok {
				links = nil
				continue
			}
		case _, ok := <-addrs:
			if !ok {
				addrs = nil
				continue
			}
		case <-tick.C:
			if links == nil || addrs == nil {
				subscribe()
			}
		}
		// Gather the rest of the burst, then sync once.
		timer := time.NewTimer(settleDelay)
	drain:
		for {
			select {
			case <-ls.done:
				timer.Stop()
				return
			case <-links:
			case <-addrs:
			case <-timer.C:
				break drain
			}
		}
		resync()
	}
}

// wanted is step 1: the addresses to listen on now, by key. The key of a
// link-local address carries its interface's index. complete is false when
// an interface's addresses could not be read (a netlink dump interrupted by
// a concurrent change): sync then closes nothing and tries again soon.
func (ls *Listeners) wanted() (want map[string]string, complete bool) {
	want, complete = map[string]string{}, true
	for _, a := range ls.cfg.Addrs {
		ap := netip.MustParseAddrPort(a) // checked in Listen
		if zone := ap.Addr().Zone(); zone != "" {
			if _, err := strconv.Atoi(zone); err != nil {
				link, err := netlink.LinkByName(zone)
				if err != nil {
					ls.logFailure(a, fmt.Errorf("interface %q: %w", zone, err))
					continue
				}
				ap = netip.AddrPortFrom(ap.Addr().WithZone(strconv.Itoa(link.Attrs().Index)), ap.Port())
			}
		}
		want[ap.String()] = a
	}
	if len(ls.cfg.LANPorts) == 0 {
		return want, complete
	}
	for _, name := range ls.cfg.LAN {
		link, err := netlink.LinkByName(name)
		var notFound netlink.LinkNotFoundError
		if errors.As(err, &notFound) {
			continue // not there (yet): its addresses come with it
		}
		var addrs []netlink.Addr
		if err == nil {
			addrs, err = netlink.AddrList(link, netlink.FAMILY_ALL)
		}
		if err != nil {
			ls.cfg.Log.Debug("session endpoint: addresses", "interface", name, "err", err)
			complete = false
			continue
		}
		for _, ad := range addrs {
			if ad.Flags&(unix.IFA_F_TENTATIVE|unix.IFA_F_DADFAILED) != 0 {
				continue // DAD running or failed: not bindable (yet)
			}
			ip, ok := netip.AddrFromSlice(ad.IP)
			if !ok {
				continue
			}
			ip = ip.Unmap()
			shown := ip
			if ip.Is6() && ip.IsLinkLocalUnicast() {
				shown = ip.WithZone(name)
				ip = ip.WithZone(strconv.Itoa(link.Attrs().Index))
			}
			for _, port := range ls.cfg.LANPorts {
				want[netip.AddrPortFrom(ip, port).String()] = netip.AddrPortFrom(shown, port).String()
			}
		}
	}
	return want, complete
}

// sync is step 2. It reports false when it must run again soon (see
// wanted).
func (ls *Listeners) sync() bool {
	want, complete := ls.wanted()
	ls.mu.Lock()
	defer ls.mu.Unlock()
	if ls.closed {
		return true
	}
	// Forget the failures of addresses no longer wanted (an address that
	// went away while it could not be bound): the map stays bounded.
	for addr := range ls.failing {
		if !slices.Contains(ls.cfg.Addrs, addr) && !mapHasValue(want, addr) {
			delete(ls.failing, addr)
		}
	}
	for k, b := range ls.bound {
		if _, ok := want[k]; !ok && complete {
			b.srv.Close()
			delete(ls.bound, k)
			ls.cfg.Log.Info("session endpoint: address gone, listener closed", "listen", b.addr)
		}
	}
	for k, shown := range want {
		if _, ok := ls.bound[k]; ok {
			continue
		}
		if len(ls.bound) >= maxListeners {
			ls.logFailure(shown, fmt.Errorf("more than %d listeners", maxListeners))
			continue
		}
		l, err := net.Listen("tcp", k)
		if err != nil {
			ls.logFailure(shown, err)
			continue
		}
		delete(ls.failing, shown)
		b := &listener{addr: shown, l: l, srv: NewServer(ls.src)}
		ls.bound[k] = b
		go func() {
			if err := b.srv.Serve(l); err != nil && !errors.Is(err, smallhttp.ErrServerClosed) && !errors.Is(err, net.ErrClosed) {
				ls.cfg.Log.Error("session endpoint", "listen", b.addr, "err", err)
			}
		}()
		ls.cfg.Log.Info("session endpoint listening", "listen", shown)
	}
	return complete
}

// logFailure logs that addr cannot be bound (yet), once until it binds.
func (ls *Listeners) logFailure(addr string, err error) {
	if ls.failing[addr] {
		return
	}
	ls.failing[addr] = true
	ls.cfg.Log.Warn("session endpoint: cannot listen yet; retrying when the interfaces change", "listen", addr, "err", err)
}

func mapHasValue(m map[string]string, v string) bool {
	for _, x := range m {
		if x == v {
			return true
		}
	}
	return false
}
