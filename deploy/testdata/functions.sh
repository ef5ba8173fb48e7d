# shellcheck shell=dash
# A stand-in for OpenWrt's /lib/functions.sh (and procd's functions) for
# the tests of the init script, uci2yaml.sh and the LuCI app's rpcd
# plugin. As on OpenWrt, a UCI file is shell: `config`, `option` and
# `list` are functions that store each value in CONFIG_<section>_<option>
# (a list in _ITEMn and _LENGTH), and config_load reads the file
# ($UCI_CONFIG_DIR/<name> when set, as uci_load does, else $UCI_FILE);
# config_get, config_get_bool and config_list_foreach read the values
# back. procd's functions append their arguments to $RECORD.

record() { [ -z "$RECORD" ] || printf '%s\n' "$*" >>"$RECORD"; }
procd_open_instance() { record "procd_open_instance $*"; }
procd_set_param() { record "procd_set_param $*"; }
procd_close_instance() { record "procd_close_instance $*"; }
procd_send_signal() { record "procd_send_signal $*"; }
stop() { record "stop"; }
config() { CONFIG_SECTION="$2"; }
option() { eval "CONFIG_${CONFIG_SECTION}_$1=\$2"; }
list() {
	eval "_n=\$((\${CONFIG_${CONFIG_SECTION}_$1_LENGTH:-0} + 1))"
	eval "CONFIG_${CONFIG_SECTION}_$1_ITEM$_n=\$2; CONFIG_${CONFIG_SECTION}_$1_LENGTH=$_n"
}
config_load() {
	record "config_load $*"
	if [ -n "$UCI_CONFIG_DIR" ]; then . "$UCI_CONFIG_DIR/$1"; else . "$UCI_FILE"; fi
}
config_get() {
	eval "_v=\${CONFIG_$2_$3-}"
	[ -n "$_v" ] || _v="$4"
	eval "$1=\$_v"
}
config_get_bool() {
	config_get _v "$2" "$3" "$4"
	case "$_v" in 1 | on | true | yes | enabled) eval "$1=1" ;; *) eval "$1=0" ;; esac
}
config_list_foreach() {
	eval "_len=\${CONFIG_$1_$2_LENGTH:-0}"
	_i=1
	while [ "$_i" -le "$_len" ]; do
		eval "_item=\$CONFIG_$1_$2_ITEM$_i"
		"$3" "$_item"
		_i=$((_i + 1))
	done
}
