#pragma once
/// @file
/// OffsetWatch: wakes threads that wait for ultracore_offsets to move.
///
/// Every transaction that advances a projection's offsets also sends
/// `NOTIFY ultracore_offsets` (OffsetStore::kNotifyChannel); PostgreSQL delivers it after the
/// commit, to every listening session. OffsetWatch LISTENs on its own connection, on its own
/// thread, and bumps a generation counter for each delivery. A waiter reads generation(),
/// checks the offsets, and only then calls waitForChange(generation): a commit between the
/// two cannot be missed. The watch is only a wake-up: waiters still read ultracore_offsets,
/// and while the listening connection is down waitForChange simply times out (polling).
///
/// Created and started on the main thread; generation() and waitForChange() from any thread.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>

namespace ultracore::engine {

class OffsetWatch {
 public:
  explicit OffsetWatch(std::string postgres_url);
  ~OffsetWatch();
  OffsetWatch(const OffsetWatch&) = delete;
  OffsetWatch& operator=(const OffsetWatch&) = delete;

  void start();
  /// Ends the listening thread; idempotent. Waiters are woken.
  void stop();

  std::uint64_t generation() const;
  /// Returns when generation() differs from `seen` or `timeout` has passed.
  void waitForChange(std::uint64_t seen, std::chrono::milliseconds timeout) const;
  /// True while the listening connection is up (for tests and status).
  bool listening() const { return listening_.load(); }

 private:
  void run();
  void bump();

  std::string url_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> listening_{false};
  mutable std::mutex mutex_;
  mutable std::condition_variable changed_;
  std::uint64_t generation_ = 0;
};

}  // namespace ultracore::engine
