// Issue 19, item 5: a fault PostgreSQL classes as transient but that the batch itself causes
// (statement_timeout, 57014) must not be retried at the same size forever. The ledger sleeps
// per event (event_data.sleep_ms) under statement_timeout = 50ms: the whole batch always times
// out, its parts do not, and one event that sleeps longer than the timeout alone follows
// on_error (dead_letter) with the timeout as its reason. Everything else is applied once.

#include <csignal>

#include <gtest/gtest.h>

#include "engine_harness.h"

namespace ultracore::testing {
namespace {

using namespace std::chrono_literals;

TEST(TransientFaults, ABatchThatAlwaysHitsStatementTimeoutIsSplitAndOnlyTheSlowEventDeadLettered) {
  DevBroker broker(DevBroker::Options{1, 1, {"ledger.events"}});
  TestDatabase db;
  TempDir dir;
  const auto manifest = writeManifest(
      dir, broker.bootstrap(), db.url(),
      "  - { name: ledger, plugin: ledger, topics: [ledger.events], on_error: dead_letter,\n"
      "      batch: { max_events: 100, max_wait_ms: 1000, flush_when_idle: false } }\n");
  // First start without the timeout: migrations and the schema are in place after it.
  auto engine = startEngine(manifest, dir.path() / "engine.log");
  ASSERT_TRUE(waitForEngineRunning(*engine)) << engine->log();
  engine->signal(SIGTERM);
  ASSERT_EQ(engine->wait(30s), 0) << engine->log();
  queryValue(db.url(), "ALTER DATABASE \"" + db.name() + "\" SET statement_timeout = '50ms'");

  std::vector<Record> records;
  std::string expected_ids;
  for (int i = 0; i < 40; ++i) {
    const std::string id = "e" + std::to_string(i);
    if (i == 20) {  // alone it still sleeps past the timeout
      records.push_back({"ledger.events", "S", envelope("slow", "Entry", "S", {{"sleep_ms", 300}}), 0});
    }
    records.push_back({"ledger.events", "A", envelope(id, "Entry", "A", {{"amount", 1}, {"sleep_ms", 5}}), 0});
    expected_ids += (expected_ids.empty() ? "" : ",") + id;
  }
  produce(broker.bootstrap(), records);
  engine = startEngine(manifest, dir.path() / "engine2.log");
  const auto q = [&](const std::string& sql) { return queryValue(db.url(), sql); };
  const bool settled = waitUntil([&] { return q("SELECT next_offset FROM ultracore_offsets") == "41"; }, 90s);
  EXPECT_TRUE(settled) << q("SELECT state || ': ' || detail FROM ultracore_projection_status") << "\n"
                       << engine->log();
  EXPECT_EQ(q("SELECT event_ids || ' ' || total FROM ledger.ledger WHERE aggregate_id = 'A'"),
            expected_ids + " 40");
  EXPECT_EQ(q("SELECT count(*) FROM ledger.ledger WHERE aggregate_id = 'S'"), "0");
  EXPECT_EQ(q("SELECT count(*) FROM processed_events"), "40");
  const std::string dead = q("SELECT event_id || ' ' || \"offset\" || ' ' || status || ' ' || error "
                             "FROM ultracore_dead_letters");
  EXPECT_EQ(dead.rfind("slow 20 open SQLSTATE 57014", 0), 0u) << dead;
  EXPECT_NE(dead.find("statement timeout"), std::string::npos) << dead;
  EXPECT_EQ(q("SELECT state FROM ultracore_projection_status WHERE projection = 'ledger'"), "running");
  engine->signal(SIGTERM);
  EXPECT_EQ(engine->wait(30s), 0) << engine->log();
}

}  // namespace
}  // namespace ultracore::testing
