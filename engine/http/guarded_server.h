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
/// - one client address holds at most `per_client` workers (a further connection of it waits
///   up to `max_queue_wait` while that client's idle keep-alive connections and incomplete
///   heads give theirs up, as every such connection does when others wait); an accepted
///   connection waits at
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
#include <functional>
#include <map>
#include <memory>
#include <mutex>
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
  class BusyLane;

  bool process_and_close_socket(socket_t sock) override;
  /// The body checks of the class comment; true when they answered.
  bool refuseBody(const httplib::Request& req, httplib::Response& res) const;
  /// False when `client` still holds per_client workers after max_queue_wait.
  bool acquireClient(const std::string& client);
  void releaseClient(const std::string& client);
  /// True while a connection of `client` waits in acquireClient.
  bool clientWaiting(const std::string& client);

  std::string name_;
  ServerLimits limits_;
  ErrorWriter error_;
  Gate gate_;
  std::shared_ptr<BusyLane> busy_;
  std::atomic<Pool*> pool_{nullptr};  ///< owned by httplib's listen loop while it runs
  struct ClientSlots {
    std::size_t held = 0;     ///< workers it holds
    std::size_t waiting = 0;  ///< its connections waiting for one of those
  };
  std::mutex clients_mutex_;
  std::condition_variable clients_cv_;
  std::map<std::string, ClientSlots> clients_;  ///< by address
};

}  // namespace ultracore::engine
