// The sluice dashboard page. The server pushes a "change" event whenever its
// watches see a change; the page then reads the runs, redraws the selected
// run's graph, and refreshes the open task's details. Nothing here polls.
"use strict";

const state = { runs: [], run: "", task: "", version: 0 };

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") e.className = v;
    else if (k.startsWith("data-")) e.setAttribute(k, v);
    else e[k] = v;
  }
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return e;
}

async function getJSON(url) {
  const r = await fetch(url);
  if (!r.ok) throw new Error(url + ": " + (await r.text()));
  return r.json();
}

function readHash() {
  const p = new URLSearchParams(location.hash.slice(1));
  state.run = p.get("run") || "";
  state.task = p.get("task") || "";
}

function writeHash() {
  const p = new URLSearchParams();
  if (state.run) p.set("run", state.run);
  if (state.task) p.set("task", state.task);
  history.replaceState(null, "", "#" + p.toString());
}

function phases(r) {
  return Object.entries(r.phases || {}).map(([p, n]) => n + " " + p).join(", ");
}

function renderRuns() {
  const body = document.querySelector("#runs tbody");
  body.replaceChildren();
  document.getElementById("no-runs").hidden = state.runs.length > 0;
  for (const r of state.runs) {
    const tr = el("tr", { "data-run": r.run, class: r.run === state.run ? "selected" : "" },
      el("td", {}, r.run), el("td", {}, r.pipeline),
      el("td", { class: "outcome-" + r.outcome }, r.outcome),
      el("td", {}, phases(r)), el("td", {}, r.started ? new Date(r.started).toLocaleTimeString() : "-"),
      el("td", {}, r.duration || "-"));
    tr.onclick = () => { state.run = r.run; state.task = ""; writeHash(); refresh(); };
    body.append(tr);
  }
}

async function renderGraph() {
  const box = document.getElementById("graph");
  if (!state.run) { box.replaceChildren(); return; }
  const r = await fetch("api/runs/" + encodeURIComponent(state.run) + "/graph.svg");
  if (!r.ok) { box.textContent = await r.text(); return; }
  const started = performance.now();
  box.innerHTML = await r.text();
  for (const g of box.querySelectorAll("g.task")) {
    if (g.dataset.task === state.task) g.classList.add("selected");
  }
  box.dataset.run = state.run;
  box.dataset.drawMs = (performance.now() - started).toFixed(1);
  document.getElementById("graph-title").textContent = "Graph of run " + state.run;
}

async function renderTask() {
  const panel = document.getElementById("task-panel");
  if (!state.run || !state.task) { panel.hidden = true; return; }
  let d;
  try {
    d = await getJSON("api/runs/" + encodeURIComponent(state.run) + "/tasks/" + encodeURIComponent(state.task));
  } catch (e) {
    panel.hidden = true;
    return;
  }
  panel.hidden = false;
  panel.dataset.task = state.task;
  const t = d.task;
  document.getElementById("task-title").textContent = "Step " + t.task + (t.attempt ? " (attempt " + t.attempt + ")" : "");
  const facts = document.getElementById("task-facts");
  facts.replaceChildren();
  for (const [k, v] of [["phase", t.phase], ["kind", t.kind], ["node", t.node], ["started", t.started], ["duration", t.duration], ["reason", t.reason]]) {
    facts.append(el("dt", {}, k), el("dd", { "data-fact": k }, v || "-"));
  }
  const results = document.querySelector("#task-results tbody");
  results.replaceChildren();
  for (const [k, v] of Object.entries(t.results || {})) results.append(el("tr", {}, el("td", {}, k), el("td", {}, JSON.stringify(v))));
  if (!results.children.length) results.append(el("tr", {}, el("td", {}, "none")));
  const events = document.querySelector("#task-events tbody");
  events.replaceChildren();
  for (const e of d.events || []) {
    events.append(el("tr", {}, el("td", {}, e.type), el("td", {}, e.reason), el("td", {}, e.message), el("td", {}, e.last || "-")));
  }
  document.getElementById("task-log").textContent = d.log || d.logError || "";
}

// seconds reads a Go duration ("1h2m3.5s", "850ms") as seconds.
function seconds(d) {
  if (!d) return NaN;
  const units = { h: 3600, m: 60, s: 1, ms: 0.001, "µs": 1e-6, us: 1e-6, ns: 1e-9 };
  let total = 0, any = false;
  for (const m of d.matchAll(/([0-9.]+)(ms|µs|us|ns|h|m|s)/g)) { total += parseFloat(m[1]) * units[m[2]]; any = true; }
  return any ? total : NaN;
}

function renderCompare() {
  const current = state.runs.find(r => r.run === state.run);
  const head = document.querySelector("#compare thead"), body = document.querySelector("#compare tbody");
  const plots = document.getElementById("plots");
  head.replaceChildren(); body.replaceChildren(); plots.replaceChildren();
  if (!current) return;
  const runs = state.runs.filter(r => r.pipeline === current.pipeline && r.namespace === current.namespace)
    .sort((a, b) => (a.started || "").localeCompare(b.started || ""));
  document.getElementById("compare-title").textContent = "Runs of pipeline " + current.pipeline + " compared";
  const keys = [];
  for (const r of runs) for (const t of r.tasks || []) for (const k of Object.keys(t.results || {})) {
    const key = t.task + "." + k;
    if (!keys.includes(key)) keys.push(key);
  }
  const value = (r, key) => {
    const dot = key.indexOf(".");
    const t = (r.tasks || []).find(t => t.task === key.slice(0, dot));
    return t && t.results ? t.results[key.slice(dot + 1)] : undefined;
  };
  head.append(el("tr", {}, el("th", {}, "run"), el("th", {}, "outcome"), el("th", {}, "duration"), ...keys.map(k => el("th", {}, k))));
  for (const r of runs) {
    body.append(el("tr", { "data-run": r.run, class: r.run === state.run ? "selected" : "" },
      el("td", {}, r.run), el("td", { class: "outcome-" + r.outcome }, r.outcome), el("td", {}, r.duration || "-"),
      ...keys.map(k => { const v = value(r, k); return el("td", {}, v === undefined ? "-" : JSON.stringify(v)); })));
  }
  const series = [["duration (s)", r => seconds(r.duration)], ...keys.map(k => [k, r => value(r, k)])];
  for (const [name, get] of series) {
    const points = runs.map(r => ({ run: r.run, v: get(r) })).filter(p => typeof p.v === "number" && isFinite(p.v));
    if (points.length) plots.append(plot(name, points));
  }
}

// plot draws one key's values across runs, oldest first.
function plot(name, points) {
  const W = 320, H = 180, L = 48, R = 12, T = 24, B = 36;
  const ns = "http://www.w3.org/2000/svg";
  const s = document.createElementNS(ns, "svg");
  s.setAttribute("class", "plot"); s.setAttribute("width", W); s.setAttribute("height", H);
  s.setAttribute("data-key", name);
  const add = (tag, attrs, text) => {
    const e = document.createElementNS(ns, tag);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
    if (text !== undefined) e.textContent = text;
    s.append(e);
    return e;
  };
  let lo = Math.min(...points.map(p => p.v)), hi = Math.max(...points.map(p => p.v));
  if (lo === hi) { lo -= Math.abs(lo) * 0.1 || 1; hi += Math.abs(hi) * 0.1 || 1; }
  const x = i => points.length === 1 ? (L + W - R) / 2 : L + i * (W - L - R) / (points.length - 1);
  const y = v => T + (hi - v) * (H - T - B) / (hi - lo);
  add("text", { x: 4, y: 14, "font-size": 12, "font-weight": "bold" }, name);
  add("line", { x1: L, y1: T, x2: L, y2: H - B, stroke: "#999" });
  add("line", { x1: L, y1: H - B, x2: W - R, y2: H - B, stroke: "#999" });
  add("text", { x: L - 4, y: T + 4, "font-size": 10, "text-anchor": "end" }, +hi.toPrecision(3));
  add("text", { x: L - 4, y: H - B, "font-size": 10, "text-anchor": "end" }, +lo.toPrecision(3));
  add("polyline", { points: points.map((p, i) => x(i) + "," + y(p.v)).join(" "), fill: "none", stroke: "#1565c0", "stroke-width": 2 });
  points.forEach((p, i) => {
    const c = add("circle", { class: "point", cx: x(i), cy: y(p.v), r: 4, fill: "#1565c0", "data-run": p.run, "data-value": p.v });
    const title = document.createElementNS(ns, "title");
    title.textContent = p.run + ": " + p.v;
    c.append(title);
    add("text", { x: x(i), y: H - B + 14, "font-size": 10, "text-anchor": "middle" }, p.run);
  });
  return s;
}

let refreshing = null, again = false;

// refresh reads everything the page shows; changes that come while it
// reads make it read once more, not once per change.
async function refresh() {
  if (refreshing) { again = true; return refreshing; }
  refreshing = (async () => {
    do {
      again = false;
      try {
        state.runs = await getJSON("api/runs");
        if (!state.run && state.runs.length) {
          state.run = state.runs.reduce((a, b) => ((a.started || "") > (b.started || "") ? a : b)).run;
          writeHash();
        }
        renderRuns();
        await renderGraph();
        renderCompare();
        await renderTask();
        state.version++;
        document.body.dataset.version = state.version;
      } catch (e) {
        document.getElementById("live").textContent = "error: " + e.message;
      }
    } while (again);
    refreshing = null;
  })();
  return refreshing;
}

document.getElementById("graph").addEventListener("click", ev => {
  const g = ev.target.closest("g.task");
  if (!g) return;
  state.task = g.dataset.task;
  writeHash();
  for (const o of document.querySelectorAll("#graph g.task.selected")) o.classList.remove("selected");
  g.classList.add("selected");
  renderTask();
});

window.addEventListener("hashchange", () => { readHash(); refresh(); });

function connect() {
  const live = document.getElementById("live");
  const es = new EventSource("api/changes");
  es.addEventListener("change", () => { live.textContent = "live"; live.className = "live on"; refresh(); });
  es.onerror = () => { live.textContent = "reconnecting…"; live.className = "live off"; };
}

readHash();
fetch("api/runs").then(r => r.headers.get("X-Sluice-Namespace")).then(ns => {
  if (ns) document.getElementById("namespace").textContent = "namespace " + ns;
});
connect();
