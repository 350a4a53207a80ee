#include "engine/postgres/offset_watch.h"

#include <algorithm>
#include <functional>

#include <pqxx/connection>
#include <pqxx/notification>
#include <spdlog/spdlog.h>

#include "engine/postgres/offset_store.h"

namespace ultracore::engine {
namespace {

class Receiver : public pqxx::notification_receiver {
 public:
  Receiver(pqxx::connection_base& connection, std::function<void()> on_notify)
      : pqxx::notification_receiver(connection, OffsetStore::kNotifyChannel),
        on_notify_(std::move(on_notify)) {}
  void operator()(const std::string&, int) override { on_notify_(); }

 private:
  std::function<void()> on_notify_;
};

}  // namespace

OffsetWatch::OffsetWatch(std::string postgres_url) : url_(std::move(postgres_url)) {}

OffsetWatch::~OffsetWatch() { stop(); }

void OffsetWatch::start() {
  if (!thread_.joinable()) thread_ = std::thread([this] { run(); });
}

void OffsetWatch::stop() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
  bump();
}

std::uint64_t OffsetWatch::generation() const {
  std::lock_guard lock(mutex_);
  return generation_;
}

void OffsetWatch::waitForChange(std::uint64_t seen, std::chrono::milliseconds timeout) const {
  std::unique_lock lock(mutex_);
  changed_.wait_for(lock, timeout, [&] { return generation_ != seen; });
}

void OffsetWatch::bump() {
  {
    std::lock_guard lock(mutex_);
    ++generation_;
  }
  changed_.notify_all();
}

void OffsetWatch::run() {
  auto retry = std::chrono::milliseconds(100);
  while (!stop_) {
    try {
      pqxx::connection connection(url_);
      Receiver receiver(connection, [this] { bump(); });
      connection.get_notifs();  // sends the LISTEN
      retry = std::chrono::milliseconds(100);
      // Whatever committed before the LISTEN took effect was missed: wake everyone once.
      bump();
      listening_ = true;
      while (!stop_) connection.await_notification(0, 100000);  // 100 ms: notice stop_
    } catch (const std::exception& e) {
      if (listening_) spdlog::warn("offset watch: {}; waiters poll until it reconnects", e.what());
    }
    listening_ = false;
    const auto until = std::chrono::steady_clock::now() + retry;
    while (!stop_ && std::chrono::steady_clock::now() < until) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    retry = std::min(retry * 2, std::chrono::milliseconds(5000));
  }
}

}  // namespace ultracore::engine
