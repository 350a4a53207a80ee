#pragma once
/// @file
/// ApiServer: the command/query HTTP API (issue 4). Owns the HTTP server (cpp-httplib), the
/// one idempotent producer, the read-only connection pool and the plugins' Api objects.
/// Constructed and started on the main thread; requests run on the server's worker threads.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "engine/http/catalog.h"
#include "engine/http/listener_thread.h"
#include "engine/manifest/manifest.h"
#include "engine/plugin/plugin_loader.h"

namespace httplib {
class Server;
struct Request;
struct Response;
}  // namespace httplib

namespace ultracore::engine {

class EventProducer;
class OffsetWatch;
class PgPool;
class PluginLogger;
struct ApiRoute;

/// The API could not start (bad listen address, port taken, bad route declared by a plugin).
class ApiStartupError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// How long a query with ?consistent_with= waits for its projection before answering 504, and
/// a command for the projections it reads (and for its aggregate's lock) before answering 503.
constexpr auto kConsistencyTimeout = std::chrono::seconds(5);
/// How long an aggregate lock's holder may stay silent towards PostgreSQL before PostgreSQL
/// ends its session, which releases the lock (a paused or hung API process). Longer than the
/// producer's message.timeout.ms (5 s by default), the longest silence of a healthy holder.
constexpr auto kAggregateLease = std::chrono::seconds(8);

class ApiServer {
 public:
  /// Creates every plugin's Api and collects its routes. `schemas` maps each manifest
  /// projection name to the schema it writes into. Throws PluginError, ApiStartupError.
  ApiServer(const Manifest& manifest, const PluginRegistry& plugins,
            std::map<std::string, std::string> schemas);
  ~ApiServer();
  ApiServer(const ApiServer&) = delete;
  ApiServer& operator=(const ApiServer&) = delete;

  /// Binds api.listen and serves on a background thread. Throws ApiStartupError.
  void start();
  /// Stops accepting, finishes the requests in flight and joins. Idempotent.
  void stop();

  std::size_t routeCount() const { return routes_.size(); }
  int port() const { return port_; }

 private:
  void dispatch(const httplib::Request& req, httplib::Response& res);
  /// The credential whose token the request carries; nullptr when none matches.
  const ApiCredential* credentialOf(const httplib::Request& req) const;

  const Manifest& manifest_;
  std::vector<ApiCredential> credentials_;  ///< api.tokens, then api.token (every tenant)
  std::map<std::string, std::string> schemas_;  ///< projection name -> schema, for Readers
  std::vector<std::unique_ptr<PluginLogger>> loggers_;
  std::vector<std::shared_ptr<ApiRoute>> routes_;
  EventCatalog catalog_;  ///< the plugins' event declarations: commands' events must match
  std::string openapi_;
  std::string docs_html_;
  std::unique_ptr<EventProducer> producer_;
  std::unique_ptr<PgPool> pool_;
  std::unique_ptr<PgPool> lock_pool_;  ///< connections holding aggregate locks (issue 14)
  /// Test hook (ULTRACORE_TEST_PAUSE_BEFORE_FENCE=1): the first locked command stops the
  /// process (SIGSTOP) just before it commits its lock's transaction.
  std::atomic<bool> pause_before_fence_{false};
  std::unique_ptr<OffsetWatch> watch_;  ///< wakes consistent_with waits
  std::unique_ptr<httplib::Server> server_;
  ListenerThread listener_;
  int port_ = 0;
  std::atomic<int> waiters_{0};  ///< consistent_with waits in progress
  std::atomic<std::int64_t> last_idempotency_sweep_{0};  ///< steady_clock ticks
};

}  // namespace ultracore::engine
