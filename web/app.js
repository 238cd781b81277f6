// devenv's status page: live state over Server-Sent Events, every resource's logs together
// or one resource's, its history, and trigger buttons. No framework, no build step. A trigger
// is signed by the session cookie the sign-in address set (HttpOnly: this script never sees
// a credential).
"use strict";
const $ = (id) => document.getElementById(id);
const el = (tag, cls, text) => {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text != null) e.textContent = text;
  return e;
};

let status = null;
let receivedAt = 0;
let view = "all"; // "all", "one" (the selected resource's logs) or "history"
let selected = null;
let cursor = null;
const rows = new Map();
let rowNames = "";

// ---- time and text ----

function dur(ms) {
  if (ms == null) return "";
  return ms < 1000 ? `${ms} ms` : ms < 60000 ? `${(ms / 1000).toFixed(1)}s` : `${Math.floor(ms / 60000)}m${Math.round((ms % 60000) / 1000)}s`;
}

// Milliseconds of engine time now (the snapshot's time plus what passed since it came).
function engineNow() {
  return status ? status.at_ms + (Date.now() - receivedAt) : 0;
}

function ago(at) {
  if (at == null) return "";
  const s = Math.max(0, Math.round((engineNow() - at) / 1000));
  return s < 60 ? `${s}s ago` : s < 3600 ? `${Math.floor(s / 60)}m ago` : `${Math.floor(s / 3600)}h ago`;
}

function firstLines(text, n) {
  return text.split("\n").filter((l) => l.trim()).slice(0, n).join("\n");
}

function strip(text) {
  // ANSI colour codes are removed: the text stays readable without them.
  return text.replace(/\x1b\[[0-9;?]*[A-Za-z]/g, "");
}

function colour(name) {
  let h = 0;
  for (const c of name) h = (h * 31 + c.charCodeAt(0)) >>> 0;
  return `c${h % 6}`;
}

// ---- the overview ----

// What a resource shows is the engine's `display` (the terminal and `devenv status` show the
// same); these say which of them are busy and which are failures.
const BUSY = ["pending", "building", "running", "syncing", "deploying", "waiting"];

function inError(r) {
  return r.display === "error" || r.display === "blocked";
}

function idle(r) {
  return r.display === "idle";
}

function lastOf(r, kinds) {
  const h = r.history || [];
  for (let i = h.length - 1; i >= 0; i--) if (kinds.includes(h[i].kind)) return h[i];
  return null;
}

function updateText(r) {
  const parts = [];
  if (r.kind === "local") {
    const run = lastOf(r, ["run"]);
    if (run) parts.push(run.error ? `run failed after ${dur(run.took_ms)}` : `ran in ${dur(run.took_ms)}`);
  } else {
    const b = lastOf(r, ["build"]);
    if (b) parts.push(b.error ? `build failed after ${dur(b.took_ms)}` : `built in ${dur(b.took_ms)}`);
    if (r.last_sync) parts.push(`live update: ${r.last_sync}`);
    const d = lastOf(r, ["deploy"]);
    if (d) parts.push(d.error ? "deploy failed" : `deployed in ${dur(d.took_ms)}`);
  }
  if (r.updated_at_ms != null) parts.push(ago(r.updated_at_ms));
  return parts.join(" · ") || "-";
}

function makeRow(r) {
  const tr = el("tr");
  tr.tabIndex = 0;
  tr.dataset.name = r.name;
  const name = el("td", "name");
  const title = el("div", "title");
  title.append(el("strong", null, r.name));
  if (r.kind === "local") title.append(el("span", "tag", "local"));
  if (r.manual) title.append(el("span", "tag", "manual"));
  const badge = el("span", "tag waiting-changes", "changes waiting");
  title.append(badge);
  const why = el("div", "why");
  const err = el("div", "err");
  const warn = el("div", "warn-text");
  name.append(title, why, err, warn);
  const stc = el("td");
  const st = el("span", "st");
  stc.append(st);
  const upd = el("td", "upd");
  const pods = el("td", "pods");
  const links = el("td", "links");
  const act = el("td", "act");
  const btn = el("button", "trigger", "Trigger");
  btn.type = "button";
  act.append(btn);
  tr.append(name, stc, upd, pods, links, act);
  btn.addEventListener("click", (e) => { e.stopPropagation(); trigger(r.name, btn); });
  tr.addEventListener("click", (e) => { if (!e.target.closest("a")) select(r.name); });
  tr.addEventListener("focus", () => setCursor(r.name, false));
  return { tr, badge, why, err, warn, st, upd, pods, links, btn, linkKey: "", whyKey: "" };
}

function fillRow(row, r) {
  const bad = inError(r);
  row.st.textContent = r.display;
  row.st.className = `st s-${r.display}`;
  row.tr.classList.toggle("bad", bad);
  row.tr.classList.toggle("selected", r.name === selected);
  row.tr.classList.toggle("cursor", r.name === cursor);
  row.badge.hidden = !(r.manual && r.changed_since_build);
  const whyKey = JSON.stringify([r.held, r.held_by, idle(r)]);
  if (whyKey !== row.whyKey) {
    row.whyKey = whyKey;
    row.why.replaceChildren();
    if (r.held && r.held_by && rows.has(r.held_by)) {
      // What it waits for is a link to that resource.
      const a = el("a", "held-by", r.held);
      a.href = "#";
      a.dataset.target = r.held_by;
      a.addEventListener("click", (e) => {
        e.preventDefault();
        select(r.held_by);
        setCursor(r.held_by, true);
      });
      row.why.append(a);
    } else {
      row.why.textContent = r.held || (idle(r) ? "runs when you trigger it" : "");
    }
  }
  // Errors up front: the first lines, with no click (the whole one is in the panel).
  const showErr = r.last_error && (bad || r.status === "waiting");
  row.err.textContent = showErr ? firstLines(r.last_error, 3) : "";
  row.warn.textContent = r.warning ? firstLines(r.warning, 1) : "";
  row.upd.textContent = updateText(r);
  row.pods.title = (r.pod_names || []).join("\n");
  row.pods.textContent = r.pods ? `${r.pods.ready}/${r.pods.total}${r.pods.restarts ? ` · ${r.pods.restarts} restart${r.pods.restarts === 1 ? "" : "s"}` : ""}` : "";
  const key = JSON.stringify([r.port_forwards, r.links, r.urls]);
  if (key !== row.linkKey) {
    row.linkKey = key;
    row.links.replaceChildren();
    for (const pf of r.port_forwards) {
      const a = el("a", null, `localhost:${pf.split(":")[0]}`);
      a.href = `http://127.0.0.1:${pf.split(":")[0]}/`;
      a.title = `forwards to port ${pf.split(":")[1]}`;
      row.links.append(a, " ");
    }
    for (const l of r.links) {
      const a = el("a", null, l.replace(/^https?:\/\//, ""));
      a.href = l;
      row.links.append(a, " ");
    }
    // The cluster's own addresses of it (NodePort, LoadBalancer), once it is followed.
    for (const u of (r.urls || []).filter((u) => !u.startsWith("http://127.0.0.1:") && !r.links.includes(u))) {
      const a = el("a", "node-url", u.replace(/^https?:\/\//, ""));
      a.href = u;
      a.title = "the Service's address on the cluster's node";
      row.links.append(a, " ");
    }
  }
  row.btn.classList.toggle("due", !row.badge.hidden);
  row.btn.title = r.kind === "local" ? `run ${r.name} now` : `rebuild and redeploy ${r.name} now`;
}

function renderTable() {
  const names = status.resources.map((r) => r.name).join("\n");
  const body = document.querySelector("#resources tbody");
  if (names !== rowNames) {
    rowNames = names;
    rows.clear();
    body.replaceChildren();
    for (const r of status.resources) {
      const row = makeRow(r);
      rows.set(r.name, row);
      body.append(row.tr);
    }
  }
  for (const r of status.resources) fillRow(rows.get(r.name), r);
}

// The worst status: in the banner, the title and the favicon, so a tab in the background
// tells the user.
function renderSummary() {
  const h = status.header;
  const bad = status.resources.filter(inError);
  const steps = status.steps || [];
  const stepFailed = steps.filter((s) => s.status === "failed");
  const busy = status.resources.some((r) => BUSY.includes(r.display))
    || steps.some((s) => ["pending", "running"].includes(s.status));
  const stopped = Object.entries(status.stopped_parts || {});
  const errors = bad.length + stepFailed.length + (status.config_error ? 1 : 0) + stopped.length;
  const banner = $("banner");
  banner.hidden = errors === 0;
  const said = [];
  if (bad.length) said.push(`${bad.length} resource${bad.length === 1 ? "" : "s"} in error: ${bad.map((r) => r.name).join(", ")}`);
  for (const s of stepFailed) said.push(`${s.name} failed: ${s.message ?? ""}`);
  if (status.config_error) said.push("the last edit of the config was not taken");
  for (const [part, why] of stopped) said.push(`${part} stopped: ${why}`);
  banner.textContent = said.join(" · ");
  const worst = errors ? "error" : busy ? "busy" : "ok";
  const word = errors ? `✖ ${errors} error${errors === 1 ? "" : "s"}` : busy ? "● updating" : "✔ ready";
  document.title = `${word} · ${h.project} — devenv`;
  document.body.dataset.worst = worst;
  const fill = { error: "#cf222e", busy: "#bf8700", ok: "#1a7f37" }[worst];
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16"><circle cx="8" cy="8" r="7" fill="${fill}"/></svg>`;
  $("favicon").href = `data:image/svg+xml,${encodeURIComponent(svg)}`;
}

let stepsOpen = null;

function renderSteps() {
  const steps = status.steps || [];
  const part = (name, s) => {
    if (!s || s.status === "skipped") return null;
    const took = s.took_ms != null ? ` (${dur(s.took_ms)})` : "";
    const what = { pending: "waiting", running: s.message ? `${s.message}…` : "running…", done: `done${took}`, failed: `failed: ${s.message ?? ""}` }[s.status] ?? s.status;
    return `${name}: ${what}`;
  };
  const shown = steps.filter((s) => s.status !== "skipped").map((s) => [s.name, s]);
  $("bringup").hidden = shown.length === 0;
  $("steps").textContent = shown.map(([n, s]) => part(n, s)).join(" · ");
  const list = $("step-list");
  list.replaceChildren();
  for (const [n, s] of shown) {
    const li = el("li", `step s-${s.status}`, part(n, s));
    if (s.notes && s.notes.length) {
      const ol = el("ol");
      for (const [at, m] of s.notes) ol.append(el("li", null, `${dur(at)}  ${m}`));
      li.append(ol);
    }
    list.append(li);
  }
  // Open while bring-up runs or failed; closed once it is done (the user may open it).
  const going = shown.some(([, s]) => s.status !== "done");
  if (going !== stepsOpen) {
    stepsOpen = going;
    $("bringup").open = going;
  }
  const doctor = steps.find((s) => s.name === "doctor");
  const d = doctor && doctor.status;
  if ((d === "done" || d === "failed") && doctorShown !== d) {
    doctorShown = d;
    loadDoctor();
  }
}

function render() {
  if (!status) return;
  const h = status.header;
  $("project").textContent = `devenv · ${h.project}`;
  $("cluster").textContent = h.provider === "none"
    ? "local resources only (no cluster)"
    : `${h.provider} profile ${h.profile ?? "-"} · context ${h.context ?? "-"} · ${h.cpus ?? "?"} CPUs, ${h.memory_mb ?? "?"} MB`;
  renderSteps();
  const ce = $("config-error");
  ce.hidden = !status.config_error;
  ce.textContent = status.config_error ? `${status.config_error}\nEverything keeps running as it was; a fixed file is read again.` : "";
  // What the session did that is no resource's: the latest, the rest on hover.
  const notes = status.notes || [];
  const n = $("notes");
  n.hidden = notes.length === 0;
  const told = (x) => `${dur(x.at_ms)}  ${x.kind} ${x.text}`;
  n.textContent = notes.length ? told(notes[notes.length - 1]) : "";
  n.title = notes.map(told).join("\n");
  renderTable();
  renderSummary();
  renderDetail();
  if (view === "history") renderHistory();
}

// ---- the panel: logs, one resource, its history ----

function current() {
  return status && selected ? status.resources.find((x) => x.name === selected) : null;
}

function renderDetail() {
  const r = current();
  if (selected && status && !r) { selected = null; if (view !== "all") showView("all"); }
  $("tab-one").hidden = !r;
  $("tab-history").hidden = !r;
  if (r) $("tab-one").textContent = `${r.name} logs`;
  for (const [id, v] of [["tab-all", "all"], ["tab-one", "one"], ["tab-history", "history"]]) {
    $(id).setAttribute("aria-selected", String(view === v));
  }
  $("detail").hidden = !r || view === "all";
  if (!r) return;
  const err = $("error");
  err.hidden = !r.last_error;
  err.textContent = r.last_error ? `${r.status === "error" ? "Error" : "Last problem"}: ${r.last_error}` : "";
  const warn = $("warning");
  warn.hidden = !r.warning;
  warn.textContent = r.warning ? `Warning: ${r.warning}` : "";
  const pods = r.pod_names || [];
  $("pod-names").hidden = !pods.length;
  $("pod-names").textContent = pods.length ? `Pods: ${pods.join(", ")}${r.pods && r.pods.total > pods.length ? ` and ${r.pods.total - pods.length} more` : ""}` : "";
  $("held").hidden = !r.held;
  $("held").textContent = r.held ? `Held: ${r.held}` : "";
}

function renderHistory() {
  const r = current();
  const body = document.querySelector("#history tbody");
  body.replaceChildren();
  if (!r) return;
  const h = (r.history || []).slice().reverse();
  if (!h.length) {
    const tr = el("tr");
    const td = el("td", "muted", "nothing yet");
    td.colSpan = 5;
    tr.append(td);
    body.append(tr);
  }
  for (const e of h) {
    const tr = el("tr", e.error ? "h-err" : "h-ok");
    tr.dataset.kind = e.kind;
    tr.append(
      el("td", null, ago(e.started_ms)),
      el("td", null, e.image ? `${e.kind} ${e.image}` : e.kind),
      el("td", null, e.trigger),
      el("td", null, dur(e.took_ms)),
      el("td", "result", e.error ? `failed: ${e.error}` : "ok"),
    );
    body.append(tr);
  }
}

function showView(v) {
  view = v;
  $("logs-view").hidden = v === "history";
  $("history-view").hidden = v !== "history";
  $("panel-title").textContent = v === "history" ? "History" : "Logs";
  if (v !== "history") openLogs();
  render();
}

function select(name) {
  selected = name;
  setCursor(name, false);
  showView("one");
}

function setCursor(name, focus) {
  cursor = name;
  for (const [n, row] of rows) row.tr.classList.toggle("cursor", n === name);
  if (focus && rows.has(name)) rows.get(name).tr.focus();
}

// ---- logs ----

let logSource = null;
let lines = [];
let pending = [];
let flushTimer = null;

const limit = () => Number($("limit").value);

function matches(l, f) {
  return !f || `${l.resource ?? ""} ${l.source} ${l.verb ?? ""} ${l.text}`.toLowerCase().includes(f);
}

function clock(ms) {
  const d = new Date(ms);
  return `${d.toTimeString().slice(0, 8)}.${String(d.getMilliseconds()).padStart(3, "0")}`;
}

function lineEl(l) {
  const d = el("div", "ln");
  d.append(el("span", "ts", clock(l.time_ms)));
  if (l.resource) d.append(el("span", `res ${colour(l.resource)}`, l.resource));
  d.append(el("span", `src src-${l.source.split("/")[0]}`, l.source));
  // devenv's own account of what it did: its verb first, as the terminal says it.
  if (l.verb) d.append(el("span", `verb verb-${l.verb}`, l.verb), document.createTextNode(" "));
  d.append(document.createTextNode(strip(l.text)));
  return d;
}

function rebuildLog() {
  const f = $("filter").value.toLowerCase();
  const frag = document.createDocumentFragment();
  for (const l of lines) if (matches(l, f)) frag.append(lineEl(l));
  $("log").replaceChildren(frag);
  afterLog();
}

function afterLog() {
  const log = $("log");
  $("log-count").textContent = `${log.childElementCount} of ${lines.length} lines shown`;
  if ($("follow").checked) log.scrollTop = log.scrollHeight;
}

// New lines go to the page in batches, at most the line limit (a chatty resource cannot
// slow it down).
function flush() {
  flushTimer = null;
  const max = limit();
  const batch = pending.length > max ? pending.slice(pending.length - max) : pending;
  pending = [];
  lines = lines.concat(batch);
  if (lines.length > max) lines = lines.slice(lines.length - max);
  const log = $("log");
  if (batch.length >= max) return rebuildLog();
  const f = $("filter").value.toLowerCase();
  const frag = document.createDocumentFragment();
  for (const l of batch) if (matches(l, f)) frag.append(lineEl(l));
  log.append(frag);
  let extra = log.childElementCount - max;
  while (extra-- > 0) log.firstChild.remove();
  afterLog();
}

function openLogs() {
  if (logSource) logSource.close();
  lines = [];
  pending = [];
  $("log").replaceChildren();
  $("log").classList.toggle("all", view === "all");
  const url = view === "all" || !selected ? "/api/logs" : `/api/logs/${encodeURIComponent(selected)}`;
  logSource = new EventSource(`${url}?tail=${limit()}&follow=1`);
  logSource.addEventListener("log", (e) => {
    pending.push(JSON.parse(e.data));
    if (pending.length > 2 * limit()) pending.splice(0, pending.length - limit());
    if (!flushTimer) flushTimer = setTimeout(flush, 50);
  });
}

$("filter").addEventListener("input", rebuildLog);
$("follow").addEventListener("change", afterLog);
// Scrolling up to read pauses following; back at the end, it follows again.
$("log").addEventListener("scroll", () => {
  const log = $("log");
  const atEnd = log.scrollHeight - log.scrollTop - log.clientHeight < 4;
  if ($("follow").checked !== atEnd) $("follow").checked = atEnd;
});
$("stamps").addEventListener("change", () => $("log").classList.toggle("stamps", $("stamps").checked));
$("limit").addEventListener("change", () => {
  if (lines.length > limit()) lines = lines.slice(lines.length - limit());
  rebuildLog();
});
$("tab-all").addEventListener("click", () => showView("all"));
$("tab-one").addEventListener("click", () => showView("one"));
$("tab-history").addEventListener("click", () => showView("history"));

// ---- trigger, keys, connection ----

async function trigger(name, btn) {
  if (btn) btn.disabled = true;
  try {
    const r = await fetch(`/api/trigger/${encodeURIComponent(name)}`, { method: "POST", credentials: "same-origin" });
    $("conn").textContent = r.ok ? `triggered ${name}` : `trigger failed: ${(await r.json()).error}`;
  } catch (e) {
    $("conn").textContent = `trigger failed: ${e.message}`;
  } finally {
    if (btn) btn.disabled = false;
  }
}

document.addEventListener("keydown", (e) => {
  const t = e.target;
  if (t.closest && t.closest("input, select, textarea, button, a, summary")) {
    if (e.key === "Escape" && t.blur) t.blur();
    return;
  }
  if (e.ctrlKey || e.metaKey || e.altKey || !status) return;
  const names = status.resources.map((r) => r.name);
  const at = names.indexOf(cursor ?? selected);
  switch (e.key) {
    case "j": case "ArrowDown":
      setCursor(names[Math.min(names.length - 1, at + 1)], true); break;
    case "k": case "ArrowUp":
      setCursor(names[Math.max(0, at - 1)], true); break;
    case "Enter":
      if (cursor) select(cursor); break;
    case "t":
      if (cursor ?? selected) trigger(cursor ?? selected, rows.get(cursor ?? selected)?.btn); break;
    case "/":
      $("filter").focus(); break;
    case "Escape":
      showView("all"); break;
    default:
      return;
  }
  e.preventDefault();
});

let doctorShown = null;

function loadDoctor() {
  fetch("/api/doctor").then((r) => r.json()).then((d) => {
    if (d && d.summary) $("doctor").textContent = `doctor: ${d.summary.ok} ok, ${d.summary.warn} warnings, ${d.summary.fail} failed`;
  }).catch(() => {});
}

function connect() {
  const es = new EventSource("/api/events");
  es.addEventListener("status", (e) => {
    status = JSON.parse(e.data);
    receivedAt = Date.now();
    $("conn").textContent = "";
    render();
  });
  es.onerror = () => { $("conn").textContent = "connection lost; reconnecting…"; };
}

// Ages move on between events.
setInterval(() => { if (status) { renderTable(); if (view === "history") renderHistory(); } }, 5000);
loadDoctor();
showView("all");
connect();
