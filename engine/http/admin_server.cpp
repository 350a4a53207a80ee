#include "engine/http/admin_server.h"

#include "engine/http/bearer_token.h"
#include "engine/http/guarded_server.h"
#include "engine/http/listen_address.h"

#include <httplib.h>

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <random>
#include <set>

#include <librdkafka/rdkafka.h>
#include <pqxx/connection>
#include <pqxx/nontransaction>
#include <pqxx/result>
#include <spdlog/spdlog.h>

#include "engine/http/admin_page.h"
#include "engine/http/console.h"
#include "engine/http/json_response.h"
#include "engine/http/catalog.h"
#include "engine/http/catalog_page.h"
#include "engine/kafka/kafka_config.h"

namespace ultracore::engine {

using nlohmann::json;

namespace {

constexpr auto kSampleInterval = std::chrono::seconds(1);
constexpr std::size_t kWorkerThreads = 4;
/// Admin requests carry at most a small JSON object.
constexpr std::size_t kMaxBodyBytes = 64 * 1024;
constexpr int kWatermarkTimeoutMs = 500;
// All of one sample's watermark queries together: with the broker silent, each query waits its
// whole time-out, one partition after another, and stop() joins the sampler.
constexpr auto kWatermarkBudget = std::chrono::milliseconds(1000);
/// events/s is the average over this window (long enough to smooth batch bursts).
constexpr auto kRateWindow = std::chrono::seconds(5);
/// How far back the status page's charts reach (one point per sample).
constexpr std::int64_t kHistoryWindowMs = 5 * 60 * 1000;

std::int64_t nowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

constexpr RunnerState kAllStates[] = {RunnerState::kStarting, RunnerState::kRunning,
                                      RunnerState::kWaiting,  RunnerState::kPaused,
                                      RunnerState::kStopped,  RunnerState::kFailed};

/// 8 hex digits naming one failure, in the answer and in the log line that has the details.
std::string newErrorId() {
  thread_local std::mt19937 random{std::random_device{}()};
  char text[9];
  std::snprintf(text, sizeof(text), "%08x", static_cast<unsigned>(random()));
  return text;
}

/// A label value in the exposition format: backslash, double quote and newline escaped.
std::string labelValue(const std::string& value) {
  std::string out;
  for (char c : value) {
    if (c == '\\') out += "\\\\";
    else if (c == '"') out += "\\\"";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

std::string number(double value) {
  char text[64];
  std::snprintf(text, sizeof(text), "%.17g", value);
  return text;
}

/// Accumulates one metric family at a time: HELP and TYPE, then its samples.
class Exposition {
 public:
  void family(const std::string& name, const std::string& type, const std::string& help) {
    out_ += "# HELP " + name + " " + help + "\n# TYPE " + name + " " + type + "\n";
  }
  void sample(const std::string& name, const std::vector<std::pair<std::string, std::string>>& labels,
              const std::string& value) {
    out_ += name;
    if (!labels.empty()) {
      out_ += "{";
      for (std::size_t i = 0; i < labels.size(); ++i) {
        out_ += (i == 0 ? "" : ",") + labels[i].first + "=\"" + labelValue(labels[i].second) + "\"";
      }
      out_ += "}";
    }
    out_ += " " + value + "\n";
  }
  /// One histogram series per projection: the workers' buckets and sums added up (they all
  /// share the same bounds).
  void histogram(const std::string& name, const std::string& projection,
                 const std::vector<const Histogram*>& parts) {
    if (parts.empty()) return;
    const std::vector<double>& bounds = parts.front()->bounds();
    std::vector<std::uint64_t> counts(bounds.size() + 1, 0);
    double sum = 0;
    for (const Histogram* h : parts) {
      const auto part = h->counts();
      for (std::size_t i = 0; i < counts.size() && i < part.size(); ++i) counts[i] += part[i];
      sum += h->sum();
    }
    std::uint64_t cumulative = 0;
    for (std::size_t i = 0; i < counts.size(); ++i) {
      cumulative += counts[i];
      const std::string le = i < bounds.size() ? number(bounds[i]) : "+Inf";
      sample(name + "_bucket", {{"projection", projection}, {"le", le}}, std::to_string(cumulative));
    }
    sample(name + "_sum", {{"projection", projection}}, number(sum));
    sample(name + "_count", {{"projection", projection}}, std::to_string(cumulative));
  }
  std::string take() { return std::move(out_); }

 private:
  std::string out_;
};

/// How much a state says something is wrong, for a projection with several workers: it shows
/// the most severe of its workers' states. failed > waiting > stopped > starting > paused >
/// running: one worker in trouble is the projection in trouble; "paused" shows as soon as one
/// worker has paused (an operator pause reaches them all within a poll); "running" only when
/// every worker runs.
int severity(RunnerState state) {
  switch (state) {
    case RunnerState::kFailed: return 5;
    case RunnerState::kWaiting: return 4;
    case RunnerState::kStopped: return 3;
    case RunnerState::kStarting: return 2;
    case RunnerState::kPaused: return 1;
    case RunnerState::kRunning: return 0;
  }
  return 0;
}

/// The worker whose state the group reports.
const ProjectionRunner& mostSevere(const std::vector<std::shared_ptr<ProjectionRunner>>& workers) {
  const ProjectionRunner* worst = workers.front().get();
  for (const auto& worker : workers) {
    if (severity(worker->state()) > severity(worst->state())) worst = worker.get();
  }
  return *worst;
}

/// One counter of a projection: its workers' values added up.
std::uint64_t total(const std::vector<std::shared_ptr<ProjectionRunner>>& workers,
                    std::atomic<std::uint64_t> RunnerCounters::*field) {
  std::uint64_t sum = 0;
  for (const auto& worker : workers) sum += (worker->counters().*field).load();
  return sum;
}

}  // namespace

AdminServer::AdminServer(const Manifest& manifest, Engine& engine)
    : manifest_(manifest),
      engine_(engine),
      token_(manifest.admin_token),
      catalog_(EventCatalog::build(manifest, engine.plugins())),
      console_(std::make_unique<Console>(manifest, engine)) {}

AdminServer::~AdminServer() { stop(); }

std::vector<std::shared_ptr<ProjectionRunner>> AdminServer::find(const std::string& name) const {
  std::vector<std::shared_ptr<ProjectionRunner>> found;
  for (const auto& runner : engine_.runners()) {
    if (runner->name() == name) found.push_back(runner);
  }
  return found;
}

std::vector<AdminServer::RunnerGroup> AdminServer::groups() const {
  std::vector<RunnerGroup> out;
  for (const auto& runner : engine_.runners()) {
    auto it = std::find_if(out.begin(), out.end(),
                           [&](const RunnerGroup& group) { return group.name == runner->name(); });
    if (it == out.end()) it = out.insert(out.end(), RunnerGroup{runner->name(), {}});
    it->workers.push_back(runner);
  }
  return out;
}

void AdminServer::start() {
  const std::string& listen = manifest_.admin_listen;
  const ListenAddress address = parseListenAddress(listen);
  const std::string& host = address.host;

  ServerLimits limits;
  limits.workers = kWorkerThreads;
  limits.per_client = kWorkerThreads - 1;
  limits.queue = kWorkerThreads;
  limits.max_body_bytes = kMaxBodyBytes;
  // Runs on the request head, before any body is read.
  const auto gate = [this, hosts = allowedHosts(address, manifest_.admin_hosts)](
                        const httplib::Request& req, httplib::Response& res) {
    if (req.path == "/healthz") return false;
    if (req.get_header_value_count("Host") > 1) {
      sendError(res, 400, "bad_request", "more than one Host header");
      return true;
    }
    if (!hostAllowed(req.get_header_value("Host"), hosts)) {
      sendError(res, 421, "misdirected_request",
                "this server does not answer to that Host (admin.hosts lists the names it does)");
      return true;
    }
    if (req.path == "/" || req.path == "/index.html" || req.path == "/catalog") return false;
    if (!token_.empty() && !bearerTokenMatches(req.get_header_value("Authorization"), token_)) {
      res.set_header("WWW-Authenticate", "Bearer");
      sendError(res, 401, "unauthorized", "missing or wrong bearer token");
      return true;
    }
    // A page elsewhere can POST text/plain without asking (no-cors), never application/json.
    if (needsJsonContentType(req) && !isJsonContentType(req.get_header_value("Content-Type"))) {
      sendError(res, 415, "unsupported_media_type",
                "operator actions take Content-Type: application/json (the body may be empty)");
      return true;
    }
    return false;
  };
  server_ = std::make_unique<GuardedServer>(
      "admin", limits,
      [](httplib::Response& res, int status, const std::string& code, const std::string& message) {
        sendError(res, status, code, message);
      },
      gate);
  const auto handler = [this](const httplib::Request& req, httplib::Response& res) {
    try {
      dispatch(req, res);
    } catch (const std::exception& e) {
      // The details (libpq's text: host, port, user) go to the log only, under an id.
      const std::string id = newErrorId();
      spdlog::error("admin: {} {}: error {}: {}", req.method, req.path, id, e.what());
      sendJson(res, 500,
               {{"error",
                 {{"status", 500}, {"code", "internal_error"},
                  {"message", "internal error (error " + id + "); the engine's log has the details"},
                  {"error_id", id}}}});
    }
  };
  server_->Get(".*", handler);
  server_->Post(".*", handler);

  const int bound = bindServer(*server_, address);
  if (bound <= 0) {
    throw AdminStartupError("admin.listen " + listen + ": cannot bind (address in use or invalid)");
  }
  port_ = bound;
  if (token_.empty() && manifest_.apiNeedsToken()) {
    spdlog::warn("admin.token is not set: the admin port on {} takes no token (api.token is not "
                 "an admin credential); set admin.token", listen);
  }
  if (token_.empty() && !isLoopbackHost(host)) {
    spdlog::warn("admin.insecure: the admin port on {} serves every client that reaches it, "
                 "without a token", listen);
  }
  sampleOnce();  // the first answer already has log end offsets
  sampler_ = std::thread([this] { sampleLoop(); });
  console_->start();
  listener_.start(*server_);
  spdlog::info("admin listening on {}:{} (/metrics, /api/v1/projections, status page at /){}", host,
               bound, token_.empty() ? "" : "; bearer token required");
}

void AdminServer::stop() {
  {  // first: a sample in progress stops querying the broker while the server stops
    std::lock_guard lock(stop_mutex_);
    stopping_ = true;
  }
  stop_cv_.notify_all();
  listener_.stop();
  if (sampler_.joinable()) sampler_.join();
  console_->stop();
}

bool AdminServer::stopRequested() {
  std::lock_guard lock(stop_mutex_);
  return stopping_;
}

// ---- sampling -------------------------------------------------------------------------------

void AdminServer::sampleLoop() {
  std::unique_lock lock(stop_mutex_);
  while (!stop_cv_.wait_for(lock, kSampleInterval, [this] { return stopping_; })) {
    lock.unlock();
    sampleOnce();
    lock.lock();
  }
}

void AdminServer::sampleOnce() {
  const auto runners = engine_.runners();
  const auto grouped = groups();
  const auto now = std::chrono::steady_clock::now();

  std::set<TopicPartition> wanted;
  for (const auto& runner : runners) {
    for (const auto& p : runner->partitions()) wanted.insert(p.partition);
  }
  std::map<TopicPartition, Watermarks> marks;
  if (!wanted.empty()) {
    try {
      if (!kafka_) {
        const std::map<std::string, std::string> enforced = {{"client.id", "ultracore-admin"},
                                                             {"allow.auto.create.topics", "false"}};
        // A consumer handle (no group): the manifest's kafka: map is consumer settings.
        kafka_ = makeUnsubscribedConsumer({&manifest_.kafka, &enforced}, "admin");
      }
      const auto budget_end = std::chrono::steady_clock::now() + kWatermarkBudget;
      for (const auto& tp : wanted) {
        // Past the budget, or stopping: the other partitions keep their last sample.
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                              budget_end - std::chrono::steady_clock::now())
                              .count();
        if (left <= 0 || stopRequested()) break;
        Watermarks w;
        if (rd_kafka_query_watermark_offsets(kafka_.get(), tp.topic.c_str(), tp.partition, &w.low,
                                             &w.high,
                                             static_cast<int>(std::min<long long>(kWatermarkTimeoutMs, left))) ==
            RD_KAFKA_RESP_ERR_NO_ERROR) {
          marks[tp] = w;
        }
      }
    } catch (const std::exception& e) {
      spdlog::debug("admin: log end offsets: {}", e.what());
    }
  }

  std::map<std::string, std::int64_t> open;
  bool open_known = false;
  try {
    if (!pg_) pg_ = std::make_unique<pqxx::connection>(manifest_.postgres_url);
    pqxx::nontransaction txn(*pg_);
    for (const auto& row : txn.exec(
             "SELECT projection, count(*) FROM ultracore_dead_letters "
             "WHERE status IN ('open', 'retry_requested') GROUP BY projection")) {
      open[row[0].as<std::string>()] = row[1].as<std::int64_t>();
    }
    open_known = true;
  } catch (const std::exception& e) {
    pg_.reset();
    spdlog::debug("admin: dead letters: {}", e.what());
  }

  {
    std::lock_guard lock(sample_mutex_);
    for (auto& [tp, w] : marks) watermarks_[tp] = w;
    if (open_known) dead_letters_open_ = std::move(open);
    dead_letters_known_ = open_known;
    for (const auto& group : grouped) {
      auto& history = applied_history_[group.name];
      history.emplace_back(now, total(group.workers, &RunnerCounters::events_applied));
      while (history.size() > 2 && now - history.front().first > kRateWindow * 2) history.pop_front();
    }
  }

  // One chart point per projection, from what was just sampled (both calls take the lock).
  const std::int64_t t_ms = nowMs();
  for (const auto& group : grouped) {
    const HistoryPoint point{t_ms, eventsPerSecond(group.name), totalLag(partitionsOf(group))};
    std::lock_guard lock(sample_mutex_);
    auto& points = history_[group.name];
    points.push_back(point);
    while (!points.empty() && points.front().t_ms < t_ms - kHistoryWindowMs) points.pop_front();
  }
}

std::int64_t AdminServer::totalLag(const std::vector<PartitionView>& partitions) const {
  std::int64_t total = 0;
  for (const auto& view : partitions) {
    if (view.lag < 0) return -1;
    total += view.lag;
  }
  return total;
}

std::vector<AdminServer::PartitionView> AdminServer::partitionsOf(const RunnerGroup& group) {
  std::vector<PartitionView> out;
  std::vector<PartitionProgress> owned;
  for (const auto& worker : group.workers) {
    for (const auto& progress : worker->partitions()) owned.push_back(progress);
  }
  // During a hand-over two workers may both list a partition for a moment: show it once.
  std::sort(owned.begin(), owned.end(), [](const auto& a, const auto& b) {
    if (a.partition != b.partition) return a.partition < b.partition;
    return a.stored_offset > b.stored_offset;  // the fresher first: unique keeps it
  });
  owned.erase(std::unique(owned.begin(), owned.end(),
                          [](const auto& a, const auto& b) { return a.partition == b.partition; }),
              owned.end());
  std::lock_guard lock(sample_mutex_);
  for (const auto& progress : owned) {
    PartitionView view{progress, -1, -1};
    Watermarks w{-1, progress.cached_high};
    if (const auto it = watermarks_.find(progress.partition); it != watermarks_.end()) {
      w = it->second;
      w.high = std::max(w.high, progress.cached_high);  // the fresher of the two
    }
    view.log_end = w.high;
    if (w.high >= 0) {
      const std::int64_t consumed = progress.stored_offset >= 0 ? progress.stored_offset
                                    : w.low >= 0                ? w.low
                                                                : -1;
      if (consumed >= 0) view.lag = std::max<std::int64_t>(0, w.high - consumed);
    }
    out.push_back(view);
  }
  return out;
}

double AdminServer::eventsPerSecond(const std::string& projection) {
  std::lock_guard lock(sample_mutex_);
  const auto it = applied_history_.find(projection);
  if (it == applied_history_.end() || it->second.size() < 2) return 0;
  const auto& history = it->second;
  const auto& last = history.back();
  auto first = history.begin();
  while (std::next(first) != history.end() && last.first - std::next(first)->first >= kRateWindow) {
    ++first;
  }
  const double seconds = std::chrono::duration<double>(last.first - first->first).count();
  if (seconds <= 0) return 0;
  return static_cast<double>(last.second - first->second) / seconds;
}

// ---- views ----------------------------------------------------------------------------------

std::string AdminServer::metricsText() {
  // One series per projection: its workers are summed (counters, histograms) or reduced to the
  // most severe state, so a projection with `workers: N` exposes what one with 1 does.
  const auto grouped = groups();
  Exposition out;
  const auto counter = [&](const std::string& name, const std::string& help, auto field) {
    out.family(name, "counter", help);
    for (const auto& group : grouped) {
      out.sample(name, {{"projection", group.name}}, std::to_string(total(group.workers, field)));
    }
  };
  const auto histogram = [&](const std::string& name, auto field) {
    for (const auto& group : grouped) {
      std::vector<const Histogram*> parts;
      for (const auto& worker : group.workers) parts.push_back(&(worker->counters().*field));
      out.histogram(name, group.name, parts);
    }
  };
  counter("ultracore_events_applied_total", "Events applied to the read model.",
          &RunnerCounters::events_applied);
  counter("ultracore_events_failed_total", "Events that failed and followed on_error.",
          &RunnerCounters::events_failed);
  counter("ultracore_events_duplicate_total", "Events skipped as already applied (same event_id).",
          &RunnerCounters::events_duplicate);
  counter("ultracore_events_parked_total", "Events held back behind a parked aggregate.",
          &RunnerCounters::events_parked);
  counter("ultracore_processed_events_pruned_total",
          "processed_events rows removed by dedupe.retention (older than the window).",
          &RunnerCounters::processed_events_pruned);
  counter("ultracore_batches_committed_total", "Batches committed to PostgreSQL.",
          &RunnerCounters::batches_committed);
  counter("ultracore_cas_conflicts_total",
          "Batches discarded because the stored offsets moved (partition lost).",
          &RunnerCounters::cas_conflicts);

  out.family("ultracore_batch_size_events", "histogram", "Events per committed batch.");
  histogram("ultracore_batch_size_events", &RunnerCounters::batch_size);
  out.family("ultracore_batch_commit_seconds", "histogram",
             "Time from opening a batch's transaction to its commit.");
  histogram("ultracore_batch_commit_seconds", &RunnerCounters::commit_seconds);

  out.family("ultracore_projection_state", "gauge",
             "1 for the runner's current state, 0 for the others (with several workers: the "
             "most severe of theirs).");
  for (const auto& group : grouped) {
    const RunnerState current = mostSevere(group.workers).state();
    for (RunnerState state : kAllStates) {
      out.sample("ultracore_projection_state", {{"projection", group.name}, {"state", toString(state)}},
                 current == state ? "1" : "0");
    }
  }

  std::vector<std::pair<std::string, std::vector<PartitionView>>> partitions;
  for (const auto& group : grouped) partitions.emplace_back(group.name, partitionsOf(group));
  const auto partitionGauge = [&](const std::string& name, const std::string& help, auto value) {
    out.family(name, "gauge", help);
    for (const auto& [projection, views] : partitions) {
      for (const auto& view : views) {
        const std::int64_t v = value(view);
        if (v < 0) continue;
        out.sample(name,
                   {{"projection", projection},
                    {"topic", view.progress.partition.topic},
                    {"partition", std::to_string(view.progress.partition.partition)}},
                   std::to_string(v));
      }
    }
  };
  partitionGauge("ultracore_partition_stored_offset",
                 "Next offset to consume, as stored in PostgreSQL (owned partitions).",
                 [](const PartitionView& v) { return v.progress.stored_offset; });
  partitionGauge("ultracore_partition_log_end_offset", "The partition's log end (high watermark).",
                 [](const PartitionView& v) { return v.log_end; });
  partitionGauge("ultracore_partition_lag_events", "Log end minus the stored offset.",
                 [](const PartitionView& v) { return v.lag; });

  std::map<std::string, std::int64_t> open;
  bool open_known = false;
  {
    std::lock_guard lock(sample_mutex_);
    open = dead_letters_open_;
    open_known = dead_letters_known_;
  }
  if (open_known) {
    out.family("ultracore_dead_letters_open", "gauge",
               "Dead letters waiting for the operator (open or retry requested).");
    for (const auto& group : grouped) {
      const auto it = open.find(group.workers.front()->key());
      out.sample("ultracore_dead_letters_open", {{"projection", group.name}},
                 std::to_string(it == open.end() ? 0 : it->second));
    }
  }
  const json generations = engine_.generationsJson();
  out.family("ultracore_projection_generation", "gauge",
             "The live generation of the projection's read model (a rebuild adds one).");
  for (const auto& g : generations) {
    out.sample("ultracore_projection_generation", {{"projection", g["projection"].get<std::string>()}},
               std::to_string(g["live_generation"].get<int>()));
  }
  out.family("ultracore_rebuild_in_progress", "gauge", "1 while a rebuild is building or switching.");
  for (const auto& g : generations) {
    const json& rebuild = g["rebuild"];
    const bool active = !rebuild.is_null() &&
                        (rebuild["phase"] == "building" || rebuild["phase"] == "switching");
    out.sample("ultracore_rebuild_in_progress", {{"projection", g["projection"].get<std::string>()}},
               active ? "1" : "0");
  }
  const auto rebuildGauge = [&](const std::string& name, const std::string& help,
                                const char* field) {
    out.family(name, "gauge", help);
    for (const auto& g : generations) {
      if (g["rebuild"].is_null()) continue;
      out.sample(name, {{"projection", g["projection"].get<std::string>()}},
                 std::to_string(g["rebuild"][field].get<std::int64_t>()));
    }
  };
  rebuildGauge("ultracore_rebuild_events_done", "Events the last rebuild has applied (offsets).",
               "events_done");
  rebuildGauge("ultracore_rebuild_events_total", "Events in the log the last rebuild must reach.",
               "events_total");
  // The event catalog (issue 16): events applied by type, and those no consumer declares.
  const EventCatalog::Seen seen = catalogSeen();
  out.family("ultracore_events_by_type_total", "counter",
             "Events consumed, by topic and event type (at most 256 types per topic).");
  for (const auto& [projection, counts] : seen) {
    for (const auto& [key, count] : counts) {
      out.sample("ultracore_events_by_type_total",
                 {{"projection", projection}, {"topic", key.first}, {"event_type", key.second}},
                 std::to_string(count));
    }
  }
  out.family("ultracore_events_undeclared_total", "counter",
             "Events consumed whose type no projection consuming the topic declares in its "
             "plugin's event catalog.");
  for (const auto& [topic, count] : catalog_.undeclaredSeen(seen)) {
    out.sample("ultracore_events_undeclared_total", {{"topic", topic}}, std::to_string(count));
  }
  return out.take();
}

EventCatalog::Seen AdminServer::catalogSeen() const {
  EventCatalog::Seen seen;
  for (const auto& group : groups()) {
    auto& counts = seen[group.name];
    for (const auto& worker : group.workers) {
      for (const auto& [key, count] : worker->counters().event_types.snapshot()) counts[key] += count;
    }
  }
  return seen;
}

json AdminServer::projectionsJson(std::optional<std::int64_t> history_since_ms) {
  const auto grouped = groups();
  json projections = json::array();
  std::map<std::string, std::int64_t> open;
  {
    std::lock_guard lock(sample_mutex_);
    open = dead_letters_open_;
  }
  for (const auto& group : grouped) {
    // One entry per projection: its workers' partitions together, their counters summed.
    const ProjectionRunner& runner = *group.workers.front();
    const ProjectionRunner& worst = mostSevere(group.workers);
    json partitions = json::array();
    const auto views = partitionsOf(group);
    for (const auto& view : views) {
      partitions.push_back({{"topic", view.progress.partition.topic},
                            {"partition", view.progress.partition.partition},
                            {"stored_offset", view.progress.stored_offset},
                            {"log_end", view.log_end >= 0 ? json(view.log_end) : json(nullptr)},
                            {"lag", view.lag >= 0 ? json(view.lag) : json(nullptr)}});
    }
    const std::int64_t total_lag = totalLag(views);
    const bool paused = std::any_of(group.workers.begin(), group.workers.end(),
                                    [](const auto& worker) { return worker->pauseRequested(); });
    const auto it = open.find(runner.key());
    projections.push_back({{"name", group.name},
                           {"state", worst.stateName()},
                           {"key", runner.key()},
                           {"generation", runner.settings().generation},
                           {"rebuild_of", runner.settings().building ? json(runner.settings().projection) : json()},
                           {"workers", group.workers.size()},
                           {"detail", worst.detail()},
                           {"paused", paused},
                           {"topics", runner.topics()},
                           {"events_per_second", eventsPerSecond(group.name)},
                           {"events_applied", total(group.workers, &RunnerCounters::events_applied)},
                           {"events_failed", total(group.workers, &RunnerCounters::events_failed)},
                           {"events_duplicate", total(group.workers, &RunnerCounters::events_duplicate)},
                           {"batches_committed", total(group.workers, &RunnerCounters::batches_committed)},
                           {"dead_letters_open", it == open.end() ? 0 : it->second},
                           {"lag", total_lag >= 0 ? json(total_lag) : json(nullptr)},
                           {"partitions", partitions}});
    if (history_since_ms) {
      json history = json::array();
      std::lock_guard lock(sample_mutex_);
      if (const auto h = history_.find(group.name); h != history_.end()) {
        for (const auto& point : h->second) {
          if (point.t_ms <= *history_since_ms) continue;
          history.push_back({{"t_ms", point.t_ms},
                             {"events_per_second", point.events_per_second},
                             {"lag", point.lag >= 0 ? json(point.lag) : json(nullptr)}});
        }
      }
      projections.back()["history"] = std::move(history);
    }
  }
  return {{"time_ms", nowMs()}, {"projections", projections},
          {"generations", engine_.generationsJson()}};
}

void AdminServer::dispatch(const httplib::Request& req, httplib::Response& res) {
  const std::string& path = req.path;
  if (req.method == "GET" && (path == "/" || path == "/index.html")) {
    res.set_content(adminPageHtml(), "text/html; charset=utf-8");
    return;
  }
  if (req.method == "GET" && path == "/catalog") {
    res.set_content(catalogPageHtml(), "text/html; charset=utf-8");
    return;
  }
  if (path == "/healthz") return sendJson(res, 200, {{"status", "ok"}});

  if (!token_.empty()) {
    if (!bearerTokenMatches(req.get_header_value("Authorization"), token_)) {
      res.set_header("WWW-Authenticate", "Bearer");
      return sendError(res, 401, "unauthorized", "missing or wrong bearer token");
    }
  }

  if (console_->handle(req, res)) return;
  if (req.method == "GET" && path == "/metrics") {
    res.set_content(metricsText(), "text/plain; version=0.0.4; charset=utf-8");
    return;
  }
  if (req.method == "GET" && path == "/api/v1/projections") {
    std::optional<std::int64_t> since;
    if (req.has_param("history_since")) {
      const std::string text = req.get_param_value("history_since");
      std::int64_t value = 0;
      const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
      if (ec != std::errc() || end != text.data() + text.size() || value < 0) {
        return sendError(res, 400, "bad_request",
                         "history_since must be a time in ms since the epoch (0: all history)");
      }
      since = value;
    }
    return sendJson(res, 200, projectionsJson(since));
  }
  if (req.method == "GET" && path == "/api/v1/catalog") {
    return sendJson(res, 200, catalog_.toJson(catalogSeen()));
  }
  const std::string prefix = "/api/v1/projections/";
  if (path.rfind(prefix, 0) == 0) {
    const std::string rest = path.substr(prefix.size());
    const auto slash = rest.find('/');
    const std::string name = rest.substr(0, slash);
    const std::string action = slash == std::string::npos ? "" : rest.substr(slash + 1);
    if (req.method == "GET" && (action == "rebuild" || action == "generations")) {
      return sendJson(res, 200, engine_.generationsJson(name));
    }
    static const std::set<std::string> kActions = {"pause", "resume", "rebuild", "rebuild/cancel",
                                                   "rollback", "drop", "reset"};
    if (kActions.count(action) == 0) {
      return sendError(res, 404, "not_found", "no route for " + path);
    }
    if (req.method != "POST") {
      res.set_header("Allow", "POST");
      return sendError(res, 405, "method_not_allowed", action + " takes POST");
    }
    return projectionAction(req, res, name, action);
  }
  sendError(res, 404, "not_found", "no route for " + path);
}

void AdminServer::projectionAction(const httplib::Request&, httplib::Response& res,
                                   const std::string& name, const std::string& action) {
  if (action == "pause" || action == "resume") {
    const auto found = find(name);
    if (found.empty()) {
      return sendError(res, 404, "unknown_projection",
                       "this engine runs no projection '" + name + "'");
    }
    // Every worker of the projection; each applies it on its own thread within one poll. The
    // answer says what was asked. (The engine carries it over when it replaces the workers.)
    for (const auto& worker : found) worker->requestPause(action == "pause");
    spdlog::info("admin: {} requested for projection '{}'", action, name);
    return sendJson(res, 202, {{"projection", name}, {"paused", action == "pause"},
                               {"state", mostSevere(found).stateName()}});
  }
  spdlog::info("admin: {} requested for projection '{}'", action, name);
  try {
    if (action == "rebuild") return sendJson(res, 202, engine_.rebuild(name));
    if (action == "rebuild/cancel") return sendJson(res, 200, engine_.cancelRebuild(name));
    if (action == "rollback") return sendJson(res, 200, engine_.rollback(name));
    if (action == "drop") return sendJson(res, 200, engine_.drop(name));
    return sendJson(res, 200, engine_.reset(name));
  } catch (const ControlError& e) {
    return sendError(res, e.status(), e.code(), e.what());
  }
}

}  // namespace ultracore::engine
