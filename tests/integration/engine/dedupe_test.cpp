// processed_events as the idempotency record: an event_id reused by another event is a
// conflict handled by on_error (issue 15.4), a true re-send is skipped even when its stamps
// were renewed, and dedupe.retention prunes old rows while a re-send inside the window is
// still skipped (issue 18).

#include <csignal>

#include <gtest/gtest.h>

#include "engine_harness.h"

namespace ultracore::testing {
namespace {

using namespace std::chrono_literals;

constexpr const char* kLedgerTopic = "ledger.events";

class DedupeTest : public ::testing::Test {
 protected:
  DedupeTest() : broker_(DevBroker::Options{1, 1, {kLedgerTopic}}) {}

  std::string value(const std::string& sql) { return queryValue(db_.url(), sql); }

  DevBroker broker_;
  TestDatabase db_;
  TempDir dir_;
};

TEST_F(DedupeTest, AnEventIdReusedWithOtherContentFollowsOnErrorAndAReSendIsSkipped) {
  auto manifest = writeManifest(
      dir_, broker_.bootstrap(), db_.url(),
      "  - { name: ledger, plugin: ledger, topics: [ledger.events], on_error: dead_letter }\n");
  auto engine = startEngine(manifest, dir_.path() / "engine.log");
  const std::string first = envelope("id-1", "Entry", "L-1", {{"amount", 5}});
  // The same event re-sent by a retried command: new occurred_at and user, same content.
  auto resent = nlohmann::json::parse(first);
  resent["occurred_at"] = "2026-11-27T08:30:00.000Z";
  resent["user_id"] = "someone-else";
  produce(broker_.bootstrap(),
          {{kLedgerTopic, "L-1", first},                                              // @0
           {kLedgerTopic, "L-1", resent.dump()},                                      // @1
           {kLedgerTopic, "L-1", envelope("id-1", "Entry", "L-1", {{"amount", 7}})},  // @2
           {kLedgerTopic, "L-1", envelope("id-2", "Entry", "L-1", {{"amount", 1}})}});
  ASSERT_TRUE(waitUntil([&] { return value("SELECT max(next_offset) FROM ultracore_offsets") == "4"; },
                        60s))
      << engine->log();
  // id-1 applied once (the re-send skipped), id-2 applied, the reuse dead-lettered.
  EXPECT_EQ(value("SELECT event_ids || ' ' || total FROM ledger.ledger"), "id-1,id-2 6");
  EXPECT_EQ(value("SELECT count(*) FROM processed_events"), "2");
  EXPECT_EQ(value("SELECT count(*) FROM processed_events WHERE fingerprint IS NULL"), "0");
  EXPECT_EQ(value("SELECT count(*) || ' ' || min(\"offset\") FROM ultracore_dead_letters"), "1 2");
  const std::string error = value("SELECT error FROM ultracore_dead_letters");
  EXPECT_NE(error.find("ledger.events[0]@0"), std::string::npos) << error;
  EXPECT_NE(error.find("ledger.events[0]@2"), std::string::npos) << error;
  EXPECT_NE(error.find("reused"), std::string::npos) << error;
  engine->signal(SIGTERM);
  EXPECT_EQ(engine->wait(20s), 0) << engine->log();
}

TEST_F(DedupeTest, FailPolicyStopsAtAReusedEventId) {
  auto manifest = writeManifest(dir_, broker_.bootstrap(), db_.url(),
                                "  - { name: ledger, plugin: ledger, topics: [ledger.events] }\n");
  auto engine = startEngine(manifest, dir_.path() / "engine.log");
  produce(broker_.bootstrap(),
          {{kLedgerTopic, "L-1", envelope("id-1", "Entry", "L-1", {{"amount", 5}})},
           {kLedgerTopic, "L-1", envelope("id-1", "Entry", "L-2", {{"amount", 5}})}});
  ASSERT_TRUE(waitUntil(
      [&] { return value("SELECT state FROM ultracore_projection_status WHERE projection = 'ledger'") ==
                   "failed"; },
      60s))
      << engine->log();
  EXPECT_EQ(value("SELECT total FROM ledger.ledger"), "5");
  EXPECT_EQ(value("SELECT max(next_offset) FROM ultracore_offsets"), "1");
  const std::string detail =
      value("SELECT detail FROM ultracore_projection_status WHERE projection = 'ledger'");
  EXPECT_NE(detail.find("ledger.events[0]@0"), std::string::npos) << detail;
  EXPECT_NE(detail.find("ledger.events[0]@1"), std::string::npos) << detail;
  engine->signal(SIGTERM);
  engine->wait(20s);
}

TEST_F(DedupeTest, RetentionPrunesOldRowsAndAReSendInsideTheWindowIsSkipped) {
  auto manifest = writeManifest(dir_, broker_.bootstrap(), db_.url(),
                                "  - name: ledger\n"
                                "    plugin: ledger\n"
                                "    topics: [ledger.events]\n"
                                "    dedupe: { retention: 8s }\n");
  auto engine = startEngine(manifest, dir_.path() / "engine.log");
  const std::string old_event = envelope("old", "Entry", "L-1", {{"amount", 100}});
  produce(broker_.bootstrap(), {{kLedgerTopic, "L-1", old_event}});
  ASSERT_TRUE(waitUntil([&] { return value("SELECT count(*) FROM processed_events") == "1"; }, 60s))
      << engine->log();
  // Pruned by the engine once older than the window (bounded wait; the window is 8 s).
  ASSERT_TRUE(waitUntil([&] { return value("SELECT count(*) FROM processed_events") == "0"; }, 60s))
      << engine->log();
  EXPECT_NE(engine->log().find("pruned 1 processed_events row(s)"), std::string::npos)
      << engine->log();
  // A new event and its re-send right after it, inside the window: applied once. The old event
  // re-sent after its row was pruned is applied again: the guarantee stops at the window.
  const std::string fresh = envelope("fresh", "Entry", "L-1", {{"amount", 1}});
  produce(broker_.bootstrap(), {{kLedgerTopic, "L-1", fresh},
                                {kLedgerTopic, "L-1", fresh},
                                {kLedgerTopic, "L-1", old_event}});
  ASSERT_TRUE(waitUntil([&] { return value("SELECT max(next_offset) FROM ultracore_offsets") == "4"; },
                        60s))
      << engine->log();
  EXPECT_EQ(value("SELECT event_ids || ' ' || total FROM ledger.ledger"), "old,fresh,old 201");

  const auto [stats_code, stats] =
      runCtl(manifest, {"processed-events", "stats"}, dir_.path() / "ctl-stats.log");
  EXPECT_EQ(stats_code, 0) << stats;
  EXPECT_NE(stats.find("ledger"), std::string::npos) << stats;
  EXPECT_NE(stats.find("8s"), std::string::npos) << stats;
  const auto [dry_code, dry] = runCtl(manifest, {"processed-events", "prune", "--dry-run"},
                                      dir_.path() / "ctl-prune.log");
  EXPECT_EQ(dry_code, 0) << dry;
  EXPECT_NE(dry.find("would be pruned"), std::string::npos) << dry;
  engine->signal(SIGTERM);
  EXPECT_EQ(engine->wait(20s), 0) << engine->log();
}

TEST_F(DedupeTest, ABadRetentionIsRefusedWithItsPlace) {
  auto manifest = writeManifest(dir_, broker_.bootstrap(), db_.url(),
                                "  - name: ledger\n"
                                "    plugin: ledger\n"
                                "    topics: [ledger.events]\n"
                                "    dedupe: { retention: 7 days }\n");
  auto engine = startEngine(manifest, dir_.path() / "engine.log");
  EXPECT_NE(engine->wait(30s), 0);
  EXPECT_NE(engine->log().find("'retention' must be 'forever' or a duration"), std::string::npos)
      << engine->log();
}

}  // namespace
}  // namespace ultracore::testing
