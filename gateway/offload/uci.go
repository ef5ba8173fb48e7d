// Step 1 of Check: OpenWrt's /etc/config/firewall, in UCI syntax
// (https://openwrt.org/docs/guide-user/base-system/uci): lines of
// `config <type> ['<name>']` and `option <name> '<value>'`, quotes single,
// double or none, `#` comments. Only the defaults section matters: fw4 and
// fw3 read flow_offloading (software) and flow_offloading_hw (hardware)
// from there.

package offload

import (
	"fmt"
	"strings"
)

// FromUCI returns a finding for each offloading option that is on in a
// `config defaults` section of the UCI firewall file text (path names it).
func FromUCI(path, text string) []Finding {
	var found []Finding
	section := ""
	for i, line := range strings.Split(text, "\n") {
		f := uciFields(line)
		if len(f) == 0 {
			continue
		}
		switch f[0] {
		case "config":
			section = ""
			if len(f) > 1 {
				section = f[1]
			}
		case "option":
			if section != "defaults" || len(f) < 3 {
				continue
			}
			if (f[1] == "flow_offloading" || f[1] == "flow_offloading_hw") && uciTrue(f[2]) {
				found = append(found, Finding{
					Where: fmt.Sprintf("%s:%d: option %s '%s'", path, i+1, f[1], f[2]),
					Fix:   fmt.Sprintf("set it to '0': uci set firewall.@defaults[0].%s='0'; uci commit firewall; service firewall restart", f[1]),
				})
			}
		}
	}
	return found
}

// uciFields splits a UCI line into words, undoing quotes; a # outside
// quotes starts a comment.
func uciFields(line string) []string {
	var out []string
	var cur strings.Builder
	inWord := false
	var quote byte
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			} else {
				cur.WriteByte(c)
			}
		case c == '\'' || c == '"':
			quote, inWord = c, true
		case c == '#':
			i = len(line)
		case c == ' ' || c == '\t' || c == '\r':
			if inWord {
				out = append(out, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	if inWord {
		out = append(out, cur.String())
	}
	return out
}

// uciTrue is UCI's boolean truth (config_get_bool in
// /lib/functions.sh): 1, on, true, yes, enabled.
func uciTrue(v string) bool {
	switch strings.ToLower(v) {
	case "1", "on", "true", "yes", "enabled":
		return true
	}
	return false
}
