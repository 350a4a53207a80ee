#pragma once
/// @file
/// AdminServer: the operator's HTTP endpoint on admin.listen (issue 6), started by an engine
/// that runs projections. Serves Prometheus metrics (/metrics), projection status as JSON
/// (/api/v1/projections), operator actions (POST /api/v1/projections/{name}/pause, resume,
/// rebuild, rebuild/cancel, rollback, drop, reset), a rebuild's progress (GET
/// /api/v1/projections/{name}/rebuild), the operator console's endpoints (console.h: topics,
/// consumer groups, message browser, dead letters, parked aggregates), the event catalog
/// (issue 16: GET /api/v1/catalog and its page, GET /catalog) and a self-contained console
/// page (/).
///
/// Authentication: when admin.token (else api.token) is set, every route except `/` and
/// `/healthz` (and `/catalog`, a page without data) needs `Authorization: Bearer <token>` (Prometheus: `authorization: {credentials:}`).
/// The status page itself carries no data; its script sends the token it reads from the URL
/// fragment (`/#token=...`).
///
/// Constructed and started on the main thread after the runners exist; stopped before them.
/// A sampler thread refreshes once a second what needs Kafka or PostgreSQL (log end offsets,
/// open dead letters, events/s), so a request never waits on either. It also keeps each
/// projection's events/s and total lag, one point per sample, for the last five minutes: the
/// status page's charts (`GET /api/v1/projections?history_since=<ms>`).

#include <chrono>
#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include <pqxx/connection>

#include "engine/http/catalog.h"
#include "engine/http/listener_thread.h"
#include "engine/kafka/kafka_config.h"
#include "engine/manifest/manifest.h"
#include "engine/runner/engine.h"
#include "engine/runner/projection_runner.h"

namespace httplib {
class Server;
struct Request;
struct Response;
}  // namespace httplib

namespace ultracore::engine {

class Console;

/// The admin endpoint could not start (bad admin.listen, port taken).
class AdminStartupError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class AdminServer {
 public:
  /// `engine` must outlive the server; its runners may change while it serves.
  AdminServer(const Manifest& manifest, Engine& engine);
  ~AdminServer();
  AdminServer(const AdminServer&) = delete;
  AdminServer& operator=(const AdminServer&) = delete;

  /// Binds admin.listen (port 0: a free port, logged) and serves on a background thread.
  /// Throws AdminStartupError.
  void start();
  /// Stops serving and sampling; joins. Idempotent.
  void stop();
  int port() const { return port_; }

  /// Prometheus text exposition format 0.0.4.
  std::string metricsText();
  /// The body of GET /api/v1/projections. With `history_since_ms`, each projection also gets
  /// `history`: the sampled points newer than that time (ms since the epoch; 0: all of the
  /// last five minutes), oldest first, each {t_ms, events_per_second, lag (null: unknown)}.
  nlohmann::json projectionsJson(std::optional<std::int64_t> history_since_ms = std::nullopt);

 private:
  /// Log start/end of one partition as last sampled.
  struct Watermarks {
    std::int64_t low = -1;
    std::int64_t high = -1;
  };
  /// One sample of a projection for the status page's charts.
  struct HistoryPoint {
    std::int64_t t_ms = 0;  ///< system clock, ms since the epoch
    double events_per_second = 0;
    std::int64_t lag = -1;  ///< total over the partitions; -1: unknown
  };
  struct PartitionView {
    PartitionProgress progress;
    std::int64_t log_end = -1;  ///< -1: unknown
    std::int64_t lag = -1;      ///< -1: unknown
  };

  /// The runners under one name: a projection's live workers (`workers:` in the manifest), or
  /// a rebuild's runner alone. Every view shows one entry per group, never one per worker.
  struct RunnerGroup {
    std::string name;
    std::vector<std::shared_ptr<ProjectionRunner>> workers;
  };
  /// engine_.runners() grouped by name, in the engine's order.
  std::vector<RunnerGroup> groups() const;

  void dispatch(const httplib::Request& req, httplib::Response& res);
  void sampleLoop();
  void sampleOnce();
  bool stopRequested();
  /// The partitions the group's workers own, concatenated.
  std::vector<PartitionView> partitionsOf(const RunnerGroup& group);
  double eventsPerSecond(const std::string& projection);
  /// Sum of the partitions' lag; -1 when any is unknown.
  std::int64_t totalLag(const std::vector<PartitionView>& partitions) const;
  /// Every runner named `name` (a projection's workers); empty when none.
  std::vector<std::shared_ptr<ProjectionRunner>> find(const std::string& name) const;
  /// Applied events by projection, topic and type: the event catalog's counts (issue 16).
  EventCatalog::Seen catalogSeen() const;
  /// POST /api/v1/projections/{name}/{action}.
  void projectionAction(const httplib::Request& req, httplib::Response& res,
                        const std::string& name, const std::string& action);

  const Manifest& manifest_;
  Engine& engine_;
  std::string token_;
  /// The plugins' declarations for the manifest the engine started with (built once: a reload
  /// loads plugins on another thread). Immutable.
  EventCatalog catalog_;
  std::unique_ptr<Console> console_;  ///< the operator console's routes (console.h)
  std::unique_ptr<httplib::Server> server_;
  ListenerThread listener_;
  int port_ = 0;

  // Used by one thread at a time (start(), then the sampler); created lazily, dropped on error.
  KafkaHandle kafka_;
  std::unique_ptr<pqxx::connection> pg_;
  std::thread sampler_;
  std::mutex stop_mutex_;
  std::condition_variable stop_cv_;
  bool stopping_ = false;

  std::mutex sample_mutex_;  ///< guards everything below
  std::map<TopicPartition, Watermarks> watermarks_;
  std::map<std::string, std::int64_t> dead_letters_open_;  ///< by projection
  bool dead_letters_known_ = false;
  std::map<std::string, std::deque<std::pair<std::chrono::steady_clock::time_point, std::uint64_t>>>
      applied_history_;  ///< by projection: (when, events_applied), last ~10 s
  std::map<std::string, std::deque<HistoryPoint>> history_;  ///< by projection: last 5 min
};

}  // namespace ultracore::engine
