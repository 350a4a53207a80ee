#include "engine/http/openapi.h"

#include <algorithm>
#include <cctype>

namespace ultracore::engine {
namespace {

using nlohmann::json;

std::string lower(std::string text) {
  std::transform(text.begin(), text.end(), text.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return text;
}

std::string escapeHtml(const std::string& text) {
  std::string out;
  for (char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      default: out.push_back(c);
    }
  }
  return out;
}

json errorResponse(const std::string& description) {
  return {{"description", description},
          {"content", {{"application/json", {{"schema", {{"$ref", "#/components/schemas/Error"}}}}}}}};
}

const char* kConsistencyText =
    "Commands answer a consistency_token (also in the X-Consistency-Token header). A query "
    "given ?consistent_with=TOKEN (or the X-Consistent-With header) waits until the projection "
    "serving it has committed past that position, then answers; after 5 s it answers 504 "
    "consistency_timeout. Positions on topics that projection does not consume are ignored.";

const char* kCommandText =
    "Commands validate against the read model, so their checks are as fresh as that "
    "projection: two commands racing on one aggregate may both pass (e.g. two withdrawals "
    "that each fit the balance as last projected). An answer 201/202 means Kafka stored the "
    "event (acks=all); 503 means it did not. An Idempotency-Key header makes a retry return "
    "the first answer and publish nothing; the same key with another request is 422.";

}  // namespace

json buildOpenApi(const std::vector<RouteDoc>& routes, const json& schemas, bool token_required) {
  json paths = json::object();
  for (const auto& route : routes) {
    const sdk::RouteSpec& spec = route.spec;
    json operation{{"summary", spec.summary},
                   {"description", spec.description},
                   {"tags", json::array({route.plugin})},
                   {"operationId", lower(spec.method) + "_" + route.plugin + "_" +
                                       std::to_string(&route - routes.data())}};
    json parameters = json::array();
    for (const auto& name : route.path_parameters) {
      parameters.push_back({{"name", name}, {"in", "path"}, {"required", true},
                            {"schema", {{"type", "string"}}}});
    }
    for (const auto& name : spec.query_params) {
      parameters.push_back({{"name", name}, {"in", "query"}, {"required", false},
                            {"schema", {{"type", "string"}}}});
    }
    parameters.push_back({{"name", "X-Tenant-Id"}, {"in", "header"}, {"required", false},
                          {"schema", {{"type", "string"}, {"default", "DEFAULT"}}}});
    if (spec.kind == sdk::RouteKind::kQuery) {
      parameters.push_back({{"name", "consistent_with"}, {"in", "query"}, {"required", false},
                            {"description", kConsistencyText},
                            {"schema", {{"type", "string"}}}});
    } else {
      parameters.push_back({{"name", "Idempotency-Key"}, {"in", "header"}, {"required", false},
                            {"schema", {{"type", "string"}}}});
    }
    operation["parameters"] = parameters;
    if (!route.events.empty()) operation["x-ultracore-events"] = route.events;
    if (!spec.request_schema.is_null()) {
      operation["requestBody"] = {
          {"required", true},
          {"content", {{"application/json", {{"schema", spec.request_schema}}}}}};
    }
    json responses = json::object();
    json ok{{"description", spec.kind == sdk::RouteKind::kCommand
                                ? "stored in Kafka; body has aggregate_id, event_id, position "
                                  "and consistency_token"
                                : "the answer"}};
    if (!spec.response_schema.is_null()) {
      ok["content"] = {{"application/json", {{"schema", spec.response_schema}}}};
    }
    responses[spec.kind == sdk::RouteKind::kCommand ? (spec.method == "POST" ? "201" : "202")
                                                    : "200"] = ok;
    responses["400"] = errorResponse("malformed JSON or a missing/invalid field");
    if (token_required) responses["401"] = errorResponse("missing or wrong bearer token");
    responses["404"] = errorResponse("unknown route or resource");
    if (spec.kind == sdk::RouteKind::kCommand) {
      responses["409"] = errorResponse("conflicts with the aggregate's state");
      responses["411"] = errorResponse("no Content-Length (chunked bodies are refused)");
      responses["413"] = errorResponse("body larger than api.max_body_bytes");
      responses["415"] = errorResponse("body not sent as Content-Type: application/json");
      responses["422"] = errorResponse("rejected by the domain, or Idempotency-Key reused");
      responses["503"] = errorResponse("Kafka did not store the event, or the server is busy");
    } else {
      responses["503"] = errorResponse(
          "the database is unavailable, too many consistent_with waits, or the server is busy");
      responses["504"] = errorResponse("consistent_with not reached in time");
    }
    operation["responses"] = responses;
    paths[spec.path][lower(spec.method)] = operation;
  }
  json components_schemas = schemas.is_object() ? schemas : json::object();
  components_schemas["Error"] = {
      {"type", "object"},
      {"required", {"error"}},
      {"properties",
       {{"error",
         {{"type", "object"},
          {"required", {"code", "message"}},
          {"properties",
           {{"code", {{"type", "string"}}},
            {"message", {{"type", "string"}}},
            {"field", {{"type", "string"}}}}}}}}}};
  json doc{{"openapi", "3.0.3"},
           {"info",
            {{"title", "UltraCore API"},
             {"version", "1"},
             {"description", std::string(kCommandText) + " " + kConsistencyText}}},
           {"paths", paths},
           {"components", {{"schemas", components_schemas}}}};
  if (token_required) {
    doc["components"]["securitySchemes"] = {{"bearer", {{"type", "http"}, {"scheme", "bearer"}}}};
    doc["security"] = json::array({{{"bearer", json::array()}}});
  }
  return doc;
}

namespace {

/// A sample value for a schema: the body a person starts from on the docs page. Objects list
/// their required properties (all of them when none is required).
json exampleOf(const json& schema, int depth = 0) {
  if (!schema.is_object() || depth > 4) return json::object();
  if (schema.contains("example")) return schema["example"];
  if (schema.contains("enum") && schema["enum"].is_array() && !schema["enum"].empty()) {
    return schema["enum"][0];
  }
  std::string type = schema.value("type", json("object")).is_string()
                         ? schema.value("type", std::string("object"))
                         : std::string("string");
  if (type == "object") {
    json out = json::object();
    const json properties = schema.value("properties", json::object());
    std::vector<std::string> names;
    if (schema.contains("required") && schema["required"].is_array() && !schema["required"].empty()) {
      for (const auto& name : schema["required"]) names.push_back(name.get<std::string>());
    } else {
      for (const auto& [name, member] : properties.items()) names.push_back(name);
    }
    for (const auto& name : names) {
      out[name] = exampleOf(properties.value(name, json::object()), depth + 1);
    }
    return out;
  }
  if (type == "array") return json::array();
  if (type == "integer" || type == "number") return 0;
  if (type == "boolean") return false;
  if (schema.value("format", "") == "date") return "2000-01-31";
  return "string";
}

/// The page's script: sends a route's form with fetch() and shows the answer (no external
/// resources; the token stays in the tab: URL fragment or this session's storage).
const char* kDocsScript = R"JS(
const $ = (s, e = document) => e.querySelector(s);
const token = $('#token'), tenant = $('#tenant'), user = $('#user'), last = $('#last-token');
const fragment = location.hash.match(/token=([^&]+)/);
token.value = fragment ? decodeURIComponent(fragment[1]) : (sessionStorage.getItem('ultracore-token') || '');
token.addEventListener('input', () => sessionStorage.setItem('ultracore-token', token.value));
const quote = (text) => "'" + String(text).replace(/'/g, "'\\''") + "'";
function show(section, status, text, curl) {
  $('.status', section).textContent = status;
  $('.response', section).textContent = text;
  $('.curl', section).textContent = curl || '';
  section.dataset.answered = String(Number(section.dataset.answered || 0) + 1);
}
async function send(section) {
  const method = section.dataset.method;
  let path = section.dataset.path;
  const missing = [];
  section.querySelectorAll('input.param').forEach((input) => {
    if (!input.value) missing.push(input.name);
    path = path.replace('{' + input.name + '}', encodeURIComponent(input.value));
  });
  if (missing.length) return show(section, 'not sent', 'fill in the path parameter(s): ' + missing.join(', '));
  const query = new URLSearchParams();
  section.querySelectorAll('input.query').forEach((input) => { if (input.value) query.set(input.name, input.value); });
  const url = path + (query.toString() ? '?' + query : '');
  const headers = {};
  if (token.value) headers['Authorization'] = 'Bearer ' + token.value;
  if (tenant.value) headers['X-Tenant-Id'] = tenant.value;
  if (user.value) headers['X-User-Id'] = user.value;
  section.querySelectorAll('input.header').forEach((input) => { if (input.value) headers[input.name] = input.value; });
  const options = {method, headers};
  const body = $('textarea.body', section);
  if (body) {
    try { JSON.parse(body.value || '{}'); } catch (e) {
      return show(section, 'not sent', 'the body is not valid JSON: ' + e.message);
    }
    options.body = body.value || '{}';
  }
  if (method !== 'GET') headers['Content-Type'] = 'application/json';
  const curl = 'curl -i -X ' + method + ' ' + quote(location.origin + url) +
      Object.entries(headers).map(([k, v]) => ' -H ' + quote(k + ': ' + (k === 'Authorization' ? 'Bearer $TOKEN' : v))).join('') +
      (options.body !== undefined ? ' -d ' + quote(options.body) : '');
  let response;
  try {
    response = await fetch(url, options);
  } catch (e) {
    return show(section, 'failed', 'the request failed: ' + e.message, curl);
  }
  const text = await response.text();
  let pretty = text;
  try {
    const answer = JSON.parse(text);
    pretty = JSON.stringify(answer, null, 2);
    if (answer && answer.consistency_token) {
      last.value = answer.consistency_token;
      document.querySelectorAll('input.param[name=id]').forEach((input) => {
        if (!input.value && answer.aggregate_id) input.value = answer.aggregate_id;
      });
    }
  } catch (e) { /* not JSON: shown as it came */ }
  const shown = ['X-Consistency-Token', 'ETag', 'Retry-After', 'WWW-Authenticate']
      .filter((h) => response.headers.get(h)).map((h) => h + ': ' + response.headers.get(h));
  show(section, 'HTTP ' + response.status + ' ' + response.statusText +
       (shown.length ? '\n' + shown.join('\n') : ''), pretty, curl);
}
document.querySelectorAll('section.route').forEach((section) => {
  $('button.send', section).addEventListener('click', () => send(section));
  const use = $('button.use-token', section);
  if (use) use.addEventListener('click', () => { $('input.consistent', section).value = last.value; });
});
)JS";

std::string input(const std::string& css_class, const std::string& name,
                  const std::string& placeholder) {
  return "<label>" + escapeHtml(name) + " <input class=\"" + css_class + "\" name=\"" +
         escapeHtml(name) + "\" placeholder=\"" + escapeHtml(placeholder) + "\"></label> ";
}

}  // namespace

std::string buildDocsHtml(const std::vector<RouteDoc>& routes, bool token_required) {
  std::string html =
      "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>UltraCore API</title>"
      "<style>body{font-family:sans-serif;max-width:70em;margin:2em auto;padding:0 1em}"
      "code{background:#eee}td,th{padding:.3em .6em;text-align:left;vertical-align:top}"
      "section.route{border:1px solid #ccc;border-radius:4px;margin:1em 0;padding:.5em 1em}"
      "section.route h3{margin:.3em 0;font-size:1em}.method{display:inline-block;min-width:4.5em;"
      "font-weight:bold}.command .method{color:#a35200}.query .method{color:#1a5fb4}"
      "label{display:inline-block;margin:.2em 1em .2em 0}textarea{width:100%;font-family:monospace}"
      "pre{background:#f6f6f6;padding:.5em;overflow:auto;max-height:30em;margin:.3em 0}"
      "pre:empty{display:none}#settings{background:#f0f4f8;padding:.5em 1em;border-radius:4px}"
      "#settings input{width:16em}</style></head><body>\n"
      "<h1>UltraCore API</h1>\n<p>Machine-readable: <a href=\"/api/v1/openapi.json\">"
      "/api/v1/openapi.json</a> (OpenAPI 3). Every route below has a form: fill it in and "
      "<b>Send</b> sends the request from this page and shows the answer, with the same "
      "request as a curl command.</p>\n";
  html += "<div id=\"settings\"><b>Sent with every request</b><br>"
          "<label>Bearer token <input id=\"token\" type=\"password\" autocomplete=\"off\" "
          "placeholder=\"" +
          std::string(token_required ? "required: api.token or one of api.tokens"
                                     : "not required by this server") +
          "\"></label><label>X-Tenant-Id <input id=\"tenant\" placeholder=\"DEFAULT\"></label>"
          "<label>X-User-Id <input id=\"user\" placeholder=\"api\"></label><br>"
          "<label>Last consistency token <input id=\"last-token\" readonly "
          "placeholder=\"a command's answer fills it\"></label></div>\n";
  html += "<h2>Conventions</h2><ul>";
  html += "<li>Tenancy: <code>X-Tenant-Id</code> (default <code>DEFAULT</code>); queries see "
          "only their tenant's rows, commands stamp it into the event.</li>";
  if (token_required) {
    html += "<li>Auth: every route except <code>/healthz</code>, <code>/readyz</code> and this "
            "page needs <code>Authorization: Bearer &lt;token&gt;</code> (401 otherwise). Open "
            "this page as <code>/api/v1/docs#token=...</code> or type the token above; it stays "
            "in this tab.</li>";
  }
  html += "<li>Errors: <code>{\"error\": {\"code\", \"message\", \"field\"?}}</code>; "
          "400 malformed JSON or bad field, 404 unknown route or resource, 405 wrong method, "
          "409 state conflict, 413 body too large, 422 domain rule or an event that breaks the "
          "event catalog's schema (<code>event_schema_violation</code>, naming the field and "
          "the rule), 503 Kafka or PostgreSQL unavailable, 504 consistency wait timed out. A "
          "rejected request publishes nothing.</li>";
  html += std::string("<li>") + escapeHtml(kCommandText) + "</li>";
  html += std::string("<li>") + escapeHtml(kConsistencyText) + "</li>";
  html += "<li><code>GET /healthz</code>: process up. <code>GET /readyz</code>: Kafka and "
          "PostgreSQL reachable (503 otherwise).</li></ul>\n";
  html += "<h2>Routes</h2>\n";
  for (const auto& route : routes) {
    const sdk::RouteSpec& spec = route.spec;
    const bool command = spec.kind == sdk::RouteKind::kCommand;
    html += "<section class=\"route " + std::string(command ? "command" : "query") +
            "\" id=\"route-" + std::to_string(&route - routes.data()) + "\" data-method=\"" +
            escapeHtml(spec.method) + "\" data-path=\"" + escapeHtml(spec.path) + "\">\n<h3>" +
            "<span class=\"method\">" + escapeHtml(spec.method) + "</span> <code>" +
            escapeHtml(spec.path) + "</code> " + escapeHtml(spec.summary) + " <small>(" +
            (command ? "command" : "query") + ", plugin " + escapeHtml(route.plugin) +
            ")</small></h3>\n<p>" + escapeHtml(spec.description) + "</p>\n<div>";
    for (const auto& name : route.path_parameters) html += input("param", name, "required");
    for (const auto& name : spec.query_params) html += input("query", name, "optional");
    if (command) {
      html += input("header", "Idempotency-Key", "optional: a retry with it publishes nothing");
      if (!spec.aggregate.empty()) html += input("header", "If-Match", "optional: version");
    } else {
      html += "<label>consistent_with <input class=\"header consistent\" "
              "name=\"X-Consistent-With\" placeholder=\"optional: a consistency token\"></label>"
              "<button type=\"button\" class=\"use-token\">use the last token</button>";
    }
    html += "</div>\n";
    if (!spec.request_schema.is_null()) {
      html += "<label style=\"display:block\">Body (JSON)<textarea class=\"body\" rows=\"6\">" +
              escapeHtml(exampleOf(spec.request_schema).dump(2)) + "</textarea></label>"
              "<details><summary>Body schema</summary><pre>" +
              escapeHtml(spec.request_schema.dump(2)) + "</pre></details>\n";
    }
    for (const auto& event : route.events) {
      html += "<details class=\"publishes\"><summary>Publishes <code>" +
              escapeHtml(event.value("event_type", "")) + "</code> to <code>" +
              escapeHtml(event.value("topic", "")) +
              "</code> (event catalog: event_data must match)</summary><pre>" +
              escapeHtml(event["schema"].dump(2)) + "</pre></details>\n";
    }
    html += "<button type=\"button\" class=\"send\">Send</button>\n"
            "<pre class=\"status\"></pre><pre class=\"response\"></pre>"
            "<pre class=\"curl\"></pre>\n</section>\n";
  }
  html += std::string("<script>") + kDocsScript + "</script>\n</body></html>\n";
  return html;
}

}  // namespace ultracore::engine
