#pragma once
/// @file
/// GuardedServer: the cpp-httplib server of the API and admin ports, hardened against hostile
/// clients (issue 20).
///
/// cpp-httplib 0.11 serves one connection per worker thread, restarts its read timeout with
/// every byte, queues accepted connections without a bound and reads chunked, unsized and
/// compressed bodies whole before any handler runs. Here:
///
/// - a request's head and body must arrive within `request_timeout` in total and within
///   `max_head_bytes` plus the body limit (then 408, or the connection is closed);
/// - a connection without a whole request head (a new one, a keep-alive one between two
///   requests, or one trickling its head) holds no worker: after a few milliseconds it is
///   parked with the others on one polling thread (at most `idle_connections`; idle at most
///   `keep_alive`; a head must complete within `request_timeout` of its first byte, then 408,
///   and within `max_head_bytes`, else 431) and goes back to the pool when its head is whole;
/// - one client address holds at most `per_client` workers (requests in progress, not idle
///   connections; one more waits up to `max_queue_wait` for its turn); an accepted connection waits at
///   most `max_queue_wait` for a worker, and at most `queue` connections wait at all. Every
///   other connection goes to the busy lane: one thread that polls them all at once, reads at
///   most a small request head within `busy_head_timeout`, answers `GET /healthz` with 200 and
///   anything else with 503 (`Retry-After: 1`), and closes. More than `busy_connections` of
///   those are closed at once;
/// - before a body is read, the owner's gate runs on the head (token, Host, ...), then the body
///   checks: `Transfer-Encoding` 411, no `Content-Length` on POST/PUT/PATCH 411, more than
///   `max_body_bytes` 413, a `Content-Encoding` other than identity 415. A request answered
///   there is answered with `Connection: close`, and its unread body is drained briefly, never
///   stored.
///
/// Constructed on the main thread; the handlers run on the worker threads.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include <httplib.h>

namespace ultracore::engine {

struct ServerLimits {
  std::size_t workers = 16;     ///< threads serving requests
  std::size_t per_client = 8;   ///< workers one client address may hold
  std::size_t queue = 16;       ///< accepted connections waiting for a worker
  std::chrono::milliseconds max_queue_wait{250};
  std::chrono::milliseconds request_timeout{10000};  ///< one request's head and body
  std::chrono::milliseconds keep_alive{5000};        ///< idle between two requests
  std::size_t max_head_bytes = 64 * 1024;
  std::size_t max_body_bytes = 1 << 20;
  std::size_t busy_connections = 1024;
  std::size_t idle_connections = 4096;  ///< parked between requests (a descriptor each)
  std::chrono::milliseconds busy_head_timeout{1000};
};

/// True for `application/json`, with or without parameters (`; charset=utf-8`).
bool isJsonContentType(const std::string& content_type);

/// Whether a request must carry a JSON Content-Type: a POST (what a cross-site page can send
/// without a preflight, in text/plain) or any request with a body.
bool needsJsonContentType(const httplib::Request& req);

class GuardedServer : public httplib::Server {
 public:
  /// Writes an error answer in the owner's format.
  using ErrorWriter = std::function<void(httplib::Response&, int status, const std::string& code,
                                         const std::string& message)>;
  /// Runs on a request head before its body is read; true when it answered the request.
  using Gate = std::function<bool(const httplib::Request&, httplib::Response&)>;

  /// `name` prefixes log lines ("api", "admin").
  GuardedServer(std::string name, ServerLimits limits, ErrorWriter error, Gate gate);
  ~GuardedServer() override;

  const ServerLimits& limits() const { return limits_; }

 private:
  class Pool;
  class Poller;
  class BusyLane;
  class Parking;

  bool process_and_close_socket(socket_t sock) override;
  /// Serves requests on `sock` on this worker while whole request heads come; parks it when
  /// idle or when a head is incomplete (`head_started`: when its first byte came).
  bool serve(int sock, std::size_t keep_alive_left,
             std::optional<std::chrono::steady_clock::time_point> head_started);
  /// A parked connection's request head is complete: back to the pool (closed when the server
  /// stops).
  void resume(int fd, std::size_t keep_alive_left,
              std::optional<std::chrono::steady_clock::time_point> head_started);
  /// A whole HTTP answer 408 (request_timeout) or 431 (header_too_large), closing.
  std::string errorAnswer(int status) const;
  /// The body checks of the class comment; true when they answered.
  bool refuseBody(const httplib::Request& req, httplib::Response& res) const;
  /// False when `client` still holds per_client workers after max_queue_wait.
  bool acquireClient(const std::string& client);
  /// Hands `sock` to the busy lane (503) and logs it, at most once per interval.
  void toBusyLane(int sock, const std::string& why);
  void releaseClient(const std::string& client);

  static constexpr std::chrono::seconds kSaturationLogInterval{10};
  std::string name_;  ///< "api" or "admin": prefixes the saturation log line
  std::atomic<std::size_t> refused_{0};                 ///< busy-lane answers since the last line
  std::atomic<std::int64_t> last_saturation_log_{std::numeric_limits<std::int64_t>::min() / 2};
  ServerLimits limits_;
  ErrorWriter error_;
  Gate gate_;
  std::shared_ptr<BusyLane> busy_;
  std::mutex pool_mutex_;
  Pool* pool_ = nullptr;  ///< owned by httplib's listen loop while it runs; under pool_mutex_
  std::mutex clients_mutex_;
  std::condition_variable clients_cv_;
  std::map<std::string, std::size_t> clients_;  ///< address -> workers it holds
  std::shared_ptr<Parking> parking_;  ///< last: its thread resumes into the members above
};

}  // namespace ultracore::engine
