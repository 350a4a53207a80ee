#include "engine/http/listener_thread.h"

#include <httplib.h>

#include <chrono>

namespace ultracore::engine {

void ListenerThread::start(httplib::Server& server) {
  server_ = &server;
  ended_ = false;
  thread_ = std::thread([this] {
    server_->listen_after_bind();
    {
      std::lock_guard lock(mutex_);
      ended_ = true;
    }
    ended_cv_.notify_all();
  });
}

void ListenerThread::stop() {
  if (!thread_.joinable()) return;
  // How often to look again whether the accept loop has begun; httplib does not signal it.
  constexpr auto kRecheck = std::chrono::milliseconds(5);
  std::unique_lock lock(mutex_);
  while (!ended_) {
    // Stop exactly once, when it takes effect: a second stop() while the loop winds down
    // (in-flight requests) would trip httplib's assert on the already closed socket.
    if (server_->is_running()) {
      server_->stop();
      break;
    }
    ended_cv_.wait_for(lock, kRecheck, [this] { return ended_; });
  }
  lock.unlock();
  thread_.join();
}

}  // namespace ultracore::engine
