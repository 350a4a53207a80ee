#include "engine/http/api_server.h"

#include "engine/http/bearer_token.h"
#include "engine/http/consistency_token.h"
#include "engine/http/guarded_server.h"
#include "engine/http/listen_address.h"

#include <httplib.h>

#include <algorithm>
#include <cctype>
#include <csignal>
#include <cstdlib>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <ctime>
#include <optional>
#include <random>
#include <set>

#include <pqxx/nontransaction>
#include <pqxx/result>
#include <pqxx/transaction>
#include <spdlog/spdlog.h>

#include "engine/http/event_id.h"
#include "engine/http/event_producer.h"
#include "engine/http/fault_point.h"
#include "engine/http/openapi.h"
#include "engine/http/pg_pool.h"
#include "engine/http/route_path.h"
#include "engine/postgres/offset_watch.h"
#include "engine/postgres/pg_errors.h"
#include "engine/postgres/pg_writer.h"
#include "engine/runner/plugin_logger.h"
#include "ultracore/sdk/json_depth.h"

namespace ultracore::engine {

using nlohmann::json;

/// One registered route and what serves it.
struct ApiRoute {
  std::string plugin;
  std::shared_ptr<sdk::Api> api;
  std::size_t index = 0;  ///< the route's index in api->routes()
  sdk::RouteSpec spec;
  RoutePath path;
  std::string projection;           ///< manifest projection serving it ("" when none)
  std::string schema;               ///< that projection's schema (Reader's `{schema}`)
  std::set<std::string> topics;     ///< the topics that projection consumes
  /// Every manifest projection the handler reads (RouteSpec::reads, else `projection`), with
  /// its topics: a command waits for each of them before its handler runs.
  std::vector<std::pair<std::string, std::set<std::string>>> reads{};
  /// Per entry of `reads`: the body field (or path parameter) naming the one aggregate read
  /// there ("projection@field"), "" when the handler may read anything in it.
  std::vector<std::string> read_keys{};
};

namespace {

/// PostgreSQL connections of the API's pools: a request holds at most one of each.
constexpr std::size_t kPoolSize = 16;
constexpr auto kPoolWait = std::chrono::seconds(5);
/// A consistent_with wait rechecks at least this often (the NOTIFY normally wakes it first).
constexpr auto kConsistencyPoll = std::chrono::milliseconds(25);
/// consistent_with waits at once; more are refused with 503. A wait holds a worker thread but
/// no connection, so the workers are the pool's plus the waiters': waits never leave a request
/// that needs the database without a thread (the bench's read-your-write GETs at 200/s were
/// refused with a cap of 8 out of 16 workers whenever the projection lagged a moment).
constexpr std::size_t kMaxWaiters = 16;
constexpr std::size_t kWorkerThreads = kPoolSize + kMaxWaiters;
/// An Idempotency-Key is remembered this long; then the same key is a new command.
constexpr int kIdempotencyRetentionHours = 24;
/// How long a wait asks Kafka for the log end before it waits anyway.
constexpr auto kLogEndWait = std::chrono::seconds(1);
const std::set<std::string> kMethods = {"GET", "POST", "PATCH", "PUT", "DELETE"};

// ---- small helpers ------------------------------------------------------------------------

void sendJson(httplib::Response& res, int status, const json& body) {
  res.status = status;
  // Invalid UTF-8 (a plugin echoing a header, say) is replaced, never an exception.
  res.set_content(body.dump(-1, ' ', false, json::error_handler_t::replace), "application/json");
}

void sendError(httplib::Response& res, int status, const std::string& code,
               const std::string& message, const std::string& field = "") {
  sendJson(res, status, sdk::Reply::error(status, code, message, field).body);
}

std::string uuid4() {
  thread_local std::mt19937_64 random([] {
    std::random_device device;
    std::seed_seq seed{device(), device(), device(), device()};
    return std::mt19937_64(seed);
  }());
  std::uint64_t high = random();
  std::uint64_t low = random();
  high = (high & 0xFFFFFFFFFFFF0FFFULL) | 0x0000000000004000ULL;  // version 4
  low = (low & 0x3FFFFFFFFFFFFFFFULL) | 0x8000000000000000ULL;    // variant 10
  char out[37];
  std::snprintf(out, sizeof(out), "%08x-%04x-%04x-%04x-%012llx",
                static_cast<unsigned>(high >> 32), static_cast<unsigned>((high >> 16) & 0xFFFF),
                static_cast<unsigned>(high & 0xFFFF), static_cast<unsigned>(low >> 48),
                static_cast<unsigned long long>(low & 0xFFFFFFFFFFFFULL));
  return out;
}

std::string nowIso8601() {
  const auto now = std::chrono::system_clock::now();
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch());
  const std::time_t seconds = static_cast<std::time_t>(ms.count() / 1000);
  std::tm tm{};
  gmtime_r(&seconds, &tm);
  char date[32];
  std::strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%S", &tm);
  char out[48];
  std::snprintf(out, sizeof(out), "%s.%03dZ", date, static_cast<int>(ms.count() % 1000));
  return out;
}

/// Well-formed UTF-8 without NUL (PostgreSQL text holds neither invalid bytes nor NUL).
bool validUtf8(std::string_view text) {
  std::size_t i = 0;
  while (i < text.size()) {
    const auto c = static_cast<unsigned char>(text[i]);
    std::size_t extra = 0;
    std::uint32_t code = 0;
    if (c == 0) return false;
    if (c < 0x80) {
      ++i;
      continue;
    }
    if ((c & 0xE0) == 0xC0) {
      extra = 1;
      code = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      extra = 2;
      code = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      extra = 3;
      code = c & 0x07;
    } else {
      return false;
    }
    if (i + extra >= text.size()) return false;
    for (std::size_t k = 1; k <= extra; ++k) {
      const auto next = static_cast<unsigned char>(text[i + k]);
      if ((next & 0xC0) != 0x80) return false;
      code = (code << 6) | (next & 0x3F);
    }
    static constexpr std::uint32_t kMin[] = {0, 0x80, 0x800, 0x10000};
    if (code < kMin[extra] || code > 0x10FFFF || (code >= 0xD800 && code <= 0xDFFF)) return false;
    i += extra + 1;
  }
  return true;
}

/// X-User-Id is stamped into events: 1-128 printable ASCII characters.
bool validUser(const std::string& user) {
  return !user.empty() && user.size() <= 128 &&
         std::all_of(user.begin(), user.end(), [](char c) { return c >= 0x20 && c < 0x7f; });
}

/// An id for a failure the client cannot fix: the answer carries it, the log line has it with
/// the details (which never go to the client).
std::string newErrorId() { return uuid4().substr(0, 8); }

/// Logs `detail` under a fresh error id and answers `status` with a generic message and the id.
void sendInternalError(httplib::Response& res, const httplib::Request& req, int status,
                       const std::string& code, const std::string& detail) {
  const std::string id = newErrorId();
  spdlog::error("api: {} {}: error {}: {}", req.method, req.path, id, detail);
  json body = sdk::Reply::error(status, code,
                                status == 503 ? "the database is unavailable; retry later"
                                              : "internal error")
                  .body;
  body["error"]["error_id"] = id;
  sendJson(res, status, body);
}

bool validTenant(const std::string& tenant) {
  if (tenant.empty() || tenant.size() > 64) return false;
  return std::all_of(tenant.begin(), tenant.end(), [](unsigned char c) {
    return std::isalnum(c) || c == '_' || c == '-' || c == '.';
  });
}

using Position = ConsistencyPosition;

/// (topic, partition) -> a next offset: what a projection must have stored, or has stored.
using Targets = std::map<std::pair<std::string, std::int32_t>, std::int64_t>;
using ReadSet = std::vector<std::pair<std::string, std::set<std::string>>>;

void raiseTarget(Targets& targets, const std::string& topic, std::int32_t partition,
                 std::int64_t next) {
  auto& target = targets[{topic, partition}];
  target = std::max(target, next);
}

/// Waits until each projection of `reads` has stored, for every target partition of its
/// topics, at least the target's next offset. `stored(projection)` reads its offsets (and may
/// throw a database error). Answers what it still waits for when `deadline` passes first.
std::optional<std::string> awaitApplied(const ReadSet& reads, const Targets& targets,
                                        std::chrono::steady_clock::time_point deadline,
                                        const OffsetWatch& watch,
                                        const std::function<Targets(const std::string&)>& stored) {
  for (;;) {
    // Read before the check, as for consistent_with: a commit after it is not missed.
    const std::uint64_t seen = watch.generation();
    std::optional<std::string> missing;
    for (const auto& [projection, topics] : reads) {
      const Targets offsets = stored(projection);
      for (const auto& [partition, next] : targets) {
        if (topics.count(partition.first) == 0 || next <= 0) continue;
        const auto it = offsets.find(partition);
        if (it == offsets.end() || it->second < next) {
          missing = "projection '" + projection + "' has not applied " + partition.first + ":" +
                    std::to_string(partition.second) + " up to offset " +
                    std::to_string(next - 1) + " within " +
                    std::to_string(kConsistencyTimeout.count()) + " s";
          break;
        }
      }
      if (missing) break;
    }
    if (!missing) return std::nullopt;
    if (std::chrono::steady_clock::now() >= deadline) return missing;
    watch.waitForChange(seen, std::min(kConsistencyPoll,
                                       std::chrono::duration_cast<std::chrono::milliseconds>(
                                           deadline - std::chrono::steady_clock::now()) +
                                           std::chrono::milliseconds(1)));
  }
}

/// A projection's stored next offsets, from ultracore_offsets.
Targets storedOffsets(pqxx::transaction_base& txn, const std::string& projection) {
  Targets offsets;
  const auto rows = txn.exec_params(
      "SELECT topic, partition, next_offset FROM ultracore_offsets "
      "WHERE projection = ultracore_live_key($1) AND next_offset IS NOT NULL",
      projection);
  for (const auto& row : rows) {
    offsets[{row[0].c_str(), row[1].as<std::int32_t>()}] = row[2].as<std::int64_t>();
  }
  return offsets;
}

/// Reader on one READ ONLY transaction: `{schema:NAME}` then `{schema}` are expanded; every
/// statement uses the extended protocol (one statement per call, even without parameters).
class PgReader final : public sdk::Reader {
 public:
  PgReader(pqxx::transaction_base& txn, const std::string& schema,
           const std::map<std::string, std::string>& schemas)
      : writer_(txn, schema, /*extended_only=*/true), txn_(txn), schemas_(schemas) {}

  sdk::Result<sdk::Rows> query(std::string_view sql, const sdk::Params& params) override {
    std::string text(sql);
    for (std::size_t at = text.find("{schema:"); at != std::string::npos;
         at = text.find("{schema:", at)) {
      const std::size_t end = text.find('}', at);
      if (end == std::string::npos) break;
      const std::string name = text.substr(at + 8, end - at - 8);
      const auto it = schemas_.find(name);
      if (it == schemas_.end()) {
        // Never the name as given: that would read whatever schema happens to have it.
        last_error_id_ = newErrorId();
        spdlog::error("api: {}: error {}: unknown projection '{}' in {{schema:{}}} (no manifest "
                      "projection and no served plugin projection has that name)",
                      context_, last_error_id_, name, name);
        return sdk::Status::invalidArgument("unknown projection in {schema:NAME} (error " +
                                            last_error_id_ + ")");
      }
      const std::string quoted = txn_.quote_name(it->second);
      text.replace(at, end - at + 1, quoted);
      at += quoted.size();
    }
    auto result = writer_.query(text, params);
    if (!result) {
      // The plugin may put the message into its answer: it gets an id, the log the details.
      const bool transient = result.status().code() == sdk::StatusCode::kTransient;
      last_error_id_ = newErrorId();
      spdlog::error("api: {}: error {}: {}", context_, last_error_id_, result.status().message());
      return sdk::Status(result.status().code(),
                         (transient ? "the database is unavailable; retry later (error "
                                    : "database error (error ") +
                             last_error_id_ + ")");
    }
    return result;
  }

  /// The id of the last failed query ("" if none), which the answer carries as error_id.
  const std::string& lastErrorId() const { return last_error_id_; }
  void setContext(std::string context) { context_ = std::move(context); }

 private:
  std::string last_error_id_;
  std::string context_;
  PgWriter writer_;
  pqxx::transaction_base& txn_;
  const std::map<std::string, std::string>& schemas_;
};

}  // namespace

// ---- construction ---------------------------------------------------------------------------

ApiServer::ApiServer(const Manifest& manifest, const PluginRegistry& plugins,
                     std::map<std::string, std::string> schemas)
    : manifest_(manifest) {
  // Projection names a route or a Reader may use: the manifest's, then the plugins' own.
  schemas_ = std::move(schemas);
  std::vector<RouteDoc> docs;
  std::set<std::string> unserved;  // plugin/projection pairs already warned about
  json all_schemas = json::object();
  for (const auto& [plugin_name, plugin] : plugins.all()) {
    for (const auto& api_name : plugin->apiNames()) {
      loggers_.push_back(std::make_unique<PluginLogger>(plugin_name + "/api"));
      auto api = plugin->createApi(api_name, sdk::ApiContext{plugin_name, loggers_.back().get()});
      const auto specs = api->routes();
      for (std::size_t i = 0; i < specs.size(); ++i) {
        const sdk::RouteSpec& spec = specs[i];
        const std::string where = "plugin '" + plugin_name + "' API '" + api_name + "': route " +
                                  spec.method + " " + spec.path;
        if (kMethods.count(spec.method) == 0) {
          throw ApiStartupError(where + ": unsupported method");
        }
        auto route = std::make_shared<ApiRoute>(ApiRoute{
            plugin_name, api, i, spec, [&] {
              try {
                return RoutePath(spec.path);
              } catch (const std::invalid_argument& e) {
                throw ApiStartupError(where + ": " + e.what());
              }
            }(),
            "", "", {}});
        for (const auto& other : routes_) {
          if (other->spec.method == spec.method && other->spec.path == spec.path) {
            throw ApiStartupError(where + ": already registered by plugin '" + other->plugin + "'");
          }
        }
        // The manifest projection that serves the route: this plugin's instance of it first.
        for (const auto& projection : manifest.projections) {
          if (projection.plugin == plugin_name && projection.projection == spec.projection) {
            route->projection = projection.name;
            break;
          }
        }
        if (route->projection.empty() && manifest.findProjection(spec.projection) != nullptr) {
          route->projection = spec.projection;
        }
        if (!route->projection.empty()) {
          route->schema = schemas_.at(route->projection);
          const auto* projection = manifest.findProjection(route->projection);
          route->topics.insert(projection->topics.begin(), projection->topics.end());
          schemas_.try_emplace(spec.projection, route->schema);
        } else {
          route->schema = spec.projection;
          if (unserved.insert(plugin_name + "/" + spec.projection).second) {
            spdlog::warn("plugin '{}': no manifest projection serves '{}'; its routes read "
                         "schema '{}' and ignore consistent_with",
                         plugin_name, spec.projection, spec.projection);
          }
        }
        std::vector<std::string> reads = spec.reads;
        if (reads.empty()) reads.push_back(spec.projection);
        for (const std::string& entry : reads) {
          const std::string read = entry.substr(0, entry.find('@'));
          const std::string key =
              entry.find('@') == std::string::npos ? "" : entry.substr(entry.find('@') + 1);
          std::string name;  // this plugin's instance of it first, as for `projection`
          for (const auto& projection : manifest.projections) {
            if (projection.plugin == plugin_name && projection.projection == read) {
              name = projection.name;
              break;
            }
          }
          if (name.empty() && manifest.findProjection(read) != nullptr) name = read;
          if (name.empty()) continue;  // unserved: warned about above when it serves the route
          const auto* projection = manifest.findProjection(name);
          route->reads.emplace_back(
              name, std::set<std::string>(projection->topics.begin(), projection->topics.end()));
          route->read_keys.push_back(key);
          schemas_.try_emplace(read, schemas_.at(name));
        }
        if (!spec.aggregate.empty()) {
          const auto names = route->path.parameters();
          if (std::find(names.begin(), names.end(), spec.aggregate) == names.end()) {
            throw ApiStartupError(where + ": aggregate '" + spec.aggregate +
                                  "' is not a parameter of the path");
          }
        }
        docs.push_back(RouteDoc{plugin_name, spec, route->path.parameters()});
        routes_.push_back(std::move(route));
      }
      const json declared = api->schemas();
      if (declared.is_object()) {
        for (const auto& [name, schema] : declared.items()) all_schemas[name] = schema;
      }
    }
  }
  credentials_ = manifest.api_tokens;
  if (!manifest.api_token.empty()) {
    ApiCredential gateway;
    gateway.token = manifest.api_token;
    gateway.all_tenants = true;
    credentials_.push_back(std::move(gateway));
  }
  catalog_ = EventCatalog::build(manifest, plugins);  // commands' events are checked against it
  for (auto& doc : docs) {
    doc.events = catalog_.producedBy(doc.plugin, doc.spec.method + " " + doc.spec.path);
  }
  openapi_ = buildOpenApi(docs, all_schemas, manifest.apiNeedsToken()).dump(2);
  docs_html_ = buildDocsHtml(docs, manifest.apiNeedsToken());
  producer_ = std::make_unique<EventProducer>(manifest.kafka);
  // Least privilege: a login of its own (postgres.api_url), else the engine's with SET ROLE.
  const bool own_login = !manifest.postgres_api_url.empty();
  const std::string& url = own_login ? manifest.postgres_api_url : manifest.postgres_url;
  pool_ = std::make_unique<PgPool>(url, kPoolSize, own_login ? "" : manifest.postgres_api_role);
  // The per-aggregate locks are the engine's own rows, never a handler's: the engine's login.
  lock_pool_ = std::make_unique<PgPool>(manifest.postgres_url, kPoolSize);
  const char* pause = std::getenv("ULTRACORE_TEST_PAUSE_BEFORE_FENCE");
  pause_before_fence_ = pause != nullptr && std::string(pause) == "1";
  if (pause_before_fence_.load()) {
    spdlog::warn("api: ULTRACORE_TEST_PAUSE_BEFORE_FENCE=1: this process stops itself (SIGSTOP) "
                 "before committing its first locked command; for tests only");
  }
  watch_ = std::make_unique<OffsetWatch>(url);
  if (manifest.postgres_api_role.empty() && !own_login) {
    spdlog::warn("postgres.api_role is '': the API's handlers run as the engine's PostgreSQL user "
                 "and could write every table");
  }
}

ApiServer::~ApiServer() { stop(); }

// ---- serving --------------------------------------------------------------------------------

void ApiServer::start() {
  const std::string& listen = manifest_.api_listen;
  const ListenAddress address = parseListenAddress(listen);
  const std::string& host = address.host;

  ServerLimits limits;
  limits.workers = kWorkerThreads;
  limits.per_client = kWorkerThreads * 3 / 4;
  limits.max_body_bytes = manifest_.api_max_body_bytes;
  // Runs on the request head, before any body is read.
  const auto gate = [this, hosts = allowedHosts(address, manifest_.api_hosts)](
                        const httplib::Request& req, httplib::Response& res) {
    if (req.path == "/healthz" || req.path == "/readyz") return false;
    if (req.get_header_value_count("Host") > 1) {
      sendError(res, 400, "bad_request", "more than one Host header");
      return true;
    }
    if (!hostAllowed(req.get_header_value("Host"), hosts)) {
      sendError(res, 421, "misdirected_request",
                "this server does not answer to that Host (api.hosts lists the names it does)");
      return true;
    }
    // The docs page carries no data; its script sends the token a person types in.
    if (req.method == "GET" && req.path == "/api/v1/docs") return false;
    if (manifest_.apiNeedsToken() && credentialOf(req) == nullptr) {
      res.set_header("WWW-Authenticate", "Bearer");
      sendError(res, 401, "unauthorized", "missing or wrong bearer token");
      return true;
    }
    if (needsJsonContentType(req) && !isJsonContentType(req.get_header_value("Content-Type"))) {
      sendError(res, 415, "unsupported_media_type", "send the body as Content-Type: application/json");
      return true;
    }
    return false;
  };
  server_ = std::make_unique<GuardedServer>(
      "api", limits,
      [](httplib::Response& res, int status, const std::string& code, const std::string& message) {
        sendError(res, status, code, message);
      },
      gate);
  server_->set_error_handler(httplib::Server::HandlerWithResponse(
      [](const httplib::Request&, httplib::Response& res) {
    if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
    switch (res.status) {
      case 413:
        sendError(res, 413, "body_too_large", "the request body is larger than api.max_body_bytes");
        break;
      case 404:
        sendError(res, 404, "not_found", "no such route");
        break;
      default:
        sendError(res, res.status, "http_error", "HTTP " + std::to_string(res.status));
    }
    return httplib::Server::HandlerResponse::Handled;
  }));
  const auto handler = [this](const httplib::Request& req, httplib::Response& res) {
    try {
      dispatch(req, res);
    } catch (const std::exception& e) {
      sendInternalError(res, req, 500, "internal_error", e.what());
    }
  };
  server_->Get(".*", handler);
  server_->Post(".*", handler);
  server_->Patch(".*", handler);
  server_->Put(".*", handler);
  server_->Delete(".*", handler);
  server_->Options(".*", handler);

  // Port 0 picks a free port (tests); the log line says which.
  const int bound = bindServer(*server_, address);
  if (bound <= 0) {
    throw ApiStartupError("api.listen " + listen + ": cannot bind (address in use or invalid)");
  }
  port_ = bound;
  if (!manifest_.apiNeedsToken() && !isLoopbackHost(host)) {
    spdlog::warn("api.insecure: the API on {} serves every client that reaches it, without a "
                 "token", listen);
  }
  watch_->start();
  listener_.start(*server_);
  spdlog::info("API listening on {}:{} ({} route(s); docs at /api/v1/docs)", host, bound,
               routes_.size());
}

void ApiServer::stop() {
  listener_.stop();
  if (watch_) watch_->stop();
}

const ApiCredential* ApiServer::credentialOf(const httplib::Request& req) const {
  const std::string header = req.get_header_value("Authorization");
  const ApiCredential* found = nullptr;
  for (const auto& credential : credentials_) {  // every one compared: no early exit
    if (bearerTokenMatches(header, credential.token) && found == nullptr) found = &credential;
  }
  return found;
}

void ApiServer::dispatch(const httplib::Request& req, httplib::Response& res) {
  const std::string& path = req.path;
  if (path == "/healthz") {
    return sendJson(res, 200, {{"status", "ok"}});
  }
  if (path == "/readyz") {
    bool pg = false;
    try {
      auto lease = pool_->acquire(std::chrono::seconds(2));
      pqxx::nontransaction txn(*lease);
      txn.exec("SELECT 1");
      pg = true;
    } catch (const std::exception&) {
    }
    const bool kafka = producer_->reachable(std::chrono::seconds(2));
    return sendJson(res, pg && kafka ? 200 : 503,
                    {{"status", pg && kafka ? "ready" : "not_ready"},
                     {"kafka", kafka},
                     {"postgres", pg}});
  }

  if (req.method == "GET" && path == "/api/v1/docs") {
    res.set_content(docs_html_, "text/html; charset=utf-8");
    return;
  }
  const ApiCredential* credential = credentialOf(req);
  if (manifest_.apiNeedsToken()) {
    if (credential == nullptr) {
      res.set_header("WWW-Authenticate", "Bearer");
      return sendError(res, 401, "unauthorized", "missing or wrong bearer token");
    }
  }

  if (req.method == "GET" && path == "/api/v1/openapi.json") {
    res.set_content(openapi_, "application/json");
    return;
  }

  // What goes into SQL, JSON or an event must be text: 400 here, never a database error.
  if (!validUtf8(path)) {
    return sendError(res, 400, "invalid_path", "the path is not valid UTF-8");
  }
  for (const auto& [name, value] : req.params) {
    if (!validUtf8(name) || !validUtf8(value)) {
      return sendError(res, 400, "invalid_query", "query parameters must be valid UTF-8");
    }
  }

  // Route: a path match with another method is 405, no path match 404.
  std::shared_ptr<ApiRoute> route;
  std::map<std::string, std::string> path_params;
  std::set<std::string> allowed;
  for (const auto& candidate : routes_) {
    auto params = candidate->path.match(path);
    if (!params) continue;
    allowed.insert(candidate->spec.method);
    if (candidate->spec.method == req.method) {
      route = candidate;
      path_params = std::move(*params);
      break;
    }
  }
  if (!route) {
    if (allowed.empty()) return sendError(res, 404, "not_found", "no route for " + path);
    std::string allow;
    for (const auto& m : allowed) allow += (allow.empty() ? "" : ", ") + m;
    res.set_header("Allow", allow);
    return sendError(res, 405, "method_not_allowed",
                     req.method + " is not allowed on " + path + " (allowed: " + allow + ")");
  }

  sdk::Request request;
  request.route = route->index;
  request.method = req.method;
  request.path = path;
  request.path_params = std::move(path_params);
  for (const auto& [key, value] : req.params) request.query.emplace(key, value);
  if (req.get_header_value_count("X-Tenant-Id") > 1) {
    return sendError(res, 400, "invalid_tenant", "X-Tenant-Id must be sent once", "X-Tenant-Id");
  }
  // A token bound to one tenant needs no X-Tenant-Id; otherwise the default is DEFAULT.
  const bool one_tenant = credential != nullptr && credential->tenants.size() == 1;
  request.tenant_id = req.has_header("X-Tenant-Id") ? req.get_header_value("X-Tenant-Id")
                      : one_tenant                  ? credential->tenants.front()
                                                    : "DEFAULT";
  if (!validTenant(request.tenant_id)) {
    return sendError(res, 400, "invalid_tenant",
                     "X-Tenant-Id must be 1-64 characters of [A-Za-z0-9_.-]", "X-Tenant-Id");
  }
  if (credential != nullptr && !credential->all_tenants &&
      std::find(credential->tenants.begin(), credential->tenants.end(), request.tenant_id) ==
          credential->tenants.end()) {
    return sendError(res, 403, "forbidden_tenant", "this token does not serve that tenant",
                     "X-Tenant-Id");
  }
  if (req.get_header_value_count("X-User-Id") > 1) {
    return sendError(res, 400, "invalid_user", "X-User-Id must be sent once", "X-User-Id");
  }
  request.user_id = req.has_header("X-User-Id") ? req.get_header_value("X-User-Id") : "api";
  if (credential != nullptr && !credential->user.empty()) request.user_id = credential->user;
  if (!validUser(request.user_id)) {
    return sendError(res, 400, "invalid_user",
                     "X-User-Id must be 1-128 printable ASCII characters", "X-User-Id");
  }
  if (req.body.size() > manifest_.api_max_body_bytes) {
    return sendError(res, 413, "body_too_large", "the request body is larger than api.max_body_bytes");
  }
  const bool blank = std::all_of(req.body.begin(), req.body.end(),
                                 [](unsigned char c) { return std::isspace(c); });
  if (!blank) {
    if (sdk::jsonNestingExceeds(req.body)) {
      return sendError(res, 400, "invalid_body",
                       "the body nests deeper than " + std::to_string(sdk::kMaxJsonDepth) +
                           " levels");
    }
    json body = json::parse(req.body, nullptr, /*allow_exceptions=*/false);
    if (body.is_discarded()) return sendError(res, 400, "malformed_json", "the body is not valid JSON");
    if (!body.is_object()) return sendError(res, 400, "invalid_body", "the body must be a JSON object");
    request.body = std::move(body);
  }

  // Runs the handler in a READ ONLY transaction on `lease`.
  const auto runHandler = [&](PgPool::Lease& lease) -> sdk::Reply {
    try {
      pqxx::read_transaction txn(*lease, "ultracore-api");
      PgReader reader(txn, route->schema, schemas_);
      reader.setContext(req.method + " " + path);
      sdk::Reply reply = route->api->handle(request, reader);
      if (!reader.lastErrorId().empty() && reply.status >= 500 && reply.body.is_object() &&
          reply.body.contains("error") && reply.body["error"].is_object()) {
        reply.body["error"]["error_id"] = reader.lastErrorId();
      }
      txn.commit();
      return reply;
    } catch (...) {
      const sdk::Status status = statusFromCurrentException();
      const bool transient = status.code() == sdk::StatusCode::kTransient;
      if (transient) lease.discard();
      const std::string id = newErrorId();
      spdlog::error("api: {} {}: error {}: {}", req.method, path, id, status.message());
      sdk::Reply reply = sdk::Reply::error(transient ? 503 : 500,
                                           transient ? "database_unavailable" : "database_error",
                                           transient ? "the database is unavailable; retry later"
                                                     : "database error");
      reply.body["error"]["error_id"] = id;
      return reply;
    }
  };

  std::optional<PgPool::Lease> lease;
  const auto lease_connection = [&]() -> bool {
    try {
      lease.emplace(pool_->acquire(kPoolWait));
      return true;
    } catch (const PoolUnavailable& e) {
      sendInternalError(res, req, 503, "database_unavailable", e.what());
      return false;
    }
  };

  // The request's consistency token (`?consistent_with=` or X-Consistent-With), on a query or
  // a command: nullopt when it has none; a malformed one is answered 400 and sets token_refused.
  bool token_refused = false;
  const auto requestedPositions = [&]() -> std::optional<std::vector<Position>> {
    std::string token = req.get_param_value("consistent_with");
    if (token.empty()) token = req.get_header_value("X-Consistent-With");
    if (token.empty()) return std::nullopt;
    auto positions = decodeConsistencyToken(token);
    if (!positions) {
      token_refused = true;
      sendError(res, 400, "invalid_token", "consistent_with is not a consistency token",
                "consistent_with");
    }
    return positions;
  };

  if (route->spec.kind == sdk::RouteKind::kQuery) {
    const auto positions = requestedPositions();
    if (token_refused) return;
    if (positions) {
      // A wait holds a worker (never a PostgreSQL connection): at most kMaxWaiters at once.
      if (waiters_.fetch_add(1) >= static_cast<int>(kMaxWaiters)) {
        --waiters_;
        res.set_header("Retry-After", "1");
        return sendError(res, 503, "too_many_waits",
                         "too many queries are waiting for consistency; retry later");
      }
      struct WaiterSlot {
        std::atomic<int>& count;
        ~WaiterSlot() { --count; }
      } slot{waiters_};
      const auto deadline = std::chrono::steady_clock::now() + kConsistencyTimeout;
      for (const auto& position : *positions) {
        if (route->topics.count(position.topic) == 0) continue;
        bool end_checked = false;
        for (;;) {
          // Read before the check: a commit that lands after the check changes it, so the
          // wait below returns at once instead of missing the NOTIFY.
          const std::uint64_t seen = watch_->generation();
          std::optional<std::int64_t> next;
          if (!lease_connection()) return;
          try {
            pqxx::nontransaction txn(**lease);
            const auto row = txn.exec_params(
                "SELECT next_offset FROM ultracore_offsets WHERE projection = ultracore_live_key($1) "
                "AND topic = $2 "
                "AND partition = $3",
                route->projection, position.topic, position.partition);
            if (!row.empty() && !row[0][0].is_null()) next = row[0][0].as<std::int64_t>();
          } catch (...) {
            lease->discard();
            lease.reset();
            return sendInternalError(res, req, 503, "database_unavailable",
                                     statusFromCurrentException().message());
          }
          lease.reset();  // the connection goes back before the wait
          if (next && *next > position.offset) break;
          if (!end_checked) {
            // A position the log has not reached yet is no command's answer: say so at once.
            end_checked = true;
            const auto end = producer_->logEnd(position.topic, position.partition, kLogEndWait);
            if (end && position.offset >= *end) {
              return sendError(res, 400, "token_past_log_end",
                               "consistent_with names " + position.topic + ":" +
                                   std::to_string(position.partition) + ":" +
                                   std::to_string(position.offset) +
                                   ", past the end of the log (" + std::to_string(*end) + ")",
                               "consistent_with");
            }
          }
          if (std::chrono::steady_clock::now() >= deadline) {
            return sendError(res, 504, "consistency_timeout",
                             "projection '" + route->projection + "' has not reached " +
                                 position.topic + ":" + std::to_string(position.partition) + ":" +
                                 std::to_string(position.offset) + " within " +
                                 std::to_string(kConsistencyTimeout.count()) + " s");
          }
          // Woken by the NOTIFY of the batch that moves the offsets; the timeout is only the
          // fallback poll for when the watch's connection is down.
          watch_->waitForChange(
              seen, std::min(kConsistencyPoll,
                             std::chrono::duration_cast<std::chrono::milliseconds>(
                                 deadline - std::chrono::steady_clock::now()) +
                                 std::chrono::milliseconds(1)));
        }
      }
    }
    if (!lease_connection()) return;
    const sdk::Reply reply = runHandler(*lease);
    if (!route->spec.aggregate.empty() && reply.status == 200 && reply.body.is_object() &&
        reply.body.contains("version") && reply.body["version"].is_number_integer()) {
      res.set_header("ETag", "\"" + std::to_string(reply.body["version"].get<std::int64_t>()) + "\"");
    }
    return sendJson(res, reply.status, reply.body);
  }

  if (!lease_connection()) return;

  // Commands. With an Idempotency-Key, a session advisory lock serializes retries of one key,
  // so two racing retries cannot both publish.
  const std::string key = req.get_header_value("Idempotency-Key");
  const std::string fingerprint = req.method + " " + path + "\n" + request.body.dump();
  bool locked = false;
  const auto unlock = [&] {
    if (!locked || !lease->valid()) return;
    locked = false;
    try {
      pqxx::nontransaction txn(**lease);
      txn.exec_params("SELECT pg_advisory_unlock(hashtext('ultracore.api.idempotency/' || $1 || '/' || $2))",
                      request.tenant_id, key);
    } catch (...) {
      lease->discard();  // closing the session releases the lock
    }
  };
  struct Unlocker {
    std::function<void()> fn;
    ~Unlocker() { fn(); }
  } unlocker{unlock};
  if (!key.empty()) {
    if (key.size() > 255) {
      return sendError(res, 400, "invalid_idempotency_key",
                       "Idempotency-Key must be at most 255 characters", "Idempotency-Key");
    }
    try {
      pqxx::nontransaction txn(**lease);
      // Never wait for the lock: a request holding it may take as long as Kafka does.
      locked = txn.exec_params1(
                      "SELECT pg_try_advisory_lock(hashtext('ultracore.api.idempotency/' || $1 || '/' || $2))",
                      request.tenant_id, key)[0]
                   .as<bool>();
      if (locked) {
        // A key older than the retention is forgotten: the request is a new command.
        txn.exec_params("DELETE FROM ultracore_api_idempotency WHERE tenant_id = $1 AND "
                        "idempotency_key = $2 AND created_at < now() - make_interval(hours => $3)",
                        request.tenant_id, key, kIdempotencyRetentionHours);
      }
      if (!locked) {
        res.set_header("Retry-After", "1");
        return sendError(res, 409, "in_progress",
                         "a request with this Idempotency-Key is still being processed; retry later",
                         "Idempotency-Key");
      }
      const auto row = txn.exec_params(
          "SELECT request_md5 = md5($3), status, response FROM ultracore_api_idempotency "
          "WHERE tenant_id = $1 AND idempotency_key = $2",
          request.tenant_id, key, fingerprint);
      if (!row.empty()) {
        if (!row[0][0].as<bool>()) {
          return sendError(res, 422, "idempotency_key_reused",
                           "Idempotency-Key was used with a different request", "Idempotency-Key");
        }
        res.set_header("Idempotent-Replayed", "true");
        res.status = row[0][1].as<int>();
        res.set_content(row[0][2].c_str(), "application/json");
        const json stored = json::parse(row[0][2].c_str(), nullptr, false);
        if (stored.is_object() && stored.contains("consistency_token")) {
          res.set_header("X-Consistency-Token", stored["consistency_token"].get<std::string>());
        }
        return;
      }
    } catch (...) {
      lease->discard();
      locked = false;
      return sendInternalError(res, req, 503, "database_unavailable",
                               statusFromCurrentException().message());
    }
  }

  // Consistent commands (issue 14): a command on one aggregate holds its row's lock from here
  // until its events are stored; every command then waits until the projections it reads have
  // applied what it must see, and only then validates.
  const auto deadline = std::chrono::steady_clock::now() + kConsistencyTimeout;
  const std::string aggregate_id =
      route->spec.aggregate.empty() ? "" : request.param(route->spec.aggregate);
  Targets targets;
  const auto requested = requestedPositions();
  if (token_refused) return;
  if (requested) {
    for (const auto& p : *requested) raiseTarget(targets, p.topic, p.partition, p.offset + 1);
  }
  std::optional<std::int64_t> if_match;
  if (req.has_header("If-Match") && req.get_header_value("If-Match") != "*") {
    if (aggregate_id.empty()) {
      return sendError(res, 400, "if_match_unsupported",
                       "If-Match is honoured only by commands on one aggregate", "If-Match");
    }
    if_match = parseIfMatch(req.get_header_value("If-Match"));
    if (!if_match) {
      return sendError(res, 400, "invalid_if_match", "If-Match must be an aggregate version",
                       "If-Match");
    }
  }
  std::optional<PgPool::Lease> lock_lease;
  std::unique_ptr<pqxx::work> lock_txn;  // destroyed before lock_lease
  if (!aggregate_id.empty()) {
    if (key.empty()) lease.reset();  // no connection held while queued behind the lock
    try {
      lock_lease.emplace(lock_pool_->acquire(kPoolWait));
    } catch (const PoolUnavailable& e) {
      return sendInternalError(res, req, 503, "database_unavailable", e.what());
    }
    try {
      lock_txn = std::make_unique<pqxx::work>(**lock_lease, "ultracore-aggregate-lock");
      // A holder silent for longer (paused, hung) loses its session, so its lock: see below.
      lock_txn->exec("SET LOCAL lock_timeout = " +
                     std::to_string(std::chrono::milliseconds(kConsistencyTimeout).count()) +
                     "; SET LOCAL idle_in_transaction_session_timeout = " +
                     std::to_string(std::chrono::milliseconds(kAggregateLease).count()));
      // One round trip: the upsert locks the row (waiting for its holder) and returns it.
      const auto row = lock_txn->exec_params1(
          "INSERT INTO ultracore_api_aggregates AS a (tenant_id, aggregate_id) VALUES ($1, $2) "
          "ON CONFLICT (tenant_id, aggregate_id) DO UPDATE SET positions = a.positions "
          "RETURNING a.positions",
          request.tenant_id, aggregate_id);
      if (const auto last = decodeConsistencyToken(row[0].c_str())) {
        for (const auto& p : *last) raiseTarget(targets, p.topic, p.partition, p.offset + 1);
      }
    } catch (const pqxx::sql_error& e) {
      lock_txn.reset();
      lock_lease->discard();
      if (e.sqlstate() == "55P03") {  // lock_not_available: lock_timeout passed
        res.set_header("Retry-After", "1");
        return sendError(res, 503, "aggregate_busy",
                         "another command on '" + aggregate_id + "' held it for " +
                             std::to_string(kConsistencyTimeout.count()) + " s; retry later");
      }
      return sendInternalError(res, req, 503, "database_unavailable", e.what());
    } catch (...) {
      lock_txn.reset();
      lock_lease->discard();
      return sendInternalError(res, req, 503, "database_unavailable",
                               statusFromCurrentException().message());
    }
  }
  // A database failure while reading what to wait for: the connections go (a lock held in
  // a session is released with it) and the client retries.
  const auto databaseFailedWhileWaiting = [&] {
    if (lock_txn) {
      lock_txn.reset();
      lock_lease->discard();
    } else {
      lease->discard();
      locked = false;
    }
    sendInternalError(res, req, 503, "database_unavailable", statusFromCurrentException().message());
  };
  // What the log held when the command arrived, for the projections the aggregate's row does
  // not cover (another aggregate's read model, or a command with no aggregate).
  {
    std::set<std::string> topics;
    std::vector<std::string> keyed;  // aggregates named by the request, read in a projection
    for (std::size_t i = 0; i < route->reads.size(); ++i) {
      const auto& [projection, read_topics] = route->reads[i];
      if (!aggregate_id.empty() && projection == route->projection) continue;
      if (const std::string& key = route->read_keys[i]; !key.empty()) {
        // Only that aggregate: its row says where its last events are (none: nothing to wait
        // for, e.g. a create that names no existing id).
        std::string id = request.param(key);
        const auto field = request.body.find(key);
        if (id.empty() && field != request.body.end() && field->is_string()) id = *field;
        if (!id.empty()) keyed.push_back(id);
        continue;
      }
      topics.insert(read_topics.begin(), read_topics.end());
    }
    if (!keyed.empty()) {
      if (!lock_txn && !lease && !lease_connection()) return;
      try {
        for (const auto& id : keyed) {
          const auto read = [&](pqxx::transaction_base& txn) {
            return txn.exec_params("SELECT positions FROM ultracore_api_aggregates WHERE "
                                   "tenant_id = $1 AND aggregate_id = $2",
                                   request.tenant_id, id);
          };
          pqxx::result rows;
          if (lock_txn) {
            rows = read(*lock_txn);
          } else {
            pqxx::nontransaction txn(**lease);
            rows = read(txn);
          }
          if (rows.empty()) continue;
          if (const auto last = decodeConsistencyToken(rows[0][0].c_str())) {
            for (const auto& p : *last) raiseTarget(targets, p.topic, p.partition, p.offset + 1);
          }
        }
      } catch (...) {
        return databaseFailedWhileWaiting();
      }
    }
    if (!topics.empty()) {
      const auto ends = producer_->logEnds({topics.begin(), topics.end()}, kLogEndWait);
      if (!ends) {
        res.set_header("Retry-After", "1");
        return sendError(res, 503, "kafka_unavailable",
                         "Kafka did not tell the end of the log the command must see");
      }
      for (const auto& [partition, end] : *ends) {
        raiseTarget(targets, partition.first, partition.second, end);
      }
    }
  }
  if (!targets.empty()) {
    if (!lock_txn && !lease && !lease_connection()) return;
    try {
      const auto missing = awaitApplied(
          route->reads, targets, deadline, *watch_, [&](const std::string& projection) {
            if (lock_txn) return storedOffsets(*lock_txn, projection);
            pqxx::nontransaction txn(**lease);
            return storedOffsets(txn, projection);
          });
      if (missing) {
        res.set_header("Retry-After", "1");
        return sendError(res, 503, "consistency_timeout", *missing);
      }
    } catch (...) {
      return databaseFailedWhileWaiting();
    }
  }
  if (!lease && !lease_connection()) return;

  sdk::Reply reply = runHandler(*lease);
  if (reply.isError() || reply.events.empty()) return sendJson(res, reply.status, reply.body);
  for (const auto& event : reply.events) {  // the event catalog's schemas (issue 16)
    if (const auto rejected = catalog_.validate(event.topic, event.event_type, event.event_data)) {
      return sendJson(res, 422, rejected->errorBody());
    }
  }
  if (if_match) {
    std::optional<std::int64_t> version;  // the aggregate's version the handler validated
    for (const auto& event : reply.events) {
      if (event.aggregate_id == aggregate_id && event.aggregate_version) {
        version = *event.aggregate_version - 1;
      }
    }
    if (!version || *version != *if_match) {
      json body = sdk::Reply::error(412, "version_mismatch",
                                    "aggregate '" + aggregate_id + "' is at version " +
                                        (version ? std::to_string(*version) : "unknown") +
                                        ", not " + std::to_string(*if_match),
                                    "If-Match")
                      .body;
      if (version) {
        body["error"]["current_version"] = *version;
        res.set_header("ETag", "\"" + std::to_string(*version) + "\"");
      }
      return sendJson(res, 412, body);
    }
  }

  std::vector<ConsistencyPosition> positions;
  json published = json::array();
  json body = reply.body.is_object() ? reply.body : json::object();
  std::vector<OutgoingRecord> records;
  std::vector<json> envelopes;
  for (const sdk::NewEvent& event : reply.events) {
    // Under an Idempotency-Key a retry's duplicate publish carries the same event_id.
    json envelope{{"event_id", key.empty() ? uuid4()
                                           : commandEventId(request.tenant_id, key, records.size(), event)},
                  {"event_type", event.event_type},
                  {"aggregate_type", event.aggregate_type},
                  {"aggregate_id", event.aggregate_id},
                  {"tenant_id", request.tenant_id},
                  {"user_id", request.user_id},
                  {"occurred_at", nowIso8601()},
                  {"event_data", event.event_data.is_object() ? event.event_data : json::object()}};
    if (event.aggregate_version) envelope["aggregate_version"] = *event.aggregate_version;
    records.push_back({event.topic, event.aggregate_id, envelope.dump()});
    envelopes.push_back(std::move(envelope));
  }
  // All of a command's events or none: several go in one Kafka transaction. A locked command's
  // transaction commits only after the same PostgreSQL transaction that holds the aggregate's
  // lock recorded the events' positions and committed: a holder that lost its session (paused
  // past kAggregateLease, after which another process may hold the lock) cannot commit that,
  // so its events are aborted, never read by a read_committed projection.
  auto stored = [&]() -> sdk::Result<std::vector<RecordPositionOut>> {
    if (!lock_txn) return producer_->produceAtomically(records);
    bool refused = false;
    auto result = producer_->produceGated(
        records,
        [&](const std::vector<RecordPositionOut>& at) {
          if (pause_before_fence_.exchange(false)) std::raise(SIGSTOP);
          try {
            std::vector<Position> mine;
            for (std::size_t i = 0; i < at.size(); ++i) {
              if (records[i].key == aggregate_id) {
                mine.push_back({at[i].topic, at[i].partition, at[i].offset});
              }
            }
            lock_txn->exec_params(
                "UPDATE ultracore_api_aggregates SET positions = $3, commands = commands + 1, "
                "updated_at = now() WHERE tenant_id = $1 AND aggregate_id = $2",
                request.tenant_id, aggregate_id, encodeConsistencyToken(mine));
            lock_txn->commit();
            return true;
          } catch (...) {
            spdlog::warn("api: {} {}: the aggregate lock of '{}' was lost ({}); aborting the "
                         "command's Kafka transaction",
                         req.method, path, aggregate_id, statusFromCurrentException().message());
            return false;
          }
        },
        refused);
    lock_txn.reset();  // before its connection goes
    if (refused) lock_lease->discard();
    lock_lease.reset();
    if (refused) {
      return sdk::Status(sdk::StatusCode::kTransient,
                         "the command lost its lock on '" + aggregate_id +
                             "' (silent for longer than " +
                             std::to_string(kAggregateLease.count()) +
                             " s); nothing was published");
    }
    return result;
  }();
  if (!stored) {
    spdlog::warn("api: {} {}: {}", req.method, path, stored.status().message());
    return sendError(res, 503, "kafka_unavailable", stored.status().message());
  }
  // The other aggregates a command created or touched: their rows say where their last events
  // are, so the next command on one of them waits for it (create-then-use).
  {
    std::map<std::string, std::vector<Position>> others;
    for (std::size_t i = 0; i < records.size(); ++i) {
      if (records[i].key == aggregate_id) continue;
      const RecordPositionOut& at = stored.value()[i];
      others[records[i].key].push_back({at.topic, at.partition, at.offset});
    }
    // The engine's login writes these rows (the handlers' role may only read them).
    std::optional<PgPool::Lease> writer;
    for (const auto& [other, at] : others) {
      try {
        if (!writer) writer.emplace(lock_pool_->acquire(kPoolWait));
        pqxx::nontransaction txn(**writer);
        txn.exec_params("INSERT INTO ultracore_api_aggregates (tenant_id, aggregate_id, "
                        "positions) VALUES ($1, $2, $3) ON CONFLICT (tenant_id, aggregate_id) DO "
                        "UPDATE SET positions = EXCLUDED.positions, updated_at = now()",
                        request.tenant_id, other, encodeConsistencyToken(at));
      } catch (...) {
        // Stored in Kafka already: only the next command's wait for it is lost.
        spdlog::error("api: {} {}: cannot record the position of '{}': {}", req.method, path,
                      other, statusFromCurrentException().message());
        if (writer) writer->discard();
        break;
      }
    }
  }
  for (std::size_t i = 0; i < records.size(); ++i) {
    const RecordPositionOut& at = stored.value()[i];
    const ConsistencyPosition position{at.topic, at.partition, at.offset};
    positions.push_back(position);
    json position_json{{"topic", position.topic},
                       {"partition", position.partition},
                       {"offset", position.offset}};
    published.push_back({{"event_id", envelopes[i]["event_id"]},
                         {"event_type", reply.events[i].event_type},
                         {"aggregate_id", reply.events[i].aggregate_id},
                         {"position", position_json}});
    body["aggregate_id"] = reply.events[i].aggregate_id;
    body["event_id"] = envelopes[i]["event_id"];
    body["position"] = position_json;
  }
  if (published.size() > 1) body["events"] = published;
  for (const auto& event : reply.events) {
    if (event.aggregate_id == aggregate_id && event.aggregate_version) {
      body["aggregate_version"] = *event.aggregate_version;
      res.set_header("ETag", "\"" + std::to_string(*event.aggregate_version) + "\"");
    }
  }
  const std::string token = encodeConsistencyToken(positions);
  body["consistency_token"] = token;
  res.set_header("X-Consistency-Token", token);
  sendJson(res, reply.status, body);

  faultPoint("crash_after_publish");
  if (!key.empty() && locked && lease->valid()) {
    try {
      pqxx::nontransaction txn(**lease);
      txn.exec_params(
          "INSERT INTO ultracore_api_idempotency (tenant_id, idempotency_key, request_md5, "
          "status, response) VALUES ($1, $2, md5($3), $4, $5) ON CONFLICT DO NOTHING",
          request.tenant_id, key, fingerprint, reply.status, res.body);
      // At most once a minute, a bounded sweep of expired keys (any tenant).
      const auto now = std::chrono::steady_clock::now().time_since_epoch().count();
      auto last = last_idempotency_sweep_.load();
      if (now - last > std::chrono::steady_clock::duration(std::chrono::minutes(1)).count() &&
          last_idempotency_sweep_.compare_exchange_strong(last, now)) {
        txn.exec_params("DELETE FROM ultracore_api_idempotency WHERE ctid IN (SELECT ctid FROM "
                        "ultracore_api_idempotency WHERE created_at < now() - make_interval(hours "
                        "=> $1) LIMIT 10000)",
                        kIdempotencyRetentionHours);
      }
    } catch (...) {
      // The event is stored; only the replay record is lost (a retry would publish again).
      spdlog::error("api: cannot store Idempotency-Key '{}': {}", key,
                    statusFromCurrentException().message());
      lease->discard();
      locked = false;
    }
  }
}

}  // namespace ultracore::engine
