// Two engines in one consumer group: they split the partitions, a killed one hands its
// partitions over with nothing lost or doubled, and a paused one (a zombie after the
// rebalance) cannot commit over the new owner (DESIGN.md invariant 3).

#include <csignal>
#include <map>
#include <thread>

#include <gtest/gtest.h>
#include <pqxx/pqxx>

#include "engine_harness.h"

namespace ultracore::testing {
namespace {

using namespace std::chrono_literals;

/// Events for `aggregates` ledgers, `per_aggregate` each, ids prefixed by `tag`; the expected
/// ledger rows are accumulated into `expected` (aggregate -> "ids total").
std::vector<Record> batchOf(const std::string& tag, int aggregates, int per_aggregate,
                            std::map<std::string, std::pair<std::string, long>>& expected) {
  std::vector<Record> records;
  for (int n = 0; n < per_aggregate; ++n) {
    for (int a = 0; a < aggregates; ++a) {
      const std::string aggregate = "G-" + std::to_string(a);
      const std::string id = tag + "-" + std::to_string(a) + "-" + std::to_string(n);
      records.push_back({"ledger.events", aggregate, envelope(id, "Entry", aggregate, {{"amount", a + n}})});
      auto& [ids, total] = expected[aggregate];
      ids += (ids.empty() ? "" : ",") + id;
      total += a + n;
    }
  }
  return records;
}

void expectLedger(const std::string& url,
                  const std::map<std::string, std::pair<std::string, long>>& expected) {
  for (const auto& [aggregate, row] : expected) {
    EXPECT_EQ(queryValue(url, "SELECT event_ids || ' ' || total FROM ledger.ledger WHERE aggregate_id = '" +
                                  aggregate + "'"),
              row.first + " " + std::to_string(row.second))
        << aggregate;
  }
}

std::string committed(const std::string& url) {
  return queryValue(url, "SELECT coalesce(sum(next_offset), 0) FROM ultracore_offsets WHERE next_offset >= 0");
}

int assignedPartitions(const Subprocess& engine) {
  // The last "assigned N partition(s)" line of the engine's log.
  const std::string log = engine.log();
  const auto at = log.rfind("assigned ");
  if (at == std::string::npos) return -1;
  return std::stoi(log.substr(at + 9));
}

TEST(EngineGroup, TwoEnginesSplitPartitionsAndAKilledOneHandsOver) {
  DevBroker broker(DevBroker::Options{1, 6, {"ledger.events"}});
  TestDatabase db;
  TempDir dir;
  auto manifest = writeManifest(dir, broker.bootstrap(), db.url(),
                                "  - { name: ledger, plugin: ledger, topics: [ledger.events] }\n");
  auto first = startEngine(manifest, dir.path() / "first.log");
  auto second = startEngine(manifest, dir.path() / "second.log");
  ASSERT_TRUE(waitUntil([&] { return assignedPartitions(*first) == 3 && assignedPartitions(*second) == 3; }, 60s))
      << first->log() << second->log();

  std::map<std::string, std::pair<std::string, long>> expected;
  auto records = batchOf("a", 60, 5, expected);
  produce(broker.bootstrap(), records);
  ASSERT_TRUE(waitUntil([&] { return committed(db.url()) == std::to_string(records.size()); }, 60s));

  first->kill();
  auto more = batchOf("b", 60, 5, expected);
  produce(broker.bootstrap(), more);
  ASSERT_TRUE(waitUntil([&] { return committed(db.url()) == std::to_string(records.size() + more.size()); }, 90s))
      << second->log();
  EXPECT_EQ(assignedPartitions(*second), 6);
  expectLedger(db.url(), expected);
  EXPECT_EQ(queryValue(db.url(), "SELECT count(*) FROM processed_events"),
            std::to_string(records.size() + more.size()));
  second->signal(SIGTERM);
  EXPECT_EQ(second->wait(30s), 0) << second->log();
}

TEST(EngineGroup, AZombieAfterARebalanceCannotCommitOverTheNewOwner) {
  DevBroker broker(DevBroker::Options{1, 2, {"ledger.events"}});
  TestDatabase db;
  TempDir dir;
  // The zombie holds a batch open for a long time, so it is stopped with one in flight.
  auto zombie = startEngine(
      writeManifest(dir, broker.bootstrap(), db.url(),
                    "  - name: ledger\n    plugin: ledger\n    topics: [ledger.events]\n"
                    "    batch: { max_events: 100000, max_wait_ms: 8000, flush_when_idle: false }\n",
                    "zombie.yaml"),
      dir.path() / "zombie.log");
  ASSERT_TRUE(waitUntil([&] { return assignedPartitions(*zombie) == 2; }, 60s)) << zombie->log();

  std::map<std::string, std::pair<std::string, long>> expected;
  auto records = batchOf("z", 20, 3, expected);
  produce(broker.bootstrap(), records);
  std::this_thread::sleep_for(1s);  // the zombie has fetched them into its open batch
  zombie->signal(SIGSTOP);

  auto owner = startEngine(writeManifest(dir, broker.bootstrap(), db.url(),
                                         "  - { name: ledger, plugin: ledger, topics: [ledger.events] }\n",
                                         "owner.yaml"),
                           dir.path() / "owner.log");
  ASSERT_TRUE(waitUntil([&] { return committed(db.url()) == std::to_string(records.size()); }, 90s))
      << owner->log();

  zombie->signal(SIGCONT);  // its batch deadline has passed: it tries to commit
  ASSERT_TRUE(waitUntil([&] { return zombie->log().find("moved under this batch") != std::string::npos; }, 60s))
      << zombie->log();
  auto more = batchOf("y", 20, 2, expected);
  produce(broker.bootstrap(), more);
  ASSERT_TRUE(waitUntil([&] { return committed(db.url()) == std::to_string(records.size() + more.size()); }, 90s));
  zombie->signal(SIGTERM);
  owner->signal(SIGTERM);
  EXPECT_EQ(zombie->wait(30s), 0) << zombie->log();
  EXPECT_EQ(owner->wait(30s), 0) << owner->log();
  expectLedger(db.url(), expected);
  EXPECT_EQ(queryValue(db.url(), "SELECT count(*) FROM processed_events"),
            std::to_string(records.size() + more.size()));
}

// Issue 19, item 1: with cooperative-sticky, a member that loses some partitions flushes its
// open batch (records of the partitions it keeps too) in the revoke callback. When that commit
// fails (here: lock_timeout on ultracore_offsets rows a test transaction holds), the batch is
// discarded; the partitions that stay must be re-read from the stored offsets, or their next
// batch commits from the stored offset past records that were never applied. Every partition's
// processed_events offsets must run 0..n-1.
TEST(EngineGroup, ACooperativeRevokeWhoseFlushFailsLeavesNoHoleInThePartitionsThatStay) {
  DevBroker broker(DevBroker::Options{1, 4, {"ledger.events"}});
  TestDatabase db;
  TempDir dir;
  queryValue(db.url(), "ALTER DATABASE \"" + db.name() + "\" SET lock_timeout = '300ms'");
  // Batches stay open until a revoke or a stop flushes them.
  const auto manifest = writeManifest(
      dir, broker.bootstrap(), db.url(),
      "  - name: ledger\n    plugin: ledger\n    topics: [ledger.events]\n"
      "    batch: { max_events: 100000, max_wait_ms: 60000, flush_when_idle: false }\n"
      "    kafka: { partition.assignment.strategy: cooperative-sticky }\n");
  auto first = startEngine(manifest, dir.path() / "first.log");
  ASSERT_TRUE(waitUntil([&] { return assignedPartitions(*first) == 4; }, 60s)) << first->log();
  ASSERT_TRUE(waitUntil([&] { return queryValue(db.url(), "SELECT count(*) FROM ultracore_offsets") == "4"; }, 30s));

  std::map<std::string, std::pair<std::string, long>> expected;
  auto records = batchOf("a", 40, 5, expected);
  produce(broker.bootstrap(), records);
  std::this_thread::sleep_for(2s);  // fetched into the first engine's open batch

  // The transient fault at the revoke flush: the offset rows are locked until the revoke is over.
  pqxx::connection locker(db.url());
  auto lock = std::make_unique<pqxx::work>(locker);
  lock->exec("SET LOCAL lock_timeout = 0");
  lock->exec("SELECT * FROM ultracore_offsets FOR UPDATE");
  auto second = startEngine(manifest, dir.path() / "second.log");
  ASSERT_TRUE(waitUntil([&] { return first->log().find("revoked") != std::string::npos; }, 60s))
      << first->log() << second->log();
  lock->abort();
  lock.reset();
  // The fault did hit the revoke flush (else this test shows nothing).
  const std::string log = first->log();
  ASSERT_LT(log.find("lock timeout"), log.find("revoked")) << log;
  ASSERT_TRUE(waitUntil([&] { return assignedPartitions(*second) > 0; }, 60s)) << second->log();

  auto more = batchOf("b", 40, 5, expected);
  produce(broker.bootstrap(), more);
  std::this_thread::sleep_for(2s);  // fetched; the stops flush them
  first->signal(SIGTERM);
  EXPECT_EQ(first->wait(60s), 0) << first->log();
  second->signal(SIGTERM);
  EXPECT_EQ(second->wait(60s), 0) << second->log();

  // Whatever the stops left, a third engine finishes; then the log must be applied without a hole.
  auto third = startEngine(writeManifest(dir, broker.bootstrap(), db.url(),
                                         "  - { name: ledger, plugin: ledger, topics: [ledger.events] }\n",
                                         "third.yaml"),
                           dir.path() / "third.log");
  const std::size_t total = records.size() + more.size();
  ASSERT_TRUE(waitUntil([&] { return committed(db.url()) == std::to_string(total); }, 90s)) << third->log();
  EXPECT_EQ(queryValue(db.url(),
                       "SELECT coalesce(string_agg(partition || ':' || n || '/' || top, ','), 'none') FROM "
                       "(SELECT partition, count(*) AS n, max(\"offset\") + 1 AS top FROM processed_events "
                       "GROUP BY partition HAVING count(*) <> max(\"offset\") + 1 OR min(\"offset\") <> 0) AS holes"),
            "none")
      << first->log();
  EXPECT_EQ(queryValue(db.url(), "SELECT count(*) FROM processed_events"), std::to_string(total));
  expectLedger(db.url(), expected);
  third->signal(SIGTERM);
  EXPECT_EQ(third->wait(30s), 0) << third->log();
}

}  // namespace
}  // namespace ultracore::testing
