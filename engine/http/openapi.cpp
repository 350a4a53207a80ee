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

std::string buildDocsHtml(const std::vector<RouteDoc>& routes, bool token_required) {
  std::string html =
      "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>UltraCore API</title>"
      "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto}code{background:#eee}"
      "td,th{padding:.3em .6em;text-align:left;vertical-align:top}</style></head><body>\n"
      "<h1>UltraCore API</h1>\n<p>Machine-readable: <a href=\"/api/v1/openapi.json\">"
      "/api/v1/openapi.json</a> (OpenAPI 3).</p>\n";
  html += "<h2>Conventions</h2><ul>";
  html += "<li>Tenancy: <code>X-Tenant-Id</code> (default <code>DEFAULT</code>); queries see "
          "only their tenant's rows, commands stamp it into the event.</li>";
  if (token_required) {
    html += "<li>Auth: every route except <code>/healthz</code> and <code>/readyz</code> needs "
            "<code>Authorization: Bearer &lt;token&gt;</code> (401 otherwise).</li>";
  }
  html += "<li>Errors: <code>{\"error\": {\"code\", \"message\", \"field\"?}}</code>; "
          "400 malformed JSON or bad field, 404 unknown route or resource, 405 wrong method, "
          "409 state conflict, 413 body too large, 422 domain rule, 503 Kafka or PostgreSQL "
          "unavailable, 504 consistency wait timed out. A rejected request publishes "
          "nothing.</li>";
  html += std::string("<li>") + escapeHtml(kCommandText) + "</li>";
  html += std::string("<li>") + escapeHtml(kConsistencyText) + "</li>";
  html += "<li><code>GET /healthz</code>: process up. <code>GET /readyz</code>: Kafka and "
          "PostgreSQL reachable (503 otherwise).</li></ul>\n";
  html += "<h2>Routes</h2>\n<table><tr><th>method</th><th>path</th><th>kind</th>"
          "<th>plugin</th><th>what</th></tr>\n";
  for (const auto& route : routes) {
    html += "<tr><td><code>" + escapeHtml(route.spec.method) + "</code></td><td><code>" +
            escapeHtml(route.spec.path) + "</code></td><td>" +
            (route.spec.kind == sdk::RouteKind::kCommand ? "command" : "query") + "</td><td>" +
            escapeHtml(route.plugin) + "</td><td><b>" + escapeHtml(route.spec.summary) +
            "</b><br>" + escapeHtml(route.spec.description);
    if (!route.spec.request_schema.is_null()) {
      html += "<br>Body: <code>" + escapeHtml(route.spec.request_schema.dump()) + "</code>";
    }
    html += "</td></tr>\n";
  }
  html += "</table></body></html>\n";
  return html;
}

}  // namespace ultracore::engine
