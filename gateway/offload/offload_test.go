package offload

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/vishvananda/netns"

	tnetns "tcpcrypt-gw/test/netns"
)

// fakeRuleset is a ruleset built in memory: this kernel has no
// nf_flow_table, so it cannot hold a flow offload rule.
type fakeRuleset struct {
	chains []*nftables.Chain
	rules  map[*nftables.Chain][]*nftables.Rule
	sets   map[string][]byte // set name -> one-byte keys
}

func (f *fakeRuleset) ListTables() ([]*nftables.Table, error) { return nil, nil }
func (f *fakeRuleset) ListChains() ([]*nftables.Chain, error) { return f.chains, nil }
func (f *fakeRuleset) GetRules(_ *nftables.Table, c *nftables.Chain) ([]*nftables.Rule, error) {
	return f.rules[c], nil
}
func (f *fakeRuleset) GetSets(t *nftables.Table) ([]*nftables.Set, error) {
	var out []*nftables.Set
	for name := range f.sets {
		out = append(out, &nftables.Set{Table: t, Name: name, Anonymous: true})
	}
	return out, nil
}
func (f *fakeRuleset) GetSetElements(s *nftables.Set) ([]nftables.SetElement, error) {
	var out []nftables.SetElement
	for _, k := range f.sets[s.Name] {
		out = append(out, nftables.SetElement{Key: []byte{k}})
	}
	return out, nil
}

var (
	fw4     = &nftables.Table{Family: nftables.TableFamilyINet, Name: "fw4"}
	forward = &nftables.Chain{Name: "forward", Table: fw4, Hooknum: nftables.ChainHookForward, Type: nftables.ChainTypeFilter}
	regular = &nftables.Chain{Name: "forward_lan", Table: fw4}
	other   = &nftables.Table{Family: nftables.TableFamilyINet, Name: "other"}
	prerout = &nftables.Chain{Name: "prerouting", Table: other, Hooknum: nftables.ChainHookPrerouting, Type: nftables.ChainTypeFilter}
)

// l4proto is `meta l4proto` loaded into register 1.
func l4proto() expr.Any { return &expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1} }

func TestFromRuleset(t *testing.T) {
	flowAdd := &expr.FlowOffload{Name: "ft"}
	for _, c := range []struct {
		name  string
		chain *nftables.Chain
		exprs []expr.Any
		sets  map[string][]byte
		found bool
	}{
		// fw4's own rule (firewall4, templates/ruleset.uc):
		// meta l4proto { tcp, udp } flow offload @ft;
		{"fw4 tcp,udp set", forward, []expr.Any{l4proto(), &expr.Lookup{SourceRegister: 1, SetName: "__set0"}, flowAdd}, map[string][]byte{"__set0": {6, 17}}, true},
		{"no condition", forward, []expr.Any{flowAdd}, nil, true},
		{"in a regular chain of the table", regular, []expr.Any{flowAdd}, nil, true},
		{"meta l4proto tcp", forward, []expr.Any{l4proto(), &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{6}}, flowAdd}, nil, true},
		{"meta l4proto udp", forward, []expr.Any{l4proto(), &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{17}}, flowAdd}, nil, false},
		{"meta l4proto != tcp", forward, []expr.Any{l4proto(), &expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: []byte{6}}, flowAdd}, nil, false},
		{"set without tcp", forward, []expr.Any{l4proto(), &expr.Lookup{SourceRegister: 1, SetName: "__set1"}, flowAdd}, map[string][]byte{"__set1": {17}}, false},
		{"inverted set with tcp", forward, []expr.Any{l4proto(), &expr.Lookup{SourceRegister: 1, SetName: "__set2", Invert: true}, flowAdd}, map[string][]byte{"__set2": {6}}, false},
		{"inverted set without tcp", forward, []expr.Any{l4proto(), &expr.Lookup{SourceRegister: 1, SetName: "__set3", Invert: true}, flowAdd}, map[string][]byte{"__set3": {17}}, true},
		{"unknown set counts", forward, []expr.Any{l4proto(), &expr.Lookup{SourceRegister: 1, SetName: "gone"}, flowAdd}, nil, true},
		{"ip protocol udp", forward, []expr.Any{
			&expr.Payload{DestRegister: 2, Base: expr.PayloadBaseNetworkHeader, Offset: 9, Len: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 2, Data: []byte{17}}, flowAdd}, nil, false},
		// A comparison of another register is not a protocol match.
		{"udp compared on another register", forward, []expr.Any{l4proto(),
			&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: 2}, &expr.Cmp{Op: expr.CmpOpEq, Register: 2, Data: []byte{17}}, flowAdd}, nil, true},
		// The register was overwritten with something else before the cmp.
		{"register reloaded", forward, []expr.Any{l4proto(), &expr.Meta{Key: expr.MetaKeyMARK, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{17}}, flowAdd}, nil, true},
		// A protocol match after the statement does not guard it.
		{"match after the statement", forward, []expr.Any{flowAdd, l4proto(), &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{17}}}, nil, true},
		{"table without a forward chain", prerout, []expr.Any{flowAdd}, nil, false},
		{"no flow offload", forward, []expr.Any{l4proto(), &expr.Counter{}}, nil, false},
	} {
		rs := &fakeRuleset{chains: []*nftables.Chain{forward, regular, prerout}, rules: map[*nftables.Chain][]*nftables.Rule{
			c.chain: {{Table: c.chain.Table, Chain: c.chain, Handle: 42, Exprs: c.exprs}}}, sets: c.sets}
		found, err := FromRuleset(rs)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if (len(found) > 0) != c.found {
			t.Errorf("%s: found %v, want a finding: %v", c.name, found, c.found)
			continue
		}
		if c.found && (!strings.Contains(found[0].Where, "table inet fw4, chain "+c.chain.Name+", rule handle 42 (flow add @ft)") ||
			!strings.Contains(found[0].Fix, "flow_offloading='0'")) {
			t.Errorf("%s: finding %q", c.name, found[0])
		}
	}
}

func TestFromUCI(t *testing.T) {
	text := `
config defaults
	option syn_flood '1'
	option input 'REJECT'
	option flow_offloading	'1'   # software
	option flow_offloading_hw "on"

config zone
	option name 'lan'
	option flow_offloading '1'

config defaults 'second'
	option flow_offloading '0'
	# option flow_offloading_hw '1'
`
	found := FromUCI("/etc/config/firewall", text)
	if len(found) != 2 {
		t.Fatalf("found %v, want the two options of the defaults section", found)
	}
	if found[0].Where != "/etc/config/firewall:5: option flow_offloading '1'" ||
		!strings.Contains(found[0].Fix, "uci set firewall.@defaults[0].flow_offloading='0'") {
		t.Errorf("first: %q", found[0])
	}
	if found[1].Where != "/etc/config/firewall:6: option flow_offloading_hw 'on'" {
		t.Errorf("second: %q", found[1])
	}
	for _, off := range []string{"", "config defaults\n\toption flow_offloading '0'\n", "config defaults\n\toption flow_offloading\n",
		"config defaults\n\toption flow_offloading_hw 'no'\n", "config defaults\n#\toption flow_offloading '1'\n"} {
		if f := FromUCI("f", off); len(f) != 0 {
			t.Errorf("%q: %v", off, f)
		}
	}
}

func TestCheckUCIFile(t *testing.T) {
	requireRoot(t)
	n := newNS(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "firewall")
	os.WriteFile(path, []byte("config defaults\n\toption flow_offloading '1'\n"), 0o644)
	var err error
	n.Do(func() error { err = Check(path); return nil })
	var oe *Error
	if !errors.As(err, &oe) || len(oe.Findings) != 1 || !strings.Contains(err.Error(), "flow_offloading") {
		t.Fatalf("Check: %v", err)
	}
	n.Do(func() error { err = Check(filepath.Join(dir, "missing")); return nil })
	if err != nil {
		t.Fatalf("no UCI file, empty ruleset: %v", err)
	}
}

const testPrefix = "tcgwoffl"

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("CI=true but not root: network namespace tests cannot run")
	}
	t.Skip("needs root")
}

func newNS(t *testing.T) *tnetns.NS {
	t.Helper()
	n, err := tnetns.New(testPrefix)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := n.Close(); err != nil {
			t.Errorf("close %s: %v", n.Name, err)
		}
	})
	return n
}

// conn opens nftables in namespace n.
func conn(t *testing.T, n *tnetns.NS) *nftables.Conn {
	t.Helper()
	h, err := netns.GetFromName(n.Name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	c, err := nftables.New(nftables.WithNetNSFd(int(h)))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// fw4Rules is the forward part of a firewall4 ruleset (the structure of
// firewall4's templates/ruleset.uc), without the flow offload rule, which
// this kernel cannot hold. Each counter rule stands in for a guard the
// real-kernel test evaluates.
const fw4Rules = `
table inet fw4 {
	chain forward {
		type filter hook forward priority filter; policy drop;
		meta l4proto { tcp, udp } counter comment "guard: tcp and udp"
		meta l4proto { udp, icmp } counter comment "guard: udp and icmp"
		meta l4proto udp counter comment "guard: udp"
		ip protocol tcp counter comment "guard: ip protocol tcp"
		ct state established,related accept
		iifname "lan0" jump forward_lan
	}
	chain forward_lan {
		jump accept_to_wan
	}
	chain accept_to_wan {
		oifname "wan0" accept
	}
}
`

// TestRealKernelGuards reads a firewall4-shaped ruleset back from the
// kernel and checks the protocol guards as the kernel encodes them
// (anonymous sets, registers), by evaluating each rule as if a flow
// offload statement followed it.
func TestRealKernelGuards(t *testing.T) {
	requireRoot(t)
	if _, err := exec.LookPath("nft"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("nft missing (Makefile DEB_PKGS installs nftables)")
		}
		t.Skip("nft missing")
	}
	n := newNS(t)
	if out, err := n.RunStdin(fw4Rules, "nft", "-f", "-"); err != nil {
		t.Fatalf("load ruleset: %v\n%s", err, out)
	}
	c := conn(t, n)
	found, err := FromRuleset(c)
	if err != nil || len(found) != 0 {
		t.Fatalf("without a flow offload rule: %v, %v", found, err)
	}
	chains, err := c.ListChains()
	if err != nil {
		t.Fatal(err)
	}
	var fwd *nftables.Chain
	for _, ch := range chains {
		if ch.Table.Name == "fw4" && ch.Name == "forward" {
			fwd = ch
		}
	}
	if fwd == nil {
		t.Fatal("fw4 forward chain not listed")
	}
	rules, err := c.GetRules(fwd.Table, fwd)
	if err != nil {
		t.Fatal(err)
	}
	sets, err := c.GetSets(fwd.Table)
	if err != nil {
		t.Fatal(err)
	}
	wantExcluded := map[string]bool{"guard: tcp and udp": false, "guard: udp and icmp": true, "guard: udp": true, "guard: ip protocol tcp": false}
	seen := 0
	for _, r := range rules {
		comment := ruleComment(r)
		want, ok := wantExcluded[comment]
		if !ok {
			continue
		}
		seen++
		exprs := append(append([]expr.Any(nil), r.Exprs...), &expr.FlowOffload{Name: "ft"})
		if got := excludesTCP(exprs, sets, c); got != want {
			t.Errorf("%s: excludes TCP %v, want %v (exprs %#v)", comment, got, want, r.Exprs)
		}
	}
	if seen != len(wantExcluded) {
		t.Fatalf("found %d of the %d guard rules", seen, len(wantExcluded))
	}
}

// TestRealFlowtable loads fw4's flow offload rule with a real flowtable,
// where the kernel has nf_flow_table, and finds it.
func TestRealFlowtable(t *testing.T) {
	requireRoot(t)
	if _, err := exec.LookPath("nft"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("nft missing (Makefile DEB_PKGS installs nftables)")
		}
		t.Skip("nft missing")
	}
	n := newNS(t)
	c := conn(t, n)
	out, err := n.RunStdin(`
table inet fw4 {
	flowtable ft { hook ingress priority filter; devices = { lo }; }
	chain forward { meta l4proto { tcp, udp } flow add @ft; }
}
`, "nft", "-f", "-")
	if err != nil {
		t.Skipf("this kernel cannot hold a flowtable (no nf_flow_table): %s; the flow offload rule is tested on constructed rulesets (TestFromRuleset)", strings.TrimSpace(string(out)))
	}
	found, err := FromRuleset(c)
	if err != nil || len(found) != 1 || !strings.Contains(found[0].Where, "table inet fw4, chain forward") {
		t.Fatalf("with fw4's flow offload rule: %v, %v", found, err)
	}
}

// ruleComment is the comment nft stores in a rule's user data
// (NFTNL_UDATA_RULE_COMMENT: type 0, length, text with its NUL).
func ruleComment(r *nftables.Rule) string {
	u := r.UserData
	for len(u) >= 2 {
		typ, l := u[0], int(u[1])
		if len(u) < 2+l {
			break
		}
		if typ == 0 {
			return strings.TrimRight(string(u[2:2+l]), "\x00")
		}
		u = u[2+l:]
	}
	return ""
}
