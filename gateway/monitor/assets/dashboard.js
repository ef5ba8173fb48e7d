"use strict";
// The dashboard: every 2 s, GET /api/stats and one page of /api/flows and
// redraw. Data is only ever put into the page as text (textContent), never
// as HTML. Pages go by cursor (after=, the API's next): each poll costs the
// gateway one page, however many flows it holds (docs/monitoring.md).
(function () {
  var REFRESH_MS = 2000;
  var PAGE_ROWS = 200;
  var after = 0; // the cursor of the page shown: 0 is the first page
  var next = 0;  // the cursor of the page after it, 0 if none
  // A token given as ?token= (the page needed it too) goes on as a bearer
  // header; it is never put into another URL.
  var token = new URLSearchParams(location.search).get("token");
  var headers = token ? { Authorization: "Bearer " + token } : {};

  function $(id) { return document.getElementById(id); }

  function get(path) {
    return fetch(path, { headers: headers, cache: "no-store", credentials: "omit", referrerPolicy: "no-referrer" })
      .then(function (r) {
        if (r.ok) { return r.json(); }
        return r.json().then(
          function (e) { throw new Error(path + ": " + r.status + " " + (e.error || r.statusText)); },
          function () { throw new Error(path + ": " + r.status + " " + r.statusText); });
      });
  }

  function bytes(n) {
    var units = ["B", "KiB", "MiB", "GiB", "TiB"];
    var i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
    return (i === 0 ? String(n) : n.toFixed(n < 10 ? 1 : 0)) + " " + units[i];
  }

  function age(s) {
    if (s < 60) { return Math.floor(s) + "s"; }
    if (s < 3600) { return Math.floor(s / 60) + "m " + Math.floor(s % 60) + "s"; }
    if (s < 86400) { return Math.floor(s / 3600) + "h " + Math.floor(s % 3600 / 60) + "m"; }
    return Math.floor(s / 86400) + "d " + Math.floor(s % 86400 / 3600) + "h";
  }

  function cell(tr, label, text, cls) {
    var td = document.createElement("td");
    td.dataset.label = label;
    if (cls) { td.className = cls; }
    if (text !== undefined) { td.textContent = text; }
    tr.appendChild(td);
    return td;
  }

  function badge(encrypted) {
    var span = document.createElement("span");
    span.className = "badge";
    var svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
    svg.setAttribute("aria-hidden", "true");
    var use = document.createElementNS("http://www.w3.org/2000/svg", "use");
    use.setAttribute("href", encrypted ? "#icon-lock" : "#icon-open");
    svg.appendChild(use);
    span.appendChild(svg);
    span.appendChild(document.createTextNode(encrypted ? "encrypted" : "plain"));
    return span;
  }

  function row(f) {
    var tr = document.createElement("tr");
    tr.className = "flow " + (f.encrypted ? "encrypted" : "plain");
    tr.dataset.id = String(f.id);
    tr.dataset.security = f.encrypted ? "encrypted" : "plain";
    if (f.downgrade_suspected) {
      // An active attacker may have stripped TCP-ENO: red, and said in words.
      tr.classList.add("downgrade");
      tr.dataset.downgrade = "true";
    }
    cell(tr, "Direction", f.direction);
    cell(tr, "LAN", f.lan, "addr");
    cell(tr, "WAN", f.wan, "addr");
    cell(tr, "State", f.state);
    // One wrapper, so that the cell stays one item in the phone layout.
    var sec = document.createElement("div");
    sec.appendChild(badge(f.encrypted));
    if (f.post_quantum) {
      // Keyed by a post-quantum TEP (x25519mlkem768): said in words.
      tr.dataset.postQuantum = "true";
      var pq = document.createElement("span");
      pq.className = "pq";
      pq.textContent = "post-quantum";
      sec.appendChild(pq);
    }
    if (f.downgrade_suspected) {
      var warn = document.createElement("strong");
      warn.className = "downgrade-warning";
      warn.textContent = "downgrade suspected";
      sec.appendChild(warn);
    }
    if (f.reason) {
      var why = document.createElement("span");
      why.className = "reason";
      why.textContent = f.reason;
      sec.appendChild(why);
    }
    cell(tr, "Security").appendChild(sec);
    cell(tr, "TEP / cipher", f.tep ? f.tep + " / " + f.cipher + (f.resumed ? " (resumed)" : "") : "–");
    var sid = cell(tr, "Session", f.session_id ? f.session_id.slice(0, 16) + "…" : "–", "sid");
    if (f.session_id) { sid.title = f.session_id; }
    var out = cell(tr, "Bytes out", bytes(f.plain_bytes_out), "num");
    out.title = "WAN: " + bytes(f.cipher_bytes_out);
    var inb = cell(tr, "Bytes in", bytes(f.plain_bytes_in), "num");
    inb.title = "WAN: " + bytes(f.cipher_bytes_in);
    cell(tr, "Age", age(f.age_seconds), "num");
    return tr;
  }

  function render(stats, list) {
    $("t-flows").textContent = String(stats.flows);
    var by = stats.flows_by_state || {};
    $("t-flows-sub").textContent = (by.encrypted || 0) + " encrypted (" + (stats.flows_post_quantum_now || 0) + " post-quantum), " + (by.plain || 0) + " plain";
    $("t-enc").textContent = String(stats.flows_encrypted);
    $("t-plain").textContent = String(stats.flows_plain);
    $("t-auth").textContent = String(stats.auth_failures);
    $("t-auth-sub").textContent = stats.truncations + " truncations";
    $("t-auth").parentNode.classList.toggle("nonzero", stats.auth_failures > 0);
    $("t-down").textContent = String(stats.downgrades_suspected);
    $("t-down-sub").textContent = stats.downgrades_blocked + " blocked, " + stats.required_resets + " required resets";
    $("t-down").parentNode.classList.toggle("nonzero", stats.downgrades_suspected > 0);
    $("t-bytes").textContent = bytes(stats.live_plain_bytes_out) + " / " + bytes(stats.live_plain_bytes_in);

    var body = document.createElement("tbody");
    body.id = "flow-rows";
    list.flows.forEach(function (f) { body.appendChild(row(f)); });
    $("flow-rows").replaceWith(body);
    $("empty").hidden = list.flows.length > 0;
    $("flow-count").textContent = list.total > list.flows.length || after > 0
      ? "(" + list.flows.length + " of " + list.total + (after > 0 ? " after #" + after : "") + ")"
      : "(" + list.total + ")";
    next = list.next || 0;
    $("page-next").disabled = next === 0;
    $("page-first").disabled = after === 0;
  }

  function status(text, error) {
    var s = $("status");
    s.textContent = text;
    s.classList.toggle("error", !!error);
  }

  function refresh() {
    Promise.all([get("/api/stats"), get("/api/flows?limit=" + PAGE_ROWS + "&after=" + after)])
      .then(function (r) {
        render(r[0], r[1]);
        status("up " + age(r[0].uptime_seconds) + " · updated " + new Date().toLocaleTimeString(), false);
      })
      .catch(function (e) { status("update failed: " + e.message, true); })
      .then(schedule);
  }
  var timer = null;
  function schedule() { clearTimeout(timer); timer = setTimeout(refresh, REFRESH_MS); }
  $("page-next").addEventListener("click", function () { if (next) { after = next; clearTimeout(timer); refresh(); } });
  $("page-first").addEventListener("click", function () { after = 0; clearTimeout(timer); refresh(); });
  refresh();
})();
