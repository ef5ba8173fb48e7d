'use strict';
'require view';
'require form';
'require rpc';
'require uci';
'require ui';
'require tools.widgets as widgets';

/*
 * Services -> tcpcrypt gateway -> Settings: the UCI options of
 * /etc/config/tcpcrypt-gw, section 'main'. The init script turns them
 * into the gateway's YAML (/usr/share/tcpcrypt-gw/uci2yaml.sh).
 *
 * Save & Apply:
 *  1. the form's values go into UCI (staged, not yet applied);
 *  2. they are sent, as the text of a UCI file, to the rpcd method
 *     tcpcrypt-gw.check, which makes the YAML and runs the gateway's own
 *     `tcpcrypt-gw check-config` on it;
 *  3. only when it passes are the changes applied (uci commit; the init
 *     script reloads the gateway); otherwise its message is shown and the
 *     running gateway keeps its settings.
 */

var callCheck = rpc.declare({
	object: 'tcpcrypt-gw',
	method: 'check',
	params: [ 'uci_hex' ]
});

var TEPS = [ 'x25519mlkem768', 'curve25519', 'p256', 'curve448', 'p521' ];
var CIPHERS = [ 'aes128gcm', 'chacha20poly1305', 'aes256gcm' ];

// A UCI value quoted as `uci export` does.
function uciQuote(v) {
	return "'" + String(v).replace(/'/g, "'\\''") + "'";
}

// The text of a UCI file with section main as s holds it.
function uciText(s) {
	var lines = [ "config tcpcrypt-gw 'main'" ];
	Object.keys(s).forEach(function(k) {
		if (k.charAt(0) == '.' || !/^[A-Za-z0-9_]+$/.test(k))
			return;
		if (Array.isArray(s[k]))
			s[k].forEach(function(v) { lines.push('\tlist ' + k + ' ' + uciQuote(v)); });
		else
			lines.push('\toption ' + k + ' ' + uciQuote(s[k]));
	});
	return lines.join('\n') + '\n';
}

// UTF-8 bytes as hex: the values reach the shell plugin unquoted.
function toHex(text) {
	return Array.prototype.map.call(new TextEncoder().encode(text), function(b) {
		return ('0' + b.toString(16)).slice(-2);
	}).join('');
}

return view.extend({
	render: function() {
		var m, s, o;

		m = new form.Map('tcpcrypt-gw', _('tcpcrypt gateway'),
			_('Encrypts the WAN leg of the LAN\'s TCP connections with tcpcrypt (RFC 8547/8548) wherever the far end speaks TCP-ENO. Before they are applied, the settings are checked by the gateway itself.'));

		s = m.section(form.NamedSection, 'main', 'tcpcrypt-gw');

		o = s.option(form.Flag, 'enabled', _('Enable'));
		o.rmempty = false;

		o = s.option(form.ListValue, 'source', _('Configuration'),
			_('These settings, or a YAML file edited by hand (advanced; the settings below are then ignored).'));
		o.value('uci', _('These settings'));
		o.value('yaml', _('YAML file'));
		o.default = 'uci';

		o = s.option(form.Value, 'config', _('YAML file'), _('Used when the configuration is a YAML file.'));
		o.placeholder = '/etc/tcpcrypt-gw/config.yaml';

		o = s.option(widgets.DeviceSelect, 'lan_device', _('LAN devices'),
			_('Forwarded TCP arriving on these devices goes through the gateway (usually br-lan).'));
		o.multiple = true;
		o.noaliases = true;
		o.nocreate = true;

		o = s.option(widgets.DeviceSelect, 'wan_device', _('WAN devices'),
			_('The devices facing the Internet (wan, eth1, pppoe-wan, ...).'));
		o.multiple = true;
		o.noaliases = true;
		o.nocreate = true;

		o = s.option(form.DynamicList, 'lan_prefix', _('LAN prefixes'),
			_('The addresses of the LAN, including the IPv6 prefix the provider delegates. Empty: the private ranges.'));
		o.datatype = 'cidr';

		o = s.option(form.DynamicList, 'tep', _('Key exchanges (TEPs)'),
			_('Offered most preferred first. Empty: %s.').format(TEPS.join(', ')));
		TEPS.forEach(function(v) { o.value(v); });

		o = s.option(form.DynamicList, 'cipher', _('Ciphers'),
			_('Offered and accepted, most preferred first. Empty: the default for this CPU (%s with AES instructions, ChaCha20-Poly1305 first without).').format(CIPHERS.join(', ')));
		CIPHERS.forEach(function(v) { o.value(v); });

		o = s.option(form.DynamicList, 'require_prefix', _('Require encryption: prefixes'),
			_('Connections to or from these prefixes are never sent in the clear: without tcpcrypt they are reset.'));
		o.datatype = 'cidr';

		o = s.option(form.DynamicList, 'require_port', _('Require encryption: ports'),
			_('The same for these TCP ports (a port or a range such as 6000-6010).'));
		o.datatype = 'or(port, portrange)';

		o = s.option(form.DynamicList, 'require_pq_prefix', _('Require post-quantum: prefixes'),
			_('Connections to or from these prefixes must be keyed by the post-quantum key exchange (x25519mlkem768, which the key exchanges above must then include): encrypted with a classical one, or not at all, they are reset.'));
		o.datatype = 'cidr';

		o = s.option(form.DynamicList, 'require_pq_port', _('Require post-quantum: ports'),
			_('The same for these TCP ports.'));
		o.datatype = 'or(port, portrange)';

		o = s.option(form.DynamicList, 'downgrade_block', _('Downgrade policy: block'),
			_('A peer that once spoke tcpcrypt and later answers without it is a suspected downgrade. Inside these prefixes its connection is reset; everywhere else it is only flagged (Status page, log).'));
		o.datatype = 'cidr';

		o = s.option(form.DynamicList, 'downgrade_no_syn_fallback', _('No SYN fallback'),
			_('Towards these prefixes a connection attempt keeps TCP-ENO through every SYN retransmission instead of retrying without it: a path that drops TCP-ENO (a middlebox, or an attacker) then gets no connection rather than a plain one. Peers that never spoke tcpcrypt still connect in plain.'));
		o.datatype = 'cidr';

		o = s.option(form.Value, 'flows_max', _('Flow table size'),
			_('Most connections tracked at once; beyond it new ones pass unencrypted. 4096 for 128 MB of RAM, 8192 for 256 MB.'));
		o.datatype = 'range(1,16777216)';
		o.placeholder = '65536';

		o = s.option(form.Value, 'flows_buffer_total', _('Buffer memory'),
			_('Bytes buffered across all flows, with a unit: KiB, MiB or GiB.'));
		o.placeholder = '64MiB';

		o = s.option(form.Value, 'tun_queues', _('TUN queues'),
			_('Data-plane workers, each with a queue of its own on the TUN device. 0 chooses by the CPUs: one below 4 CPUs, else one per CPU up to 8. Read when the gateway starts.'));
		o.datatype = 'range(0,64)';
		o.placeholder = '0';

		this.map = m;
		return m.render();
	},

	handleSaveApply: function(ev, mode) {
		return this.map.save(null, true).then(function() {
			var s = uci.get('tcpcrypt-gw', 'main') || {};

			if (s.source == 'yaml')
				return ui.changes.apply(mode == '0');

			return callCheck(toHex(uciText(s))).then(function(res) {
				if (!res || !res.ok) {
					ui.addNotification(_('The gateway rejects these settings; nothing was applied'),
						E('pre', { 'class': 'tgw-check' }, res ? res.message : _('No answer from the router')), 'danger');
					return;
				}
				return ui.changes.apply(mode == '0');
			});
		});
	}
});
