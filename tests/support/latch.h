#pragma once
/// @file
/// Latch: threads that enter() block until release(); the test waits until n have entered.
/// For holding server handlers or gates in place while a test arranges what comes next.

#include <chrono>
#include <condition_variable>
#include <mutex>

namespace ultracore::testing {

class Latch {
 public:
  /// Counts this thread in, then blocks until release().
  void enter() {
    std::unique_lock lock(mutex_);
    ++entered_;
    cv_.notify_all();
    cv_.wait(lock, [&] { return released_; });
  }
  /// True once `n` threads have entered; false after `timeout`.
  bool waitEntered(int n, std::chrono::seconds timeout = std::chrono::seconds(30)) {
    std::unique_lock lock(mutex_);
    return cv_.wait_for(lock, timeout, [&] { return entered_ >= n; });
  }
  /// Lets every thread that entered, or will, go on.
  void release() {
    std::lock_guard lock(mutex_);
    released_ = true;
    cv_.notify_all();
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  int entered_ = 0;
  bool released_ = false;
};

}  // namespace ultracore::testing
