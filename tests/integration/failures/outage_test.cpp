// Outages end without loss: PostgreSQL restarted (pg_ctl restart -m fast) and the broker down
// for 10 s in the middle of a stream. The engine waits (transient: never dead-lettered), says
// so, and resumes by itself; the ledger (not idempotent) shows any loss or double.

#include <atomic>
#include <csignal>
#include <fstream>
#include <iterator>
#include <map>
#include <random>
#include <thread>

#include <gtest/gtest.h>

#include "engine_harness.h"
#include "private_postgres.h"

namespace ultracore::testing {
namespace {

using namespace std::chrono_literals;

/// Ledger events in waves; remembers what the ledger must hold afterwards.
class LedgerStream {
 public:
  std::vector<Record> wave(int events) {
    std::vector<Record> records;
    for (int i = 0; i < events; ++i) {
      const std::string aggregate = "L-" + std::to_string(random_() % 50);
      const std::string id = "w" + std::to_string(waves_) + "-" + std::to_string(i);
      const int amount = static_cast<int>(random_() % 100);
      records.push_back({"ledger.events", aggregate, envelope(id, "Entry", aggregate, {{"amount", amount}})});
      auto& [ids, total] = expected_[aggregate];
      ids += (ids.empty() ? "" : ",") + id;
      total += amount;
    }
    ++waves_;
    produced_ += events;
    return records;
  }
  std::size_t produced() const { return produced_; }
  /// The whole expected ledger as the query below prints it.
  std::string expected() const {
    std::string out;
    for (const auto& [aggregate, row] : expected_) {
      out += (out.empty() ? "" : "|") + aggregate + " " + row.first + " " + std::to_string(row.second);
    }
    return out;
  }
  static std::string actual(const std::string& url) {
    return queryValue(url, "SELECT string_agg(aggregate_id || ' ' || event_ids || ' ' || total, '|' "
                           "ORDER BY aggregate_id) FROM ledger.ledger");
  }

 private:
  std::mt19937 random_{5};
  int waves_ = 0;
  std::size_t produced_ = 0;
  std::map<std::string, std::pair<std::string, long>> expected_;
};

std::string committed(const std::string& url) {
  try {
    return queryValue(url, "SELECT coalesce(sum(next_offset), 0) FROM ultracore_offsets WHERE next_offset >= 0");
  } catch (const std::exception&) {
    return "0";
  }
}

const std::string kLedger =
    "  - { name: ledger, plugin: ledger, topics: [ledger.events], on_error: dead_letter,\n"
    "      batch: { max_events: 50, max_wait_ms: 10 } }\n";

TEST(Outage, PostgresRestartedMidStreamNothingLostDoubledOrDeadLettered) {
  PrivatePostgres pg;
  DevBroker broker(DevBroker::Options{1, 4, {"ledger.events"}});
  TempDir dir;
  auto engine = startEngine(writeManifest(dir, broker.bootstrap(), pg.url(), kLedger), dir.path() / "engine.log");
  LedgerStream stream;
  for (int w = 0; w < 3; ++w) produce(broker.bootstrap(), stream.wave(100));
  ASSERT_TRUE(waitUntil([&] { return committed(pg.url()) != "0"; }, 60s)) << engine->log();

  // Restart while events keep coming.
  std::thread restarter([&] { pg.restart(); });
  for (int w = 0; w < 10; ++w) {
    produce(broker.bootstrap(), stream.wave(100));
    std::this_thread::sleep_for(200ms);
  }
  restarter.join();
  for (int w = 0; w < 3; ++w) produce(broker.bootstrap(), stream.wave(100));

  ASSERT_TRUE(waitUntil([&] { return committed(pg.url()) == std::to_string(stream.produced()); }, 120s))
      << engine->log();
  EXPECT_EQ(LedgerStream::actual(pg.url()), stream.expected());
  EXPECT_EQ(queryValue(pg.url(), "SELECT count(*) FROM processed_events"), std::to_string(stream.produced()));
  EXPECT_EQ(queryValue(pg.url(), "SELECT count(*) FROM ultracore_dead_letters"), "0");
  EXPECT_EQ(queryValue(pg.url(), "SELECT state FROM ultracore_projection_status"), "running");
  // No assertion that the engine logged "waiting": libpqxx 6 reconnects by itself when the next
  // transaction starts, so a restart that falls between two batches raises no error at all;
  // only one that hits an open transaction does. Either way the checks above must hold.
  engine->signal(SIGTERM);
  EXPECT_EQ(engine->wait(30s), 0) << engine->log();
}

TEST(Outage, BrokerDownForTenSecondsMidStreamNothingLostOrDoubled) {
  DevBroker broker(DevBroker::Options{1, 4, {"ledger.events"}});
  TestDatabase db;
  TempDir dir;
  auto engine = startEngine(writeManifest(dir, broker.bootstrap(), db.url(), kLedger), dir.path() / "engine.log");
  LedgerStream stream;
  for (int w = 0; w < 3; ++w) produce(broker.bootstrap(), stream.wave(100));
  ASSERT_TRUE(waitUntil([&] { return committed(db.url()) == std::to_string(stream.produced()); }, 60s))
      << engine->log();

  std::atomic<bool> producing{true};
  std::thread producer([&] {  // delivery waits out the outage (message.timeout.ms 30 s)
    for (int w = 0; w < 12; ++w) {
      produce(broker.bootstrap(), stream.wave(100));
      std::this_thread::sleep_for(300ms);
    }
    producing = false;
  });
  std::this_thread::sleep_for(1s);
  broker.control("/brokers/1/down");
  bool saw_waiting = false;
  std::string waiting_detail;
  const auto up_at = std::chrono::steady_clock::now() + 10s;
  while (std::chrono::steady_clock::now() < up_at) {
    if (!saw_waiting) {
      const auto row = queryValue(db.url(), "SELECT state || ': ' || detail FROM ultracore_projection_status "
                                            "WHERE projection = 'ledger'");
      if (row.rfind("waiting", 0) == 0) {
        saw_waiting = true;
        waiting_detail = row;
      }
    }
    std::this_thread::sleep_for(100ms);
  }
  broker.control("/brokers/1/up");
  producer.join();

  ASSERT_TRUE(waitUntil([&] { return committed(db.url()) == std::to_string(stream.produced()); }, 120s))
      << engine->log();
  EXPECT_TRUE(saw_waiting) << "ultracore_projection_status never said 'waiting' during the outage\n"
                           << engine->log();
  std::printf("status during the outage: %s\n", waiting_detail.c_str());
  EXPECT_EQ(LedgerStream::actual(db.url()), stream.expected());
  EXPECT_EQ(queryValue(db.url(), "SELECT count(*) FROM processed_events"), std::to_string(stream.produced()));
  EXPECT_EQ(queryValue(db.url(), "SELECT count(*) FROM ultracore_dead_letters"), "0");
  EXPECT_TRUE(waitUntil([&] { return queryValue(db.url(), "SELECT state FROM ultracore_projection_status") == "running"; }, 30s));
  engine->signal(SIGTERM);
  EXPECT_EQ(engine->wait(30s), 0) << engine->log();
}

}  // namespace
}  // namespace ultracore::testing
