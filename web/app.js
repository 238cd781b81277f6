// devenv's status page: live state over Server-Sent Events, logs of the selected resource,
// and the trigger button. No framework, no build step. A trigger is signed by the session
// cookie the sign-in address set (HttpOnly: this script never sees a credential).
"use strict";
const $ = (id) => document.getElementById(id);
let status = null;
let selected = null;
let logSource = null;
let logLines = [];

function age(ms) {
  if (ms == null) return "-";
  const s = Math.max(0, Math.round(ms / 1000));
  return s < 60 ? `${s}s ago` : s < 3600 ? `${Math.floor(s / 60)}m ago` : `${Math.floor(s / 3600)}h ago`;
}

function cell(tr, text, cls) {
  const td = document.createElement("td");
  td.textContent = text;
  if (cls) td.className = cls;
  tr.appendChild(td);
  return td;
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
  const body = document.querySelector("#resources tbody");
  body.replaceChildren();
  for (const r of status.resources) {
    const tr = document.createElement("tr");
    tr.tabIndex = 0;
    tr.dataset.name = r.name;
    if (r.name === selected) tr.classList.add("selected");
    const name = cell(tr, r.name);
    if (r.kind === "local") name.append(" (local)");
    if (r.warning) { name.classList.add("warn"); name.title = r.warning; }
    const st = cell(tr, r.held ? `${r.status}: ${r.held}` : (r.status ?? "-"), `status s-${r.blocked ? "error" : r.status}`);
    st.title = r.last_error ?? "";
    const build = cell(tr, r.last_sync ? `live ${r.last_sync.replace(/^synced /, "")}` : (r.build_ms != null ? `built ${(r.build_ms / 1000).toFixed(1)}s` : "-"));
    if (r.last_sync) build.title = r.last_sync;
    cell(tr, r.last_deploy_at_ms != null ? age(status.at_ms - r.last_deploy_at_ms) : "-");
    cell(tr, r.pods ? `${r.pods.ready}/${r.pods.total}${r.pods.restarts ? `, ${r.pods.restarts} restarts` : ""}` : "-");
    const ports = cell(tr, "");
    for (const pf of r.port_forwards) {
      const a = document.createElement("a");
      const local = pf.split(":")[0];
      a.href = `http://127.0.0.1:${local}/`;
      a.textContent = pf;
      ports.append(a, " ");
    }
    for (const l of r.links) {
      const a = document.createElement("a");
      a.href = l; a.textContent = "link";
      ports.append(a, " ");
    }
    tr.addEventListener("click", () => select(r.name));
    tr.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); select(r.name); } });
    body.appendChild(tr);
  }
  renderDetail();
}

let doctorShown = null;

function renderSteps() {
  const steps = status.steps || {};
  const part = (name, s) => {
    if (!s || s.status === "skipped") return null;
    const took = s.took_ms != null ? ` (${(s.took_ms / 1000).toFixed(1)}s)` : "";
    const what = { pending: "waiting", running: s.message ? `${s.message}…` : "running…", done: `done${took}`, failed: `failed: ${s.message ?? ""}` }[s.status] ?? s.status;
    return `${name}: ${what}`;
  };
  $("steps").textContent = [part("doctor", steps.doctor), part("cluster", steps.cluster)].filter(Boolean).join(" · ");
  const d = steps.doctor && steps.doctor.status;
  if ((d === "done" || d === "failed") && doctorShown !== d) {
    doctorShown = d;
    loadDoctor();
  }
}

function renderDetail() {
  const r = status && status.resources.find((x) => x.name === selected);
  $("detail").hidden = !r;
  if (!r) return;
  $("detail-title").textContent = `${r.name} — ${r.status}`;
  const err = $("error");
  err.hidden = !(r.status === "error" && r.last_error);
  err.textContent = r.last_error ? `Last error: ${r.last_error}` : "";
  const warn = $("warning");
  warn.hidden = !r.warning;
  warn.textContent = r.warning ? `Warning: ${r.warning}` : "";
  $("trigger").textContent = r.manual && r.changed_since_build ? "Trigger update (files changed)" : "Trigger update";
}

function strip(text) {
  // ANSI colour codes are removed: the text stays readable without them.
  return text.replace(/\x1b\[[0-9;?]*[A-Za-z]/g, "");
}

function renderLog() {
  const f = $("filter").value.toLowerCase();
  const shown = logLines.filter((l) => !f || l.toLowerCase().includes(f));
  const pre = $("log");
  pre.textContent = shown.join("\n");
  if ($("follow").checked) pre.scrollTop = pre.scrollHeight;
}

function select(name) {
  selected = name;
  if (logSource) logSource.close();
  logLines = [];
  renderLog();
  logSource = new EventSource(`/api/logs/${encodeURIComponent(name)}?tail=500&follow=1`);
  logSource.addEventListener("log", (e) => {
    const l = JSON.parse(e.data);
    logLines.push(`${l.source ? l.source + " " : ""}${strip(l.text)}`);
    if (logLines.length > 5000) logLines.splice(0, logLines.length - 5000);
    renderLog();
  });
  render();
}

$("filter").addEventListener("input", renderLog);
$("follow").addEventListener("change", renderLog);
$("trigger").addEventListener("click", async () => {
  if (!selected) return;
  const btn = $("trigger");
  btn.disabled = true;
  try {
    const r = await fetch(`/api/trigger/${encodeURIComponent(selected)}`, { method: "POST", credentials: "same-origin" });
    $("conn").textContent = r.ok ? `triggered ${selected}` : `trigger failed: ${(await r.json()).error}`;
  } finally {
    btn.disabled = false;
  }
});

function connect() {
  const es = new EventSource("/api/events");
  es.addEventListener("status", (e) => {
    status = JSON.parse(e.data);
    $("conn").textContent = "";
    render();
  });
  es.onerror = () => { $("conn").textContent = "connection lost; reconnecting…"; };
}

function loadDoctor() {
  fetch("/api/doctor").then((r) => r.json()).then((d) => {
    if (d && d.summary) $("doctor").textContent = `doctor: ${d.summary.ok} ok, ${d.summary.warn} warnings, ${d.summary.fail} failed`;
  }).catch(() => {});
}

loadDoctor();
connect();
