#pragma once
/// @file
/// PgPool: a small pool of PostgreSQL connections for the API's handlers. Connections are
/// opened lazily and dropped when a lease reports them broken.

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <pqxx/connection>

namespace ultracore::engine {

/// No connection became free (or could be opened) in time.
class PoolUnavailable : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// Thread-safe. A Lease is used by one thread at a time.
class PgPool {
 public:
  /// `role`: when not empty, every connection runs `SET ROLE role` once opened (the API's
  /// least-privilege role when it has no login of its own).
  PgPool(std::string url, std::size_t size, std::string role = "");

  class Lease {
   public:
    Lease(PgPool* pool, std::unique_ptr<pqxx::connection> connection)
        : pool_(pool), connection_(std::move(connection)) {}
    Lease(Lease&& other) noexcept
        : pool_(std::exchange(other.pool_, nullptr)), connection_(std::move(other.connection_)) {}
    Lease& operator=(Lease&&) = delete;
    ~Lease();
    pqxx::connection& operator*() { return *connection_; }
    pqxx::connection* operator->() { return connection_.get(); }
    /// The connection is in an unknown state (lost, aborted mid-protocol): close it.
    void discard() { connection_.reset(); }
    bool valid() const { return connection_ != nullptr; }

   private:
    PgPool* pool_;
    std::unique_ptr<pqxx::connection> connection_;
  };

  /// Waits up to `timeout` for a free slot; opens a connection if the slot has none.
  /// Throws PoolUnavailable.
  Lease acquire(std::chrono::milliseconds timeout);

 private:
  void release(std::unique_ptr<pqxx::connection> connection);

  std::string url_;
  std::size_t size_;
  std::string role_;
  std::mutex mutex_;
  std::condition_variable freed_;
  std::size_t leased_ = 0;
  std::vector<std::unique_ptr<pqxx::connection>> idle_;
};

}  // namespace ultracore::engine
