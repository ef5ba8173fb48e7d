// Validation: ranges, duplicates and cross-field rules of a merged Config.
//
// Every limit is a named constant below; docs/config.md states the same
// ranges. A problem is placed at the line of the field in the file (or of
// the nearest enclosing key the file set); for a Config built in code the
// line is 0.

package config

import (
	"cmp"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"tcpcrypt-gw/crypto/tcpcrypt"
)

// Limits. Where the kernel or another package sets the limit, the comment
// says which.
const (
	maxIfNameLen = 15    // IFNAMSIZ 16 including the NUL (Linux dev_valid_name)
	maxIfaces    = 64    // LAN + WAN together; gateway/netsetup installs a rule per interface
	minTUNMTU    = 1280  // IPv6 is always steered: RFC 8200 §5 minimum link MTU
	maxTUNMTU    = 65535 // largest IP datagram
	minTable     = 1
	maxTable     = 1<<31 - 1
	maxRulePrio  = 32765 // 32766 is the main table's rule, 32767 the default table's

	maxLANPrefixes    = 256  // gateway/netsetup installs one nftables rule per prefix
	maxBypassPorts    = 1024 // ranges, so 1024 entries can still cover any port set needed
	maxBypassPrefixes = 4096
	maxBypassHosts    = 4096

	maxKeypairLifetime    = time.Hour // RFC 8548 §3.3: ephemeral keys "MUST be refreshed frequently"
	minRekeyBytes         = MiB       // smaller would rekey nearly every frame
	maxRekeyBytes         = TiB       // beyond this the AEAD limits decide anyway
	minRekeyInterval      = 10 * time.Second
	maxRekeyInterval      = 30 * 24 * time.Hour
	maxSessionCache       = 1 << 20
	minSessionTTL         = time.Second
	maxSessionTTL         = 24 * time.Hour
	maxSYNFallback        = 10 // Linux sends at most tcp_syn_retries (default 6) retransmissions
	minInitTimeout        = time.Second
	maxInitTimeout        = 5 * time.Minute
	maxFlows              = 1 << 24
	minIdleTimeout        = 10 * time.Second
	maxIdleTimeout        = 30 * 24 * time.Hour
	minHandshakeTimeout   = time.Second
	maxHandshakeTimeout   = 10 * time.Minute
	minClosingTimeout     = time.Second
	maxClosingTimeout     = time.Hour
	minBufferPerFlow      = 64 * KiB // one unscaled TCP window
	maxBufferPerFlow      = GiB      // also keeps int(MaxBufferPerFlow) safe on 32-bit
	maxBufferTotal        = TiB
	maxSessionListen      = 16 // listeners of the session API
	maxDowngradeMemory    = 1 << 20
	minDowngradeTTL       = time.Minute
	maxDowngradeTTL       = 365 * 24 * time.Hour
	maxBrokenPathFailures = 100
)

// The accepted values of the enumerated string keys.
var (
	conntrackModes = []string{ConntrackAuto, ConntrackOn, ConntrackOff}
	logLevels      = []string{"debug", "info", "warn", "error"}
	logFormats     = []string{"text", "json"}
)

type validator struct {
	c     *Config
	probs []Problem
}

// Validate checks the whole configuration and returns every problem, sorted
// by line. It does not look at the running system (see CheckInterfaces).
func (c *Config) Validate() []Problem {
	v := &validator{c: c}
	v.interfaces()
	v.routing()
	v.prefixes("lan_prefixes", c.LANPrefixes, maxLANPrefixes, true)
	v.tcpcrypt()
	v.bypass()
	v.flows()
	v.http()
	v.sessionAPI()
	v.portList("require_encryption.ports", c.Require.Ports)
	v.prefixes("require_encryption.prefixes", c.Require.Prefixes, maxBypassPrefixes, false)
	v.requirePQ()
	v.downgrade()
	v.oneOf("log.level", c.Log.Level, logLevels)
	v.oneOf("log.format", c.Log.Format, logFormats)
	v.memory()
	for field, s := range c.wide {
		// Every int field has a range check above; this only keeps a
		// field added without one from taking a wide value as 0.
		if !slices.ContainsFunc(v.probs, func(p Problem) bool { return p.Field == field }) {
			v.add(field, "%s out of range (wider than %d bits)", s, strconv.IntSize)
		}
	}
	sortProblems(v.probs)
	return v.probs
}

// CheckInterfaces is the run-time check that at least one LAN and one WAN
// interface is named and that every named interface exists (lookup reports
// whether an interface of that name exists). The TUN device is not checked:
// the gateway creates it.
func (c *Config) CheckInterfaces(lookup func(name string) bool) []Problem {
	v := &validator{c: c}
	for _, side := range []struct {
		field, what string
		names       []string
	}{
		{"interfaces.lan", "LAN", c.Interfaces.LAN},
		{"interfaces.wan", "WAN", c.Interfaces.WAN},
	} {
		if len(side.names) == 0 {
			v.add(side.field, "at least one %s interface is required (none configured)", side.what)
		}
		for i, name := range side.names {
			if !lookup(name) {
				v.add(index(side.field, i), "%s interface %q does not exist", side.what, name)
			}
		}
	}
	sortProblems(v.probs)
	return v.probs
}

// lineOf returns the line of field, or of the nearest enclosing key that
// was set in the file; 0 if none was.
func (c *Config) lineOf(field string) int {
	for f := field; f != ""; f = parentPath(f) {
		if l, ok := c.lines[f]; ok {
			return l
		}
	}
	return 0
}

func (v *validator) add(field, format string, args ...any) {
	v.probs = append(v.probs, Problem{File: v.c.file, Line: v.c.lineOf(field), Field: field, Reason: fmt.Sprintf(format, args...)})
}

// addEither reports a problem about two fields on the one the file set
// (the later one if both were set), so it points at what the user wrote.
func (v *validator) addEither(a, b, format string, args ...any) {
	field := a
	la, okA := v.c.lines[a]
	lb, okB := v.c.lines[b]
	if okB && (!okA || lb > la) {
		field = b
	}
	v.add(field, format, args...)
}

func index(field string, i int) string { return fmt.Sprintf("%s[%d]", field, i) }

// intRange checks lo <= n <= hi and reports whether it holds. A value
// written in the file but too large for int (from 2^31 on 32-bit
// platforms; Config.wide) is reported as written.
func (v *validator) intRange(field string, n, lo, hi int) bool {
	if s, wide := v.c.wide[field]; wide {
		v.add(field, "%s out of range [%d, %d]", s, lo, hi)
		return false
	}
	if n < lo || n > hi {
		v.add(field, "%d out of range [%d, %d]", n, lo, hi)
		return false
	}
	return true
}

// durRange checks lo <= d <= hi; zeroOK also admits 0 (meaning "off").
func (v *validator) durRange(field string, d, lo, hi time.Duration, zeroOK bool) {
	if d == 0 && zeroOK {
		return
	}
	if d < lo || d > hi {
		off := ""
		if zeroOK {
			off = " or 0 to disable"
		}
		v.add(field, "%s out of range [%s, %s]%s", fmtDuration(d), fmtDuration(lo), fmtDuration(hi), off)
	}
}

func (v *validator) sizeRange(field string, s, lo, hi ByteSize, zeroOK bool) {
	if s == 0 && zeroOK {
		return
	}
	if s < lo || s > hi {
		off := ""
		if zeroOK {
			off = " or 0 to disable"
		}
		v.add(field, "%s out of range [%s, %s]%s", s, lo, hi, off)
	}
}

func (v *validator) oneOf(field, s string, valid []string) {
	if !slices.Contains(valid, s) {
		v.add(field, "unknown value %q (want one of %s)", s, strings.Join(valid, ", "))
	}
}

// fmtDuration prints "24h" and "1h30m" rather than "24h0m0s".
func fmtDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}

// ifNameProblem applies the kernel's rules for interface names
// (dev_valid_name): 1-15 bytes, not "." or "..", no '/', ':' or whitespace.
func ifNameProblem(name string) string {
	switch {
	case name == "":
		return "empty interface name"
	case len(name) > maxIfNameLen:
		return fmt.Sprintf("interface name %q longer than %d characters", name, maxIfNameLen)
	case name == "." || name == "..":
		return fmt.Sprintf("%q is not a valid interface name", name)
	case strings.ContainsAny(name, "/:") || strings.ContainsFunc(name, isSpace):
		return fmt.Sprintf("interface name %q contains '/', ':' or a space", name)
	}
	return ""
}

func isSpace(r rune) bool {
	return r == ' ' || r == '\t' || r == '\n' || r == '\r' || r == '\v' || r == '\f'
}

func (v *validator) interfaces() {
	in := &v.c.Interfaces
	if p := ifNameProblem(in.TUN); p != "" {
		v.add("interfaces.tun", "%s", p)
	}
	v.intRange("interfaces.tun_mtu", in.TUNMTU, minTUNMTU, maxTUNMTU)
	v.intRange("interfaces.tun_queues", in.TUNQueues, 0, MaxTUNQueues)
	if n := len(in.LAN) + len(in.WAN); n > maxIfaces {
		v.add("interfaces", "%d LAN and WAN interfaces, at most %d", n, maxIfaces)
		return
	}
	seen := map[string]string{in.TUN: "interfaces.tun"}
	for _, side := range []struct {
		field string
		names []string
	}{{"interfaces.lan", in.LAN}, {"interfaces.wan", in.WAN}} {
		for i, name := range side.names {
			field := index(side.field, i)
			if p := ifNameProblem(name); p != "" {
				v.add(field, "%s", p)
				continue
			}
			if first, dup := seen[name]; dup {
				v.add(field, "interface %q already listed as %s", name, first)
				continue
			}
			seen[name] = field
		}
	}
}

func (v *validator) routing() {
	r := &v.c.Routing
	if v.intRange("routing.table", r.Table, minTable, maxTable) && r.Table >= 253 && r.Table <= 255 {
		v.add("routing.table", "table %d is reserved by the kernel (253 default, 254 main, 255 local)", r.Table)
	}
	v.intRange("routing.rule_priority", r.RulePriority, 1, maxRulePrio)
	v.oneOf("routing.conntrack_bypass", r.ConntrackBypass, conntrackModes)
	if r.UCIFirewall != "" && !filepath.IsAbs(r.UCIFirewall) {
		v.add("routing.uci_firewall", "%q is not an absolute path", r.UCIFirewall)
	}
}

// prefixes checks a prefix list: bounded, each prefix valid and canonical,
// no duplicates and none inside another (a sign of a typing error).
func (v *validator) prefixes(field string, ps []netip.Prefix, limit int, required bool) {
	if required && len(ps) == 0 {
		v.add(field, "at least one prefix is required")
		return
	}
	if len(ps) > limit {
		v.add(field, "%d prefixes, at most %d", len(ps), limit)
		return
	}
	type entry struct {
		p netip.Prefix
		i int
	}
	good := make([]entry, 0, len(ps))
	for i, p := range ps {
		switch {
		case !p.IsValid():
			v.add(index(field, i), "invalid prefix")
		case p.Addr().Is4In6():
			v.add(index(field, i), "IPv4-mapped IPv6 prefix %s (write the IPv4 prefix)", p)
		case p.Masked() != p:
			v.add(index(field, i), "%s has host bits set (did you mean %s?)", p, p.Masked())
		default:
			good = append(good, entry{p, i})
		}
	}
	// Sorted by address, then shorter prefix first, a prefix inside another
	// comes after it, and prefixes are nested or disjoint, so the last
	// prefix not inside another is the only candidate container.
	slices.SortStableFunc(good, func(a, b entry) int {
		if c := a.p.Addr().Compare(b.p.Addr()); c != 0 {
			return c
		}
		return cmp.Compare(a.p.Bits(), b.p.Bits())
	})
	var cover *entry
	for k := range good {
		e := &good[k]
		if cover != nil && cover.p.Bits() <= e.p.Bits() && cover.p.Contains(e.p.Addr()) {
			if cover.p == e.p {
				later, first := max(cover.i, e.i), min(cover.i, e.i)
				v.add(index(field, later), "duplicate of %s (%s)", e.p, v.where(index(field, first)))
			} else {
				v.add(index(field, e.i), "%s is inside %s (%s)", e.p, cover.p, v.where(index(field, cover.i)))
			}
			continue
		}
		cover = e
	}
}

// where names a field for a reason text: "tcpcrypt.teps[0], line 12".
func (v *validator) where(field string) string {
	if l, ok := v.c.lines[field]; ok {
		return fmt.Sprintf("%s, line %d", field, l)
	}
	return field
}

// names checks an algorithm preference list: not empty, every name known,
// no name twice.
func (v *validator) names(field, what string, list, valid []string) {
	if len(list) == 0 {
		v.add(field, "empty list: at least one %s is required (want some of %s)", what, strings.Join(valid, ", "))
		return
	}
	seen := make(map[string]int, len(list))
	for i, name := range list {
		if !slices.Contains(valid, name) {
			v.add(index(field, i), "unknown %s %q (want one of %s)", what, name, strings.Join(valid, ", "))
			continue
		}
		if first, dup := seen[name]; dup {
			v.add(index(field, i), "duplicate %s %q (%s)", what, name, v.where(index(field, first)))
			continue
		}
		seen[name] = i
	}
}

func (v *validator) tcpcrypt() {
	t := &v.c.TCPCrypt
	v.names("tcpcrypt.teps", "TEP", t.TEPs, tepNames)
	v.names("tcpcrypt.ciphers", "cipher", t.Ciphers, cipherNames)
	v.durRange("tcpcrypt.keypair_lifetime", t.KeypairLifetime, 0, maxKeypairLifetime, true)
	v.sizeRange("tcpcrypt.rekey_bytes", t.RekeyBytes, minRekeyBytes, maxRekeyBytes, true)
	v.durRange("tcpcrypt.rekey_interval", t.RekeyInterval, minRekeyInterval, maxRekeyInterval, true)
	v.intRange("tcpcrypt.session_cache.size", t.SessionCache.Size, 0, maxSessionCache)
	v.durRange("tcpcrypt.session_cache.ttl", t.SessionCache.TTL, minSessionTTL, maxSessionTTL, t.SessionCache.Size == 0)
	v.intRange("tcpcrypt.session_cache.nonce_len", t.SessionCache.NonceLen, 0, 8)
	v.portList("tcpcrypt.application_aware.ports", t.ApplicationAware.Ports)
	v.portList("tcpcrypt.application_aware.mandatory_ports", t.ApplicationAware.MandatoryPorts)
	v.intRange("tcpcrypt.syn_fallback_retries", t.SYNFallbackRetries, 0, maxSYNFallback)
	v.durRange("tcpcrypt.init_timeout", t.InitTimeout, minInitTimeout, maxInitTimeout, false)
}

func (v *validator) bypass() {
	b := &v.c.BypassRules
	v.portList("bypass.ports", b.Ports)
	v.prefixes("bypass.prefixes", b.Prefixes, maxBypassPrefixes, false)
	if len(b.Hosts) > maxBypassHosts {
		v.add("bypass.hosts", "%d hosts, at most %d (use prefixes)", len(b.Hosts), maxBypassHosts)
		return
	}
	covered := newAddrSet(b.Prefixes)
	seen := make(map[netip.Addr]int, len(b.Hosts))
	for i, a := range b.Hosts {
		field := index("bypass.hosts", i)
		switch {
		case !a.IsValid():
			v.add(field, "invalid address")
		case a.Zone() != "":
			v.add(field, "address %s has a zone; bypass hosts take plain addresses", a)
		case a.Is4In6():
			v.add(field, "IPv4-mapped IPv6 address %s (write %s)", a, a.Unmap())
		case covered.contains(a):
			v.add(field, "%s is already covered by bypass.prefixes", a)
		default:
			if first, dup := seen[a]; dup {
				v.add(field, "duplicate of %s (%s)", a, v.where(index("bypass.hosts", first)))
				continue
			}
			seen[a] = i
		}
	}
}

// ports checks port ranges: valid, and no two overlapping.
// portList checks a list of port ranges: bounded, each valid, none
// overlapping another.
func (v *validator) portList(field string, rs []PortRange) {
	if len(rs) > maxBypassPorts {
		v.add(field, "%d entries, at most %d (use ranges)", len(rs), maxBypassPorts)
		return
	}
	v.ports(field, rs)
}

func (v *validator) ports(field string, rs []PortRange) {
	type entry struct {
		r PortRange
		i int
	}
	good := make([]entry, 0, len(rs))
	for i, r := range rs {
		if r.Lo == 0 || r.Lo > r.Hi {
			v.add(index(field, i), "invalid port range %d-%d (want 1-65535, low <= high)", r.Lo, r.Hi)
			continue
		}
		good = append(good, entry{r, i})
	}
	slices.SortStableFunc(good, func(a, b entry) int { return cmp.Compare(a.r.Lo, b.r.Lo) })
	if len(good) == 0 {
		return
	}
	// far is the range reaching furthest so far, so that a range inside an
	// earlier long one is caught too.
	far := good[0]
	for _, e := range good[1:] {
		if e.r.Lo <= far.r.Hi {
			later, first := max(e.i, far.i), min(e.i, far.i)
			v.add(index(field, later), "%s overlaps %s (%s)", rs[later], rs[first], v.where(index(field, first)))
		}
		if e.r.Hi > far.r.Hi {
			far = e
		}
	}
}

func (v *validator) flows() {
	f := &v.c.Flows
	v.intRange("flows.max", f.Max, 1, maxFlows)
	v.durRange("flows.idle_timeout", f.IdleTimeout, minIdleTimeout, maxIdleTimeout, false)
	v.durRange("flows.handshake_timeout", f.HandshakeTimeout, minHandshakeTimeout, maxHandshakeTimeout, false)
	v.durRange("flows.closing_timeout", f.ClosingTimeout, minClosingTimeout, maxClosingTimeout, false)
	v.sizeRange("flows.max_buffer_per_flow", f.MaxBufferPerFlow, minBufferPerFlow, maxBufferPerFlow, false)
	v.sizeRange("flows.max_buffer_total", f.MaxBufferTotal, minBufferPerFlow, maxBufferTotal, false)
	if f.MaxBufferTotal < f.MaxBufferPerFlow {
		v.addEither("flows.max_buffer_total", "flows.max_buffer_per_flow",
			"max_buffer_total (%s) is smaller than max_buffer_per_flow (%s)", f.MaxBufferTotal, f.MaxBufferPerFlow)
	}
}

func (v *validator) http() {
	h := &v.c.HTTP
	loopback, problem := listenLoopback(h.Listen)
	if problem != "" {
		v.add("http.listen", "%s", problem)
		return
	}
	if h.TokenFile != "" && !filepath.IsAbs(h.TokenFile) {
		v.add("http.token_file", "%q is not an absolute path", h.TokenFile)
	}
	if !loopback && h.TokenFile == "" {
		v.addEither("http.listen", "http.token_file",
			"token_file is required when listen (%q) is not a loopback address", h.Listen)
	}
}

// listenLoopback parses a listen address "host:port" and reports whether it
// only accepts connections from this machine. The host must be an IP address,
// "localhost" or empty (every address): resolving names at start-up would
// make the gateway depend on DNS.
func listenLoopback(listen string) (loopback bool, problem string) {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return false, fmt.Sprintf("invalid address %q (want host:port, e.g. \"127.0.0.1:8473\")", listen)
	}
	if _, err := parsePort(port); err != nil {
		return false, fmt.Sprintf("address %q: %v", listen, err)
	}
	switch host {
	case "":
		return false, ""
	case "localhost":
		return true, ""
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return false, fmt.Sprintf("address %q: host %q must be an IP address or localhost", listen, host)
	}
	return a.Unmap().IsLoopback(), ""
}

func (v *validator) sessionAPI() {
	l := v.c.SessionAPI.Listen
	if len(l) > maxSessionListen {
		v.add("session_api.listen", "%d addresses, at most %d", len(l), maxSessionListen)
		return
	}
	seen := make(map[string]int, len(l))
	for i, addr := range l {
		field := index("session_api.listen", i)
		if problem := sessionListenProblem(addr); problem != "" {
			v.add(field, "%s", problem)
			continue
		}
		if first, dup := seen[addr]; dup {
			v.add(field, "duplicate of %q (%s)", addr, v.where(index("session_api.listen", first)))
			continue
		}
		seen[addr] = i
	}
}

// sessionListenProblem checks one session_api.listen entry: "lan:PORT" or
// an IP literal with a port (no host names: no DNS at start-up).
func sessionListenProblem(listen string) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return fmt.Sprintf("invalid address %q (want lan:PORT or IP:PORT, e.g. \"lan:8474\")", listen)
	}
	if _, err := parsePort(port); err != nil {
		return fmt.Sprintf("address %q: %v", listen, err)
	}
	if host == SessionAPILAN {
		return ""
	}
	if _, err := netip.ParseAddr(host); err != nil {
		return fmt.Sprintf("address %q: host %q must be %q (the LAN interfaces' addresses) or an IP address", listen, host, SessionAPILAN)
	}
	return ""
}

func (v *validator) downgrade() {
	d := &v.c.Downgrade
	v.intRange("downgrade.memory_size", d.MemorySize, 0, maxDowngradeMemory)
	v.durRange("downgrade.memory_ttl", d.MemoryTTL, minDowngradeTTL, maxDowngradeTTL, d.MemorySize == 0)
	v.prefixes("downgrade.block", d.Block, maxBypassPrefixes, false)
	v.prefixes("downgrade.no_syn_fallback", d.NoSYNFallback, maxBypassPrefixes, false)
	v.intRange("downgrade.path_memory_size", d.PathMemorySize, 0, maxDowngradeMemory)
	off := d.PathMemorySize == 0
	v.intRange("downgrade.broken_path_failures", d.BrokenPathFailures, 1, maxBrokenPathFailures)
	v.durRange("downgrade.broken_path_window", d.BrokenPathWindow, time.Second, maxDowngradeTTL, off)
	v.durRange("downgrade.broken_path_ttl", d.BrokenPathTTL, time.Second, maxDowngradeTTL, off)
	if d.PersistFile != "" && !filepath.IsAbs(d.PersistFile) {
		v.add("downgrade.persist_file", "%q is not an absolute path", d.PersistFile)
	}
}

// requirePQ checks require_encryption.post_quantum: its lists as
// require_encryption's, and a post-quantum TEP in tcpcrypt.teps, without
// which every matching flow would be reset.
func (v *validator) requirePQ() {
	r := &v.c.Require.PostQuantum
	v.portList("require_encryption.post_quantum.ports", r.Ports)
	v.prefixes("require_encryption.post_quantum.prefixes", r.Prefixes, maxBypassPrefixes, false)
	if len(r.Ports) == 0 && len(r.Prefixes) == 0 {
		return
	}
	for _, name := range v.c.TCPCrypt.TEPs {
		if t, err := tcpcrypt.ParseTEP(name); err == nil && t.PostQuantum() {
			return
		}
	}
	v.add("require_encryption.post_quantum", "needs a post-quantum TEP (x25519mlkem768) in tcpcrypt.teps: every matching flow would be reset")
}
