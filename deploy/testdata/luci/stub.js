/*
 * A small stand-in for LuCI's client-side runtime (luci.js and the
 * modules view, form, rpc, uci, ui, poll, dom, tools.widgets), enough to
 * load and run the views of luci-app-tcpcrypt-gw as LuCI does, in a
 * browser, for test/e2e/luci_test.go. It follows the LuCI API the views
 * use; what LuCI does on the router it does against the test's server:
 *
 *  - module loading: the view's source is fetched, its 'require x [as y]'
 *    lines name the modules, and it runs as the body of a function taking
 *    them (as L.require does); the class it returns is instantiated, which
 *    loads and renders the view into #view and adds the footer buttons;
 *  - rpc.declare: POST /ubus {object, method, params} (the server runs the
 *    real rpcd plugin);
 *  - uci: GET /uci/load, POST /uci/save (changes), POST /uci/apply
 *    (ui.changes.apply);
 *  - form: Map, NamedSection, Flag, Value, ListValue, DynamicList and
 *    widgets.DeviceSelect (the devices from GET /devices), rendered as
 *    plain inputs; Map.save writes changed values to uci and saves.
 *
 * A test drives the page through window.__tgw (set values, press Save &
 * Apply) and reads the result from the DOM (#test-done).
 */
'use strict';

(function() {
	function E(tag, attrs, children) {
		if (attrs != null && (typeof attrs != 'object' || Array.isArray(attrs) || attrs instanceof Node)) {
			children = attrs;
			attrs = null;
		}
		var el = document.createElement(tag);
		Object.keys(attrs || {}).forEach(function(k) {
			var v = attrs[k];
			if (v == null || v === false) return;
			if (typeof v == 'function') el.addEventListener(k.replace(/^on/, '').toLowerCase(), v);
			else el.setAttribute(k, v === true ? '' : String(v));
		});
		append(el, children);
		return el;
	}

	function append(el, children) {
		if (children == null) return;
		if (!Array.isArray(children)) children = [ children ];
		children.forEach(function(c) {
			if (c == null) return;
			if (Array.isArray(c)) append(el, c);
			else if (c instanceof Node) el.appendChild(c);
			else el.appendChild(document.createTextNode(String(c)));
		});
	}

	String.prototype.format = function() {
		var args = arguments, i = 0;
		return this.replace(/%([sd%])/g, function(m, c) {
			if (c == '%') return '%';
			var v = args[i++];
			return c == 'd' ? String(Math.floor(+v)) : String(v);
		});
	};

	function post(url, body) {
		return fetch(url, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) })
			.then(function(r) { if (!r.ok) throw new Error(url + ': HTTP ' + r.status); return r.json(); });
	}

	function get(url) {
		return fetch(url).then(function(r) { if (!r.ok) throw new Error(url + ': HTTP ' + r.status); return r.json(); });
	}

	// Class: LuCI's L.Class, as far as extend and super-less use go.
	function extend(base, proto) {
		function C() { if (this.__init__) return this.__init__.apply(this, arguments); }
		C.prototype = Object.create(base.prototype);
		Object.keys(proto).forEach(function(k) { C.prototype[k] = proto[k]; });
		C.extend = function(p) { return extend(C, p); };
		return C;
	}
	function Base() {}

	/* uci */
	var uci = {
		state: {}, changes: [],
		load: function(conf) {
			return get('/uci/load?config=' + encodeURIComponent(conf)).then(function(d) { uci.state[conf] = d; return d; });
		},
		get: function(conf, sid, opt) {
			var s = (uci.state[conf] || {})[sid];
			if (s == null) return null;
			return opt == null ? s : (s[opt] == null ? null : s[opt]);
		},
		set: function(conf, sid, opt, val) {
			uci.state[conf][sid][opt] = val;
			uci.changes.push([ 'set', conf, sid, opt, val ]);
		},
		unset: function(conf, sid, opt) {
			delete uci.state[conf][sid][opt];
			uci.changes.push([ 'unset', conf, sid, opt ]);
		},
		save: function() {
			var c = uci.changes;
			uci.changes = [];
			return post('/uci/save', c).then(function() {
				return Promise.all(Object.keys(uci.state).map(uci.load));
			});
		}
	};

	/* ui */
	var ui = {
		addNotification: function(title, children, cls) {
			var n = E('div', { 'class': 'alert-message ' + (cls || '') }, [ title ? E('h4', title) : null, children ]);
			document.getElementById('notifications').appendChild(n);
			return n;
		},
		changes: {
			apply: function(checked) {
				return post('/uci/apply', { rollback: !!checked }).then(function() {
					ui.addNotification(null, E('p', 'Configuration changes applied.'), 'info');
				});
			}
		}
	};

	/* rpc */
	var rpc = {
		declare: function(d) {
			return function() {
				var params = {}, args = arguments;
				(d.params || []).forEach(function(p, i) { params[p] = args[i]; });
				return post('/ubus', { object: d.object, method: d.method, params: params }).then(function(res) {
					if (!d.expect) return res;
					var k = Object.keys(d.expect)[0];
					var v = k === '' ? res : (res || {})[k];
					return v == null ? d.expect[k] : v;
				});
			};
		}
	};

	var poll = { fns: [], add: function(fn, interval) { poll.fns.push([ fn, interval ]); } };

	var dom = {
		content: function(node, children) {
			while (node.firstChild) node.removeChild(node.firstChild);
			append(node, children);
			return node;
		}
	};

	/* form */
	var AbstractValue = extend(Base, {
		__init__: function(section, option, title, description) {
			this.section = section; this.option = option; this.title = title; this.description = description;
			this.choices = []; this.rmempty = true;
		},
		value: function(k, label) { this.choices.push([ k, label != null ? label : k ]); },
		depends: function() {},
		cfgvalue: function() {
			var m = this.section.map;
			var v = uci.get(m.config, this.section.sid, this.option);
			return v == null ? this.default : v;
		},
		isList: function() { return false; },
		render: function() {
			this.widget = this.renderWidget(this.cfgvalue());
			return E('div', { 'class': 'cbi-value', 'data-name': this.option }, [
				E('label', { 'class': 'cbi-value-title' }, this.title),
				E('div', { 'class': 'cbi-value-field' }, [
					this.widget,
					this.description ? E('div', { 'class': 'cbi-value-description' }, this.description) : null
				])
			]);
		},
		renderWidget: function(v) {
			return E('input', { 'type': 'text', 'class': 'cbi-input-text', 'value': v == null ? '' : v, 'placeholder': this.placeholder || null });
		},
		formvalue: function() { return this.widget.value; },
		setValue: function(v) { this.widget.value = v; },
		write: function() {
			var m = this.section.map, v = this.formvalue();
			var old = uci.get(m.config, this.section.sid, this.option);
			var empty = v == null || v === '' || (Array.isArray(v) && !v.length);
			if (empty && this.rmempty) {
				if (old != null) uci.unset(m.config, this.section.sid, this.option);
			} else if (JSON.stringify(old) != JSON.stringify(v)) {
				uci.set(m.config, this.section.sid, this.option, v);
			}
		}
	});

	var Value = AbstractValue.extend({});

	var Flag = AbstractValue.extend({
		renderWidget: function(v) {
			return E('input', { 'type': 'checkbox', 'class': 'cbi-input-checkbox', 'checked': v == '1' ? true : null });
		},
		formvalue: function() { return this.widget.checked ? '1' : '0'; },
		setValue: function(v) { this.widget.checked = (v == '1'); }
	});

	var ListValue = AbstractValue.extend({
		renderWidget: function(v) {
			return E('select', { 'class': 'cbi-input-select' }, this.choices.map(function(c) {
				return E('option', { 'value': c[0], 'selected': c[0] == v ? true : null }, c[1]);
			}));
		}
	});

	// DynamicList: one input per value (in order), plus an empty one.
	var DynamicList = AbstractValue.extend({
		isList: function() { return true; },
		renderWidget: function(v) {
			var el = E('div', { 'class': 'cbi-dynlist' });
			this.fill(el, Array.isArray(v) ? v : (v == null ? [] : [ v ]));
			return el;
		},
		fill: function(el, vals) {
			var self = this;
			dom.content(el, vals.concat([ '' ]).map(function(x) {
				return E('div', { 'class': 'item' }, E('input', { 'type': 'text', 'value': x, 'placeholder': x ? null : (self.choices.map(function(c) { return c[0]; }).join(', ') || null) }));
			}));
		},
		formvalue: function() {
			return Array.prototype.map.call(this.widget.querySelectorAll('input'), function(i) { return i.value.trim(); })
				.filter(function(x) { return x !== ''; });
		},
		setValue: function(v) { this.fill(this.widget, v); }
	});

	// DeviceSelect (multiple): a checkbox per device of the router.
	var DeviceSelect = AbstractValue.extend({
		isList: function() { return true; },
		renderWidget: function(v) {
			var sel = Array.isArray(v) ? v : (v == null ? [] : [ v ]);
			var devs = window.__devices.slice();
			sel.forEach(function(d) { if (devs.indexOf(d) < 0) devs.push(d); });
			return E('div', { 'class': 'cbi-devices' }, devs.map(function(d) {
				return E('label', { 'style': 'margin-right:1em' }, [
					E('input', { 'type': 'checkbox', 'value': d, 'checked': sel.indexOf(d) >= 0 ? true : null }), ' ', d ]);
			}));
		},
		formvalue: function() {
			return Array.prototype.filter.call(this.widget.querySelectorAll('input'), function(i) { return i.checked; })
				.map(function(i) { return i.value; });
		},
		setValue: function(v) {
			Array.prototype.forEach.call(this.widget.querySelectorAll('input'), function(i) { i.checked = v.indexOf(i.value) >= 0; });
		}
	});

	var NamedSection = extend(Base, {
		__init__: function(map, sid, type) { this.map = map; this.sid = sid; this.type = type; this.children = []; },
		option: function(cls, option, title, description) {
			var o = new cls(this, option, title, description);
			this.children.push(o);
			return o;
		},
		render: function() {
			return E('div', { 'class': 'cbi-section' }, this.children.map(function(o) { return o.render(); }));
		}
	});

	var Map = extend(Base, {
		__init__: function(config, title, description) { this.config = config; this.title = title; this.description = description; this.sections = []; },
		section: function(cls, sid, type) { var s = new cls(this, sid, type); this.sections.push(s); return s; },
		lookupOption: function(name) {
			var found = null;
			this.sections.forEach(function(s) { s.children.forEach(function(o) { if (o.option == name) found = o; }); });
			return found;
		},
		render: function() {
			var self = this;
			return uci.load(this.config).then(function() {
				window.__tgw.map = self;
				return E('div', { 'class': 'cbi-map' }, [
					E('h2', self.title),
					E('div', { 'class': 'cbi-map-descr' }, self.description),
					self.sections.map(function(s) { return s.render(); })
				]);
			});
		},
		save: function(cb, silent) {
			this.sections.forEach(function(s) { s.children.forEach(function(o) { o.write(); }); });
			return uci.save();
		}
	});

	var form = { Map: Map, NamedSection: NamedSection, Value: Value, Flag: Flag, ListValue: ListValue, DynamicList: DynamicList };
	var widgets = { DeviceSelect: DeviceSelect };

	/* view */
	var View = extend(Base, {
		__init__: function() {
			var self = this;
			window.__tgw.view = this;
			window.__tgw.rendered = Promise.resolve(this.load()).then(function(d) { return self.render(d); }).then(function(node) {
				var mc = document.getElementById('view');
				append(mc, node);
				var buttons = [];
				if (self.handleSaveApply) buttons.push(E('button', { 'class': 'btn cbi-button cbi-button-apply' }, 'Save & Apply'));
				if (self.handleSave) buttons.push(E('button', { 'class': 'btn cbi-button cbi-button-save' }, 'Save'));
				if (self.handleReset) buttons.push(E('button', { 'class': 'btn cbi-button cbi-button-reset' }, 'Reset'));
				if (buttons.length) mc.appendChild(E('div', { 'class': 'cbi-page-actions' }, buttons));
			});
		},
		load: function() {},
		render: function() {},
		handleSave: function() {
			return window.__tgw.map ? window.__tgw.map.save() : Promise.resolve();
		},
		handleSaveApply: function(ev, mode) {
			return this.handleSave(ev).then(function() { return ui.changes.apply(mode == '0'); });
		},
		handleReset: function() {}
	});
	var view = { extend: function(p) { return View.extend(p); } };

	var modules = { view: view, form: form, rpc: rpc, uci: uci, ui: ui, poll: poll, dom: dom, 'tools.widgets': widgets };

	window.E = E;
	window._ = function(s) { return s; };
	window.L = {
		bind: function(fn, self) { return fn.bind(self); },
		resolveDefault: function(p, d) { return Promise.resolve(p).catch(function() { return d; }); }
	};
	window.__tgw = {
		// run loads view/<path>.js as LuCI would.
		run: function(path) {
			return Promise.all([ get('/devices'), fetch('/luci-static/resources/view/' + path + '.js').then(function(r) { return r.text(); }) ]).then(function(r) {
				window.__devices = r[0];
				var src = r[1], names = [], args = [], m;
				var re = /^[ \t]*'require[ \t]+([A-Za-z0-9_.-]+)(?:[ \t]+as[ \t]+([A-Za-z_]+))?';/mg;
				while ((m = re.exec(src)) != null) {
					if (!(m[1] in modules)) throw new Error('no stub of module ' + m[1]);
					names.push(m[2] || m[1].split('.').pop());
					args.push(modules[m[1]]);
				}
				var Cls = Function.apply(null, names.concat([ src ])).apply(window.L, args);
				new Cls();
				return window.__tgw.rendered;
			});
		},
		set: function(option, value) {
			var o = window.__tgw.map.lookupOption(option);
			if (!o) throw new Error('no option ' + option);
			o.setValue(value);
		},
		done: function(result) {
			document.body.appendChild(E('div', { 'id': 'test-done', 'data-result': result, 'style': 'display:none' }));
		}
	};
})();
