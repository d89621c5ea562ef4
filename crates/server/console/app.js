/*
 * slipway console: plain JavaScript, no build step, no external resources.
 * It talks to the same /v1 API as the CLI, with an admin token sent as
 * "Authorization: Bearer slw_admin_...". Server text is only ever put into
 * the page as text (el() below), never as HTML.
 *
 * TEST HOOKS (stable; scripts/console-check.sh and the Rust tests use them)
 *
 * URL forms (the token is saved in localStorage "slipway.token" and removed
 * from the address bar at once with history.replaceState):
 *   /console/#token=TOKEN                          overview
 *   /console/#token=TOKEN&route=/deployments/ID    that route
 *   /console/#/deployments/ID?token=TOKEN          the same, route first
 * Routes: #/  #/machines  #/machines/ID  #/collections  #/deployments
 *         #/deployments/ID  #/login
 *
 * <body data-view="V" data-ready="0|1" [data-error="1"]>
 *   V is overview, machines, machine, collections, deployments, deployment,
 *   login or notfound. data-ready becomes "1" once the view's data arrived
 *   and is rendered (also after an API error: then data-error="1" and
 *   #error holds .error-text and .error-fix). Live refreshes keep it "1".
 * View containers (one at a time, inside #main): #overview #machines
 *   #machine #collections #deployments #deployment #login #notfound.
 * Deployment states: <span class="state state-S" data-state="S">S</span>
 *   for S in pending downloading applying specializing succeeded failed
 *   incompatible. Machine status: <span class="status status-X"
 *   data-status="X">X</span> (awaiting_approval approved rejected).
 * Rows: machines table and deployment detail rows are
 *   <tr data-machine="MACHINE_ID">, the latter also data-state="S";
 *   deployments list <tr data-deployment="ID">; collections
 *   <tr data-collection="NAME">; facts <tr data-fact="dotted.path">;
 *   events <tr data-event="ID" data-kind="K">.
 * #deployment carries data-deployment="ID", data-cancelled="0|1" and
 *   data-live="1" while it refreshes every 2 s (some machine pending or
 *   active), else "0"; data-refreshes counts the refreshes.
 * #overview: [data-count="machines|awaiting_approval|collections|
 *   deployments|events"] hold numbers; #overview-states has one
 *   [data-state=S][data-count=N] per state.
 * Buttons: button[data-action="approve|cancel|retry|delete-collection"];
 *   the collection form is #collection-form, its errors #collection-error.
 */
"use strict";

(function () {
  const TOKEN_KEY = "slipway.token";
  const STATES = ["pending", "downloading", "applying", "specializing", "succeeded", "failed", "incompatible"];
  const ACTIVE = new Set(["downloading", "applying", "specializing"]);
  const LIVE_MS = 2000;
  // The API lives beside /console/ (works behind a proxy prefix too).
  const BASE = location.pathname.replace(/console\/.*$/, "").replace(/\/?$/, "/");

  // ---- DOM helpers -------------------------------------------------------

  /** el("a", {href: "#/", class: "x", data: {state: "s"}, on: {click: f}}, "text", child...) */
  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "data") {
        for (const [dk, dv] of Object.entries(v)) if (dv !== null && dv !== undefined) e.dataset[dk] = String(dv);
      } else if (k === "on") {
        for (const [ev, f] of Object.entries(v)) e.addEventListener(ev, f);
      } else if (k === "style") {
        for (const [sk, sv] of Object.entries(v)) e.style.setProperty(sk, sv);
      } else if (k === "text") {
        e.textContent = String(v);
      } else if (v === true) {
        e.setAttribute(k, "");
      } else {
        e.setAttribute(k, String(v));
      }
    }
    append(e, children);
    return e;
  }

  function append(parent, children) {
    for (const c of children) {
      if (c === null || c === undefined || c === false) continue;
      if (Array.isArray(c)) append(parent, c);
      else if (c instanceof Node) parent.appendChild(c);
      else parent.appendChild(document.createTextNode(String(c)));
    }
  }

  const $ = (sel) => document.querySelector(sel);
  const enc = encodeURIComponent;

  // ---- formatting --------------------------------------------------------

  const pad = (n) => String(n).padStart(2, "0");

  /** Local time; `short` leaves out today's date. */
  function localTime(rfc, short) {
    const d = new Date(rfc);
    if (isNaN(d)) return String(rfc);
    const day = `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
    const time = `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
    return short && d.toDateString() === new Date().toDateString() ? time : `${day} ${time}`;
  }

  function ago(rfc) {
    const t = new Date(rfc).getTime();
    if (isNaN(t)) return "";
    let s = Math.round((Date.now() - t) / 1000);
    const future = s < 0;
    s = Math.abs(s);
    let txt;
    if (s < 90) txt = `${s} s`;
    else if (s < 90 * 60) txt = `${Math.round(s / 60)} min`;
    else if (s < 36 * 3600) txt = `${Math.round(s / 3600)} h`;
    else txt = `${Math.round(s / 86400)} d`;
    return future ? `in ${txt}` : `${txt} ago`;
  }

  /** Local time with "x s ago" beside it (kept current by the ticker);
   *  `short` (in tables) leaves out today's date. */
  function when(rfc, short) {
    if (!rfc) return el("span", { class: "muted" }, "never");
    return el("span", { class: "when" },
      el("time", { datetime: rfc, title: `${localTime(rfc)} (${rfc})` }, localTime(rfc, short)), " ",
      el("span", { class: "ago", data: { time: rfc } }, ago(rfc)));
  }

  setInterval(() => {
    for (const a of document.querySelectorAll(".ago[data-time]")) a.textContent = ago(a.dataset.time);
  }, 1000);

  function bytes(n) {
    if (typeof n !== "number" || !isFinite(n)) return String(n);
    const u = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let i = 0;
    let v = n;
    while (v >= 1024 && i < u.length - 1) { v /= 1024; i++; }
    return i === 0 ? `${n} B` : `${v.toFixed(v < 10 ? 1 : 0)} ${u[i]}`;
  }

  const memory = (mb) => (mb >= 1024 ? `${+(mb / 1024).toFixed(1)} GiB` : `${mb} MiB`);
  const num = (n) => (typeof n === "number" ? n.toLocaleString("en-US") : String(n));

  function stateBadge(s) {
    return el("span", { class: `state state-${s}`, data: { state: s } }, s);
  }

  function statusBadge(s) {
    return el("span", { class: `status status-${s}`, data: { status: s } }, s.replace(/_/g, " "));
  }

  /** A stacked bar of counts by state, with a legend of colored counts. */
  function stateBar(counts, id) {
    const total = STATES.reduce((a, s) => a + (counts[s] || 0), 0);
    const bar = el("div", { class: "statebar", role: "img", "aria-label": STATES.map((s) => `${s} ${counts[s] || 0}`).join(", ") });
    for (const s of STATES) {
      const n = counts[s] || 0;
      if (n > 0) bar.appendChild(el("span", { class: `seg seg-${s}`, title: `${s}: ${n}`, style: { width: `${(100 * n) / total}%` } }));
    }
    if (total === 0) bar.appendChild(el("span", { class: "seg seg-empty", style: { width: "100%" } }));
    const legend = el("ul", { class: "legend", id },
      STATES.map((s) => el("li", { class: (counts[s] || 0) === 0 ? "zero" : null, data: { state: s, count: counts[s] || 0 } },
        stateBadge(s), " ", el("b", {}, num(counts[s] || 0)))));
    return el("div", { class: "states" }, bar, legend);
  }

  /** Only the states with machines, as small badges with counts. */
  function countBadges(counts) {
    const parts = STATES.filter((s) => counts[s]).map((s) =>
      el("span", { class: `count state-${s}`, data: { state: s, count: counts[s] }, title: s }, `${s} ${counts[s]}`));
    return parts.length ? el("span", { class: "counts" }, parts) : el("span", { class: "muted" }, "no machines");
  }

  function progress(done, total, state) {
    if (typeof done === "number" && typeof total === "number" && total > 0) {
      const pct = Math.min(100, Math.max(0, (100 * done) / total));
      return el("div", { class: "progress-cell" },
        el("div", { class: "progress", role: "progressbar", "aria-valuemin": 0, "aria-valuemax": total, "aria-valuenow": done },
          el("div", { class: `progress-fill fill-${state}`, style: { width: `${pct.toFixed(1)}%` } })),
        // Agents count bytes or entries; totals this large are bytes.
        el("span", { class: "progress-text", title: `${num(done)} / ${num(total)}` },
          total >= 10 * 1024 * 1024 ? `${bytes(done)} / ${bytes(total)} (${Math.floor(pct)}%)` : `${num(done)} / ${num(total)} (${Math.floor(pct)}%)`));
    }
    if (state === "succeeded") {
      return el("div", { class: "progress-cell" },
        el("div", { class: "progress" }, el("div", { class: "progress-fill fill-succeeded", style: { width: "100%" } })),
        el("span", { class: "progress-text" }, "done"));
    }
    return el("span", { class: "muted" }, "—");
  }

  function errorBox(err, id) {
    return el("div", { class: "error-box", id: id || "error", role: "alert" },
      el("p", { class: "error-text" }, err.error || String(err)),
      err.fix ? el("p", { class: "error-fix" }, "Fix: ", err.fix) : null);
  }

  function table(headers, rows, attrs) {
    return el("div", { class: "table-wrap" },
      el("table", attrs || {},
        el("thead", {}, el("tr", {}, headers.map((h) => el("th", {}, h)))),
        el("tbody", {}, rows.length ? rows : el("tr", { class: "empty" }, el("td", { colspan: headers.length }, "nothing yet")))));
  }

  function kv(pairs) {
    return el("dl", { class: "kv" }, pairs.filter(Boolean).map(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]));
  }

  const machineLink = (id, name) => el("a", { href: `#/machines/${enc(id)}` }, name || id);
  const deploymentLink = (id, name) => el("a", { href: `#/deployments/${enc(id)}` }, name || id);

  // ---- API ---------------------------------------------------------------

  class ApiFailure extends Error {
    constructor(status, error, fix) {
      super(error);
      this.status = status;
      this.error = error;
      this.fix = fix;
    }
  }

  const token = () => localStorage.getItem(TOKEN_KEY) || "";

  async function api(method, path, body) {
    const headers = { Accept: "application/json", Authorization: `Bearer ${token()}` };
    const init = { method, headers, cache: "no-store" };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let res;
    try {
      res = await fetch(BASE + path.replace(/^\//, ""), init);
    } catch (e) {
      throw new ApiFailure(0, `cannot reach the server (${e.message})`, "check that 'slipway serve' is running and reachable");
    }
    const text = await res.text();
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch (_) { data = null; }
    if (!res.ok) {
      const error = data && typeof data.error === "string" ? data.error : `${method} ${path}: HTTP ${res.status} ${res.statusText}`;
      const fix = data && typeof data.fix === "string" ? data.fix : null;
      throw new ApiFailure(res.status, error, fix);
    }
    return data;
  }

  // ---- routing -----------------------------------------------------------

  let gen = 0; // bumped on every navigation; stale renders check it
  let liveTimer = null;
  let loginNotice = null;

  /** Takes a token out of the fragment (#token=T[&route=R] or #R?token=T). */
  function takeToken() {
    const h = location.hash.replace(/^#/, "");
    let params;
    let route;
    if (/^token=/.test(h)) {
      params = new URLSearchParams(h);
      route = params.get("route") || "/";
    } else if (h.includes("?")) {
      const i = h.indexOf("?");
      params = new URLSearchParams(h.slice(i + 1));
      route = h.slice(0, i) || "/";
    } else {
      return;
    }
    const t = params.get("token");
    if (!t) return;
    localStorage.setItem(TOKEN_KEY, t.trim());
    if (!route.startsWith("/")) route = "/" + route;
    history.replaceState(null, "", location.pathname + location.search + "#" + route);
  }

  function parseRoute() {
    const h = location.hash.replace(/^#/, "").split("?")[0];
    const parts = h.split("/").filter(Boolean).map((p) => {
      try { return decodeURIComponent(p); } catch (_) { return p; }
    });
    if (parts.length === 0) return { view: "overview" };
    const [a, b] = parts;
    if (parts.length === 1 && ["machines", "collections", "deployments", "login"].includes(a)) return { view: a };
    if (parts.length === 2 && a === "machines") return { view: "machine", id: b };
    if (parts.length === 2 && a === "deployments") return { view: "deployment", id: b };
    return { view: "notfound", path: h };
  }

  function setState(view, ready, error) {
    document.body.dataset.view = view;
    document.body.dataset.ready = ready ? "1" : "0";
    if (error) document.body.dataset.error = "1";
    else delete document.body.dataset.error;
    const nav = { machine: "machines", deployment: "deployments" }[view] || view;
    for (const a of document.querySelectorAll("[data-nav]")) {
      if (a.dataset.nav === nav) a.setAttribute("aria-current", "page");
      else a.removeAttribute("aria-current");
    }
  }

  function mount(node) {
    const main = $("#main");
    main.replaceChildren(node);
  }

  function stopLive() {
    if (liveTimer !== null) clearTimeout(liveTimer);
    liveTimer = null;
  }

  async function navigate() {
    takeToken();
    stopLive();
    const my = ++gen;
    const r = parseRoute();
    if (r.view === "login" || !token()) {
      showLogin(r.view === "login" ? null : loginNotice);
      return;
    }
    setState(r.view, false);
    const views = { overview, machines, machine, collections, deployments, deployment, notfound };
    const title = { overview: "Overview", machines: "Machines", machine: "Machine", collections: "Collections", deployments: "Deployments", deployment: "Deployment", notfound: "Not found" }[r.view];
    document.title = `${title} · slipway`;
    try {
      const node = await views[r.view](r, my);
      if (my !== gen) return;
      mount(node);
      setState(r.view, true);
    } catch (e) {
      if (my !== gen) return;
      failed(r.view, e);
    }
  }

  /** Shows an error in place of the view, or the login form for 401/403. */
  function failed(view, e) {
    if (e instanceof ApiFailure && (e.status === 401 || e.status === 403)) {
      localStorage.removeItem(TOKEN_KEY);
      loginNotice = e;
      showLogin(e);
      return;
    }
    if (!(e instanceof ApiFailure)) console.error(e);
    mount(el("section", { id: view, class: "view" },
      el("h1", {}, "Could not load this page"),
      errorBox(e instanceof ApiFailure ? e : { error: String(e && e.message ? e.message : e) })));
    setState(view, true, true);
  }

  const reload = () => navigate();

  /** Runs a button's action; errors show in #flash, success reloads the view. */
  function action(button, run) {
    return async () => {
      button.disabled = true;
      try {
        await run();
        reload();
      } catch (e) {
        button.disabled = false;
        if (e instanceof ApiFailure && e.status === 401) return failed(document.body.dataset.view, e);
        const flash = $("#flash");
        if (flash) flash.replaceChildren(errorBox(e instanceof ApiFailure ? e : { error: String(e) }, "action-error"));
      }
    };
  }

  function header(title, ...extra) {
    return [el("header", { class: "view-head" }, el("h1", {}, title), extra.length ? el("div", { class: "head-extra" }, extra) : null),
      el("div", { id: "flash" })];
  }

  // ---- login -------------------------------------------------------------

  function showLogin(err) {
    stopLive();
    ++gen;
    document.title = "Sign in · slipway";
    const input = el("input", { id: "token-input", name: "token", type: "password", autocomplete: "off", spellcheck: "false", placeholder: "slw_admin_…", required: true });
    const form = el("form", { id: "login-form", class: "card login-card" },
      el("h1", {}, "slipway console"),
      el("p", { class: "muted" }, "Paste an admin token. Make one on the server with ", el("code", {}, "slipway server token new"), "."),
      err ? errorBox(err, "login-error") : null,
      el("label", { for: "token-input" }, "Admin token"),
      input,
      el("button", { type: "submit", class: "primary" }, "Sign in"));
    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      const t = input.value.trim();
      if (!t) return;
      localStorage.setItem(TOKEN_KEY, t);
      loginNotice = null;
      if (parseRoute().view === "login") location.hash = "#/";
      else navigate();
    });
    mount(el("section", { id: "login", class: "view" }, form));
    setState("login", true, !!err);
    input.focus();
  }

  // ---- overview ----------------------------------------------------------

  async function overview() {
    const o = await api("GET", "/v1/overview");
    const card = (key, label, n, href) =>
      el("a", { class: "card stat", href, data: { stat: key } }, el("span", { class: "stat-n", data: { count: key } }, num(n)), el("span", { class: "stat-label" }, label));
    return el("section", { id: "overview", class: "view" },
      header("Fleet overview"),
      el("div", { class: "stats" },
        card("machines", "machines", o.machines, "#/machines"),
        el("a", { class: `card stat${o.awaiting_approval ? " attention" : ""}`, href: "#/machines", data: { stat: "awaiting_approval" } },
          el("span", { class: "stat-n", data: { count: "awaiting_approval" } }, num(o.awaiting_approval)), el("span", { class: "stat-label" }, "awaiting approval")),
        card("collections", "collections", o.collections, "#/collections"),
        card("deployments", "deployments", o.deployments, "#/deployments"),
        card("events", "events", o.events, "#/deployments")),
      el("div", { class: "card" },
        el("h2", {}, "Machines by deployment state"),
        el("p", { class: "muted" }, "Every machine's place in every deployment."),
        stateBar(o.states || {}, "overview-states")),
      el("div", { class: "card" },
        el("h2", {}, "Server"),
        kv([["Version", el("span", { id: "server-version" }, o.version)], ["Database", el("span", { id: "server-database" }, o.database)]])));
  }

  // ---- machines ----------------------------------------------------------

  function lastDeployment(d) {
    if (!d) return el("span", { class: "muted" }, "—");
    return el("div", { class: "stack" },
      el("span", {}, stateBadge(d.state), " ", deploymentLink(d.deployment_id, d.deployment)),
      d.reason ? el("span", { class: "reason" }, d.reason) : null);
  }

  function approveButton(m) {
    if (m.status !== "awaiting_approval") return null;
    const b = el("button", { type: "button", class: "small primary", data: { action: "approve", machine: m.id } }, "Approve");
    b.addEventListener("click", action(b, () => api("POST", `/v1/machines/${enc(m.id)}/approve`)));
    return b;
  }

  async function machines() {
    const list = await api("GET", "/v1/machines");
    const waiting = list.filter((m) => m.status === "awaiting_approval").length;
    const rows = list.map((m) =>
      el("tr", { data: { machine: m.id, status: m.status } },
        el("td", { class: "mono" }, machineLink(m.id, m.id)),
        el("td", { class: "name" }, machineLink(m.id, m.name)),
        el("td", {}, statusBadge(m.status), " ", approveButton(m)),
        el("td", {}, m.arch || "—"),
        el("td", { class: "num" }, memory(m.memory_mb)),
        el("td", {}, m.collections.length ? m.collections.join(", ") : el("span", { class: "muted" }, "—")),
        el("td", {}, lastDeployment(m.last_deployment)),
        el("td", {}, when(m.last_seen, true))));
    return el("section", { id: "machines", class: "view" },
      header("Machines", el("span", { class: "muted" }, `${list.length} enrolled`, waiting ? `, ${waiting} awaiting approval` : "")),
      table(["Id", "Name", "Status", "Arch", "Memory", "Collections", "Last deployment", "Last seen"], rows, { id: "machines-table" }));
  }

  /** Flattens JSON to [dotted.path, value] pairs: {nic: [{mac}]} gives nic.0.mac. */
  function flatten(v, prefix, out) {
    if (v !== null && typeof v === "object") {
      const keys = Array.isArray(v) ? v.map((_, i) => String(i)) : Object.keys(v).sort();
      if (keys.length === 0 && prefix) out.push([prefix, Array.isArray(v) ? [] : {}]);
      for (const k of keys) flatten(v[k], prefix ? `${prefix}.${k}` : k, out);
    } else {
      out.push([prefix, v]);
    }
    return out;
  }

  function showValue(v) {
    if (typeof v === "string") return v === "" ? '""' : v;
    if (Array.isArray(v)) return "[]";
    if (v !== null && typeof v === "object") return "{}";
    return String(v);
  }

  function factValue(path, v) {
    const hint = typeof v === "number" && /_bytes$/.test(path) && v >= 1024 ? el("span", { class: "muted" }, ` (${bytes(v)})`) : null;
    return el("td", { class: `mono v-${v === null ? "null" : typeof v}` }, showValue(v), hint);
  }

  function factsTable(facts) {
    const pairs = flatten(facts, "", []);
    const rows = pairs.map(([p, v]) => el("tr", { data: { fact: p } }, el("td", { class: "mono key" }, p), factValue(p, v)));
    const t = table(["Fact", "Value"], rows, { id: "facts-table", class: "facts" });
    const filter = el("input", { type: "search", id: "facts-filter", placeholder: "Filter facts…", "aria-label": "Filter facts" });
    filter.addEventListener("input", () => {
      const q = filter.value.trim().toLowerCase();
      for (const r of rows) r.hidden = q !== "" && !r.textContent.toLowerCase().includes(q);
    });
    return [filter, t];
  }

  /** Dotted paths that differ between two facts documents. */
  function diffFacts(older, newer) {
    const a = new Map(flatten(older, "", []).map(([p, v]) => [p, showValue(v)]));
    const b = new Map(flatten(newer, "", []).map(([p, v]) => [p, showValue(v)]));
    const out = [];
    for (const p of [...new Set([...a.keys(), ...b.keys()])].sort()) {
      if (a.get(p) !== b.get(p)) out.push([p, a.has(p) ? a.get(p) : null, b.has(p) ? b.get(p) : null]);
    }
    return out;
  }

  function factsHistory(versions) {
    // Newest first, as the API gives them.
    const rows = versions.map((v, i) => {
      const older = versions[i + 1];
      let changes;
      if (!older) {
        changes = el("span", { class: "muted" }, "first report");
      } else {
        const d = diffFacts(older.facts, v.facts);
        changes = el("details", {},
          el("summary", {}, v.changed.length ? v.changed.join(", ") : "no top-level change", el("span", { class: "muted" }, ` (${d.length} value${d.length === 1 ? "" : "s"})`)),
          el("ul", { class: "diff" }, d.map(([p, from, to]) =>
            el("li", { class: "mono" }, el("b", {}, p), ": ",
              from === null ? el("span", { class: "muted" }, "(none)") : el("del", {}, from), " → ",
              to === null ? el("span", { class: "muted" }, "(removed)") : el("ins", {}, to)))));
      }
      return el("tr", { data: { version: v.version } }, el("td", {}, `v${v.version}`), el("td", {}, when(v.reported_at, true)), el("td", {}, changes));
    });
    return table(["Version", "Reported", "Changed keys"], rows, { id: "facts-history" });
  }

  function eventsTable(events, names) {
    const shown = events.slice(-300);
    const rows = shown.map((e) =>
      el("tr", { data: { event: e.id, kind: e.kind } },
        el("td", {}, when(e.at, true)),
        el("td", {}, el("span", { class: `kind kind-${e.kind}` }, e.kind)),
        el("td", {}, e.deployment_id ? deploymentLink(e.deployment_id, names.get(e.deployment_id)) : el("span", { class: "muted" }, "—")),
        el("td", {}, e.state ? stateBadge(e.state) : null),
        el("td", { class: "message" }, e.message || ""),
        el("td", {}, typeof e.done === "number" ? progress(e.done, e.total, e.state || "downloading") : null)));
    return [events.length > shown.length ? el("p", { class: "muted" }, `The last ${shown.length} of ${events.length} events.`) : null,
      table(["Time", "Kind", "Deployment", "State", "Message", "Progress"], rows, { id: "events-table" })];
  }

  async function machine(r) {
    const id = enc(r.id);
    const [m, history, events] = await Promise.all([
      api("GET", `/v1/machines/${id}`),
      api("GET", `/v1/machines/${id}/facts`),
      api("GET", `/v1/machines/${id}/events?limit=5000`),
    ]);
    const deps = m.deployments.map((d) =>
      el("tr", { data: { deployment: d.deployment_id, state: d.state } },
        el("td", {}, deploymentLink(d.deployment_id, d.deployment)),
        el("td", {}, stateBadge(d.state)),
        el("td", { class: "reason" }, d.reason || "")));
    return el("section", { id: "machine", class: "view", data: { machine: m.id } },
      header(m.name, statusBadge(m.status), approveButton(m)),
      el("div", { class: "card" }, kv([
        ["Id", el("span", { class: "mono" }, m.id)],
        ["Arch", m.arch || "—"],
        ["Memory", memory(m.memory_mb)],
        ["Collections", m.collections.length ? m.collections.join(", ") : "—"],
        ["Enrolled", when(m.enrolled_at)],
        ["Last seen", when(m.last_seen)],
        ["Facts version", `v${m.facts_version}`],
      ])),
      el("h2", {}, "Deployments"),
      table(["Deployment", "State", "Reason"], deps, { id: "machine-deployments" }),
      el("h2", {}, "Facts"),
      factsTable(m.facts),
      el("h2", {}, "Facts history"),
      factsHistory(history),
      el("h2", {}, "Events"),
      eventsTable(events, new Map(m.deployments.map((d) => [d.deployment_id, d.deployment]))));
  }

  // ---- collections -------------------------------------------------------

  function collectionForm() {
    const name = el("input", { id: "collection-name", name: "name", required: true, placeholder: "rack-a", autocomplete: "off" });
    const rule = el("input", { id: "collection-rule", name: "rule", class: "mono", placeholder: 'arch == "x86_64" and memory_mb >= 4096', autocomplete: "off", spellcheck: "false" });
    const members = el("input", { id: "collection-members", name: "members", placeholder: "m-…, n1 (optional)", autocomplete: "off" });
    const errors = el("div", { id: "collection-error" });
    const submit = el("button", { type: "submit", class: "primary" }, "Create collection");
    const form = el("form", { id: "collection-form", class: "card form" },
      el("h2", {}, "New collection"),
      el("label", { for: "collection-name" }, "Name"), name,
      el("label", { for: "collection-rule" }, "Rule ", el("span", { class: "muted" }, "(over facts; see docs/rule-language.md; empty: explicit members only)")), rule,
      el("label", { for: "collection-members" }, "Explicit members ", el("span", { class: "muted" }, "(machine ids or names, comma separated)")), members,
      errors,
      el("div", {}, submit));
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      submit.disabled = true;
      errors.replaceChildren();
      const spec = {
        name: name.value.trim(),
        members: members.value.split(",").map((s) => s.trim()).filter(Boolean),
      };
      if (rule.value.trim()) spec.rule = rule.value.trim();
      try {
        await api("POST", "/v1/collections", spec);
        reload();
      } catch (e) {
        submit.disabled = false;
        if (e instanceof ApiFailure && e.status === 401) return failed("collections", e);
        errors.replaceChildren(errorBox(e instanceof ApiFailure ? e : { error: String(e) }, "collection-error-box"));
      }
    });
    return form;
  }

  async function collections() {
    const list = await api("GET", "/v1/collections");
    const rows = list.map((c) => {
      const del = el("button", { type: "button", class: "small danger", data: { action: "delete-collection", collection: c.name } }, "Delete");
      const run = action(del, () => api("DELETE", `/v1/collections/${enc(c.name)}`));
      del.addEventListener("click", () => {
        if (confirm(`Delete collection ${c.name}?`)) run();
      });
      return el("tr", { data: { collection: c.name } },
        el("td", {}, el("b", {}, c.name)),
        el("td", { class: "mono rule" }, c.rule || el("span", { class: "muted" }, "explicit members only")),
        el("td", { class: "num", data: { members: c.machines.length } }, String(c.machines.length)),
        el("td", { class: "num" }, String(c.members.length)),
        el("td", {}, when(c.created_at, true)),
        el("td", {}, del));
    });
    return el("section", { id: "collections", class: "view" },
      header("Collections", el("span", { class: "muted" }, `${list.length} collection${list.length === 1 ? "" : "s"}`)),
      table(["Name", "Rule", "Machines", "Explicit", "Created", ""], rows, { id: "collections-table" }),
      collectionForm());
  }

  // ---- deployments -------------------------------------------------------

  async function deployments() {
    const list = await api("GET", "/v1/deployments");
    const rows = list.map((d) =>
      el("tr", { data: { deployment: d.id, cancelled: d.cancelled ? 1 : 0 } },
        el("td", { class: "name" }, deploymentLink(d.id, d.name), d.cancelled ? el("span", { class: "tag" }, "cancelled") : null),
        el("td", { class: "mono" }, d.image),
        el("td", {}, d.collection),
        el("td", {}, countBadges(d.counts)),
        el("td", {}, when(d.created_at, true))));
    return el("section", { id: "deployments", class: "view" },
      header("Deployments", el("span", { class: "muted" }, `${list.length} deployment${list.length === 1 ? "" : "s"}`)),
      table(["Name", "Image", "Collection", "Machines", "Created"], rows, { id: "deployments-table" }));
  }

  const isLive = (st) => st.machines.some((m) => m.state === "pending" || ACTIVE.has(m.state));

  function renderDeployment(st, refreshes, warning) {
    const d = st.deployment;
    const live = isLive(st);
    const cancel = d.cancelled ? null : el("button", { type: "button", class: "danger", data: { action: "cancel" } }, "Cancel deployment");
    if (cancel) {
      const run = action(cancel, () => api("POST", `/v1/deployments/${enc(d.id)}/cancel`));
      cancel.addEventListener("click", () => {
        if (confirm(`Cancel deployment ${d.name}? Pending machines leave it.`)) run();
      });
    }
    const rows = st.machines.map((m) => {
      let retry = null;
      if (m.state === "failed" || m.state === "incompatible") {
        retry = el("button", { type: "button", class: "small", data: { action: "retry", machine: m.machine_id } }, "Retry");
        retry.addEventListener("click", action(retry, () => api("POST", `/v1/deployments/${enc(d.id)}/machines/${enc(m.machine_id)}/retry`)));
      }
      return el("tr", { data: { machine: m.machine_id, state: m.state } },
        el("td", { class: "name" }, machineLink(m.machine_id, m.machine)),
        el("td", {}, el("div", { class: "state-cell" }, stateBadge(m.state), retry)),
        el("td", { class: "reason" }, m.reason || ""),
        el("td", {}, m.hostname || el("span", { class: "muted" }, "—")),
        el("td", {}, progress(m.done, m.total, m.state)),
        el("td", {}, when(m.updated_at, true)));
    });
    const req = d.requirements || {};
    const liveNote = live
      ? el("span", { class: "live", id: "live" }, el("span", { class: "dot" }), warning ? `live; last refresh failed: ${warning}` : "live, every 2 s")
      : el("span", { class: "muted", id: "live" }, "not refreshing (no machine pending or at work)");
    return el("section", { id: "deployment", class: "view", data: { deployment: d.id, cancelled: d.cancelled ? 1 : 0, live: live ? 1 : 0, refreshes } },
      header(d.name, d.cancelled ? el("span", { class: "tag" }, "cancelled") : null, liveNote, cancel),
      el("div", { class: "card" }, kv([
        ["Id", el("span", { class: "mono" }, d.id)],
        ["Image", el("span", { class: "mono" }, d.image)],
        ["Collection", d.collection],
        ["Created", when(d.created_at)],
        ["Starts", when(d.start_at)],
        d.end_at ? ["Ends", when(d.end_at)] : null,
        ["At once", d.max_parallel ? String(d.max_parallel) : "no limit"],
        ["Requires", [req.arch ? `arch ${req.arch}` : null, req.firmware && req.firmware.length ? `firmware ${req.firmware.join("/")}` : null,
          `${bytes(req.min_disk_bytes || 0)} free`].filter(Boolean).join(", ")],
        ["Answer file", d.has_answer ? "yes" : "no"],
        d.packages.length ? ["Packages", el("span", { class: "mono" }, d.packages.join(", "))] : null,
      ]), stateBar(d.counts || {}, "deployment-states")),
      table(["Machine", "State", "Reason", "Hostname", "Progress", "Updated"], rows, { id: "deployment-machines" }));
  }

  async function deployment(r, my) {
    const st = await api("GET", `/v1/deployments/${enc(r.id)}`);
    if (isLive(st)) schedule(r.id, my, 1);
    return renderDeployment(st, 0, null);
  }

  function schedule(id, my, n) {
    stopLive();
    liveTimer = setTimeout(async () => {
      if (my !== gen) return;
      let st;
      try {
        st = await api("GET", `/v1/deployments/${enc(id)}`);
      } catch (e) {
        if (my !== gen) return;
        if (e instanceof ApiFailure && (e.status === 401 || e.status === 403)) return failed("deployment", e);
        const cur = $("#deployment");
        const note = $("#live");
        if (note) note.textContent = `live; last refresh failed: ${e.error || e.message}`;
        if (cur) schedule(id, my, n);
        return;
      }
      if (my !== gen) return;
      mount(renderDeployment(st, n, null));
      if (isLive(st)) schedule(id, my, n + 1);
    }, LIVE_MS);
  }

  async function notfound(r) {
    return el("section", { id: "notfound", class: "view" },
      header("Not found"),
      el("p", {}, "No page ", el("code", {}, `#${r.path}`), ". ", el("a", { href: "#/" }, "Back to the overview"), "."));
  }

  // ---- start -------------------------------------------------------------

  window.addEventListener("hashchange", navigate);
  $("#refresh").addEventListener("click", reload);
  $("#signout").addEventListener("click", () => {
    localStorage.removeItem(TOKEN_KEY);
    loginNotice = null;
    showLogin(null);
  });
  navigate();
})();
