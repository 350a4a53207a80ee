#include "engine/http/console_page.h"

namespace ultracore::engine {

const std::string& consolePageStyle() {
  static const std::string kStyle = R"CSS(
nav#nav { display: flex; gap: .3em; align-items: center; margin: -.5em 0 1em; flex-wrap: wrap; }
nav#nav .brand { font-weight: bold; margin-right: 1em; }
nav#nav a { padding: .3em .8em; border-radius: 5px; color: #245; text-decoration: none; background: #e4e8ee; }
nav#nav a.active { background: #245; color: #fff; }
.view h1 { font-size: 1.3em; margin: 0 0 .5em; }
.panel { background: #fff; border: 1px solid #ddd; border-radius: 6px; padding: .8em 1em; margin-bottom: 1em; overflow-x: auto; }
.panel h2 { font-size: 1.1em; margin: 0 0 .4em; }
.notice { padding: .5em .8em; border-radius: 5px; margin-bottom: .8em; }
.notice.error { background: #fbe9e9; color: #a11; border: 1px solid #e7b8b8; }
.notice.info { background: #eef4fb; color: #235; border: 1px solid #c9daee; }
.notice.ok { background: #e9f7ef; color: #175; border: 1px solid #b7e0c6; }
form.filters { display: flex; flex-wrap: wrap; gap: .5em 1em; align-items: flex-end; }
form.filters label { display: flex; flex-direction: column; font-size: .85em; color: #555; }
form.filters input, form.filters select { font: inherit; padding: .2em .3em; min-width: 8em; }
button { font: inherit; padding: .3em .9em; border-radius: 5px; border: 1px solid #999; background: #fafafa; cursor: pointer; }
button.primary { background: #245; color: #fff; border-color: #245; }
button.danger { background: #b22; color: #fff; border-color: #b22; }
button:disabled { opacity: .5; cursor: default; }
table.grid { border-collapse: collapse; width: 100%; font-variant-numeric: tabular-nums; }
table.grid td, table.grid th { padding: .2em .6em; text-align: left; border-bottom: 1px solid #eee; vertical-align: top; }
table.grid th { color: #666; font-weight: normal; }
td.num, th.num { text-align: right; }
.badge { display: inline-block; padding: 0 .45em; border-radius: 4px; font-size: .85em; background: #ddd; color: #333; }
.badge.ours { background: #245; color: #fff; } .badge.open { background: #c22; color: #fff; }
.badge.retried { background: #2a7; color: #fff; } .badge.discarded { background: #888; color: #fff; }
.badge.retry_requested { background: #c80; color: #fff; }
.record { border: 1px solid #e3e3e3; border-radius: 5px; margin: .4em 0; background: #fff; }
.record .head { display: flex; gap: 1em; flex-wrap: wrap; padding: .3em .6em; background: #f7f8fa; }
.record .head .pos { font-weight: bold; }
.record pre { margin: 0; padding: .5em .8em; white-space: pre-wrap; word-break: break-all; font-size: .9em; }
.record .parse-error { color: #b22; padding: .3em .8em; }
.progress { color: #555; margin: .4em 0; }
.pager { display: flex; gap: .6em; margin: .6em 0; }
dl.fields { display: grid; grid-template-columns: max-content 1fr; gap: .2em 1em; margin: 0; }
dl.fields dt { color: #666; } dl.fields dd { margin: 0; word-break: break-all; }
)CSS";
  return kStyle;
}

const std::string& consolePageScript() {
  static const std::string kScript = R"JS(
"use strict";
// The console's views. token() and esc() come from the projections script above.
const consoleViews = [];
let currentView = null;

function registerView(view) {
  consoleViews.push(view);
  if (!view.href && !document.getElementById("view-" + view.id)) {
    const section = document.createElement("section");
    section.className = "view";
    section.id = "view-" + view.id;
    section.dataset.view = view.id;
    section.hidden = true;
    document.getElementById("views").appendChild(section);
  }
}

function hashParams() { return new URLSearchParams(location.hash.slice(1)); }

// The fragment for a view with these parameters (the token is kept).
function viewHref(view, params) {
  const p = new URLSearchParams();
  const t = token();
  if (t) p.set("token", t);
  p.set("view", view);
  for (const [k, v] of Object.entries(params || {})) {
    if (v !== undefined && v !== null && v !== "") p.set(k, String(v));
  }
  return "#" + p.toString();
}
function go(view, params) { location.hash = viewHref(view, params); }

function renderNav(active) {
  // A view with `href` is a page of its own (the event catalog at /catalog): a link that
  // carries the token.
  const links = consoleViews.filter(v => v.nav !== false).map(v => v.href
    ? '<a id="nav-' + v.id + '" href="' + esc(v.href + (token() ? "#token=" + encodeURIComponent(token()) : "")) + '" data-nav="' + v.id + '">' + esc(v.title) + "</a>"
    : '<a href="' + esc(viewHref(v.id)) + '" data-nav="' + v.id + '" class="' + (v.id === active ? "active" : "") + '">' + esc(v.title) + "</a>");
  document.getElementById("nav").innerHTML = '<span class="brand">UltraCore console</span>' + links.join("");
}

function route() {
  const params = hashParams();
  const id = params.get("view") || "projections";
  const view = consoleViews.find(v => v.id === id && !v.href) || consoleViews[0];
  if (currentView && currentView.hide) currentView.hide();
  for (const v of consoleViews) if (!v.href) document.getElementById("view-" + v.id).hidden = v !== view;
  currentView = view;
  const active = view.nav === false ? view.parent : view.id;
  renderNav(active);
  if (view.show) view.show(params, document.getElementById("view-" + view.id));
}

async function api(path, options) {
  options = options || {};
  const headers = Object.assign({}, options.headers || {});
  const t = token();
  if (t) headers["Authorization"] = "Bearer " + t;
  const res = await fetch(path, Object.assign({}, options, {headers: headers, cache: "no-store"}));
  let body = null;
  try { body = await res.json(); } catch (e) { body = null; }
  if (!res.ok) {
    const message = res.status === 401
      ? "Access denied (HTTP 401): open the page as /#token=<admin token>"
      : (body && body.error ? body.error.message : "HTTP " + res.status);
    const error = new Error(message);
    error.status = res.status;
    throw error;
  }
  return body;
}

function notice(kind, text) { return '<div class="notice ' + kind + '" role="' + (kind === "error" ? "alert" : "status") + '">' + esc(text) + "</div>"; }
function show(v) { return v === null || v === undefined ? "?" : String(v); }
function rate(v) { return v === null || v === undefined ? "\u2013" : v.toFixed(1); }
function pretty(v) { return JSON.stringify(v, null, 2); }
function messagesHref(params) { return viewHref("messages", params); }
function recordHref(topic, partition, offset) { return viewHref("record", {topic: topic, partition: partition, offset: offset}); }

// One record of the log: its position and fields, then the envelope or the raw value with the
// parser's error.
function recordHtml(r, open) {
  const head = '<div class="head"><span class="pos">' + esc(r.topic) + "[" + r.partition + "]@" + r.offset + "</span>" +
    "<span>" + esc(r.timestamp || "") + "</span>" +
    "<span>key <b>" + esc(show(r.key)) + "</b></span>" +
    (r.event_type ? '<span class="event-type">' + esc(r.event_type) + "</span>" : "") +
    (r.aggregate_id ? '<span>aggregate <a href="' + esc(messagesHref({topic: r.topic, partition: r.partition, aggregate_id: r.aggregate_id, from: "oldest"})) +
      '" class="history">' + esc(r.aggregate_id) + "</a></span>" : "") +
    '<a class="details" href="' + esc(recordHref(r.topic, r.partition, r.offset)) + '">details</a></div>';
  const headers = r.headers && r.headers.length
    ? "<pre class=\"headers\">headers: " + esc(r.headers.map(h => h.key + "=" + show(h.value)).join(", ")) + "</pre>" : "";
  const body = r.envelope !== undefined
    ? '<pre class="envelope">' + esc(pretty(r.envelope)) + "</pre>"
    : '<div class="parse-error">' + esc(r.parse_error || "") + '</div><pre class="raw">' + esc(show(r.value)) + (r.truncated ? "\n[truncated]" : "") + "</pre>";
  return '<div class="record" data-partition="' + r.partition + '" data-offset="' + r.offset + '" data-aggregate-id="' + esc(r.aggregate_id || "") +
    '" data-event-type="' + esc(r.event_type || "") + '">' + head + "<details" + (open ? " open" : "") + "><summary>" +
    (r.envelope !== undefined ? "envelope" : "raw value (not an envelope)") + "</summary>" + headers + body + "</details></div>";
}

// ---- projections (the status page above: it polls on its own) -------------------------------
registerView({id: "projections", title: "Projections"});

// ---- topics ----------------------------------------------------------------------------------
(function () {
  let timer = null, generation = 0;
  registerView({
    id: "topics", title: "Topics",
    show(params, el) {
      const all = params.get("all") === "1";
      const gen = ++generation;
      el.innerHTML = "<h1>Topics</h1>" +
        '<label><input type="checkbox" id="topics-all"' + (all ? " checked" : "") + "> every topic of the cluster (not only the manifest's)</label>" +
        '<div id="topics-body" class="panel">loading&hellip;</div>';
      document.getElementById("topics-all").addEventListener("change", e => go("topics", {all: e.target.checked ? 1 : ""}));
      const load = async () => {
        try {
          const data = await api("/api/v1/topics" + (all ? "?all=1" : ""));
          if (gen !== generation) return;
          // A refresh keeps the partitions an operator opened.
          const opened = new Set([...document.querySelectorAll(".topic-row details[open]")].map(d => d.closest(".topic-row").dataset.topic));
          const rows = data.topics.map(t => {
            const parts = t.partitions.map(p => "<tr><td>" + p.partition + '</td><td class="num">' + (p.leader < 0 ? "none" : p.leader) +
              "</td><td>" + esc(p.replicas.join(",")) + "</td><td>" + esc(p.isr.join(",")) + '</td><td class="num">' + show(p.low) +
              '</td><td class="num">' + show(p.high) + "</td><td>" + esc(p.error || "") + "</td></tr>").join("");
            return '<tr class="topic-row" data-topic="' + esc(t.topic) + '" data-messages="' + show(t.messages) + '"><td><a href="' +
              esc(messagesHref({topic: t.topic})) + '">' + esc(t.topic) + "</a>" + (t.in_manifest ? ' <span class="badge ours">manifest</span>' : "") +
              (t.exists ? "" : ' <span class="badge open">missing</span>') + '</td><td class="num">' + t.partitions.length +
              '</td><td class="num messages">' + show(t.messages) + '</td><td class="num rate">' + rate(t.messages_per_second_1m) +
              '</td><td class="num">' + rate(t.messages_per_second_5m) + "</td><td><details" + (opened.has(t.topic) ? " open" : "") + "><summary>partitions</summary>" +
              '<table class="grid partitions"><tr><th>partition</th><th class="num">leader</th><th>replicas</th><th>ISR</th><th class="num">low</th><th class="num">high</th><th></th></tr>' +
              parts + "</table></details></td></tr>";
          }).join("");
          document.getElementById("topics-body").innerHTML = '<table class="grid topics"><tr><th>topic</th><th class="num">partitions</th>' +
            '<th class="num">messages</th><th class="num">msg/s (1 min)</th><th class="num">msg/s (5 min)</th><th></th></tr>' + rows + "</table>" +
            '<div class="progress">updated ' + new Date(data.time_ms).toLocaleTimeString() + " &middot; refreshed every 5 s</div>";
        } catch (e) {
          if (gen === generation) document.getElementById("topics-body").innerHTML = notice("error", "Cannot read /api/v1/topics: " + e.message);
        }
        if (gen === generation) timer = setTimeout(load, 5000);
      };
      load();
    },
    hide() { ++generation; clearTimeout(timer); }
  });
})();

// ---- consumer groups -------------------------------------------------------------------------
(function () {
  let timer = null, generation = 0;
  registerView({
    id: "groups", title: "Consumer groups",
    show(params, el) {
      const gen = ++generation;
      el.innerHTML = '<h1>Consumer groups</h1><div id="groups-body">loading&hellip;</div>';
      const load = async () => {
        try {
          const data = await api("/api/v1/groups");
          if (gen !== generation) return;
          const cards = data.groups.map(g => {
            const ours = g.ultracore;
            const members = g.members.map(m => "<li>" + esc(m.client_id) + " " + esc(m.host) + (m.group_instance_id ? " (static " + esc(m.group_instance_id) + ")" : "") +
              ": " + esc(m.assignment.map(a => a.topic + "[" + a.partition + "]").join(", ") || "nothing assigned") + "</li>").join("");
            const rows = g.partitions.map(p => '<tr class="group-partition" data-topic="' + esc(p.topic) + '" data-partition="' + p.partition + '" data-stored="' + show(p.stored) +
              '"><td>' + esc(p.topic) + "</td><td class=\"num\">" + p.partition + '</td><td class="num">' + show(p.high) + '</td><td class="num">' + show(p.committed) +
              '</td><td class="num">' + show(p.lag) + "</td>" + (ours ? '<td class="num stored">' + show(p.stored) + '</td><td class="num">' + show(p.stored_lag) + "</td>" : "") +
              "<td>" + esc(p.member || "") + "</td></tr>").join("");
            return '<div class="panel group" data-group="' + esc(g.group_id) + '" data-ultracore="' + ours + '"><h2>' + esc(g.group_id) + " " +
              '<span class="badge">' + esc(g.state) + "</span>" + (ours ? ' <span class="badge ours">UltraCore: projection ' + esc(g.projection) + "</span>" : "") + "</h2>" +
              (g.describe_error ? notice("info", g.describe_error) : "") + (g.offsets_error ? notice("info", "committed offsets: " + g.offsets_error) : "") +
              "<div>lag " + show(g.lag) + (g.assignor ? " &middot; assignor " + esc(g.assignor) : "") + (g.coordinator >= 0 ? " &middot; coordinator " + g.coordinator : "") + "</div>" +
              (members ? "<ul>" + members + "</ul>" : "<div>no members</div>") +
              '<table class="grid"><tr><th>topic</th><th class="num">partition</th><th class="num">high</th><th class="num">committed (Kafka)</th><th class="num">lag</th>' +
              (ours ? '<th class="num">stored (PostgreSQL)</th><th class="num">lag (stored)</th>' : "") + "<th>member</th></tr>" + rows + "</table></div>";
          }).join("");
          document.getElementById("groups-body").innerHTML = (data.error ? notice("info", data.error) : "") +
            (data.stored_error ? notice("error", data.stored_error) : "") + (cards || "<p>No consumer groups.</p>");
        } catch (e) {
          if (gen === generation) document.getElementById("groups-body").innerHTML = notice("error", "Cannot read /api/v1/groups: " + e.message);
        }
        if (gen === generation) timer = setTimeout(load, 10000);
      };
      load();
    },
    hide() { ++generation; clearTimeout(timer); }
  });
})();

// ---- message browser -------------------------------------------------------------------------
(function () {
  const kFields = ["topic", "partition", "from", "offset", "time", "key", "aggregate_id", "event_type", "event_id", "limit"];
  let generation = 0;
  let topicNames = null;
  registerView({
    id: "messages", title: "Messages",
    show(params, el) {
      const gen = ++generation;
      const v = name => params.get(name) || "";
      const from = v("from") || "";
      el.innerHTML = "<h1>Message browser</h1>" +
        '<form id="msg-form" class="filters panel">' +
        '<label>topic<input name="topic" list="msg-topics" required value="' + esc(v("topic")) + '"><datalist id="msg-topics"></datalist></label>' +
        '<label>partition<input name="partition" placeholder="all" size="5" value="' + esc(v("partition")) + '"></label>' +
        '<label>start at<select name="from">' + ["", "newest", "oldest", "offset", "time"].map(f =>
          '<option value="' + f + '"' + (f === from ? " selected" : "") + ">" + (f || "auto (newest; oldest when filtered)") + "</option>").join("") + "</select></label>" +
        '<label>offset<input name="offset" size="8" value="' + esc(v("offset")) + '"></label>' +
        '<label>time (UTC)<input name="time" placeholder="2026-11-29T12:00:00" value="' + esc(v("time")) + '"></label>' +
        '<label>key<input name="key" value="' + esc(v("key")) + '"></label>' +
        '<label>aggregate_id<input name="aggregate_id" value="' + esc(v("aggregate_id")) + '"></label>' +
        '<label>event_type<input name="event_type" value="' + esc(v("event_type")) + '"></label>' +
        '<label>event_id<input name="event_id" value="' + esc(v("event_id")) + '"></label>' +
        '<label>per page<input name="limit" size="4" value="' + esc(v("limit") || "50") + '"></label>' +
        '<button id="msg-search" class="primary" type="submit">Search</button></form>' +
        '<div id="msg-progress" class="progress"></div><div class="pager"><button id="msg-prev" type="button" disabled>&larr; Previous page</button>' +
        '<button id="msg-stop" type="button" disabled>Stop</button><button id="msg-next" type="button" disabled>Next page &rarr;</button></div><div id="msg-results"></div>';
      const form = document.getElementById("msg-form");
      form.addEventListener("submit", e => {
        e.preventDefault();
        const p = {};
        for (const f of kFields) p[f] = form.elements[f].value.trim();
        if (p.limit === "50") p.limit = "";
        if (p.from !== "offset") p.offset = "";
        if (p.from !== "time") p.time = "";
        go("messages", p);
      });
      (async () => {
        try {
          if (!topicNames) topicNames = (await api("/api/v1/topics?all=1")).topics.filter(t => t.exists).map(t => t.topic);
          if (gen === generation) document.getElementById("msg-topics").innerHTML = topicNames.map(t => '<option value="' + esc(t) + '">').join("");
        } catch (e) { /* the list is only a help for typing */ }
      })();
      const prev = document.getElementById("msg-prev");
      // Pages back through the browser's history: each page is its own URL (with its cursor).
      prev.disabled = !v("cursor") || history.length < 2;
      prev.addEventListener("click", () => history.back());
      if (!v("topic")) {
        document.getElementById("msg-progress").textContent = "Pick a topic and press Search.";
        return;
      }
      const query = new URLSearchParams();
      for (const f of kFields.concat(["cursor"])) if (v(f)) query.set(f, v(f));
      search(gen, query, Number(v("limit") || 50));
    },
    hide() { ++generation; }
  });

  // Scans page by page (each request answers within about a second) until the page is full or
  // the log is read, showing the progress; Stop ends it with a cursor to go on from.
  async function search(gen, query, limit) {
    const progress = document.getElementById("msg-progress");
    const results = document.getElementById("msg-results");
    const next = document.getElementById("msg-next");
    const stop = document.getElementById("msg-stop");
    let stopped = false;
    stop.disabled = false;
    stop.onclick = () => { stopped = true; };
    const records = [];
    let scanned = 0, toScan = null, cursor = query.get("cursor"), done = false;
    const started = performance.now();
    for (;;) {
      const q = new URLSearchParams(query);
      if (cursor) q.set("cursor", cursor);
      q.set("limit", String(limit - records.length));
      let data;
      try {
        data = await api("/api/v1/messages?" + q.toString());
      } catch (e) {
        if (gen !== generation) return;
        if (e.status === 503 && /busy/.test(e.message)) { await new Promise(r => setTimeout(r, 500)); continue; }
        progress.innerHTML = notice("error", e.message);
        stop.disabled = true;
        return;
      }
      if (gen !== generation) return;
      records.push(...data.records);
      scanned += data.scanned;
      if (toScan === null) toScan = data.to_scan;
      cursor = data.cursor;
      done = data.done;
      results.innerHTML = records.map(r => recordHtml(r, false)).join("") || "";
      progress.dataset.state = done || records.length >= limit || stopped ? "finished" : "scanning";
      progress.dataset.scanned = scanned;
      progress.textContent = (progress.dataset.state === "scanning" ? "scanning, " : "") + scanned + " of " + toScan + " records scanned, " +
        records.length + " shown" + (done ? " \u00b7 end of the log" : "") + " \u00b7 " + ((performance.now() - started) / 1000).toFixed(1) + " s";
      if (done || records.length >= limit || stopped) break;
      query.delete("from");
    }
    stop.disabled = true;
    if (!records.length) results.innerHTML = '<p class="empty">No matching record' + (done ? " in this range." : " so far.") + "</p>";
    next.disabled = done || !cursor;
    next.onclick = () => {
      const p = {};
      for (const [k, val] of query.entries()) if (k !== "cursor" && k !== "limit") p[k] = val;
      p.limit = limit === 50 ? "" : limit;
      p.cursor = cursor;
      go("messages", p);
    };
  }
})();

// ---- one record ------------------------------------------------------------------------------
(function () {
  let generation = 0;
  registerView({
    id: "record", title: "Record", nav: false, parent: "messages",
    async show(params, el) {
      const gen = ++generation;
      const topic = params.get("topic"), partition = params.get("partition"), offset = params.get("offset");
      el.innerHTML = "<h1>Record " + esc(topic) + "[" + esc(partition) + "]@" + esc(offset) + '</h1><div id="record-body">loading&hellip;</div>';
      try {
        const data = await api("/api/v1/messages/record?" + new URLSearchParams({topic: topic, partition: partition, offset: offset}).toString());
        if (gen !== generation) return;
        const r = data.record;
        const processed = data.processed.map(p => '<tr class="applied-by" data-projection="' + esc(p.projection) + '"><td>' + esc(p.projection) + "</td><td>" + esc(p.processed_at) +
          "</td><td>" + esc(p.topic) + "[" + p.partition + "]@" + p.offset + "</td></tr>").join("");
        const dead = data.dead_letters.map(d => '<tr class="dead-letter-of" data-id="' + d.id + '"><td><a href="' + esc(viewHref("dead-letter", {id: d.id})) + '">dead letter ' + d.id +
          "</a></td><td>" + esc(d.projection) + '</td><td><span class="badge ' + esc(d.status) + '">' + esc(d.status) + "</span></td><td>" + esc(d.error_code + ": " + d.error) + "</td></tr>").join("");
        const parked = data.parked.map(p => "<li>held back in projection " + esc(p.projection) + " behind dead letter " + p.dead_letter_id + "</li>").join("");
        const skipped = data.skipped.map(s => "<li>skipped by projection " + esc(s.projection) + ": " + esc(s.error_code + ": " + s.error) + "</li>").join("");
        document.getElementById("record-body").innerHTML = recordHtml(r, true) +
          '<div class="panel"><h2>Applied by</h2>' + (processed ? '<table class="grid processed"><tr><th>projection</th><th>processed at</th><th>as</th></tr>' + processed + "</table>"
            : '<p class="none-applied">No projection has applied this event (yet).</p>') + "</div>" +
          (dead ? '<div class="panel"><h2>Dead letters</h2><table class="grid">' + dead + "</table></div>" : "") +
          (parked || skipped ? '<div class="panel"><ul>' + parked + skipped + "</ul></div>" : "") +
          (r.aggregate_id ? '<p><a class="aggregate-history" href="' + esc(messagesHref({topic: r.topic, partition: r.partition, aggregate_id: r.aggregate_id, from: "oldest", limit: 200})) +
            '">The whole history of aggregate ' + esc(r.aggregate_id) + "</a></p>" : "");
      } catch (e) {
        if (gen === generation) document.getElementById("record-body").innerHTML = notice("error", e.message);
      }
    },
    hide() { ++generation; }
  });
})();

// ---- dead letters and parked aggregates ------------------------------------------------------
(function () {
  let generation = 0;
  registerView({
    id: "dead-letters", title: "Dead letters",
    async show(params, el) {
      const gen = ++generation;
      const v = name => params.get(name) || "";
      el.innerHTML = "<h1>Dead letters and parked aggregates</h1>" +
        '<form id="dl-form" class="filters panel"><label>projection<input name="projection" value="' + esc(v("projection")) + '"></label>' +
        '<label>status<select name="status">' + ["", "open", "retry_requested", "retried", "discarded"].map(s =>
          '<option value="' + s + '"' + (s === v("status") ? " selected" : "") + ">" + (s || "any") + "</option>").join("") + "</select></label>" +
        '<label>aggregate<input name="aggregate" value="' + esc(v("aggregate")) + '"></label>' +
        '<label>event_id<input name="event_id" value="' + esc(v("event_id")) + '"></label>' +
        '<button class="primary" type="submit">Filter</button></form><div id="dl-body">loading&hellip;</div>';
      const form = document.getElementById("dl-form");
      form.addEventListener("submit", e => {
        e.preventDefault();
        go("dead-letters", {projection: form.elements.projection.value.trim(), status: form.elements.status.value,
                            aggregate: form.elements.aggregate.value.trim(), event_id: form.elements.event_id.value.trim()});
      });
      try {
        const q = new URLSearchParams();
        for (const f of ["projection", "status", "aggregate", "event_id"]) if (v(f)) q.set(f, v(f));
        const [list, parked] = await Promise.all([api("/api/v1/dead-letters?" + q.toString()),
          api("/api/v1/parked" + (v("projection") ? "?projection=" + encodeURIComponent(v("projection")) : ""))]);
        if (gen !== generation) return;
        const rows = list.dead_letters.map(d => '<tr class="dl-row" data-id="' + d.id + '" data-status="' + esc(d.status) + '"><td><a href="' +
          esc(viewHref("dead-letter", {id: d.id})) + '">' + d.id + "</a></td><td>" + esc(d.projection) + '</td><td><span class="badge ' + esc(d.status) + '">' + esc(d.status) +
          "</span></td><td>" + esc(d.policy) + '</td><td><a href="' + esc(recordHref(d.topic, d.partition, d.offset)) + '">' + esc(d.topic) + "[" + d.partition + "]@" + d.offset +
          "</a></td><td>" + esc(d.aggregate) + "</td><td>" + esc(d.event_type) + "</td><td>" + esc(d.error_code + ": " + d.error) + "</td><td>" + esc(d.created_at) + "</td></tr>").join("");
        const parkedRows = parked.parked.map(p => '<tr class="parked-row" data-aggregate="' + esc(p.aggregate_id) + '"><td>' + esc(p.projection) + "</td><td>" + esc(p.aggregate_id) +
          '</td><td><a href="' + esc(viewHref("dead-letter", {id: p.dead_letter_id})) + '">' + p.dead_letter_id + '</a> <span class="badge ' + esc(p.dead_letter_status) + '">' +
          esc(p.dead_letter_status) + "</span></td><td>" + esc(p.blocked_at) + '</td><td class="num">' + p.parked_events + "</td><td>" +
          esc(p.events.map(e => e.event_type + "@" + e.offset).join(", ")) + "</td><td>" + esc(p.parked_at) + "</td></tr>").join("");
        document.getElementById("dl-body").innerHTML = '<div class="panel"><h2>Dead letters (' + list.dead_letters.length + ")</h2>" +
          (rows ? '<table class="grid dead-letters"><tr><th>id</th><th>projection</th><th>status</th><th>policy</th><th>position</th><th>aggregate</th><th>event type</th><th>error</th><th>created</th></tr>' + rows + "</table>"
            : "<p>No dead letters match.</p>") + "</div>" +
          '<div class="panel"><h2>Parked aggregates (' + parked.parked.length + ")</h2>" +
          (parkedRows ? '<table class="grid parked"><tr><th>projection</th><th>aggregate</th><th>dead letter</th><th>blocked at</th><th class="num">held back</th><th>events</th><th>parked at</th></tr>' + parkedRows + "</table>"
            : "<p>No aggregate is parked.</p>") + "</div>";
      } catch (e) {
        if (gen === generation) document.getElementById("dl-body").innerHTML = notice("error", e.message);
      }
    },
    hide() { ++generation; }
  });

  registerView({
    id: "dead-letter", title: "Dead letter", nav: false, parent: "dead-letters",
    async show(params, el) {
      const gen = ++generation;
      const id = params.get("id");
      el.innerHTML = "<h1>Dead letter " + esc(id) + '</h1><div id="dl-outcome"></div><div id="dl-detail">loading&hellip;</div>';
      const outcome = document.getElementById("dl-outcome");
      const render = async () => {
        const d = await api("/api/v1/dead-letters/" + encodeURIComponent(id));
        if (gen !== generation) return null;
        const field = (name, value) => value === null || value === undefined || value === "" ? "" : "<dt>" + name + "</dt><dd>" + esc(value) + "</dd>";
        document.getElementById("dl-detail").innerHTML = '<div class="panel" id="dl-fields" data-status="' + esc(d.status) + '"><dl class="fields">' +
          field("projection", d.projection) + "<dt>status</dt><dd><span class=\"badge " + esc(d.status) + '">' + esc(d.status) + "</span></dd>" + field("policy", d.policy) +
          field("aggregate", d.aggregate) + field("event type", d.event_type) + field("event id", d.event_id) + field("error", d.error_code + ": " + d.error) +
          field("attempts", d.attempts) + field("created", d.created_at) + field("retry requested", d.retry_requested_at) + field("last retry", d.last_retry_at) +
          field("last retry error", d.last_retry_error) + field("resolved", d.resolved_at) + field("resolution", d.resolution) +
          (d.parked_aggregate ? field("parks", "aggregate " + d.parked_aggregate + " (" + d.parked_events + " event(s) held back)") : "") + "</dl></div>" +
          (d.status === "open" || d.status === "retry_requested" ? '<div class="panel actions"><h2>Actions</h2>' +
            '<p><button id="dl-retry" class="primary" type="button">Retry</button> re-applies the event through the current plugin, exactly once (done by the engine running ' +
            esc(d.projection) + "), then releases the aggregate's parked events in order.</p>" +
            (d.status === "open" ? '<p><input id="dl-reason" size="50" placeholder="why (kept for audit)"> <button id="dl-discard" class="danger" type="button">Discard</button></p>' : "") +
            "</div>" : "") +
          '<div class="panel"><h2>Record</h2>' + recordHtml(d.record, true) + "</div>";
        const retry = document.getElementById("dl-retry");
        if (retry) retry.addEventListener("click", () => act("retry"));
        const discard = document.getElementById("dl-discard");
        if (discard) discard.addEventListener("click", () => act("discard"));
        return d;
      };
      const act = async (action) => {
        let body = "";
        if (action === "discard") {
          const reason = document.getElementById("dl-reason").value.trim();
          if (!reason) { outcome.innerHTML = notice("error", "Give a reason to discard (it is kept for audit)."); return; }
          if (!confirm("Discard dead letter " + id + "? Its event will never be applied. Reason: " + reason)) return;
          body = JSON.stringify({reason: reason});
        } else if (!confirm("Retry dead letter " + id + "? The engine re-applies its event through the current plugin, exactly once.")) {
          return;
        }
        try {
          const answer = await api("/api/v1/dead-letters/" + encodeURIComponent(id) + "/" + action,
                                   {method: "POST", headers: {"Content-Type": "application/json"}, body: body});
          outcome.innerHTML = notice("info", action === "retry" ? "Retry requested; waiting for the engine running " + answer.projection + "\u2026"
                                                               : "Discarded." + (answer.parked_aggregate ? " The engine releases aggregate " + answer.parked_aggregate + "'s parked events." : ""));
          outcome.dataset.status = answer.status;
          // Follow the outcome as `ultracore-ctl dead-letters retry` does.
          const deadline = Date.now() + 60000;
          for (;;) {
            const d = await render();
            if (!d) return;
            const settled = action === "retry" ? d.status !== "retry_requested" : !d.parked_aggregate;
            if (settled || Date.now() > deadline) {
              outcome.dataset.status = d.status;
              if (action === "retry") {
                outcome.innerHTML = d.status === "retried" ? notice("ok", "Retried: applied once through projection " + d.projection + ".")
                  : d.status === "retry_requested" ? notice("error", "No outcome within 60 s; the request stays pending. Is an engine running " + d.projection + "?")
                  : notice("error", "The retry failed, it is " + d.status + " again: " + (d.last_retry_error || ""));
              } else {
                outcome.innerHTML = notice(settled ? "ok" : "info", "Discarded (reason: " + (d.resolution || "") + ")." +
                  (settled ? "" : " The parked events are not released yet."));
              }
              return;
            }
            await new Promise(r => setTimeout(r, 500));
          }
        } catch (e) {
          outcome.innerHTML = notice("error", e.message);
        }
      };
      try { await render(); } catch (e) { if (gen === generation) document.getElementById("dl-detail").innerHTML = notice("error", e.message); }
    },
    hide() { ++generation; }
  });
})();

// ---- the event catalog: its own page (engine/http/catalog_page.cpp) -----------------------
registerView({id: "catalog", title: "Event catalog", href: "/catalog"});

window.addEventListener("hashchange", route);
route();
)JS";
  return kScript;
}

}  // namespace ultracore::engine
