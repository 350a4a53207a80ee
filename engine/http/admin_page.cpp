#include "engine/http/admin_page.h"

namespace ultracore::engine {

const std::string& adminPageHtml() {
  static const std::string kPage = R"HTML(<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>UltraCore status</title>
<style>
body { font: 14px system-ui, sans-serif; margin: 1.5em; color: #222; background: #fafafa; }
h1 { font-size: 1.3em; margin: 0 0 .2em; }
#meta { color: #666; margin-bottom: 1em; }
#error { color: #b00; font-weight: bold; }
.card { background: #fff; border: 1px solid #ddd; border-radius: 6px; padding: .8em 1em; margin-bottom: 1em; }
.card h2 { font-size: 1.1em; margin: 0 0 .4em; }
.state { display: inline-block; padding: .1em .5em; border-radius: 4px; color: #fff; font-size: .9em; }
.running { background: #2a7; } .paused { background: #c80; } .waiting { background: #d60; }
.failed { background: #c22; } .stopped, .starting { background: #888; }
table { border-collapse: collapse; margin: .4em 0; }
td, th { padding: .15em .8em .15em 0; text-align: right; } th:first-child, td:first-child { text-align: left; }
.charts { display: flex; gap: 1em; flex-wrap: wrap; }
.chart { flex: 1 1 360px; } .chart div { color: #555; font-size: .9em; }
svg { width: 100%; height: 120px; background: #fcfcfc; border: 1px solid #eee; }
</style>
</head>
<body>
<h1>UltraCore projections</h1>
<div id="meta">connecting&hellip;</div>
<div id="error"></div>
<div id="projections"></div>
<script>
"use strict";
const kWindowMs = 5 * 60 * 1000;
const token = (new URLSearchParams(location.hash.slice(1))).get("token") || "";
const history = {};  // projection -> [{t, rate, lag}]

function esc(s) {
  return String(s).replace(/[&<>"']/g, c => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c]));
}

function chart(points, key, color) {
  const w = 600, h = 120, now = Date.now();
  const max = Math.max(1, ...points.map(p => p[key] || 0));
  const xy = points.map(p => [((p.t - (now - kWindowMs)) / kWindowMs) * w, h - 4 - ((p[key] || 0) / max) * (h - 12)]);
  const line = xy.map(([x, y]) => x.toFixed(1) + "," + y.toFixed(1)).join(" ");
  return '<svg viewBox="0 0 ' + w + ' ' + h + '" preserveAspectRatio="none">' +
    '<polyline fill="none" stroke="' + color + '" stroke-width="2" points="' + line + '"/>' +
    '<text x="4" y="12" font-size="11" fill="#888">max ' + max.toFixed(key === "rate" ? 1 : 0) + '</text></svg>';
}

function render(data) {
  const root = document.getElementById("projections");
  const parts = [];
  for (const p of data.projections) {
    const points = history[p.name] || [];
    const rows = p.partitions.map(q => "<tr><td>" + esc(q.topic) + "</td><td>" + q.partition + "</td><td>" +
      q.stored_offset + "</td><td>" + (q.log_end ?? "?") + "</td><td>" + (q.lag ?? "?") + "</td></tr>").join("");
    parts.push('<div class="card" data-projection="' + esc(p.name) + '">' +
      "<h2>" + esc(p.name) + ' <span class="state ' + esc(p.state) + '">' + esc(p.state) + "</span></h2>" +
      (p.detail ? "<div>" + esc(p.detail) + "</div>" : "") +
      "<div>events/s <b class=\"rate\">" + p.events_per_second.toFixed(1) + "</b> &middot; lag <b class=\"lag\">" +
      (p.lag ?? "?") + "</b> &middot; applied " + p.events_applied + " &middot; failed " + p.events_failed +
      " &middot; dead letters open " + p.dead_letters_open + "</div>" +
      "<table><tr><th>topic</th><th>partition</th><th>stored offset</th><th>log end</th><th>lag</th></tr>" +
      rows + "</table>" +
      '<div class="charts"><div class="chart"><div>throughput (events/s), last 5 min</div>' + chart(points, "rate", "#2a7") +
      '</div><div class="chart"><div>lag (events), last 5 min</div>' + chart(points, "lag", "#c50") + "</div></div></div>");
  }
  root.innerHTML = parts.join("") || "<p>No projections run in this engine.</p>";
}

async function poll() {
  try {
    const res = await fetch("/api/v1/projections", {headers: token ? {"Authorization": "Bearer " + token} : {}});
    if (!res.ok) throw new Error("HTTP " + res.status + (res.status === 401 ? " (open this page as /#token=...)" : ""));
    const data = await res.json();
    const now = Date.now();
    for (const p of data.projections) {
      const h = history[p.name] = history[p.name] || [];
      h.push({t: now, rate: p.events_per_second, lag: p.lag ?? 0});
      while (h.length && h[0].t < now - kWindowMs) h.shift();
    }
    render(data);
    document.getElementById("error").textContent = "";
    document.getElementById("meta").textContent = "updated " + new Date(data.time_ms).toLocaleTimeString() +
      " \u00b7 " + data.projections.length + " projection(s)";
  } catch (e) {
    document.getElementById("error").textContent = "cannot read /api/v1/projections: " + e.message;
  }
}
poll();
setInterval(poll, 1000);
</script>
</body>
</html>
)HTML";
  return kPage;
}

}  // namespace ultracore::engine
