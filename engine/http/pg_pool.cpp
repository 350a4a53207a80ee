#include "engine/http/pg_pool.h"

#include <pqxx/nontransaction>

namespace ultracore::engine {

PgPool::PgPool(std::string url, std::size_t size, std::string role)
    : url_(std::move(url)), size_(size), role_(std::move(role)) {}

PgPool::Lease::~Lease() {
  if (pool_ != nullptr) pool_->release(std::move(connection_));
}

PgPool::Lease PgPool::acquire(std::chrono::milliseconds timeout) {
  std::unique_ptr<pqxx::connection> connection;
  {
    std::unique_lock lock(mutex_);
    if (!freed_.wait_for(lock, timeout, [&] { return leased_ < size_; })) {
      throw PoolUnavailable("no PostgreSQL connection free within " +
                            std::to_string(timeout.count()) + " ms");
    }
    ++leased_;
    if (!idle_.empty()) {
      connection = std::move(idle_.back());
      idle_.pop_back();
    }
  }
  if (connection == nullptr || !connection->is_open()) {
    try {
      connection = std::make_unique<pqxx::connection>(url_);
      if (!role_.empty()) {
        pqxx::nontransaction(*connection, "ultracore-api-role")
            .exec0("SET ROLE " + connection->quote_name(role_));
      }
    } catch (const std::exception& e) {
      release(nullptr);
      throw PoolUnavailable(std::string("cannot connect to PostgreSQL: ") + e.what());
    }
  }
  return Lease(this, std::move(connection));
}

void PgPool::release(std::unique_ptr<pqxx::connection> connection) {
  {
    std::lock_guard lock(mutex_);
    --leased_;
    if (connection != nullptr && connection->is_open()) idle_.push_back(std::move(connection));
  }
  freed_.notify_one();
}

}  // namespace ultracore::engine
