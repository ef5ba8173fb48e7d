'use strict';
'require view';
'require rpc';
'require poll';
'require dom';

/*
 * Services -> tcpcrypt gateway -> Status: the gateway's totals and flows,
 * from its HTTP API on the router's loopback, read by the rpcd plugin
 * (tcpcrypt-gw.status) with the API token, which stays on the router: the
 * browser only holds its LuCI session. Refreshed every 5 s.
 *
 * Each flow shows whether it is encrypted, its key exchange (TEP),
 * cipher, session ID and whether it was resumed; a flow flagged
 * "downgrade suspected" (a peer that once spoke tcpcrypt answered without
 * TCP-ENO) is highlighted, and so is a non-zero count of them.
 */

var callStatus = rpc.declare({
	object: 'tcpcrypt-gw',
	method: 'status'
});

function num(v) {
	return (v == null) ? '-' : String(v);
}

function duration(s) {
	s = Math.floor(s || 0);
	var d = Math.floor(s / 86400), h = Math.floor(s % 86400 / 3600), m = Math.floor(s % 3600 / 60);
	return (d ? d + 'd ' : '') + (d || h ? h + 'h ' : '') + m + 'm';
}

function totals(st) {
	var downgrades = (st.downgrades_suspected || 0) > 0;
	var rows = [
		[ _('Flows now'), num(st.flows) + ' / ' + num(st.flows_max) ],
		[ _('Encrypted flows (since start)'), num(st.flows_encrypted) ],
		[ _('Plain flows (since start)'), num(st.flows_plain) ],
		[ _('Resumed sessions'), num(st.resumptions) ],
		[ _('Suspected downgrades'), num(st.downgrades_suspected) ],
		[ _('Downgrades blocked'), num(st.downgrades_blocked) ],
		[ _('Resets for required encryption'), num(st.required_resets) ],
		[ _('Authentication failures'), num(st.auth_failures) ],
		[ _('Uptime'), duration(st.uptime_seconds) ]
	];
	return E('table', { 'class': 'table tgw-totals' }, rows.map(function(r) {
		var warn = downgrades && r[0] == _('Suspected downgrades');
		return E('tr', { 'class': 'tr' + (warn ? ' tgw-warn' : ''), 'style': warn ? 'background:#fde2e1;font-weight:bold' : '' }, [
			E('td', { 'class': 'td left', 'width': '40%' }, r[0]),
			E('td', { 'class': 'td left' }, r[1])
		]);
	}));
}

function flowRow(f) {
	var down = !!f.downgrade_suspected;
	var state = f.encrypted ? _('encrypted') : (f.reason ? _('plain') + ' (' + f.reason + ')' : _('plain'));
	var sid = f.session_id || '';
	return E('tr', {
		'class': 'tr tgw-flow' + (down ? ' tgw-downgrade' : (f.encrypted ? ' tgw-encrypted' : ' tgw-plain')),
		'data-flow': String(f.id),
		'style': down ? 'background:#fde2e1' : (f.encrypted ? 'background:#e6f4e6' : '')
	}, [
		E('td', { 'class': 'td' }, f.lan || ''),
		E('td', { 'class': 'td' }, f.wan || ''),
		E('td', { 'class': 'td' }, f.direction || ''),
		E('td', { 'class': 'td' }, f.state || ''),
		E('td', { 'class': 'td tgw-crypto' }, down
			? [ E('strong', { 'style': 'color:#b00' }, '\u26a0 ' + _('downgrade suspected')), E('br'), state ]
			: state),
		E('td', { 'class': 'td' }, f.tep || '-'),
		E('td', { 'class': 'td' }, f.cipher || '-'),
		E('td', { 'class': 'td', 'title': sid, 'style': 'font-family:monospace' }, sid ? sid.substr(0, 16) + (sid.length > 16 ? '\u2026' : '') : '-'),
		E('td', { 'class': 'td' }, f.resumed ? _('yes') : _('no'))
	]);
}

function flowTable(list) {
	var flows = (list && list.flows) || [];
	var head = E('tr', { 'class': 'tr table-titles' }, [
		_('LAN'), _('WAN'), _('Direction'), _('State'), _('Encryption'), _('TEP'), _('Cipher'), _('Session ID'), _('Resumed')
	].map(function(t) { return E('th', { 'class': 'th' }, t); }));
	var rows = flows.map(flowRow);
	if (!rows.length)
		rows = [ E('tr', { 'class': 'tr placeholder' }, E('td', { 'class': 'td', 'colspan': '9' }, E('em', _('No flows')))) ];
	return E('table', { 'class': 'table tgw-flows' }, [ head ].concat(rows));
}

function content(st) {
	if (!st || st.error)
		return E('div', { 'class': 'alert-message warning tgw-error' },
			_('The gateway does not answer: %s').format(st ? st.error : _('no reply')));
	var nodes = [];
	if ((st.stats.downgrades_suspected || 0) > 0)
		nodes.push(E('div', { 'class': 'alert-message danger tgw-downgrade-alert' },
			_('%d suspected downgrade(s): a peer that spoke tcpcrypt before answered without it. The flagged flows are highlighted below.').format(st.stats.downgrades_suspected)));
	nodes.push(E('h3', _('Totals')), totals(st.stats));
	var total = (st.flows && st.flows.total) || 0;
	nodes.push(E('h3', _('Flows') + ' (' + total + ')'), flowTable(st.flows));
	return nodes;
}

return view.extend({
	load: function() {
		return callStatus();
	},

	render: function(st) {
		var body = E('div', { 'id': 'tgw-status' }, content(st));

		poll.add(function() {
			return callStatus().then(function(st) {
				dom.content(body, content(st));
			});
		}, 5);

		return E('div', { 'class': 'cbi-map' }, [
			E('h2', _('tcpcrypt gateway: status')),
			body
		]);
	},

	handleSaveApply: null,
	handleSave: null,
	handleReset: null
});
