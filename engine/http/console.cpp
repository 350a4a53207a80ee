#include "engine/http/console.h"

#include <httplib.h>

#include <charconv>
#include <ctime>
#include <set>

#include <pqxx/nontransaction>
#include <pqxx/result>
#include <pqxx/transaction>
#include <spdlog/spdlog.h>

#include "engine/http/json_response.h"
#include "engine/runner/dead_letter_admin.h"

namespace ultracore::engine {

using nlohmann::json;

namespace {

constexpr auto kSampleInterval = std::chrono::seconds(5);
constexpr auto kSampleTimeout = std::chrono::milliseconds(1000);
/// All of one sample's watermark queries together.
constexpr auto kSampleBudget = std::chrono::milliseconds(3000);
constexpr auto kPoolTimeout = std::chrono::seconds(5);
/// A message browser request answers within about this (then with a cursor to go on).
constexpr auto kScanBudget = std::chrono::milliseconds(900);
/// Scans at once; the admin server has four workers and the status page must keep one.
constexpr int kMaxScans = 2;
constexpr std::size_t kMaxLimit = 500;

template <typename T>
bool parseNumber(const std::string& text, T& value) {
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  return ec == std::errc() && end == text.data() + text.size();
}

/// A time parameter: ms since the epoch, or ISO 8601 "YYYY-MM-DDTHH:MM[:SS[.mmm]][Z]" (UTC).
std::optional<std::int64_t> parseTime(const std::string& text) {
  std::int64_t ms = 0;
  if (parseNumber(text, ms)) return ms;
  std::tm tm{};
  int millis = 0;
  double seconds = 0;
  const int n = std::sscanf(text.c_str(), "%d-%d-%dT%d:%d:%lf", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
                            &tm.tm_hour, &tm.tm_min, &seconds);
  if (n < 5) return std::nullopt;
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  tm.tm_sec = static_cast<int>(seconds);
  millis = static_cast<int>((seconds - tm.tm_sec) * 1000 + 0.5);
  const std::time_t t = timegm(&tm);
  if (t == static_cast<std::time_t>(-1)) return std::nullopt;
  return static_cast<std::int64_t>(t) * 1000 + millis;
}

std::optional<std::string> param(const httplib::Request& req, const char* name) {
  if (!req.has_param(name)) return std::nullopt;
  std::string value = req.get_param_value(name);
  if (value.empty()) return std::nullopt;
  return value;
}

json optionalJson(const std::optional<std::string>& value) { return value ? json(*value) : json(); }

json summaryJson(const DeadLetterSummary& d) {
  return {{"id", d.id},           {"projection", d.projection}, {"policy", d.policy},
          {"status", d.status},   {"topic", d.topic},           {"partition", d.partition},
          {"offset", d.offset},   {"aggregate", d.aggregate},   {"event_type", d.event_type},
          {"error_code", d.error_code}, {"error", d.error},     {"created_at", d.created_at}};
}

/// The stored record of a dead letter, shown as the message browser shows records.
json storedRecordJson(const DeadLetterDetail& d) {
  KafkaRecord record;
  record.topic = d.summary.topic;
  record.partition = d.summary.partition;
  record.offset = d.summary.offset;
  record.timestamp_ms = d.timestamp_ms.value_or(0);
  record.key = d.key;
  record.value = d.value;
  const json headers = json::parse(d.headers_json.empty() ? "[]" : d.headers_json, nullptr, false);
  if (headers.is_array()) {
    for (const auto& h : headers) {
      if (!h.is_object()) continue;
      const json& value = h.value("value", json());
      record.headers.emplace_back(h.value("key", ""), value.is_string()
                                                          ? std::optional<std::string>(value.get<std::string>())
                                                          : std::nullopt);
    }
  }
  return recordJson(record);
}

void sendDeadLetterError(httplib::Response& res, const DeadLetterError& e) {
  switch (e.kind()) {
    case DeadLetterError::Kind::kNotFound: return sendError(res, 404, "not_found", e.what());
    case DeadLetterError::Kind::kConflict: return sendError(res, 409, "conflict", e.what());
    case DeadLetterError::Kind::kInvalid: return sendError(res, 400, "bad_request", e.what());
  }
}

}  // namespace

std::vector<std::string> Console::manifestTopics(const Manifest& manifest) {
  std::vector<std::string> out;
  const auto add = [&](const std::string& topic) {
    if (std::find(out.begin(), out.end(), topic) == out.end()) out.push_back(topic);
  };
  if (manifest.topics_declared) {
    for (const auto& topic : manifest.topics) add(topic.name);
  } else {
    for (const auto& projection : manifest.projections) {
      for (const auto& topic : projection.topics) add(topic);
    }
  }
  return out;
}

Console::Console(const Manifest& manifest, Engine& engine)
    : manifest_(manifest),
      engine_(engine),
      manifest_topics_(manifestTopics(manifest)),
      pool_(manifest.postgres_url, 2),
      browser_(manifest.kafka),
      rates_(manifest_topics_) {}

Console::~Console() { stop(); }

void Console::start() {
  sampler_ = std::thread([this] { sampleLoop(); });
}

void Console::stop() {
  {
    std::lock_guard lock(stop_mutex_);
    stopping_ = true;
  }
  stop_cv_.notify_all();
  if (sampler_.joinable()) sampler_.join();
}

rd_kafka_t* Console::kafka() {
  std::lock_guard lock(kafka_mutex_);
  if (!kafka_) {
    const std::map<std::string, std::string> enforced = {{"client.id", "ultracore-console"},
                                                         {"allow.auto.create.topics", "false"}};
    // The manifest's kafka: map is consumer settings.
    kafka_ = makeUnsubscribedConsumer({&manifest_.kafka, &enforced}, "console");
  }
  return kafka_.get();
}

void Console::sampleLoop() {
  std::unique_lock lock(stop_mutex_);
  do {
    lock.unlock();
    try {
      rd_kafka_t* rk = kafka();
      rates_.sample(rk, describeCluster(rk, kSampleTimeout), kSampleTimeout,
                    std::chrono::steady_clock::now() + kSampleBudget);
    } catch (const std::exception& e) {
      spdlog::debug("console: topic rates: {}", e.what());
    }
    lock.lock();
  } while (!stop_cv_.wait_for(lock, kSampleInterval, [this] { return stopping_; }));
}

bool Console::handle(const httplib::Request& req, httplib::Response& res) {
  const std::string& path = req.path;
  const bool get = req.method == "GET";
  if (path == "/api/v1/topics" && get) return topics(req, res), true;
  if (path == "/api/v1/groups" && get) return groups(res), true;
  if (path == "/api/v1/messages" && get) return messages(req, res), true;
  if (path == "/api/v1/messages/record" && get) return record(req, res), true;
  if (path == "/api/v1/dead-letters" && get) return deadLetters(req, res), true;
  if (path == "/api/v1/parked" && get) return parked(req, res), true;
  const std::string prefix = "/api/v1/dead-letters/";
  if (path.rfind(prefix, 0) == 0) return deadLetter(req, res, path.substr(prefix.size())), true;
  return false;
}

void Console::topics(const httplib::Request& req, httplib::Response& res) {
  const bool all = req.has_param("all") && req.get_param_value("all") != "0";
  try {
    sendJson(res, 200, topicsJson(kafka(), manifest_topics_, all, rates_));
  } catch (const std::runtime_error& e) {
    sendError(res, 503, "kafka_unavailable", e.what());
  }
}

void Console::groups(httplib::Response& res) {
  std::vector<OwnGroup> own;
  std::set<std::string> keys;
  for (const auto& runner : engine_.runners()) {
    const std::string& group_id = runner->settings().spec.group_id;
    if (std::any_of(own.begin(), own.end(), [&](const OwnGroup& g) { return g.group_id == group_id; })) continue;
    const std::string projection =
        runner->settings().projection.empty() ? runner->name() : runner->settings().projection;
    own.push_back({group_id, projection, runner->key()});
    keys.insert(runner->key());
  }
  std::map<std::string, PartitionOffsets> stored;
  std::string stored_error;
  try {
    auto lease = pool_.acquire(kPoolTimeout);
    pqxx::read_transaction txn(*lease);
    for (const auto& row : txn.exec("SELECT projection, topic, partition, next_offset FROM ultracore_offsets")) {
      const std::string key = row[0].as<std::string>();
      if (keys.count(key) == 0) continue;
      stored[key][{row[1].as<std::string>(), row[2].as<std::int32_t>()}] = row[3].as<std::int64_t>();
    }
  } catch (const std::exception& e) {
    stored_error = e.what();
  }
  try {
    json body = groupsJson(kafka(), own, stored);
    if (!stored_error.empty()) body["stored_error"] = "PostgreSQL offsets unavailable: " + stored_error;
    sendJson(res, 200, body);
  } catch (const std::runtime_error& e) {
    sendError(res, 503, "kafka_unavailable", e.what());
  }
}

void Console::messages(const httplib::Request& req, httplib::Response& res) {
  MessageQuery query;
  const auto topic = param(req, "topic");
  if (!topic) return sendError(res, 400, "bad_request", "topic is required (?topic=<name>)");
  query.topic = *topic;
  if (const auto partition = param(req, "partition"); partition && *partition != "all") {
    std::int32_t p = -1;
    if (!parseNumber(*partition, p) || p < 0) {
      return sendError(res, 400, "bad_request", "partition must be a partition number or 'all'");
    }
    query.partition = p;
  }
  query.key = param(req, "key").value_or("");
  query.aggregate_id = param(req, "aggregate_id").value_or("");
  query.event_type = param(req, "event_type").value_or("");
  query.event_id = param(req, "event_id").value_or("");
  const std::string from = param(req, "from").value_or(query.filtered() ? "oldest" : "newest");
  if (from == "oldest") {
    query.start = MessageQuery::Start::kOldest;
  } else if (from == "newest") {
    query.start = MessageQuery::Start::kNewest;
  } else if (from == "offset") {
    query.start = MessageQuery::Start::kOffset;
    if (!parseNumber(param(req, "offset").value_or(""), query.offset) || query.offset < 0) {
      return sendError(res, 400, "bad_request", "from=offset needs offset=<number >= 0>");
    }
  } else if (from == "time") {
    query.start = MessageQuery::Start::kTime;
    const auto time = parseTime(param(req, "time").value_or(""));
    if (!time) {
      return sendError(res, 400, "bad_request",
                       "from=time needs time=<ms since the epoch or YYYY-MM-DDTHH:MM[:SS] (UTC)>");
    }
    query.time_ms = *time;
  } else {
    return sendError(res, 400, "bad_request", "from must be oldest, newest, offset or time");
  }
  if (const auto limit = param(req, "limit")) {
    if (!parseNumber(*limit, query.limit) || query.limit == 0 || query.limit > kMaxLimit) {
      return sendError(res, 400, "bad_request", "limit must be 1 to " + std::to_string(kMaxLimit));
    }
  }
  if (const auto cursor = param(req, "cursor")) {
    try {
      query.cursor = parseCursor(*cursor);
    } catch (const MessageQueryError& e) {
      return sendError(res, e.status(), e.code(), e.what());
    }
  }
  if (scans_.fetch_add(1) >= kMaxScans) {
    scans_.fetch_sub(1);
    res.set_header("Retry-After", "1");
    return sendError(res, 503, "busy", "other message searches are running; try again in a second");
  }
  try {
    json body = browser_.search(query, kScanBudget);
    scans_.fetch_sub(1);
    sendJson(res, 200, body);
  } catch (const MessageQueryError& e) {
    scans_.fetch_sub(1);
    sendError(res, e.status(), e.code(), e.what());
  } catch (const std::exception& e) {
    scans_.fetch_sub(1);
    sendError(res, 503, "kafka_unavailable", e.what());
  }
}

void Console::record(const httplib::Request& req, httplib::Response& res) {
  MessageQuery query;
  query.topic = param(req, "topic").value_or("");
  std::int32_t partition = -1;
  if (query.topic.empty() || !parseNumber(param(req, "partition").value_or(""), partition) ||
      partition < 0 || !parseNumber(param(req, "offset").value_or(""), query.offset) ||
      query.offset < 0) {
    return sendError(res, 400, "bad_request", "topic, partition and offset are required");
  }
  query.partition = partition;
  query.single = true;
  query.limit = 1;
  json found;
  try {
    found = browser_.search(query, std::chrono::seconds(5));
  } catch (const MessageQueryError& e) {
    return sendError(res, e.status(), e.code(), e.what());
  } catch (const std::exception& e) {
    return sendError(res, 503, "kafka_unavailable", e.what());
  }
  if (found["records"].empty()) {
    return sendError(res, 404, "not_found",
                     "no record at " + query.topic + "[" + std::to_string(partition) + "]@" +
                         std::to_string(query.offset) + " (out of the log, or removed by retention)");
  }
  json record = found["records"][0];
  json processed = json::array(), dead_letters = json::array(), parked = json::array(),
       skipped = json::array();
  auto lease = pool_.acquire(kPoolTimeout);
  pqxx::read_transaction txn(*lease);
  if (record.contains("event_id")) {
    // By aggregate and event id: the index on aggregate_id finds it, wherever it was applied.
    for (const auto& row : txn.exec_params(
             "SELECT projection, topic, partition, \"offset\", processed_at::text FROM processed_events "
             "WHERE aggregate_id = $1 AND event_id = $2 ORDER BY projection",
             record["aggregate_id"].get<std::string>(), record["event_id"].get<std::string>())) {
      processed.push_back({{"projection", row[0].c_str()}, {"topic", row[1].c_str()},
                           {"partition", row[2].as<int>()}, {"offset", row[3].as<std::int64_t>()},
                           {"processed_at", row[4].c_str()}});
    }
  }
  for (const auto& row : txn.exec_params(
           "SELECT id, projection, status, error_code, error FROM ultracore_dead_letters "
           "WHERE topic = $1 AND partition = $2 AND \"offset\" = $3 ORDER BY id",
           query.topic, partition, query.offset)) {
    dead_letters.push_back({{"id", row[0].as<std::int64_t>()}, {"projection", row[1].c_str()},
                            {"status", row[2].c_str()}, {"error_code", row[3].c_str()},
                            {"error", row[4].c_str()}});
  }
  for (const auto& row : txn.exec_params(
           "SELECT projection, aggregate_id, dead_letter_id FROM ultracore_parked_events "
           "WHERE topic = $1 AND partition = $2 AND \"offset\" = $3 ORDER BY projection",
           query.topic, partition, query.offset)) {
    parked.push_back({{"projection", row[0].c_str()}, {"aggregate_id", row[1].c_str()},
                      {"dead_letter_id", row[2].as<std::int64_t>()}});
  }
  for (const auto& row : txn.exec_params(
           "SELECT projection, error_code, error FROM ultracore_skipped_events "
           "WHERE topic = $1 AND partition = $2 AND \"offset\" = $3 ORDER BY projection",
           query.topic, partition, query.offset)) {
    skipped.push_back({{"projection", row[0].c_str()}, {"error_code", row[1].c_str()},
                       {"error", row[2].c_str()}});
  }
  sendJson(res, 200, {{"record", record}, {"processed", processed}, {"dead_letters", dead_letters},
                      {"parked", parked}, {"skipped", skipped}});
}

void Console::deadLetters(const httplib::Request& req, httplib::Response& res) {
  DeadLetterFilter filter;
  filter.projection = param(req, "projection");
  filter.status = param(req, "status");
  filter.aggregate = param(req, "aggregate");
  filter.event_id = param(req, "event_id");
  static const std::set<std::string> kStatuses = {"open", "retry_requested", "retried", "discarded"};
  if (filter.status && kStatuses.count(*filter.status) == 0) {
    return sendError(res, 400, "bad_request", "status must be open, retry_requested, retried or discarded");
  }
  filter.limit = 500;
  if (const auto limit = param(req, "limit")) {
    if (!parseNumber(*limit, filter.limit) || filter.limit == 0 || filter.limit > 10000) {
      return sendError(res, 400, "bad_request", "limit must be 1 to 10000");
    }
  }
  auto lease = pool_.acquire(kPoolTimeout);
  pqxx::read_transaction txn(*lease);
  json list = json::array();
  for (const auto& d : listDeadLetters(txn, filter)) list.push_back(summaryJson(d));
  sendJson(res, 200, {{"dead_letters", list}, {"limit", filter.limit}});
}

void Console::deadLetter(const httplib::Request& req, httplib::Response& res, const std::string& rest) {
  const auto slash = rest.find('/');
  const std::string action = slash == std::string::npos ? "" : rest.substr(slash + 1);
  std::int64_t id = 0;
  if (!parseNumber(rest.substr(0, slash), id)) {
    return sendError(res, 404, "not_found", "no route for " + req.path);
  }
  if (action.empty()) {
    if (req.method != "GET") {
      res.set_header("Allow", "GET");
      return sendError(res, 405, "method_not_allowed", "a dead letter takes GET");
    }
    auto lease = pool_.acquire(kPoolTimeout);
    pqxx::read_transaction txn(*lease);
    try {
      const DeadLetterDetail d = deadLetterDetail(txn, id);
      json body = summaryJson(d.summary);
      body["record"] = storedRecordJson(d);
      body["event_id"] = optionalJson(d.event_id);
      body["aggregate_id"] = optionalJson(d.aggregate_id);
      body["attempts"] = d.attempts;
      body["retry_requested_at"] = optionalJson(d.retry_requested_at);
      body["last_retry_at"] = optionalJson(d.last_retry_at);
      body["last_retry_error"] = optionalJson(d.last_retry_error);
      body["resolved_at"] = optionalJson(d.resolved_at);
      body["resolution"] = optionalJson(d.resolution);
      body["parked_aggregate"] = optionalJson(d.parked_aggregate);
      body["parked_events"] = d.parked_events;
      return sendJson(res, 200, body);
    } catch (const DeadLetterError& e) {
      return sendDeadLetterError(res, e);
    }
  }
  if (action != "retry" && action != "discard") {
    return sendError(res, 404, "not_found", "no route for " + req.path);
  }
  if (req.method != "POST") {
    res.set_header("Allow", "POST");
    return sendError(res, 405, "method_not_allowed", action + " takes POST");
  }
  std::string reason;
  if (action == "discard") {
    const json body = json::parse(req.body.empty() ? "{}" : req.body, nullptr, false);
    if (!body.is_object() || !body.contains("reason") || !body["reason"].is_string()) {
      return sendError(res, 400, "bad_request", "discard takes {\"reason\": \"why (kept for audit)\"}");
    }
    reason = body["reason"].get<std::string>();
  }
  auto lease = pool_.acquire(kPoolTimeout);
  try {
    const std::string projection = action == "retry" ? requestDeadLetterRetry(*lease, id)
                                                     : discardDeadLetter(*lease, id, reason);
    const DeadLetterState state = readDeadLetterState(*lease, id);
    spdlog::info("admin: dead letter {} of projection '{}': {} requested{}", id, projection, action,
                 reason.empty() ? "" : " (reason: " + reason + ")");
    return sendJson(res, 202, {{"id", id},
                               {"projection", projection},
                               {"status", state.status},
                               {"parked_aggregate", optionalJson(state.parked_aggregate)}});
  } catch (const DeadLetterError& e) {
    return sendDeadLetterError(res, e);
  }
}

void Console::parked(const httplib::Request& req, httplib::Response& res) {
  const auto projection = param(req, "projection");
  auto lease = pool_.acquire(kPoolTimeout);
  pqxx::read_transaction txn(*lease);
  json aggregates = json::array();
  for (const auto& p : listParkedAggregates(txn, projection)) {
    aggregates.push_back({{"projection", p.projection}, {"aggregate_id", p.aggregate_id},
                          {"dead_letter_id", p.dead_letter_id}, {"dead_letter_status", p.dead_letter_status},
                          {"blocked_at", p.blocked_at}, {"parked_events", p.parked_events},
                          {"parked_at", p.parked_at}, {"events", json::array()}});
  }
  for (const auto& e : listParkedEvents(txn, projection)) {
    for (auto& a : aggregates) {
      if (a["projection"] != e.projection || a["aggregate_id"] != e.aggregate_id) continue;
      a["events"].push_back({{"id", e.id}, {"topic", e.topic}, {"partition", e.partition},
                             {"offset", e.offset}, {"event_id", e.event_id},
                             {"event_type", e.event_type}});
    }
  }
  sendJson(res, 200, {{"parked", aggregates}});
}

}  // namespace ultracore::engine
