# shellcheck shell=dash
# uci2yaml.sh: the gateway's YAML configuration from the UCI file
# /etc/config/tcpcrypt-gw, for `option source 'uci'` (installed as
# /usr/share/tcpcrypt-gw/uci2yaml.sh; sourced by /etc/init.d/tcpcrypt-gw and
# by the LuCI app's rpcd plugin). UCI is then the one place the settings
# are edited (by hand, with `uci`, or in LuCI); the YAML is written to
# /var/etc/tcpcrypt-gw/config.yaml (RAM) at every start and reload.
#
# The flow of tcpcrypt_gw_uci2yaml TOKEN_FILE (after config_load):
#  1. Each option of section 'main' below becomes its YAML key; an option
#     that is not set leaves the key out, so the gateway's default applies
#     (docs/config.md).
#  2. Every value is written as a single-quoted YAML string (a quote
#     doubled) except whole numbers, so no value can add YAML of its own;
#     the gateway's decoder then checks each value, and `tcpcrypt-gw
#     check-config` names the YAML key and the reason of a bad one.
#  3. The HTTP API listens on loopback with the token in TOKEN_FILE (made
#     at start, in RAM): rpcd reads it there; it never leaves the router.
#
#   UCI (section main)          YAML
#   list lan_device             interfaces.lan
#   list wan_device             interfaces.wan
#   list lan_prefix             lan_prefixes
#   list tep                    tcpcrypt.teps
#   list cipher                 tcpcrypt.ciphers
#   list require_port           require_encryption.ports
#   list require_prefix         require_encryption.prefixes
#   list require_pq_port        require_encryption.post_quantum.ports
#   list require_pq_prefix      require_encryption.post_quantum.prefixes
#   list downgrade_block        downgrade.block
#   list downgrade_no_syn_fallback  downgrade.no_syn_fallback
#   option flows_max            flows.max
#   option flows_buffer_total   flows.max_buffer_total
#   option tun_mtu              interfaces.tun_mtu
#   option tun_queues           interfaces.tun_queues

# _tgw_q VALUE prints VALUE as a YAML scalar: digits as they are, anything
# else single-quoted.
_tgw_q() {
	case "$1" in
	'' | *[!0-9]*) printf "'%s'" "$(printf '%s' "$1" | sed "s/'/''/g")" ;;
	*) printf '%s' "$1" ;;
	esac
}

_tgw_item() {
	_tgw_list="${_tgw_list:+$_tgw_list, }$(_tgw_q "$1")"
}

# _tgw_seq INDENT KEY OPTION prints "KEY: [a, b]" for a UCI list that has
# entries.
_tgw_seq() {
	_tgw_list=""
	config_list_foreach main "$3" _tgw_item
	[ -z "$_tgw_list" ] || printf '%s%s: [%s]\n' "$1" "$2" "$_tgw_list"
}

# _tgw_scalar INDENT KEY OPTION prints "KEY: value" when the option is set.
_tgw_scalar() {
	local v
	config_get v main "$3"
	[ -z "$v" ] || printf '%s%s: %s\n' "$1" "$2" "$(_tgw_q "$v")"
}

# _tgw_map NAME LINES prints "NAME:" and LINES when LINES is not empty.
_tgw_map() {
	[ -z "$2" ] || printf '%s:\n%s\n' "$1" "$2"
}

tcpcrypt_gw_uci2yaml() {
	echo "# Written by /etc/init.d/tcpcrypt-gw from /etc/config/tcpcrypt-gw (UCI);"
	echo "# edit that file (or LuCI), not this one: it is rewritten at every start."
	_tgw_map interfaces "$(
		_tgw_seq '  ' lan lan_device
		_tgw_seq '  ' wan wan_device
		_tgw_scalar '  ' tun_mtu tun_mtu
		_tgw_scalar '  ' tun_queues tun_queues
	)"
	_tgw_seq '' lan_prefixes lan_prefix
	_tgw_map tcpcrypt "$(
		_tgw_seq '  ' teps tep
		_tgw_seq '  ' ciphers cipher
	)"
	_tgw_map require_encryption "$(
		_tgw_seq '  ' ports require_port
		_tgw_seq '  ' prefixes require_prefix
		_tgw_map '  post_quantum' "$(
			_tgw_seq '    ' ports require_pq_port
			_tgw_seq '    ' prefixes require_pq_prefix
		)"
	)"
	_tgw_map downgrade "$(
		_tgw_seq '  ' block downgrade_block
		_tgw_seq '  ' no_syn_fallback downgrade_no_syn_fallback
	)"
	_tgw_map flows "$(
		_tgw_scalar '  ' max flows_max
		_tgw_scalar '  ' max_buffer_total flows_buffer_total
	)"
	printf 'http:\n  listen: %s\n  token_file: %s\n' "'127.0.0.1:8473'" "$(_tgw_q "$1")"
}
