// OffsetWatch against a real PostgreSQL: the offsets compare-and-set notifies listeners only
// when its transaction commits.

#include <chrono>
#include <thread>

#include <gtest/gtest.h>
#include <pqxx/connection>
#include <pqxx/transaction>

#include "engine/postgres/migrations.h"
#include "engine/postgres/offset_store.h"
#include "engine/postgres/offset_watch.h"
#include "support/test_support.h"

namespace ultracore::testing {
namespace {

using engine::OffsetAdvance;
using engine::OffsetStore;
using engine::OffsetWatch;
using engine::TopicPartition;
using namespace std::chrono_literals;

/// Waits (liveness only, not a latency check) until the watch's generation moves from `seen`.
bool movedWithin(const OffsetWatch& watch, std::uint64_t seen, std::chrono::seconds limit) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (watch.generation() == seen && std::chrono::steady_clock::now() < deadline) {
    watch.waitForChange(seen, 100ms);
  }
  return watch.generation() != seen;
}

TEST(OffsetWatch, ACommittedOffsetAdvanceWakesTheWatchAndARolledBackOneDoesNot) {
  TestDatabase db;
  pqxx::connection connection(db.url());
  engine::applyEngineMigrations(connection);
  OffsetStore store("watched");
  const TopicPartition tp{"t", 0};
  store.loadOrInit(connection, {tp});

  OffsetWatch watch(db.url());
  watch.start();
  const auto deadline = std::chrono::steady_clock::now() + 30s;
  while (!watch.listening() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(10ms);
  }
  ASSERT_TRUE(watch.listening());

  // Rolled back: PostgreSQL drops the NOTIFY with the transaction.
  const std::uint64_t before_rollback = watch.generation();
  {
    pqxx::work txn(connection);
    ASSERT_TRUE(store.compareAndAdvance(txn, {OffsetAdvance{tp, OffsetStore::kFromBeginning, 5}}));
    txn.abort();
  }
  EXPECT_FALSE(movedWithin(watch, before_rollback, 2s));

  // A compare-and-set from the wrong offset moves nothing (and is rolled back by its caller).
  {
    pqxx::work txn(connection);
    EXPECT_FALSE(store.compareAndAdvance(txn, {OffsetAdvance{tp, 3, 5}}));
  }

  const std::uint64_t before_commit = watch.generation();
  {
    pqxx::work txn(connection);
    ASSERT_TRUE(store.compareAndAdvance(txn, {OffsetAdvance{tp, OffsetStore::kFromBeginning, 5}}));
    txn.commit();
  }
  EXPECT_TRUE(movedWithin(watch, before_commit, 30s));
  watch.stop();
}

}  // namespace
}  // namespace ultracore::testing
