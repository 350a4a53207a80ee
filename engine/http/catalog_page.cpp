#include "engine/http/catalog_page.h"

namespace ultracore::engine {

const std::string& catalogPageHtml() {
  static const std::string kPage = R"HTML(<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>UltraCore event catalog</title>
<style>
body { font: 14px system-ui, sans-serif; margin: 1.5em; color: #222; background: #f4f5f7; }
h1 { font-size: 1.3em; margin: 0 0 .2em; }
nav a { margin-right: 1em; }
#meta { color: #666; margin: .4em 0 .8em; }
#error { display: none; color: #fff; background: #b22; padding: .6em .9em; border-radius: 6px; margin-bottom: 1em; font-weight: bold; }
#error.shown { display: block; }
.card { background: #fff; border: 1px solid #ddd; border-radius: 6px; padding: .8em 1em; margin-bottom: 1em; }
.card h2 { font-size: 1.15em; margin: 0 0 .4em; }
.consumers span { display: inline-block; margin-right: 1em; }
.badge { display: inline-block; padding: 0 .4em; border-radius: 4px; color: #fff; font-size: .8em; }
.badge.declares { background: #2a7; } .badge.undeclared { background: #c80; }
table { border-collapse: collapse; width: 100%; font-variant-numeric: tabular-nums; }
td, th { padding: .3em .8em .3em 0; text-align: left; vertical-align: top; border-bottom: 1px solid #eee; }
th { color: #666; font-weight: normal; border-bottom: 1px solid #ddd; }
td.seen { text-align: right; font-weight: bold; }
tr.event-type[data-declared="false"] td:first-child { color: #c50; }
.undeclared-seen.bad { color: #c22; font-weight: bold; }
pre { background: #f6f6f6; padding: .4em; margin: .2em 0; max-height: 20em; overflow: auto; font-size: .85em; }
code { background: #eee; }
</style>
</head>
<body>
<nav><a id="nav-status" href="/">Projections</a><a id="nav-catalog" href="/catalog"><b>Catalog</b></a></nav>
<h1>Event catalog</h1>
<div id="meta">loading&hellip;</div>
<div id="error" role="alert"></div>
<div id="topics"></div>
<script>
"use strict";
// Reads GET /api/v1/catalog every two seconds: the event types the plugins declare per topic
// (with their schemas, producers and consumers) and how many events of each type the
// projections consumed since the engine started.
function token() { return (new URLSearchParams(location.hash.slice(1))).get("token") || ""; }
for (const a of document.querySelectorAll("nav a")) a.href = a.getAttribute("href") + location.hash;
function esc(s) {
  return String(s).replace(/[&<>"']/g, c => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c]));
}
const open = new Set();  // schema <details> the person opened, kept open across refreshes
function schemaCell(type) {
  if (!type.schemas.length) return "<i>none declared</i>";
  return type.schemas.map((s, i) => {
    const key = type.topic + "/" + type.event_type + "/" + i;
    return "<details data-key=\"" + esc(key) + "\"" + (open.has(key) ? " open" : "") +
        "><summary>schema" + (type.schemas.length > 1 ? " " + (i + 1) : "") + "</summary><pre>" +
        esc(JSON.stringify(s, null, 2)) + "</pre></details>";
  }).join("");
}
function render(catalog) {
  const undeclaredPlugins = catalog.plugins.filter(p => !p.declares).map(p => p.plugin);
  document.getElementById("meta").textContent = catalog.topics.length + " topic(s); plugins: " +
      catalog.plugins.map(p => p.plugin + (p.declares ? "" : " (undeclared)")).join(", ") +
      ". Seen: events consumed since the engine started. Updated " + new Date().toLocaleTimeString() + ".";
  let html = "";
  for (const topic of catalog.topics) {
    html += "<section class=\"card topic\" data-topic=\"" + esc(topic.topic) + "\"><h2>" + esc(topic.topic) + "</h2>";
    html += "<div class=\"consumers\">Consumers: " + (topic.consumers.length ? topic.consumers.map(c =>
        "<span>" + esc(c.projection) + " <span class=\"badge " + (c.declares ? "declares\">declares" : "undeclared\">undeclared") +
        "</span></span>").join("") : "<i>none in this engine</i>") + "</div>";
    html += "<div>Events of types no consumer declares: <span class=\"undeclared-seen" +
        (topic.undeclared_seen > 0 ? " bad" : "") + "\">" + topic.undeclared_seen + "</span></div>";
    html += "<table><tr><th>event type</th><th>seen</th><th>producers (routes)</th><th>consumers (projections)</th><th>event_data schema</th></tr>";
    for (const type of topic.event_types) {
      type.topic = topic.topic;
      html += "<tr class=\"event-type\" data-type=\"" + esc(type.event_type) + "\" data-seen=\"" + type.seen +
          "\" data-declared=\"" + type.consumed_declared + "\"><td><code>" + esc(type.event_type) + "</code>" +
          (type.consumed_declared ? "" : "<br><small>no consumer declares it</small>") + "</td>" +
          "<td class=\"seen\" title=\"" + esc(Object.entries(type.seen_by).map(([p, n]) => p + ": " + n).join(", ")) + "\">" + type.seen + "</td>" +
          "<td>" + (type.producers.map(p => "<code>" + esc(p.route) + "</code> <small>(" + esc(p.plugin) + ")</small>").join("<br>") || "<i>none declared</i>") + "</td>" +
          "<td>" + (type.consumers.map(c => esc(c.projection) + (c.description ? " <small>&mdash; " + esc(c.description) + "</small>" : "")).join("<br>") || "<i>none</i>") + "</td>" +
          "<td>" + schemaCell(type) + "</td></tr>";
    }
    html += "</table></section>";
  }
  const topics = document.getElementById("topics");
  topics.innerHTML = html;
  for (const d of topics.querySelectorAll("details")) {
    d.addEventListener("toggle", () => { if (d.open) open.add(d.dataset.key); else open.delete(d.dataset.key); });
  }
  document.body.dataset.loaded = "true";
}
async function poll() {
  const error = document.getElementById("error");
  try {
    const headers = token() ? {"Authorization": "Bearer " + token()} : {};
    const response = await fetch("/api/v1/catalog", {headers});
    if (response.status === 401) {
      error.textContent = "Access denied: open this page as /catalog#token=<admin token>.";
      error.classList.add("shown");
    } else if (!response.ok) {
      error.textContent = "The engine answered " + response.status + ".";
      error.classList.add("shown");
    } else {
      error.classList.remove("shown");
      render(await response.json());
    }
  } catch (e) {
    error.textContent = "Cannot reach the engine: " + e.message;
    error.classList.add("shown");
  }
  setTimeout(poll, 2000);
}
window.addEventListener("hashchange", () => location.reload());
poll();
</script>
</body>
</html>
)HTML";
  return kPage;
}

}  // namespace ultracore::engine
