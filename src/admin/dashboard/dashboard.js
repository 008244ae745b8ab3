// Vestibule dashboard. Reads /api/dashboard/* (searched and paged on the server) and writes
// every value as text (textContent), never as markup. The view lives in the URL's fragment
// (#tab=routes&q=…&offset=…&host=…) so a view can be linked, reloaded and tested.
"use strict";

const PAGE_SIZE = 50;
const REFRESH_MS = 5000;
const TABS = {
  routes: { api: "hosts", filters: true, problems: true, placeholder: "Search hosts, routes, objects, backends…",
    hint: "Every host Vestibule serves, one line per host and listener. Click a host for its paths, backends, status and problems." },
  objects: { api: "objects", problems: true, placeholder: "Search kind, namespace, name, messages…",
    hint: "Every object Vestibule owns or reports on, with the status it would write and its problems." },
  issues: { api: "issues", placeholder: "Search objects, files, fields, messages…",
    hint: "Errors (the object's last good version keeps serving) and warnings (served as is), with the object, file and field." },
  certificates: { api: "certificates", placeholder: "Search hosts and Secrets…",
    hint: "Certificates served, by Secret, with their expiry (read from the certificate; the key is never shown), and ACME hosts." },
  domains: { api: "domains", placeholder: "Search tenants and domains…",
    hint: "Custom domains claimed by tenants; a domain is served only once DNS proves the tenant controls it." },
  tcp: { api: "tcp-ports", placeholder: "Search Services…",
    hint: "Services asking for public TCP ports, and the port assigned to each." },
  activity: { api: null, hint: "The last configuration reloads (newest first) and the health of each source of objects." },
};

const previous = new Map(); // "host listener" → {requests, at}: rates between refreshes
let summary = null;
let timer = null;
let loading = 0;

function $(id) { return document.getElementById(id); }

// el("td", {class: "num"}, "text", child…): children are text or nodes; text stays text.
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "title") node.title = value;
    else if (key === "href") node.setAttribute("href", value);
    else node.setAttribute(key, value);
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function plural(n, one, many) { return `${n.toLocaleString("en")} ${n === 1 ? one : (many || one + "s")}`; }

function view() {
  const params = new URLSearchParams(location.hash.slice(1));
  const tab = TABS[params.get("tab")] ? params.get("tab") : "routes";
  return {
    tab,
    q: params.get("q") || "",
    source: params.get("source") || "",
    tenant: params.get("tenant") || "",
    problems: params.get("problems") === "1",
    offset: Math.max(0, parseInt(params.get("offset") || "0", 10) || 0),
    host: params.get("host") || "",
    listener: params.get("listener") || "",
  };
}

function go(changes) {
  const next = Object.assign(view(), changes);
  const params = new URLSearchParams();
  params.set("tab", next.tab);
  for (const key of ["q", "source", "tenant", "host", "listener"]) if (next[key]) params.set(key, next[key]);
  if (next.problems) params.set("problems", "1");
  if (next.offset) params.set("offset", String(next.offset));
  location.hash = params.toString();
}

async function getJson(path) {
  const response = await fetch(path, { headers: { Accept: "application/json" } });
  if (!response.ok) throw new Error(`${path}: ${response.status} ${await response.text()}`);
  return response.json();
}

function ago(seconds) {
  if (seconds < 60) return `${seconds} s ago`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ago`;
  if (seconds < 86400) return `${Math.floor(seconds / 3600)} h ago`;
  return `${Math.floor(seconds / 86400)} d ago`;
}

function tile(value, label, level) {
  return el("div", { class: "tile" + (level ? " " + level : "") }, el("b", {}, value), el("span", {}, label));
}

function renderSummary(s) {
  summary = s;
  const readiness = $("readiness");
  readiness.textContent = s.readiness;
  readiness.className = "pill " + (s.readiness === "ready" ? "ok" : "bad");
  $("generation").textContent = String(s.generation);
  const last = s.reloads.recent[0];
  $("updated").textContent = last
    ? `last reload ${ago(Math.max(0, s.now - last.at))} (${last.outcome})`
    : "no reload yet";
  const c = s.counts;
  const errorLevel = c.errors ? "bad" : "";
  $("tiles").replaceChildren(
    tile(c.hosts.toLocaleString("en"), "hosts"),
    tile(c.routes.toLocaleString("en"), "routes"),
    tile(c.backends.toLocaleString("en"), "backends"),
    tile(c.unavailableHosts.toLocaleString("en"), "hosts with a path lacking endpoints", c.unavailableHosts ? "warn" : ""),
    tile(c.errors.toLocaleString("en"), c.errors === 1 ? "error" : "errors", errorLevel),
    tile(c.warnings.toLocaleString("en"), c.warnings === 1 ? "warning" : "warnings", c.warnings ? "warn" : ""),
    tile(s.requests.total.toLocaleString("en"), "requests answered"),
    tile(s.requests.serverErrors.toLocaleString("en"), "answered 5xx", s.requests.serverErrors ? "warn" : ""),
  );
  fillSelect($("source"), s.filters.sources, "all sources");
  fillSelect($("tenant"), s.filters.tenants, "all tenants / namespaces");
}

function fillSelect(select, counts, all) {
  const chosen = view()[select.id];
  const options = [el("option", { value: "" }, all)];
  for (const [name, count] of Object.entries(counts)) {
    options.push(el("option", { value: name }, `${name} (${count.toLocaleString("en")})`));
  }
  if (chosen && !(chosen in counts)) options.push(el("option", { value: chosen }, `${chosen} (0)`));
  select.replaceChildren(...options);
  select.value = chosen;
}

function query(v, extra) {
  const params = new URLSearchParams();
  if (v.q) params.set("q", v.q);
  if (v.source) params.set("source", v.source);
  if (v.tenant) params.set("tenant", v.tenant);
  if (v.problems) params.set("problems", "1");
  params.set("offset", String(v.offset));
  params.set("limit", String(PAGE_SIZE));
  for (const [key, value] of Object.entries(extra || {})) params.set(key, value);
  return params.toString();
}

function table(headers, rows, empty) {
  if (!rows.length) return el("p", { class: "empty" }, empty);
  return el("table", {},
    el("thead", {}, el("tr", {}, headers.map(([label, cls, title]) => el("th", { class: cls, title }, label)))),
    el("tbody", {}, rows));
}

function rate(key, requests, now) {
  const before = previous.get(key);
  previous.set(key, { requests, at: now });
  if (!before || now <= before.at) return "–";
  const perSecond = (requests - before.requests) / ((now - before.at) / 1000);
  return perSecond < 0 ? "–" : perSecond.toFixed(perSecond < 10 ? 1 : 0);
}

function endpointsCell(item) {
  if (item.unavailablePaths) {
    return el("td", { class: "bad", title: "These paths have no ready endpoint: requests get 503 (Gateway API: 500)." },
      `${plural(item.unavailablePaths, "path")} without endpoints`);
  }
  return el("td", { class: "num ok" }, plural(item.endpoints, "ready"));
}

function renderHosts(page, v) {
  const now = Date.now();
  const rows = page.items.map((item) => {
    const selected = item.host === v.host && item.listener === (v.listener || item.listener);
    const open = () => go({ host: item.host, listener: item.listener });
    const link = el("a", { class: "host", href: "#" }, item.host);
    link.addEventListener("click", (event) => { event.preventDefault(); open(); });
    const row = el("tr", { class: "clickable" + (selected ? " selected" : "") },
      el("td", {}, link),
      el("td", { class: "muted" }, item.listener === "http" ? "HTTP/HTTPS" : item.listener.replace("gateway:", "Gateway port ")),
      el("td", {}, item.source || "–"),
      el("td", {}, item.tenant || "–"),
      el("td", { class: "mono" }, item.objects.join(", ") || "–"),
      el("td", { class: "num" }, String(item.paths)),
      endpointsCell(item),
      el("td", {}, item.tls ? "yes" : "no"),
      el("td", { class: "num" }, item.requests.toLocaleString("en")),
      el("td", { class: "num" }, rate(item.host + " " + item.listener, item.requests, now)),
      el("td", { class: "num" + (item.serverErrors ? " warn" : "") }, item.serverErrors.toLocaleString("en")),
      el("td", { class: item.objectsWithIssues ? "bad" : "ok" }, item.objectsWithIssues ? plural(item.objectsWithIssues, "object") + " with problems" : "none"),
    );
    row.addEventListener("click", open);
    return row;
  });
  return table([["Host"], ["Listener"], ["Source"], ["Tenant / namespace"], ["Objects"], ["Paths", "num"],
    ["Endpoints", "", "Ready endpoint addresses of its backends"], ["TLS"], ["Requests", "num", "Since start (vestibule_requests_total)"],
    ["req/s", "num", "Measured between two refreshes"], ["5xx", "num"], ["Problems"]],
  rows, v.q || v.source || v.tenant || v.problems ? "No host matches these filters." : "No routes yet: nothing is configured.");
}

function statusText(status) {
  if (status === null || status === undefined) return "no status";
  if (typeof status !== "object") return String(status);
  const parts = [];
  const conditions = status.conditions || [];
  for (const condition of conditions) parts.push(`${condition.type}=${condition.status}${condition.reason ? " (" + condition.reason + ")" : ""}`);
  const lb = status.loadBalancer && status.loadBalancer.ingress;
  if (lb && lb.length) parts.push("address " + lb.map((a) => a.ip || a.hostname).join(", "));
  for (const listener of status.listeners || []) parts.push(`listener ${listener.name}: ${listener.attachedRoutes} routes`);
  for (const parent of status.parents || []) {
    const ref = parent.parentRef || {};
    for (const condition of parent.conditions || []) parts.push(`${ref.name || "parent"}: ${condition.type}=${condition.status}`);
  }
  if (status.state) parts.push(`ACME ${status.state}` + (status.lastError ? `: ${status.lastError}` : ""));
  if (!parts.length) return Object.keys(status).length ? JSON.stringify(status) : "no status written (none needed)";
  return parts.join(" · ");
}

function renderObjects(page) {
  const rows = page.items.map((item) => el("tr", {},
    el("td", {}, item.kind),
    el("td", { class: "mono" }, item.namespace ? `${item.namespace}/${item.name}` : item.name),
    el("td", {}, item.source || "–"),
    el("td", {}, statusText(item.status)),
    el("td", { class: item.issues ? "bad" : "ok" }, item.issues ? item.issues.map((text) => el("div", {}, text)) : "none"),
  ));
  return table([["Kind"], ["Object"], ["Source"], ["Status"], ["Problems"]], rows, "No object matches.");
}

function originText(origin) { return origin ? origin.text : "–"; }
function objectText(object) { return object ? (object.namespace ? `${object.kind} ${object.namespace}/${object.name}` : `${object.kind} ${object.name}`) : "–"; }

function renderIssues(page) {
  const rows = page.items.map((item) => el("tr", {},
    el("td", { class: item.severity === "error" ? "bad" : "warn" }, item.severity),
    el("td", { class: "mono" }, objectText(item.object)),
    el("td", { class: "mono" }, originText(item.origin)),
    el("td", { class: "mono" }, item.field || "–"),
    el("td", {}, item.message),
  ));
  return table([["Severity"], ["Object"], ["From"], ["Field"], ["Message"]], rows, "No problems: every object is served as written.");
}

function expiry(notAfter) {
  if (!notAfter) return el("td", { class: "muted" }, "unknown");
  const days = Math.floor((notAfter * 1000 - Date.now()) / 86400000);
  const date = new Date(notAfter * 1000).toISOString().slice(0, 10);
  if (days < 0) return el("td", { class: "bad" }, `expired ${date}`);
  return el("td", { class: days < 14 ? "warn" : "" }, `${date} (in ${plural(days, "day")})`);
}

function renderCertificates(page) {
  const rows = page.items.map((item) => el("tr", {},
    el("td", { class: "mono" }, item.hosts.join(", ")),
    el("td", {}, item.source === "acme" ? `ACME (${item.state})` : `Secret ${item.secret}`),
    el("td", { class: "muted" }, item.listener ? (item.listener === "http" ? "HTTPS" : item.listener.replace("gateway:", "Gateway port ")) : "HTTPS"),
    expiry(item.notAfter),
    el("td", { class: item.lastError ? "bad" : "" }, item.lastError || ""),
  ));
  return table([["Hosts"], ["From"], ["Listener"], ["Expires"], ["Last error"]], rows, "No certificates configured.");
}

function renderDomains(page) {
  const rows = page.items.map((item) => el("tr", {},
    el("td", {}, item.tenant), el("td", { class: "mono" }, item.domain),
    el("td", { class: "mono" }, item.target || "–"),
    el("td", { class: item.verified ? "ok" : "warn" }, item.verified ? "verified" : "pending (not served yet)"),
  ));
  return table([["Tenant"], ["Domain"], ["CNAME must name"], ["Verification"]], rows, "No custom domains claimed (only with --tenancy or Docker tenants).");
}

function renderTcp(page) {
  const rows = page.items.map((item) => el("tr", {},
    el("td", { class: "mono" }, `${item.namespace}/${item.service}`), el("td", { class: "num" }, String(item.port)),
    el("td", { class: "num " + (item.assigned ? "ok" : "warn") }, item.assigned ? String(item.assigned) : "not assigned yet"),
    el("td", {}, item.source), el("td", {}, item.tenant),
  ));
  return table([["Service"], ["Service port", "num"], ["Public port", "num"], ["Source"], ["Tenant"]], rows, "No Service asks for a public TCP port.");
}

function renderActivity() {
  const s = summary;
  if (!s) return el("p", { class: "empty" }, "Loading…");
  const reloads = s.reloads.recent.map((r) => el("tr", {},
    el("td", {}, ago(Math.max(0, s.now - r.at))), el("td", { class: "num" }, String(r.generation)),
    el("td", {}, r.path === "full" ? "full translation" : "endpoints only"),
    el("td", { class: r.outcome === "success" ? "ok" : r.outcome === "partial" ? "warn" : "bad" }, r.outcome),
    el("td", { class: "num" }, String(r.errors)), el("td", { class: "num" }, String(r.warnings)),
    el("td", { class: "num" }, r.elapsedMs.toFixed(1)),
  ));
  const sources = s.sources.map((source) => el("tr", {},
    el("td", { class: "mono" }, source.source), el("td", { class: source.up ? "ok" : "bad" }, source.up ? "up" : "down"),
    el("td", {}, source.synced ? "yes" : "no"), el("td", { class: "num" }, String(source.objects)),
    el("td", { class: "num" }, String(source.errors)), el("td", {}, source.lastError || ""),
  ));
  return el("div", {},
    el("h3", {}, `Reloads (${s.reloads.success} succeeded, ${s.reloads.partial} partial, ${s.reloads.failure} failed since start)`),
    table([["When"], ["Generation", "num"], ["Kind"], ["Outcome"], ["Errors", "num"], ["Warnings", "num"], ["ms", "num"]], reloads, "No reload yet."),
    el("h3", {}, "Sources"),
    table([["Source"], ["Connected"], ["Listed"], ["Objects", "num"], ["Errors", "num"], ["Last error"]], sources,
      "Manifest files and Docker report no connection state; Kubernetes watches appear here."));
}

function kv(pairs) {
  return el("dl", { class: "kv" }, pairs.flatMap(([key, value]) => [el("dt", {}, key), el("dd", {}, value)]));
}

function pathsTable(described) {
  const entries = (described.paths || []).slice();
  if (described.fallback) entries.push(Object.assign({ match: "default", path: "(anything else)" }, described.fallback));
  const rows = entries.map((p) => {
    const targets = p.backends || [p];
    return el("tr", {},
      el("td", {}, p.match || ""), el("td", { class: "mono" }, p.path || ""),
      el("td", { class: "mono" }, p.route || ""),
      el("td", { class: "mono" }, p.respond ? `answers ${p.respond}` : targets.map((t) => t.backend || t.external || "").join(", ")),
      el("td", { class: p.unavailable ? "bad" : "mono" }, p.unavailable ? `no ready endpoint (answers ${p.unavailable})`
        : targets.map((t) => (t.endpoints || []).join(", ") || t.external || "").join(" · ") || "–"),
      el("td", {}, p.plainHttp || ""),
    );
  });
  return table([["Match"], ["Path"], ["Route"], ["Backend"], ["Endpoints"], ["Plain HTTP"]], rows, "No paths.");
}

function renderDetail(d) {
  const close = el("button", { type: "button" }, "Close");
  close.addEventListener("click", () => go({ host: "", listener: "" }));
  const objects = d.objectDetails.map((o) => el("div", { class: "object" },
    el("h3", {}, objectText(o.object)),
    kv([["from", `${o.source || "–"} (${originText(o.origin)})`], ["tenant / namespace", o.tenant], ["status", statusText(o.status)]]),
    o.issues.length
      ? table([["Severity"], ["Field"], ["Message"]], o.issues.map((i) => el("tr", {},
        el("td", { class: i.severity === "error" ? "bad" : "warn" }, i.severity), el("td", { class: "mono" }, i.field || "–"), el("td", {}, i.message))), "")
      : el("p", { class: "ok" }, "No problems."),
  ));
  const certificates = d.certificates.map((c) => el("tr", {}, el("td", {}, `Secret ${c.secret}`), el("td", { class: "mono" }, c.hosts.join(", ")), expiry(c.notAfter)));
  const requests = d.routeRequests.map((r) => el("tr", {}, el("td", { class: "mono" }, r.route),
    el("td", { class: "num" }, r.requests.toLocaleString("en")), el("td", { class: "num" }, r.serverErrors.toLocaleString("en"))));
  $("detail").replaceChildren(
    el("div", { class: "detail-head" }, el("h2", {}, d.host), close),
    kv([["listener", d.listener === "http" ? "HTTP/HTTPS" : d.listener], ["source", d.source || "–"], ["tenant / namespace", d.tenant || "–"],
      ["TLS", d.tls ? "yes" : "no"], ["requests since start", `${d.requests.toLocaleString("en")} (${d.serverErrors.toLocaleString("en")} answered 5xx)`]]),
    el("h3", {}, "Paths, backends and endpoints"), pathsTable(d.table),
    el("h3", {}, "Objects, their status and problems"),
    ...(objects.length ? objects : [el("p", { class: "muted" }, "No object known for this host.")]),
    el("h3", {}, "Certificates"), table([["From"], ["Hosts"], ["Expires"]], certificates, "No certificate: served over plain HTTP only."),
    el("h3", {}, "Requests per route"), table([["Route"], ["Requests", "num"], ["5xx", "num"]], requests, "No routes."),
  );
  const opened = $("detail").hidden || $("detail").dataset.host !== d.host;
  $("detail").dataset.host = d.host;
  $("detail").hidden = false;
  if (opened) $("detail").scrollIntoView({ block: "start" });
}

async function refresh() {
  const v = view();
  const tab = TABS[v.tab];
  const mine = ++loading;
  for (const link of document.querySelectorAll("#tabs a")) link.classList.toggle("current", link.dataset.tab === v.tab);
  $("q").placeholder = tab.placeholder || "";
  $("controls").hidden = !tab.api;
  $("source").hidden = !tab.filters;
  $("tenant").hidden = !tab.filters;
  $("problems").parentElement.hidden = !tab.problems;
  if (document.activeElement !== $("q")) $("q").value = v.q;
  $("problems").checked = v.problems;
  $("hint").textContent = tab.hint;
  try {
    renderSummary(await getJson("/api/dashboard/summary"));
    let page = null;
    if (tab.api) page = await getJson(`/api/dashboard/${tab.api}?${query(v)}`);
    let detail = null;
    if (v.tab === "routes" && v.host) {
      detail = await getJson(`/api/dashboard/host?${new URLSearchParams({ host: v.host, listener: v.listener })}`).catch(() => null);
    }
    if (mine !== loading) return; // a newer view was asked for meanwhile
    $("load-error").hidden = true;
    const render = { routes: renderHosts, objects: renderObjects, issues: renderIssues, certificates: renderCertificates,
      domains: renderDomains, tcp: renderTcp, activity: renderActivity }[v.tab];
    $("list").replaceChildren(render(page, v));
    $("pager").hidden = !page;
    if (page) {
      const first = page.total ? page.offset + 1 : 0;
      const last = Math.min(page.offset + page.items.length, page.total);
      $("range").textContent = `${first.toLocaleString("en")}–${last.toLocaleString("en")} of ${plural(page.total, "item")}` +
        ` · page ${Math.floor(page.offset / PAGE_SIZE) + 1} of ${Math.max(1, Math.ceil(page.total / PAGE_SIZE))}`;
      $("prev").disabled = page.offset === 0;
      $("next").disabled = page.offset + page.items.length >= page.total;
    }
    if (detail) renderDetail(detail);
    else {
      $("detail").hidden = true;
      if (v.tab === "routes" && v.host) {
        $("detail").replaceChildren(el("p", { class: "bad" }, `No host ${v.host} in the current configuration.`));
        $("detail").hidden = false;
      }
    }
    document.body.dataset.loaded = String(mine);
  } catch (error) {
    if (mine !== loading) return;
    $("load-error").textContent = `Could not load the dashboard's data: ${error.message}`;
    $("load-error").hidden = false;
  }
}

function schedule() {
  clearInterval(timer);
  if ($("live").checked) timer = setInterval(() => { if (!document.hidden) refresh(); }, REFRESH_MS);
}

document.addEventListener("DOMContentLoaded", () => {
  let typing = null;
  $("q").addEventListener("input", () => {
    clearTimeout(typing);
    typing = setTimeout(() => go({ q: $("q").value.trim(), offset: 0, host: "", listener: "" }), 200);
  });
  $("source").addEventListener("change", () => go({ source: $("source").value, offset: 0 }));
  $("tenant").addEventListener("change", () => go({ tenant: $("tenant").value, offset: 0 }));
  $("problems").addEventListener("change", () => go({ problems: $("problems").checked, offset: 0 }));
  $("prev").addEventListener("click", () => go({ offset: Math.max(0, view().offset - PAGE_SIZE) }));
  $("next").addEventListener("click", () => go({ offset: view().offset + PAGE_SIZE }));
  for (const link of document.querySelectorAll("#tabs a")) {
    link.addEventListener("click", (event) => {
      event.preventDefault();
      go({ tab: link.dataset.tab, q: "", offset: 0, host: "", listener: "", problems: false, source: "", tenant: "" });
    });
  }
  $("live").addEventListener("change", schedule);
  window.addEventListener("hashchange", refresh);
  refresh();
  schedule();
});
