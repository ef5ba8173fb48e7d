// Package config is the gateway's configuration: one YAML file whose keys
// override embedded defaults (default.yaml), checked completely before use.
//
// The flow of Parse:
//  1. Start from a fresh copy of the embedded defaults.
//  2. Parse the YAML into a yaml.Node tree (syntax errors become a Problem
//     with the line yaml.v3 reports).
//  3. Walk the tree against the Config struct (decode.go): every key present
//     overwrites its default, lists replace the default list as a whole, and
//     every unknown key, duplicate key or malformed value becomes a Problem
//     carrying its line and dotted field path. The line of every field seen
//     is remembered for step 4.
//  4. Validate (validate.go) checks ranges, duplicates and cross-field rules
//     on the merged result and places each problem at the line of the field
//     that was written in the file.
//  5. Any problem: an *Error listing all of them. None: the Config.
//
// The defaults of step 1 put tcpcrypt.ciphers in the order that suits this
// CPU (cipherorder.go); a list in the file replaces it as any list does.
//
// Interfaces are checked against the running system separately
// (CheckInterfaces), so that a file can be checked on another machine.
package config

import (
	_ "embed"
	"fmt"
	"io"
	"net/netip"
	"os"
	"time"
)

// Config is the whole configuration. Fields carry their YAML key in the tag;
// docs/config.md describes every key.
type Config struct {
	Interfaces  Interfaces     `yaml:"interfaces"`
	Routing     Routing        `yaml:"routing"`
	LANPrefixes []netip.Prefix `yaml:"lan_prefixes"`
	TCPCrypt    TCPCrypt       `yaml:"tcpcrypt"`
	BypassRules BypassRules    `yaml:"bypass"`
	Flows       Flows          `yaml:"flows"`
	HTTP        HTTP           `yaml:"http"`
	SessionAPI  SessionAPI     `yaml:"session_api"`
	Require     Require        `yaml:"require_encryption"`
	Downgrade   Downgrade      `yaml:"downgrade"`
	Log         Log            `yaml:"log"`
	Memory      Memory         `yaml:"memory"` // memory.go

	file  string         // name given to Parse, for Problems
	lines map[string]int // dotted field path -> line where the file set it

	cipherOrigin string // CipherOrder (cipherorder.go)
	// wide: integers in the file too large for int, by path (decode.go)
	wide map[string]string
}

// Interfaces names the network interfaces the gateway works with.
type Interfaces struct {
	LAN    []string `yaml:"lan"`     // forwarded TCP arriving here goes through the gateway
	WAN    []string `yaml:"wan"`     // likewise; the encrypted leg
	TUN    string   `yaml:"tun"`     // the TUN device the gateway creates
	TUNMTU int      `yaml:"tun_mtu"` // its MTU
	// TUNQueues is the number of queues of the TUN device, one data-plane
	// worker each (gateway/queues.go); 0 chooses by the CPUs (Workers).
	TUNQueues int `yaml:"tun_queues"`
}

// MaxTUNQueues bounds interfaces.tun_queues (netsetup.MaxQueues).
const MaxTUNQueues = 64

// Workers is the number of data-plane workers and TUN queues for cpus
// usable CPUs: interfaces.tun_queues, or with 0 one per CPU from 4 CPUs
// on, at most 8, and 1 below (on 2 cores a second worker measured no
// faster, docs/architecture.md).
func (in *Interfaces) Workers(cpus int) int {
	if in.TUNQueues > 0 {
		return in.TUNQueues
	}
	if cpus < 4 {
		return 1
	}
	return min(cpus, 8)
}

// Routing configures the policy routing that steers TCP into the TUN.
type Routing struct {
	Table           int    `yaml:"table"`            // routing table id holding the route to the TUN
	RulePriority    int    `yaml:"rule_priority"`    // priority of the ip rules
	ConntrackBypass string `yaml:"conntrack_bypass"` // ConntrackAuto, ConntrackOn or ConntrackOff
	// UCIFirewall is OpenWrt's firewall configuration, read for the flow
	// offloading options (gateway/offload); "" skips that check.
	UCIFirewall string `yaml:"uci_firewall"`
}

// Conntrack bypass modes (routing.conntrack_bypass).
const (
	ConntrackAuto = "auto" // install the nftables notrack rules when nftables is usable
	ConntrackOn   = "on"   // install them or fail
	ConntrackOff  = "off"  // never install them
)

// TCPCrypt is the protocol policy.
type TCPCrypt struct {
	TEPs               []string      `yaml:"teps"`    // names from TEPNames, most preferred first
	Ciphers            []string      `yaml:"ciphers"` // names from CipherNames, most preferred first
	KeypairLifetime    time.Duration `yaml:"keypair_lifetime"`
	RekeyBytes         ByteSize      `yaml:"rekey_bytes"` // per direction; 0 = only at the AEAD limits
	RekeyInterval      time.Duration `yaml:"rekey_interval"`
	SessionCache       SessionCache  `yaml:"session_cache"`
	ApplicationAware   AppAware      `yaml:"application_aware"`
	SYNFallbackRetries int           `yaml:"syn_fallback_retries"`
	InitTimeout        time.Duration `yaml:"init_timeout"`
}

// SessionCache bounds the cache of session secrets kept for resumption
// (RFC 8548 §3.5).
type SessionCache struct {
	Size int           `yaml:"size"` // entries; 0 disables resumption
	TTL  time.Duration `yaml:"ttl"`
	// NonceLen is the length of the resumption nonce, 0-8 bytes; it must
	// stay 8 unless the reuse of session secrets is impossible (RFC 8548
	// §3.5).
	NonceLen int `yaml:"nonce_len"`
}

// AppAware sets TCP-ENO's application-aware bit a (RFC 8547 §4.2) for the
// LAN applications behind the gateway, which cannot set it themselves: on
// flows to or from Ports the gateway sends a = 1; on flows to or from
// MandatoryPorts it also requires a = 1 from the peer (the RFC's
// "mandatory application-aware mode") and leaves the flow plain without it.
type AppAware struct {
	Ports          []PortRange `yaml:"ports"`
	MandatoryPorts []PortRange `yaml:"mandatory_ports"`
}

// BypassRules lists traffic the gateway passes through untouched. A flow is
// bypassed when either end matches (Config.Bypass builds the matcher).
type BypassRules struct {
	Ports    []PortRange    `yaml:"ports"`
	Prefixes []netip.Prefix `yaml:"prefixes"`
	Hosts    []netip.Addr   `yaml:"hosts"`
}

// Flows bounds the flow table.
type Flows struct {
	Max              int           `yaml:"max"`
	IdleTimeout      time.Duration `yaml:"idle_timeout"`
	HandshakeTimeout time.Duration `yaml:"handshake_timeout"`
	ClosingTimeout   time.Duration `yaml:"closing_timeout"`
	MaxBufferPerFlow ByteSize      `yaml:"max_buffer_per_flow"`
	MaxBufferTotal   ByteSize      `yaml:"max_buffer_total"`
}

// HTTP configures the status API.
type HTTP struct {
	Listen    string `yaml:"listen"`     // host:port
	TokenFile string `yaml:"token_file"` // file holding the bearer token; required off loopback
}

// SessionAPI configures the LAN endpoint that tells a LAN host the session
// ID of its own connections (gateway/lanapi, docs/authentication.md).
type SessionAPI struct {
	// Listen lists "host:port" addresses (IP literals), or "lan:PORT" for
	// every address of the interfaces.lan interfaces; empty: off.
	Listen []string `yaml:"listen"`
}

// SessionAPILAN is the host part of a session_api.listen entry that stands
// for every address of the LAN interfaces.
const SessionAPILAN = "lan"

// Require lists the flows that must never be plain: a flow matches when
// either end is in Prefixes or uses one of Ports.
type Require struct {
	Ports    []PortRange    `yaml:"ports"`
	Prefixes []netip.Prefix `yaml:"prefixes"`
	// PostQuantum names flows that must be encrypted with a post-quantum
	// TEP (x25519mlkem768): encrypted with a classical one, they are reset
	// too. They are also required to be encrypted at all.
	PostQuantum RequirePQ `yaml:"post_quantum"`
}

// RequirePQ is require_encryption.post_quantum: the flows, by port or
// prefix as for require_encryption, that only a post-quantum TEP may key.
type RequirePQ struct {
	Ports    []PortRange    `yaml:"ports"`
	Prefixes []netip.Prefix `yaml:"prefixes"`
}

// Downgrade configures the memory of WAN peers that completed tcpcrypt and
// what happens when one of them later answers without TCP-ENO.
type Downgrade struct {
	MemorySize  int            `yaml:"memory_size"` // peers remembered; 0: no detection
	MemoryTTL   time.Duration  `yaml:"memory_ttl"`  // how long a peer stays remembered
	Block       []netip.Prefix `yaml:"block"`       // peers where a suspected downgrade is reset, not only flagged
	PersistFile string         `yaml:"persist_file"`
	// NoSYNFallback: peers whose SYN keeps its ENO through every
	// retransmission (no SYN fallback), without requiring encryption.
	NoSYNFallback []netip.Prefix `yaml:"no_syn_fallback"`
	// The memory of RFC 8547 §9 failures per peer (engine fallback.go).
	PathMemorySize     int           `yaml:"path_memory_size"`     // peers; 0: none kept, no broken-path recovery
	BrokenPathFailures int           `yaml:"broken_path_failures"` // type-2 failures within the window that mark a path broken
	BrokenPathWindow   time.Duration `yaml:"broken_path_window"`
	BrokenPathTTL      time.Duration `yaml:"broken_path_ttl"` // a record lasts this long after its last failure
}

// Log configures logging.
type Log struct {
	Level  string `yaml:"level"`  // debug, info, warn or error
	Format string `yaml:"format"` // text or json
}

// MaxFileSize bounds the configuration file Load reads, and with it the work
// of parsing (every list in the schema is bounded by the file's size first).
const MaxFileSize = 1 << 20

//go:embed default.yaml
var defaultYAML []byte

// Default returns a fresh copy of the embedded defaults. The defaults name no
// interfaces: CheckInterfaces reports that until a file names them.
func Default() *Config {
	c := defaultsUnchecked()
	if probs := c.Validate(); len(probs) > 0 {
		// default.yaml is part of the binary; TestDefaultValidates keeps it valid.
		panic("config: embedded default.yaml is invalid: " + (&Error{Problems: probs}).Error())
	}
	return c
}

// defaultsUnchecked decodes default.yaml over a zero Config, without the
// line information (a default has no line in the user's file), and puts the
// cipher list in this CPU's order (cipherorder.go).
func defaultsUnchecked() *Config {
	c := &Config{}
	d := newDecoder("default.yaml")
	d.document(defaultYAML, c)
	if len(d.problems) > 0 {
		panic("config: embedded default.yaml: " + (&Error{Problems: d.problems}).Error())
	}
	c.TCPCrypt.Ciphers, c.cipherOrigin = cpuCipherOrder(c.TCPCrypt.Ciphers)
	return c
}

// Load reads the YAML file at path and parses it over the defaults. An I/O
// error is returned as is; problems in the content as an *Error.
func Load(path string) (*Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("config: %s: %w", path, err)
	}
	if len(data) > MaxFileSize {
		return nil, &Error{Problems: []Problem{{File: path, Reason: fmt.Sprintf("file larger than %d bytes", MaxFileSize)}}}
	}
	return Parse(data, path)
}

// Parse parses YAML data over the defaults; name is used in problems. It
// returns every problem found as an *Error, or the valid Config.
func Parse(data []byte, name string) (*Config, error) {
	if len(data) > MaxFileSize {
		return nil, &Error{Problems: []Problem{{File: name, Reason: fmt.Sprintf("file larger than %d bytes", MaxFileSize)}}}
	}
	c := defaultsUnchecked()
	d := newDecoder(name)
	d.document(data, c)
	c.file = name
	c.lines = d.lines
	if len(d.wide) > 0 {
		c.wide = d.wide
	}
	if _, set := d.lines["tcpcrypt.ciphers"]; set {
		c.cipherOrigin = "tcpcrypt.ciphers in " + name
	}
	if _, set := d.lines["flows.max_buffer_per_flow"]; !set && c.Flows.MaxBufferTotal < c.Flows.MaxBufferPerFlow {
		// A small total budget without a per-flow figure: the default
		// per-flow figure follows it down rather than refuse the file.
		c.Flows.MaxBufferPerFlow = c.Flows.MaxBufferTotal
	}
	probs := d.problems
	for _, p := range c.Validate() {
		if !d.failed(p.Field) {
			probs = append(probs, p)
		}
	}
	if len(probs) > 0 {
		sortProblems(probs)
		return nil, &Error{Problems: probs}
	}
	return c, nil
}
