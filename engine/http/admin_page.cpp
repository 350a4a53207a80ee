#include "engine/http/admin_page.h"

#include "engine/http/console_page.h"

namespace ultracore::engine {

const std::string& adminPageHtml() {
  static const std::string kPage = R"HTML(<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>UltraCore console</title>
<style>
body { font: 14px system-ui, sans-serif; margin: 1.5em; color: #222; background: #f4f5f7; }
h1 { font-size: 1.3em; margin: 0 0 .2em; }
#meta { color: #666; margin-bottom: .8em; }
#error { display: none; color: #fff; background: #b22; padding: .6em .9em; border-radius: 6px; margin-bottom: 1em; font-weight: bold; }
#error.shown { display: block; }
#projections.stale { opacity: .45; }
.card { background: #fff; border: 1px solid #ddd; border-radius: 6px; padding: .8em 1em; margin-bottom: 1em; }
.card h2 { font-size: 1.15em; margin: 0 0 .4em; }
.state { display: inline-block; padding: .1em .5em; border-radius: 4px; color: #fff; font-size: .85em; vertical-align: middle; }
.state.running { background: #2a7; } .state.paused { background: #c80; } .state.waiting { background: #d60; }
.state.failed { background: #c22; } .state.stopped, .state.starting { background: #888; }
.state.rebuilding { background: #37c; }
.generation { color: #555; margin: .2em 0 .4em; } .generation b { color: #222; }
progress { width: 14em; vertical-align: middle; }
.detail { margin: .2em 0 .4em; color: #555; }
.detail.problem { color: #b22; font-weight: bold; }
.stats { display: flex; flex-wrap: wrap; gap: .4em 1.6em; margin: .3em 0 .5em; }
.stats span { color: #666; } .stats b { color: #222; font-size: 1.1em; } .stats b.bad { color: #c22; }
.body { display: flex; gap: 1.2em; flex-wrap: wrap; align-items: flex-start; }
table { border-collapse: collapse; font-variant-numeric: tabular-nums; }
td, th { padding: .15em .8em .15em 0; text-align: right; } th:first-child, td:first-child { text-align: left; }
th { color: #666; font-weight: normal; border-bottom: 1px solid #ddd; }
td.lagging { color: #c50; font-weight: bold; }
.charts { display: flex; gap: 1em; flex: 1 1 640px; flex-wrap: wrap; }
.chart { flex: 1 1 300px; min-width: 280px; } .chart .title { color: #555; font-size: .9em; }
.chart svg { display: block; width: 100%; height: auto; }
</style>
<style>)HTML" + consolePageStyle() + R"HTML(</style>
</head>
<body>
<nav id="nav"></nav>
<section class="view" id="view-projections" data-view="projections">
<h1>UltraCore projections</h1>
<div id="meta">connecting&hellip;</div>
<div id="error" role="alert"></div>
<div id="projections"></div>
</section>
<div id="views"></div>
<script>
"use strict";
// Polls /api/v1/projections every second. The engine samples each projection's events/s and
// lag once a second and keeps the last five minutes: the first poll fetches all of it, later
// polls only the points newer than the last one held (history_since), so the charts cover the
// last minutes even right after the page was opened.
const kWindowMs = 5 * 60 * 1000;
const kPollMs = 1000;
const series = {};  // projection -> [{t_ms, events_per_second, lag}], oldest first
let lastPointMs = 0;
let lastUpdate = null;

function token() {
  return (new URLSearchParams(location.hash.slice(1))).get("token") || "";
}

function esc(s) {
  return String(s).replace(/[&<>"']/g, c => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c]));
}

function show(v) { return v === null || v === undefined ? "?" : String(v); }

// The chart's top: 10, 20, 50, 100, ... (at least 10, so both axis labels are integers).
function niceCeil(v) {
  if (v <= 10) return 10;
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

function fmt(v) {
  if (v >= 10000) return (v / 1000).toFixed(v >= 100000 ? 0 : 1) + "k";
  return v.toFixed(0);
}

// One SVG line chart of `key` over [now - kWindowMs, now]; points with an unknown value break
// the line.
function chart(points, key, color, nowMs, digits) {
  // The viewBox is about the size the chart is drawn at, so 10-unit text stays readable.
  const W = 360, H = 130, L = 34, R = 6, T = 8, B = 18;
  const pw = W - L - R, ph = H - T - B;
  const start = nowMs - kWindowMs;
  const known = points.filter(p => p[key] !== null && p[key] !== undefined);
  const peak = Math.max(0, ...known.filter(p => p.t_ms >= start).map(p => p[key]));
  const max = niceCeil(peak);
  const x = t => L + Math.max(0, Math.min(1, (t - start) / kWindowMs)) * pw;
  const y = v => T + ph - (v / max) * ph;
  const out = ['<svg class="chart-svg" data-series="' + key + '" data-peak="' + peak + '" viewBox="0 0 ' + W + " " + H + '" role="img">',
    '<rect x="' + L + '" y="' + T + '" width="' + pw + '" height="' + ph + '" fill="#fcfcfd" stroke="#e3e3e3"/>'];
  for (let i = 0; i <= 2; ++i) {
    const v = max * i / 2, yy = y(v).toFixed(1);
    if (i === 1) out.push('<line x1="' + L + '" x2="' + (L + pw) + '" y1="' + yy + '" y2="' + yy + '" stroke="#eee"/>');
    out.push('<text x="' + (L - 4) + '" y="' + (y(v) + 3.5).toFixed(1) + '" font-size="10" fill="#888" text-anchor="end">' + fmt(v) + "</text>");
  }
  for (let m = 5; m >= 0; --m) {
    const xx = x(nowMs - m * 60000).toFixed(1);
    if (m > 0 && m < 5) out.push('<line x1="' + xx + '" x2="' + xx + '" y1="' + T + '" y2="' + (T + ph) + '" stroke="#f0f0f0"/>');
    out.push('<text x="' + xx + '" y="' + (H - 5) + '" font-size="10" fill="#888" text-anchor="' +
      (m === 5 ? "start" : m === 0 ? "end" : "middle") + '">' + (m === 0 ? "now" : "\u2212" + m + " min") + "</text>");
  }
  // Runs of consecutive known points, one polyline each.
  let run = [];
  const runs = [run];
  for (const p of points) {
    if (p.t_ms < start) continue;
    if (p[key] === null || p[key] === undefined) { if (run.length) runs.push(run = []); continue; }
    run.push(x(p.t_ms).toFixed(1) + "," + y(p[key]).toFixed(1));
  }
  let drawn = 0;
  for (const r of runs) {
    if (r.length === 0) continue;
    drawn += r.length;
    if (r.length === 1) {
      const [cx, cy] = r[0].split(",");
      out.push('<circle cx="' + cx + '" cy="' + cy + '" r="2" fill="' + color + '"/>');
    } else {
      out.push('<polyline fill="none" stroke="' + color + '" stroke-width="2" stroke-linejoin="round" points="' + r.join(" ") + '"/>');
    }
  }
  if (drawn === 0) {
    out.push('<text x="' + (L + pw / 2) + '" y="' + (T + ph / 2) + '" font-size="11" fill="#999" text-anchor="middle">no samples yet</text>');
  }
  out.push("</svg>");
  const last = known.length ? known[known.length - 1][key] : null;
  return '<div class="chart"><div class="title">' + (key === "lag" ? "lag (events)" : "throughput (events/s)") +
    ", last 5 min &middot; now <b>" + (last === null ? "?" : last.toFixed(digits)) + "</b></div>" + out.join("") + "</div>";
}

function render(data) {
  const parts = [];
  for (const p of data.projections) {
    const points = series[p.name] || [];
    const rows = p.partitions.map(q => '<tr class="partition" data-topic="' + esc(q.topic) + '" data-partition="' + q.partition +
      '" data-lag="' + show(q.lag) + '"><td>' + esc(q.topic) + "</td><td>" + q.partition + "</td><td>" + (q.stored_offset < 0 ? "\u2013" : q.stored_offset) +
      "</td><td>" + show(q.log_end) + '</td><td class="lag' + (q.lag > 0 ? " lagging" : "") + '">' + show(q.lag) + "</td></tr>").join("");
    const problem = p.state === "failed" || p.state === "waiting";
    const g = (data.generations || []).find(x => x.projection === p.name);
    let generation = "";
    if (g) {
      const r = g.rebuild;
      generation = '<div class="generation" data-generation="' + g.live_generation + '">generation <b>' + g.live_generation +
        "</b> in schema <b>" + esc(g.schema) + "</b>" +
        (g.previous_generation ? " &middot; generation " + g.previous_generation + " kept as " + esc(g.previous_schema) + " (rollback or drop)" : "") +
        (r ? ' &middot; <span class="rebuild" data-phase="' + esc(r.phase) + '">rebuild of generation ' + r.generation + ": " + esc(r.phase) +
          (r.phase === "building" || r.phase === "switching"
            ? ' <progress max="' + Math.max(r.events_total, 1) + '" value="' + r.events_done + '"></progress> ' + r.events_done + "/" + r.events_total +
              " events, " + r.events_per_second.toFixed(0) + " ev/s" + (r.eta_seconds !== null ? ", ETA " + Math.round(r.eta_seconds) + " s" : "")
            : "") + "</span>" : "") + "</div>";
    }
    const stat = (cls, label, value, bad) => "<div><span>" + label + '</span> <b class="' + cls + (bad ? " bad" : "") + '">' + value + "</b></div>";
    parts.push('<div class="card" data-projection="' + esc(p.name) + '" data-state="' + esc(p.state) + '">' +
      "<h2>" + esc(p.name) + ' <span class="state ' + esc(p.state) + '">' + esc(p.state) + "</span></h2>" +
      generation +
      (p.detail ? '<div class="detail' + (problem ? " problem" : "") + '">' + (problem ? "error: " : "") + esc(p.detail) + "</div>" : "") +
      '<div class="stats">' +
      stat("rate", "events/s", p.events_per_second.toFixed(1), false) +
      stat("lag", "lag", show(p.lag), p.lag > 0) +
      stat("applied", "applied", p.events_applied, false) +
      stat("failed", "failed", p.events_failed, p.events_failed > 0) +
      stat("duplicates", "duplicates skipped", p.events_duplicate, false) +
      stat("dead-letters", "dead letters open", p.dead_letters_open, p.dead_letters_open > 0) +
      stat("batches", "batches", p.batches_committed, false) + "</div>" +
      '<div class="body"><table class="partitions"><tr><th>topic</th><th>partition</th><th>stored offset</th><th>log end</th><th>lag</th></tr>' +
      (rows || '<tr><td colspan="5">no partitions assigned</td></tr>') + "</table>" +
      '<div class="charts">' + chart(points, "events_per_second", "#2a7", data.time_ms, 1) + chart(points, "lag", "#c50", data.time_ms, 0) +
      "</div></div></div>");
  }
  document.getElementById("projections").innerHTML = parts.join("") || "<p>No projections run in this engine.</p>";
}

function showError(message) {
  const e = document.getElementById("error");
  e.textContent = message;
  e.className = message ? "shown" : "";
  document.getElementById("projections").className = message ? "stale" : "";
  if (message) {
    document.getElementById("meta").textContent = lastUpdate
      ? "last update " + lastUpdate.toLocaleTimeString() + " (stale)" : "no data";
  }
}

async function poll() {
  const t = token();
  try {
    const res = await fetch("/api/v1/projections?history_since=" + lastPointMs,
                            {headers: t ? {"Authorization": "Bearer " + t} : {}, cache: "no-store"});
    if (res.status === 401) {
      showError(t ? "Access denied: the admin token in this page's address was refused (HTTP 401). " +
                    "Open the page as /#token=<admin token>." :
                    "Access denied: this endpoint needs the admin token (HTTP 401). " +
                    "Open the page as /#token=<admin token> (admin.token, else api.token, in the manifest).");
      return;
    }
    if (!res.ok) throw new Error("HTTP " + res.status);
    const data = await res.json();
    for (const p of data.projections) {
      const s = series[p.name] = series[p.name] || [];
      for (const point of p.history || []) {
        if (!s.length || point.t_ms > s[s.length - 1].t_ms) s.push(point);
        lastPointMs = Math.max(lastPointMs, point.t_ms);
      }
      while (s.length && s[0].t_ms < data.time_ms - kWindowMs) s.shift();
    }
    lastUpdate = new Date(data.time_ms);
    render(data);
    showError("");
    document.getElementById("meta").textContent = "updated " + lastUpdate.toLocaleTimeString() + " \u00b7 " +
      data.projections.length + " projection(s) \u00b7 refreshed every second";
  } catch (e) {
    showError("Cannot read /api/v1/projections: " + e.message + " (is the engine running?)");
  }
}

// One poll at a time; a new token in the address (hashchange) polls at once.
let timer = null, generation = 0;
async function loop(gen) {
  await poll();
  if (gen === generation) timer = setTimeout(() => loop(gen), kPollMs);
}
window.addEventListener("hashchange", () => { clearTimeout(timer); loop(++generation); });
loop(generation);
</script>
<script>)HTML" + consolePageScript() + R"HTML(</script>
</body>
</html>
)HTML";
  return kPage;
}

}  // namespace ultracore::engine
