// Two engines in one consumer group: they split the partitions, a killed one hands its
// partitions over with nothing lost or doubled, and a paused one (a zombie after the
// rebalance) cannot commit over the new owner (DESIGN.md invariant 3).

#include <csignal>
#include <map>
#include <thread>

#include <gtest/gtest.h>

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

}  // namespace
}  // namespace ultracore::testing
