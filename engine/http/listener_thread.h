#pragma once

/// ListenerThread: runs an httplib::Server's accept loop (listen_after_bind) on a thread of its
/// own, and stops it also when the stop comes before that thread has begun listening.
///
/// cpp-httplib 0.11's Server::stop() does nothing until listen_after_bind() has set the server
/// running (yhirose/cpp-httplib#1645; wait_until_ready() came in 0.12): an engine that got
/// SIGTERM right after start-up left its accept loop running and waited in join() for ever.

#include <condition_variable>
#include <mutex>
#include <thread>

namespace httplib {
class Server;
}  // namespace httplib

namespace ultracore::engine {

/// start() and stop() are called from the owner's thread; stop() may be called again.
class ListenerThread {
 public:
  ListenerThread() = default;
  ListenerThread(const ListenerThread&) = delete;
  ListenerThread& operator=(const ListenerThread&) = delete;
  ~ListenerThread() { stop(); }

  /// SERVER is bound already (bind_to_port, bind_to_any_port) and outlives stop().
  void start(httplib::Server& server);
  /// Returns once listen_after_bind() has returned and the thread is joined.
  void stop();

 private:
  httplib::Server* server_ = nullptr;
  std::thread thread_;
  std::mutex mutex_;
  std::condition_variable ended_cv_;
  bool ended_ = false;
};

}  // namespace ultracore::engine
