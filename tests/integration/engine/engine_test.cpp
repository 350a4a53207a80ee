// The engine against the real PostgreSQL and a dev broker: materialization, dedupe,
// dead letters, the offset-out-of-range stop, clean shutdown and start-up errors.

#include <csignal>
#include <fstream>

#include <thread>

#include <gtest/gtest.h>

#include "engine_harness.h"

namespace ultracore::testing {
namespace {

using namespace std::chrono_literals;

constexpr const char* kCustomersTopic = "ultracore.customers.events";
constexpr const char* kAccountsTopic = "ultracore.accounts.events";

const std::string kDomainProjections =
    "  - name: customers\n"
    "    plugin: customers\n"
    "    topics: [ultracore.customers.events]\n"
    "    on_error: dead_letter\n"
    "  - name: accounts\n"
    "    plugin: accounts\n"
    "    topics: [ultracore.accounts.events]\n"
    "    on_error: dead_letter\n";

class EngineTest : public ::testing::Test {
 protected:
  EngineTest() : broker_(DevBroker::Options{1, 6, {kCustomersTopic, kAccountsTopic, "ledger.events"}}) {}

  std::string count(const std::string& sql) { return queryValue(db_.url(), sql); }

  DevBroker broker_;
  TestDatabase db_;
  TempDir dir_;
};

TEST_F(EngineTest, EventsFromAnIndependentClientAppearInTheReadModel) {
  auto manifest = writeManifest(dir_, broker_.bootstrap(), db_.url(), kDomainProjections);
  auto engine = startEngine(manifest, dir_.path() / "engine.log");

  // kcat is an independent Kafka client: the engine must not depend on how records are made.
  const std::string input = (dir_.path() / "events.txt").string();
  {
    std::ofstream out(input);
    out << "CUST-TEST-001|"
        << envelope("evt-c1", "CustomerCreated", "CUST-TEST-001",
                    {{"first_name", "John"}, {"last_name", "Doe"}, {"email", "john@example.com"},
                     {"phone", "+1-555"}, {"date_of_birth", "1980-02-03"}})
        << "\n";
    out << "CUST-TEST-001|"
        << envelope("evt-c2", "CustomerUpdated", "CUST-TEST-001", {{"email", "jd@example.com"}})
        << "\n";
  }
  Subprocess kcat({"kcat", "-b", broker_.bootstrap(), "-P", "-t", kCustomersTopic, "-K", "|",
                   "-l", input});
  ASSERT_EQ(kcat.wait(30s), 0) << kcat.log();
  produce(broker_.bootstrap(),
          {{kAccountsTopic, "ACC-1", envelope("a1", "AccountOpened", "ACC-1",
                                              {{"customer_id", "CUST-TEST-001"},
                                               {"account_type", "checking"}, {"currency", "EUR"}})},
           {kAccountsTopic, "ACC-1", envelope("a2", "FundsDeposited", "ACC-1", {{"amount", "100.10"}})},
           {kAccountsTopic, "ACC-1", envelope("a3", "FundsDeposited", "ACC-1", {{"amount", "100.10"}})},
           {kAccountsTopic, "ACC-1", envelope("a4", "FundsDeposited", "ACC-1", {{"amount", 100.10}})},
           {kAccountsTopic, "ACC-1", envelope("a5", "FundsWithdrawn", "ACC-1", {{"amount", "0.30"}})}});

  ASSERT_TRUE(waitUntil([&] { return count("SELECT count(*) FROM processed_events") == "7"; }, 60s))
      << engine->log();

  // The README's queries, as written.
  EXPECT_EQ(count("SELECT count(*) FROM (SELECT * FROM processed_events ORDER BY processed_at DESC LIMIT 10) t"), "7");
  EXPECT_EQ(count("SELECT count(*) FROM (SELECT * FROM processed_events WHERE aggregate_id = 'CUST-TEST-001') t"), "2");
  EXPECT_EQ(count("SELECT email FROM customers.customers WHERE customer_id = 'CUST-TEST-001'"), "jd@example.com");
  EXPECT_EQ(count("SELECT phone || ' ' || date_of_birth || ' ' || status || ' ' || version "
                  "FROM customers.customers WHERE customer_id = 'CUST-TEST-001'"),
            "+1-555 1980-02-03 active 2");
  EXPECT_EQ(count("SELECT count(*) FROM (SELECT * FROM accounts.accounts LIMIT 10) t"), "1");
  EXPECT_EQ(count("SELECT balance::text FROM accounts.accounts WHERE account_id = 'ACC-1'"), "300.00");

  engine->signal(SIGTERM);
  EXPECT_EQ(engine->wait(20s), 0) << engine->log();
}

TEST_F(EngineTest, AnEventResentWithTheSameIdIsAppliedOnce) {
  auto manifest = writeManifest(dir_, broker_.bootstrap(), db_.url(),
                                "  - { name: ledger, plugin: ledger, topics: [ledger.events] }\n");
  auto engine = startEngine(manifest, dir_.path() / "engine.log");
  const std::string event = envelope("same-id", "Entry", "L-1", {{"amount", 5}});
  produce(broker_.bootstrap(), {{"ledger.events", "L-1", event}});
  // Re-sent at a new offset, once in a later batch and once inside the same batch.
  ASSERT_TRUE(waitUntil([&] { return count("SELECT count(*) FROM processed_events") == "1"; }, 60s));
  produce(broker_.bootstrap(), {{"ledger.events", "L-1", event},
                                {"ledger.events", "L-1", envelope("other", "Entry", "L-1", {{"amount", 1}})},
                                {"ledger.events", "L-1", event}});
  ASSERT_TRUE(waitUntil([&] { return count("SELECT count(*) FROM processed_events") == "2"; }, 60s));
  // Wait for the offsets to pass all four records, so the duplicates were seen and skipped.
  ASSERT_TRUE(waitUntil([&] { return count("SELECT max(next_offset) FROM ultracore_offsets") == "4"; }, 60s))
      << engine->log();
  EXPECT_EQ(count("SELECT event_ids || ' ' || total FROM ledger.ledger"), "same-id,other 6");
  engine->signal(SIGTERM);
  EXPECT_EQ(engine->wait(20s), 0) << engine->log();
}

TEST_F(EngineTest, PoisonRecordsAreDeadLetteredWithTheirPositionAndTheRestIsApplied) {
  auto manifest = writeManifest(dir_, broker_.bootstrap(), db_.url(), kDomainProjections);
  auto engine = startEngine(manifest, dir_.path() / "engine.log");
  const auto opened = envelope("o1", "AccountOpened", "ACC-9",
                               {{"customer_id", "C"}, {"account_type", "savings"}, {"currency", "USD"}});
  produce(broker_.bootstrap(),
          {{kAccountsTopic, "ACC-9", opened, 2},
           {kAccountsTopic, "ACC-9", "{not json", 2},
           {kAccountsTopic, "ACC-9", envelope("d1", "FundsDeposited", "ACC-9", {{"amount", "abc"}}), 2},
           {kAccountsTopic, "ACC-9", envelope("d2", "FundsDeposited", "NOPE", {{"amount", "1"}}), 2},
           {kAccountsTopic, "ACC-9", envelope("d3", "FundsDeposited", "ACC-9", {{"amount", "2.50"}}), 2}});
  ASSERT_TRUE(waitUntil([&] { return count("SELECT count(*) FROM ultracore_dead_letters") == "3" &&
                                     count("SELECT max(next_offset) FROM ultracore_offsets "
                                           "WHERE projection = 'accounts'") == "5"; }, 60s))
      << engine->log();
  EXPECT_EQ(count("SELECT string_agg(\"offset\" || ':' || error_code, ',' ORDER BY \"offset\") "
                  "FROM ultracore_dead_letters WHERE topic = 'ultracore.accounts.events' AND partition = 2"),
            "1:invalid_event,2:invalid_event,3:handler_error");
  EXPECT_EQ(count("SELECT convert_from(record_value, 'UTF8') FROM ultracore_dead_letters WHERE \"offset\" = 1"),
            "{not json");
  EXPECT_EQ(count("SELECT balance::text FROM accounts.accounts WHERE account_id = 'ACC-9'"), "2.50");
  EXPECT_EQ(count("SELECT count(*) FROM processed_events WHERE projection = 'accounts'"), "2");
  engine->signal(SIGTERM);
  EXPECT_EQ(engine->wait(20s), 0) << engine->log();
}

TEST_F(EngineTest, FailPolicyStopsAtTheEventAndOtherProjectionsGoOn) {
  auto manifest = writeManifest(
      dir_, broker_.bootstrap(), db_.url(),
      "  - { name: ledger, plugin: ledger, topics: [ledger.events], on_error: fail }\n"
      "  - { name: customers, plugin: customers, topics: [ultracore.customers.events] }\n");
  auto engine = startEngine(manifest, dir_.path() / "engine.log");
  produce(broker_.bootstrap(),
          {{"ledger.events", "L", envelope("l1", "Entry", "L", {{"amount", 1}}), 0},
           {"ledger.events", "L", envelope("l2", "Poison", "L", {}), 0},
           {"ledger.events", "L", envelope("l3", "Entry", "L", {{"amount", 1}}), 0},
           {kCustomersTopic, "C1", envelope("c1", "CustomerCreated", "C1",
                                            {{"first_name", "A"}, {"last_name", "B"}, {"email", "e"}})}});
  ASSERT_TRUE(waitUntil([&] { return count("SELECT state FROM ultracore_projection_status "
                                           "WHERE projection = 'ledger'") == "failed"; }, 60s))
      << engine->log();
  const std::string detail =
      count("SELECT detail FROM ultracore_projection_status WHERE projection = 'ledger'");
  EXPECT_NE(detail.find("ledger.events[0]@1"), std::string::npos) << detail;
  EXPECT_NE(detail.find("event_id=l2"), std::string::npos) << detail;
  EXPECT_EQ(count("SELECT next_offset FROM ultracore_offsets WHERE projection = 'ledger' AND partition = 0"), "1");
  EXPECT_EQ(count("SELECT event_ids FROM ledger.ledger"), "l1");
  ASSERT_TRUE(waitUntil([&] { return count("SELECT count(*) FROM customers.customers") == "1"; }, 60s));
  engine->signal(SIGTERM);
  EXPECT_EQ(engine->wait(20s), 0) << engine->log();
}

// A batch does not wait for PostgreSQL's WAL flush unless the projection asks for it
// (batch.synchronous_commit): the ledger records the setting its batches ran under.
TEST_F(EngineTest, BatchesSkipTheWalFlushWaitUnlessTheProjectionAsksForIt) {
  auto manifest = writeManifest(
      dir_, broker_.bootstrap(), db_.url(),
      "  - { name: ledger, plugin: ledger, topics: [ledger.events] }\n"
      "  - { name: durable, plugin: ledger, projection: ledger, schema: durable,"
      " topics: [ledger.events],"
      " batch: { synchronous_commit: true } }\n");
  auto engine = startEngine(manifest, dir_.path() / "engine.log");
  produce(broker_.bootstrap(),
          {{"ledger.events", "L", envelope("s1", "Entry", "L", {{"amount", 1}}), 0}});
  ASSERT_TRUE(waitUntil([&] {
    return count("SELECT count(*) FROM processed_events WHERE event_id = 's1'") == "2";
  }, 60s)) << engine->log();
  EXPECT_EQ(count("SELECT string_agg(synchronous_commit, ',') FROM ledger.commit_modes"), "off");
  EXPECT_EQ(count("SELECT string_agg(synchronous_commit, ',') FROM durable.commit_modes"), "on");
  EXPECT_EQ(count("SELECT event_ids FROM durable.ledger"), "s1");
  engine->signal(SIGTERM);
  EXPECT_EQ(engine->wait(20s), 0) << engine->log();
}

TEST_F(EngineTest, AStoredOffsetNoLongerInTheLogStopsTheProjectionLoudly) {
  produce(broker_.bootstrap(), {{"ledger.events", "L", envelope("l1", "Entry", "L", {{"amount", 1}}), 3}});
  auto manifest = writeManifest(dir_, broker_.bootstrap(), db_.url(),
                                "  - { name: ledger, plugin: ledger, topics: [ledger.events] }\n");
  // First run creates the tables and offsets; then the stored offset points past the log, as
  // after a topic was recreated.
  {
    auto engine = startEngine(manifest, dir_.path() / "first.log");
    ASSERT_TRUE(waitUntil([&] { return count("SELECT count(*) FROM processed_events") == "1"; }, 60s))
        << engine->log();
    engine->signal(SIGTERM);
    ASSERT_EQ(engine->wait(20s), 0) << engine->log();
  }
  queryValue(db_.url(), "UPDATE ultracore_offsets SET next_offset = 1000 WHERE partition = 3 "
                        "RETURNING next_offset");
  auto engine = startEngine(manifest, dir_.path() / "second.log");
  ASSERT_TRUE(waitUntil([&] { return count("SELECT state FROM ultracore_projection_status "
                                           "WHERE projection = 'ledger'") == "failed"; }, 60s))
      << engine->log();
  const std::string detail =
      count("SELECT detail FROM ultracore_projection_status WHERE projection = 'ledger'");
  EXPECT_NE(detail.find("stored offset 1000 of ledger.events[3] is no longer in the log"), std::string::npos)
      << detail;
  EXPECT_NE(detail.find("log start 0"), std::string::npos) << detail;
  EXPECT_EQ(count("SELECT next_offset FROM ultracore_offsets WHERE partition = 3"), "1000");
  engine->signal(SIGTERM);
  EXPECT_EQ(engine->wait(20s), 0) << engine->log();
}

// librdkafka 2.0.2 aborts in rd_kafka_destroy when a cooperative-sticky consumer is destroyed
// after its JoinGroup but before its first assignment (librdkafka #4312, fixed in 2.3.0): a
// SIGTERM in that window killed the engine with SIGABRT (seen in the three-engine churn test on
// real Kafka). Failing every SyncGroup holds the runners in that window.
TEST_F(EngineTest, SigtermBeforeTheFirstCooperativeAssignmentExitsCleanly) {
  broker_.control("/errors?api=SyncGroup&code=REBALANCE_IN_PROGRESS&count=1000");
  auto manifest = writeManifest(dir_, broker_.bootstrap(), db_.url(),
                                "  - { name: ledger, plugin: ledger, topics: [ledger.events],"
                                " workers: 2, kafka: { partition.assignment.strategy: cooperative-sticky } }\n");
  auto engine = startEngine(manifest, dir_.path() / "engine.log");
  ASSERT_TRUE(waitForEngineRunning(*engine)) << engine->log();
  // The dev broker answers a JoinGroup after about 3 s; then every SyncGroup fails.
  std::this_thread::sleep_for(6s);
  ASSERT_EQ(engine->log().find("assigned"), std::string::npos) << engine->log();
  engine->signal(SIGTERM);
  EXPECT_EQ(engine->wait(30s), 0) << engine->log();
}

TEST_F(EngineTest, StartUpErrorsAreOneClearLine) {
  // A projection the plugin does not offer: file, line and column of the `projection:` value.
  auto manifest = writeManifest(dir_, broker_.bootstrap(), db_.url(),
                                "  - name: ledger\n"
                                "    plugin: ledger\n"
                                "    projection: nope\n"
                                "    topics: [ledger.events]\n");
  int line = 0;
  {
    std::ifstream in(manifest);
    std::string text;
    for (int n = 1; std::getline(in, text); ++n) {
      if (text == "    projection: nope") line = n;
    }
  }
  ASSERT_GT(line, 0);
  Subprocess check({binPath("ultracore-engine").string(), "--config", manifest.string(), "--check"});
  EXPECT_EQ(check.wait(20s), 2);
  EXPECT_NE(check.log().find(manifest.string() + ":" + std::to_string(line) +
                             ":17: projection 'ledger': plugin 'ledger' "
                             "offers no projection 'nope' (it offers: ledger)"),
            std::string::npos)
      << check.log();

  // A plugin library that does not exist: path and reason.
  const auto broken = dir_.path() / "broken.yaml";
  {
    std::ofstream out(broken);
    out << "postgres: { url: " << db_.url() << " }\n"
        << "plugins:\n  - { name: ghost, library: ./missing/libghost.so }\n"
        << "projections:\n  - { name: ghost, plugin: ghost, topics: [t] }\n";
  }
  Subprocess missing({binPath("ultracore-engine").string(), "--config", broken.string(), "--check"});
  EXPECT_EQ(missing.wait(20s), 2);
  EXPECT_NE(missing.log().find((dir_.path() / "missing/libghost.so").string()), std::string::npos)
      << missing.log();
  EXPECT_NE(missing.log().find("cannot load the library"), std::string::npos) << missing.log();
  EXPECT_NE(missing.log().find("No such file or directory"), std::string::npos) << missing.log();

  // The manifest we ship validates.
  Subprocess shipped({binPath("ultracore-engine").string(), "--config",
                      (sourceDir() / "config/projections.yaml").string(), "--check"});
  const auto status = shipped.wait(20s);
  if (binaryDir() == sourceDir() / "build") {
    EXPECT_EQ(status, 0) << shipped.log();
  }
}

}  // namespace
}  // namespace ultracore::testing
