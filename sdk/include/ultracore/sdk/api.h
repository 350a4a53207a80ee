#pragma once
/// @file
/// Command and query handlers: the HTTP API a plugin offers (issue 4).
///
/// A plugin declares routes (method + path pattern such as "/api/v1/customers/{id}") and one
/// handler per route. The engine owns everything else: the HTTP server, JSON parsing, auth,
/// tenancy, idempotency keys, the Kafka producer and the PostgreSQL pool. A handler sees a
/// parsed Request and a read-only Reader on the read model, and returns a Reply:
///
///  - a query answers JSON (Reply::ok);
///  - a command answers the events to publish (Reply::publish). The engine stamps each event
///    with a fresh event_id, occurred_at, tenant and user, produces it (key = aggregate_id) and
///    answers only after Kafka acknowledged it, adding the record's position and a consistency
///    token to the body;
///  - either may answer an error (Reply::error); then nothing is published.
///
/// Consistent commands (issue 14). A route declares every projection its handler reads
/// (RouteSpec::reads). Before a command's handler runs, the engine waits until each of them has
/// applied what the log held when the command arrived, so a command sees every earlier event
/// it depends on (create-then-use needs no token). A route that acts on one aggregate names the
/// path parameter holding its id (RouteSpec::aggregate): commands on one aggregate then run one
/// at a time across every API process, each validated after the previous one's event is in the
/// read model, and a command's events should carry aggregate_version = the version it validated
/// against + 1 (the engine answers 412 to `If-Match` when they do not match it). Commands on
/// other aggregates still run in parallel. A query on such a route answers `ETag` from the
/// body's integer "version".
///
/// nlohmann::json is part of this interface on purpose (as in event.h): bodies are free-form
/// JSON; its ABI is pinned by the build fingerprint.

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "ultracore/sdk/logger.h"
#include "ultracore/sdk/status.h"
#include "ultracore/sdk/version.h"
#include "ultracore/sdk/writer.h"

namespace ultracore::sdk {

/// Commands publish events; queries only read.
enum class RouteKind : int { kCommand = 0, kQuery = 1 };

/// One route, declared once when the engine creates the Api.
struct RouteSpec {
  std::string method;  ///< "GET", "POST", "PATCH", "PUT" or "DELETE"
  std::string path;    ///< e.g. "/api/v1/customers/{id}"; `{name}` matches one path segment
  RouteKind kind = RouteKind::kQuery;
  /// The projection (plugin projection name, e.g. "customers") whose read model serves this
  /// route: Reader's `{schema}` names its schema, and `?consistent_with=` waits for it.
  std::string projection;
  std::string summary;                  ///< one line, for the docs
  std::string description;              ///< a paragraph, for the docs
  nlohmann::json request_schema;        ///< JSON Schema of the body (OpenAPI), null: no body
  nlohmann::json response_schema;       ///< JSON Schema of a successful answer, null: unstated
  std::vector<std::string> query_params;  ///< documented query parameters
  /// Every projection the handler reads (plugin or manifest projection names). Empty: only
  /// `projection`. A command waits for each of them before its handler runs: for "NAME", until
  /// it applied every partition's end offset (asked of Kafka when the command arrived); for
  /// "NAME@KEY", when the handler reads only the aggregate whose id is path parameter or body
  /// field KEY, until it applied that aggregate's last events (none when the request has no
  /// KEY: nothing to wait for). The second is far cheaper under load.
  /// (The `{}` initializers keep braced declarations written before these fields warning-free.)
  std::vector<std::string> reads{};
  /// The path parameter naming the aggregate the route acts on (e.g. "id"), "" for none (a
  /// create, a list). Commands with one are serialized per (tenant, aggregate id).
  std::string aggregate{};
};

/// A parsed HTTP request. Owned by the engine, valid during the handler call.
struct Request {
  std::size_t route = 0;  ///< index into Api::routes()
  std::string method;
  std::string path;
  std::map<std::string, std::string> path_params;
  std::map<std::string, std::string> query;
  nlohmann::json body = nlohmann::json::object();  ///< always an object ({} when none was sent)
  std::string tenant_id;  ///< X-Tenant-Id, default "DEFAULT"; filter every query by it
  std::string user_id;    ///< X-User-Id, default "api"

  /// A path parameter ("" when the route has none of that name).
  std::string param(const std::string& name) const {
    const auto it = path_params.find(name);
    return it == path_params.end() ? std::string() : it->second;
  }
  std::optional<std::string> queryParam(const std::string& name) const {
    const auto it = query.find(name);
    if (it == query.end()) return std::nullopt;
    return it->second;
  }
};

/// An event a command asks the engine to publish. The engine adds event_id, occurred_at,
/// tenant_id and user_id; the Kafka key is aggregate_id.
struct NewEvent {
  std::string topic;
  std::string event_type;
  std::string aggregate_type;
  std::string aggregate_id;
  std::optional<std::int64_t> aggregate_version;
  nlohmann::json event_data = nlohmann::json::object();
};

/// What a handler answers. Value type.
struct Reply {
  int status = 200;
  nlohmann::json body = nlohmann::json::object();
  std::vector<NewEvent> events;  ///< published in order, only when status < 400

  /// A query's answer.
  static Reply ok(nlohmann::json body, int status = 200) {
    Reply reply;
    reply.status = status;
    reply.body = std::move(body);
    return reply;
  }
  /// A command's answer: 201 for a new aggregate, 202 otherwise. The engine adds aggregate_id,
  /// event_id, position {topic, partition, offset} and consistency_token to `body`.
  static Reply publish(NewEvent event, int status = 202,
                       nlohmann::json body = nlohmann::json::object()) {
    Reply reply;
    reply.status = status;
    reply.body = std::move(body);
    reply.events.push_back(std::move(event));
    return reply;
  }
  /// {"error": {"code", "message", "field"?}}; nothing is published.
  static Reply error(int status, std::string code, std::string message, std::string field = "") {
    nlohmann::json error{{"code", std::move(code)}, {"message", std::move(message)}};
    if (!field.empty()) error["field"] = std::move(field);
    Reply reply;
    reply.status = status;
    reply.body = nlohmann::json{{"error", std::move(error)}};
    return reply;
  }
  /// The error answer for a failed Reader call: 503 when transient (retry), else 500.
  static Reply fromStatus(const Status& failure) {
    const bool transient = failure.code() == StatusCode::kTransient;
    return error(transient ? 503 : 500, transient ? "database_unavailable" : "database_error",
                 failure.message());
  }
  bool isError() const { return status >= 400; }
};

/// Row `i` of `rows` as a JSON object of strings (SQL NULL becomes null).
inline nlohmann::json rowObject(const Rows& rows, std::size_t i) {
  nlohmann::json object = nlohmann::json::object();
  for (std::size_t c = 0; c < rows.columns.size(); ++c) {
    const Value& value = rows.rows[i][c];
    object[rows.columns[c]] = value ? nlohmann::json(*value) : nlohmann::json(nullptr);
  }
  return object;
}

/// Read-only access to PostgreSQL for one handler call, in one READ ONLY transaction.
/// `{schema}` in a statement is the schema of the route's projection; `{schema:NAME}` that of
/// projection NAME (a manifest projection name or a plugin projection name), both quoted.
/// One call is exactly one statement (the extended protocol, with or without parameters), run
/// as the API's read-only PostgreSQL role: it may read the projections' tables (those created
/// in setupSchema), never write them (README, "Security").
/// Owned by the engine, valid during the call, used from the calling thread only.
class ULTRACORE_SDK_API Reader {
 public:
  virtual ~Reader() = default;
  virtual Result<Rows> query(std::string_view sql, const Params& params = {}) = 0;
};

/// What the engine tells an Api when it creates it. Valid for the Api's life.
struct ApiContext {
  std::string plugin_name;  ///< the manifest's name for the plugin
  Logger* logger = nullptr;  ///< never null when the engine creates the Api
};

/// A plugin's command/query handlers. Created once on the main thread; routes() and schemas()
/// are read once at start-up; handle() is called from many HTTP threads at once, so it must
/// be thread-safe (the handlers below keep no mutable state).
class ULTRACORE_SDK_API Api {
 public:
  virtual ~Api() = default;
  virtual std::vector<RouteSpec> routes() const = 0;
  /// Named JSON Schemas for OpenAPI's components.schemas (referenced as
  /// {"$ref": "#/components/schemas/<name>"} from RouteSpec schemas).
  virtual nlohmann::json schemas() const { return nlohmann::json::object(); }
  /// Handles request.route. Never throws across the boundary (the guard below catches).
  virtual Reply handle(const Request& request, Reader& db) = 0;
};

/// Convenience base: register routes with lambdas in the constructor.
///
///   CustomersApi(const sdk::ApiContext&) {
///     route({"GET", "/api/v1/customers/{id}", sdk::RouteKind::kQuery, "customers", "..."},
///           [](const sdk::Request& r, sdk::Reader& db) { ... });
///   }
class RouteTable : public Api {
 public:
  using Handler = std::function<Reply(const Request&, Reader&)>;

  std::vector<RouteSpec> routes() const override { return specs_; }
  nlohmann::json schemas() const override { return schemas_; }
  Reply handle(const Request& request, Reader& db) override {
    if (request.route >= handlers_.size()) {
      return Reply::error(404, "not_found", "no handler for route #" +
                                                std::to_string(request.route));
    }
    return handlers_[request.route](request, db);
  }

 protected:
  void route(RouteSpec spec, Handler handler) {
    specs_.push_back(std::move(spec));
    handlers_.push_back(std::move(handler));
  }
  void schema(const std::string& name, nlohmann::json json_schema) {
    schemas_[name] = std::move(json_schema);
  }

 private:
  std::vector<RouteSpec> specs_;
  std::vector<Handler> handlers_;
  nlohmann::json schemas_ = nlohmann::json::object();
};

// ---- request-body helpers: return an error Reply naming the field, or the value ----------

/// A required non-empty string field of the body; 400 when missing, empty or not a string.
inline std::optional<Reply> requireString(const nlohmann::json& body, const char* field,
                                          std::string& out) {
  const auto it = body.find(field);
  if (it == body.end() || it->is_null()) {
    return Reply::error(400, "missing_field", std::string("field '") + field + "' is required",
                        field);
  }
  if (!it->is_string()) {
    return Reply::error(400, "invalid_field", std::string("field '") + field +
                                                  "' must be a string", field);
  }
  out = it->get<std::string>();
  if (out.empty()) {
    return Reply::error(400, "invalid_field", std::string("field '") + field + "' is empty",
                        field);
  }
  return std::nullopt;
}

/// An optional string-or-null field; 400 when of another type.
inline std::optional<Reply> optionalString(const nlohmann::json& body, const char* field) {
  const auto it = body.find(field);
  if (it == body.end() || it->is_null() || it->is_string()) return std::nullopt;
  return Reply::error(400, "invalid_field",
                      std::string("field '") + field + "' must be a string or null", field);
}

}  // namespace ultracore::sdk
