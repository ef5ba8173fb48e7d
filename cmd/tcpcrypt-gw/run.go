// `tcpcrypt-gw run`: the daemon.
//
//  1. Load the configuration (embedded defaults without -c) and check that
//     it names LAN and WAN interfaces. One that does not exist yet is
//     logged and steered once it appears (boot, hotplug): the rules name
//     interfaces, not indexes (gateway/netsetup).
//  2. Refuse to start while flow offloading could bypass the gateway
//     (gateway/offload); clean up what a crashed earlier run left, then
//     create the TUN device, the policy routing rules and the conntrack
//     bypass (netsetup).
//  3. Start the key pool, the flow table, the data plane workers and the
//     HTTP API; the LAN session endpoint binds its addresses as they
//     become usable (gateway/lanapi, listen.go).
//  4. SIGHUP reloads the policy (a bad file is rejected, the old one kept);
//     SIGINT/SIGTERM stop the data plane and remove exactly what step 2 added.
//  5. On SIGHUP and every offloadCheckInterval the offloading check runs
//     again: offloading switched on meanwhile stops the gateway with an
//     error naming the setting, as at start.

package main

import (
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"tcpcrypt-gw/config"
	"tcpcrypt-gw/crypto/endpoint"
	"tcpcrypt-gw/crypto/tcpcrypt"
	"tcpcrypt-gw/flowtable"
	"tcpcrypt-gw/gateway"
	"tcpcrypt-gw/gateway/downgrade"
	"tcpcrypt-gw/gateway/engine"
	"tcpcrypt-gw/gateway/lanapi"
	"tcpcrypt-gw/gateway/monitor"
	"tcpcrypt-gw/gateway/netsetup"
	"tcpcrypt-gw/gateway/offload"
	"tcpcrypt-gw/gateway/smallhttp"
)

func loadConfig(path string) (*config.Config, error) {
	if path == "" {
		return config.Default(), nil
	}
	return config.Load(path)
}

func newLogger(cfg *config.Config) *slog.Logger {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(cfg.Log.Level))
	opts := &slog.HandlerOptions{Level: lvl}
	if cfg.Log.Format == "json" {
		return slog.New(slog.NewJSONHandler(os.Stderr, opts))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, opts))
}

// engineConfig maps the YAML policy onto the engine's.
// The resumption cache is kept across reloads (nil: a new one when enabled),
// and so is the memory of tcpcrypt peers (made once at start).
// warn is the engine's warning log (a warnLimiter's, made once at start and
// kept across reloads).
func engineConfig(cfg *config.Config, keys *tcpcrypt.KeyPool, cache *endpoint.Cache, peers *downgrade.Memory, paths *downgrade.Paths, warn func(string, ...any)) (*engine.Config, error) {
	ec := &engine.Config{
		IsLAN:              cfg.IsLAN,
		Keys:               faultKeys(keys),
		Peers:              peers,
		Paths:              paths,
		BlockDowngrade:     cfg.DowngradeBlock(),
		NoSYNFallback:      cfg.NoSYNFallback(),
		Warn:               warn,
		SYNFallbackRetries: cfg.TCPCrypt.SYNFallbackRetries,
		InitTimeout:        cfg.TCPCrypt.InitTimeout,
		HandshakeTimeout:   cfg.Flows.HandshakeTimeout,
		IdleTimeout:        cfg.Flows.IdleTimeout,
		ClosingTimeout:     cfg.Flows.ClosingTimeout,
		MaxBufferPerFlow:   int(cfg.Flows.MaxBufferPerFlow),
		RekeyBytes:         int64(cfg.TCPCrypt.RekeyBytes),
		RekeyInterval:      cfg.TCPCrypt.RekeyInterval,
	}
	if sc := cfg.TCPCrypt.SessionCache; sc.Size > 0 {
		if cache == nil {
			cache = endpoint.NewCache(sc.Size, sc.TTL)
		}
		ec.Cache = cache
		ec.ResumeNonceLen = sc.NonceLen
	}
	bypass := cfg.Bypass()
	ec.Bypass = func(lan, wan netip.AddrPort) bool { return bypass.Match(lan, wan) }
	ec.AppAware = cfg.AppAware().Match
	ec.RequireEncryption = cfg.RequireEncryption().Match
	ec.RequirePostQuantum = cfg.RequirePostQuantum().Match
	for _, name := range cfg.TCPCrypt.TEPs {
		t, err := tcpcrypt.ParseTEP(name)
		if err != nil {
			return nil, err
		}
		ec.TEPs = append(ec.TEPs, t)
	}
	for _, name := range cfg.TCPCrypt.Ciphers {
		a, err := tcpcrypt.ParseAEAD(name)
		if err != nil {
			return nil, err
		}
		ec.Ciphers = append(ec.Ciphers, a)
	}
	return ec, nil
}

func cmdRun(args []string) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	path := fs.String("c", "", "config file (YAML); embedded defaults when empty")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := loadConfig(*path)
	if err != nil {
		return err
	}
	// Interfaces that do not exist yet are no reason to stop: at boot, or
	// for a PPPoE or USB WAN, they appear later and are steered then
	// (gateway/netsetup). Naming none is.
	if probs := cfg.CheckInterfaces(func(string) bool { return true }); len(probs) > 0 {
		return &config.Error{Problems: probs}
	}
	log := newLogger(cfg)
	mem := applyMemory(cfg, log)
	stopProfile, err := startCPUProfile(log) // profile.go
	if err != nil {
		return err
	}
	defer stopProfile()

	// RFC 8547 §10, RFC 8548 §8: no ENO before the randomness behind the
	// keys and nonces is good. crypto/rand reads getrandom(2), which blocks
	// until the kernel's generator is seeded; reading once here keeps the
	// traffic out of the gateway until then.
	if _, err := rand.Read(make([]byte, 32)); err != nil {
		return fmt.Errorf("randomness: %w", err)
	}
	if err := offload.Check(cfg.Routing.UCIFirewall); err != nil {
		return err
	}
	workers := dataplaneWorkers(cfg)
	params := netsetupParams(cfg)
	if !gateway.OffloadsOff() {
		params.Queues = workers // one TUN queue per worker (gateway/queues.go)
	}
	setup, err := netsetup.Apply(params)
	if err != nil {
		return fmt.Errorf("network set-up: %w", err)
	}
	for _, name := range setup.Missing {
		// check-config reports these as errors: a name mistyped would
		// steer nothing, forever.
		log.Warn("interface does not exist (yet); it is steered as soon as it appears", "interface", name)
	}
	defer func() {
		if err := setup.Close(); err != nil {
			log.Error("network clean-up", "err", err)
		}
	}()

	keys := tcpcrypt.NewKeyPool(parseTEPs(cfg), cfg.TCPCrypt.KeypairLifetime)
	defer keys.Close()
	peers, err := startPeerMemory(cfg, log)
	if err != nil {
		return err
	}
	defer peers.stop()
	d := cfg.Downgrade
	paths := downgrade.NewPaths(downgrade.PathConfig{Max: d.PathMemorySize, TTL: d.BrokenPathTTL, Window: d.BrokenPathWindow, Threshold: d.BrokenPathFailures})
	// The engine warns per connection (SYN fallback, downgrade, broken
	// path): an attacker dropping ENO SYNs must not flood the log.
	warns := newWarnLimiter(log, warnBurst, warnWindow, time.Now)
	ec, err := engineConfig(cfg, keys, nil, peers.mem, paths, warns.Warn)
	if err != nil {
		return err
	}
	table := flowtable.New[*engine.Flow](flowtable.Config{Shards: workers, MaxFlows: cfg.Flows.Max, MaxBytesTotal: int64(cfg.Flows.MaxBufferTotal),
		InitialTimeout: cfg.Flows.HandshakeTimeout}) // a new flow is half-open: its first deadline is final (expiry.go)
	dp, err := gateway.NewDataplane(setup.Device, setup.Queues, table, ec, workers, log)
	if err != nil {
		return err
	}

	srv, err := startAPI(cfg, &monitor.Source{Table: table, Shards: workers, Stats: dp.Stats, Start: time.Now(), Paths: paths, Workers: workerStats(dp)}, log)
	if err != nil {
		return err
	}
	defer srv.Close()
	sessionSrv, err := startSessionAPI(cfg, table, log)
	if err != nil {
		return err
	}
	if sessionSrv != nil {
		defer sessionSrv.Close()
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stop := sync.OnceFunc(func() {
		cancel()
		// Encrypted connections cannot outlive the gateway: once its
		// rules are gone the kernel would hand their ciphertext to LAN
		// hosts. Reset them while the TUN device still works.
		dp.ResetAll()
		setup.CloseTUN()
	})
	recheck := make(chan struct{}, 1)
	offloadErr := make(chan error, 1)
	go watchOffload(ctx, cfg.Routing.UCIFirewall, recheck, func(err error) {
		log.Error("stopping: flow offloading was switched on", "err", err)
		offloadErr <- err
		stop()
	})
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	go func() {
		for sig := range sigs {
			if sig != syscall.SIGHUP {
				log.Info("stopping", "signal", sig.String())
				stop()
				return
			}
			reload(*path, cfg, dp, keys, log)
			select {
			case recheck <- struct{}{}:
			default:
			}
		}
	}()
	log.Info("tcpcrypt-gw running", "tun", cfg.Interfaces.TUN, "lan", cfg.Interfaces.LAN, "wan", cfg.Interfaces.WAN, "api", cfg.HTTP.Listen, "workers", workers, "tun_queues", max(1, params.Queues),
		"offloads", dp.Offloads(), "memory_limit", mem.limit, "gogc", mem.gogc,
		"ciphers", cfg.TCPCrypt.Ciphers, "cipher_order", cfg.CipherOrder())
	err = dp.Run(ctx)
	signal.Stop(sigs)
	select {
	case oerr := <-offloadErr:
		return oerr
	default:
	}
	return err
}

// dataplaneWorkers is the number of data-plane workers (and TUN queues):
// interfaces.tun_queues, or by the CPUs Go may use
// (config.Interfaces.Workers); TCPCRYPT_GW_WORKERS=N overrides both, for
// measurements.
func dataplaneWorkers(cfg *config.Config) int {
	w := cfg.Interfaces.Workers(runtime.GOMAXPROCS(0))
	if env := os.Getenv("TCPCRYPT_GW_WORKERS"); env != "" {
		if n, err := strconv.Atoi(env); err == nil && n > 0 {
			w = n
		}
	}
	return max(1, min(w, config.MaxTUNQueues))
}

// workerStats reads the per-worker counters of a multi-queue data plane
// for the API (nil with one queue).
func workerStats(dp *gateway.Dataplane) func() []monitor.WorkerJSON {
	if len(dp.Workers) == 0 {
		return nil
	}
	return func() []monitor.WorkerJSON {
		ws := make([]monitor.WorkerJSON, len(dp.Workers))
		for i := range dp.Workers {
			ws[i] = monitor.WorkerJSON{Queue: i, Packets: dp.Workers[i].Packets.Load(), Foreign: dp.Workers[i].Foreign.Load()}
		}
		return ws
	}
}

// offloadCheckInterval is how often a running gateway looks for flow
// offloading again (OpenWrt's firewall may be reconfigured at any time). A
// check reads the UCI file and dumps the nftables rules: cheap at this rate.
const offloadCheckInterval = 30 * time.Second

// watchOffload runs the offloading check every offloadCheckInterval and on
// each recheck, until ctx ends; the first finding goes to found (once). A
// check that fails for another reason is logged by found's caller only when
// it is an *offload.Error; other errors (a transient netlink failure) are
// retried at the next tick.
func watchOffload(ctx context.Context, uciPath string, recheck <-chan struct{}, found func(error)) {
	t := time.NewTicker(offloadCheckInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-recheck:
		}
		var oe *offload.Error
		if err := offload.Check(uciPath); errors.As(err, &oe) {
			found(err)
			return
		}
	}
}

// reload applies a new policy on SIGHUP; the interfaces and the TUN device
// stay as they are (a restart changes those).
func reload(path string, old *config.Config, dp *gateway.Dataplane, keys *tcpcrypt.KeyPool, log *slog.Logger) {
	if path == "" {
		log.Info("SIGHUP: running on embedded defaults, nothing to reload")
		return
	}
	cfg, err := config.Load(path)
	if err != nil {
		log.Error("SIGHUP: new config rejected, keeping the old one", "err", err)
		return
	}
	ec, err := engineConfig(cfg, keys, dp.Config().Cache, dp.Config().Peers, dp.Config().Paths, dp.Config().Warn)
	if err != nil {
		log.Error("SIGHUP: new config rejected, keeping the old one", "err", err)
		return
	}
	dp.SetConfig(ec)
	log.Info("SIGHUP: policy reloaded", "ciphers", cfg.TCPCrypt.Ciphers, "cipher_order", cfg.CipherOrder())
}

func parseTEPs(cfg *config.Config) []tcpcrypt.TEP {
	var ts []tcpcrypt.TEP
	for _, n := range cfg.TCPCrypt.TEPs {
		if t, err := tcpcrypt.ParseTEP(n); err == nil {
			ts = append(ts, t)
		}
	}
	return ts
}

func netsetupParams(cfg *config.Config) netsetup.Params {
	return netsetup.Params{
		TUN: cfg.Interfaces.TUN, MTU: cfg.Interfaces.TUNMTU, LAN: cfg.Interfaces.LAN, WAN: cfg.Interfaces.WAN,
		LANPrefixes: cfg.LANPrefixes, Table: cfg.Routing.Table, RulePriority: cfg.Routing.RulePriority,
		ConntrackBypass: cfg.Routing.ConntrackBypass, IPv6: true,
	}
}

func interfaceExists(name string) bool {
	_, err := net.InterfaceByName(name)
	return err == nil
}

func startAPI(cfg *config.Config, src *monitor.Source, log *slog.Logger) (*smallhttp.Server, error) {
	token := ""
	if cfg.HTTP.TokenFile != "" {
		b, err := os.ReadFile(cfg.HTTP.TokenFile)
		if err != nil {
			return nil, fmt.Errorf("http.token_file: %w", err)
		}
		token = strings.TrimSpace(string(b))
		if token == "" {
			return nil, fmt.Errorf("http.token_file %s is empty", cfg.HTTP.TokenFile)
		}
	}
	l, err := net.Listen("tcp", cfg.HTTP.Listen)
	if err != nil {
		return nil, fmt.Errorf("http.listen: %w", err)
	}
	// smallhttp rather than net/http's Server: the latter links TLS, which
	// a plain-HTTP status API does not need (docs/deploy.md, flash).
	srv := &smallhttp.Server{
		Handler:  monitor.Handler(src, token),
		ErrorLog: func(err error) { log.Error("http", "err", err) },
	}
	go func() {
		if err := srv.Serve(l); err != nil && !errors.Is(err, smallhttp.ErrServerClosed) {
			log.Error("http", "err", err)
		}
	}()
	return srv, nil
}

// startSessionAPI serves the LAN session endpoint (gateway/lanapi) on the
// addresses of session_api.listen, "lan:PORT" standing for every address
// of the LAN interfaces, as they come and go. Nil when the list is empty.
func startSessionAPI(cfg *config.Config, table *flowtable.Table[*engine.Flow], log *slog.Logger) (*lanapi.Listeners, error) {
	if len(cfg.SessionAPI.Listen) == 0 {
		return nil, nil
	}
	lc := lanapi.ListenConfig{LAN: cfg.Interfaces.LAN, Log: log}
	for _, l := range cfg.SessionAPI.Listen {
		host, port, _ := net.SplitHostPort(l) // validated
		if host != config.SessionAPILAN {
			lc.Addrs = append(lc.Addrs, l)
			continue
		}
		p, err := strconv.ParseUint(port, 10, 16)
		if err != nil {
			return nil, fmt.Errorf("session_api.listen: %q: %w", l, err)
		}
		lc.LANPorts = append(lc.LANPorts, uint16(p))
	}
	ls, err := lanapi.Listen(&lanapi.Source{Table: table}, lc)
	if err != nil {
		return nil, fmt.Errorf("session_api.listen: %w", err)
	}
	return ls, nil
}

// peerMemory is the memory of tcpcrypt peers with its persistence.
type peerMemory struct {
	mem  *downgrade.Memory
	file string
	log  *slog.Logger
	done chan struct{}
}

// persistEvery is how often a changed peer memory is written to
// downgrade.persist_file.
const persistEvery = time.Minute

// startPeerMemory makes the memory of downgrade (nil when memory_size is
// 0), loads it from persist_file and saves it there periodically.
func startPeerMemory(cfg *config.Config, log *slog.Logger) (*peerMemory, error) {
	d := cfg.Downgrade
	p := &peerMemory{mem: downgrade.New(d.MemorySize, d.MemoryTTL), file: d.PersistFile, log: log, done: make(chan struct{})}
	if p.mem == nil || p.file == "" {
		return p, nil
	}
	if err := p.mem.Load(p.file, time.Now()); err != nil {
		return nil, fmt.Errorf("downgrade.persist_file: %w", err)
	}
	log.Info("downgrade memory loaded", "file", p.file, "peers", p.mem.Len())
	go func() {
		t := time.NewTicker(persistEvery)
		defer t.Stop()
		for {
			select {
			case <-p.done:
				return
			case <-t.C:
				p.save()
			}
		}
	}()
	return p, nil
}

func (p *peerMemory) save() {
	if err := p.mem.Save(p.file, time.Now()); err != nil {
		p.log.Error("downgrade.persist_file", "err", err)
	}
}

// stop ends the periodic saving and saves a last time.
func (p *peerMemory) stop() {
	if p.mem == nil || p.file == "" {
		return
	}
	close(p.done)
	p.save()
}
