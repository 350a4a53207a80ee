// The plugin test kit against the real PostgreSQL: runs, dedupe, restarts, plugin loading,
// and the determinism check catching projections that break the contract of projection.h.

#include <gtest/gtest.h>

#include "ultracore/sdk/sdk.h"
#include "ultracore/sdk/testing/testing.h"

namespace kit = ultracore::sdk::testing;
using ultracore::sdk::Event;
using ultracore::sdk::Params;
using ultracore::sdk::ProjectionContext;
using ultracore::sdk::Status;
using ultracore::sdk::Writer;

namespace {

constexpr const char* kTopic = "test.events";

Status createCounters(Writer& db, const std::string& extra_column = "") {
  return db.exec("CREATE TABLE IF NOT EXISTS {schema}.counters (id text PRIMARY KEY, "
                 "n bigint NOT NULL" + extra_column + ")");
}

/// Counts events per aggregate: deterministic.
class CountingProjection : public ultracore::sdk::Projection {
 public:
  explicit CountingProjection(const ProjectionContext&) {}
  int schemaVersion() const override { return 1; }
  Status setupSchema(Writer& db) override { return createCounters(db); }
  Status apply(std::span<const Event> events, Writer& db) override {
    std::vector<Params> rows;
    for (const Event& event : events) rows.push_back({event.aggregateId()});
    return db.execBatch("INSERT INTO {schema}.counters (id, n) SELECT id, count(*) FROM batch "
                        "GROUP BY id ON CONFLICT (id) DO UPDATE SET n = counters.n + EXCLUDED.n",
                        {"id"}, rows)
        .status();
  }
};

/// Stamps the transaction time: a different model on every build.
class StampingProjection : public CountingProjection {
 public:
  using CountingProjection::CountingProjection;
  Status setupSchema(Writer& db) override { return createCounters(db, ", seen_at timestamptz"); }
  Status apply(std::span<const Event> events, Writer& db) override {
    if (Status s = CountingProjection::apply(events, db); !s) return s;
    return db.exec("UPDATE {schema}.counters SET seen_at = clock_timestamp()");
  }
};

/// Keeps only the last event of each batch: depends on batch boundaries.
class LastOfBatchProjection : public CountingProjection {
 public:
  using CountingProjection::CountingProjection;
  Status apply(std::span<const Event> events, Writer& db) override {
    return db.exec("INSERT INTO {schema}.counters (id, n) VALUES ($1, 1) "
                   "ON CONFLICT (id) DO UPDATE SET n = counters.n + 1",
                   {events.back().aggregateId()});
  }
};

/// Numbers events with an in-memory counter: lost on restart.
class InMemoryProjection : public CountingProjection {
 public:
  using CountingProjection::CountingProjection;
  Status apply(std::span<const Event> events, Writer& db) override {
    for (const Event& event : events) {
      if (Status s = db.exec("INSERT INTO {schema}.counters (id, n) VALUES ($1, $2)",
                             {event.eventId(), std::to_string(++seen_)});
          !s) {
        return s;
      }
    }
    return Status::ok();
  }

 private:
  long long seen_ = 0;
};

kit::EventLog sampleLog(int events = 20) {
  kit::EventLog log;
  for (int i = 0; i < events; ++i) {
    log.add(kTopic, "evt-" + std::to_string(i), "Counted", "AGG-" + std::to_string(i % 3));
  }
  return log;
}

class TestKitTest : public kit::ProjectionTest {};

TEST_F(TestKitTest, RunsAProjectionAndQueriesItsTables) {
  kit::ProjectionRun run(databaseUrl(), kit::ProjectionSource::of<CountingProjection>());
  const auto log = sampleLog();
  ASSERT_TRUE(kit::succeeded(run.apply(log.events(), 4)));
  EXPECT_EQ(run.value("SELECT n FROM {schema}.counters WHERE id = $1", {"AGG-0"}), "7");
  EXPECT_EQ(run.value("SELECT sum(n) FROM {schema}.counters"), "20");
  EXPECT_EQ(run.batchesCommitted(), 5U);
  EXPECT_EQ(run.schema().rfind("ut_test_", 0), 0U) << run.schema();
}

TEST_F(TestKitTest, SkipsEventsAlreadyAppliedLikeTheEngine) {
  kit::ProjectionRun run(databaseUrl(), kit::ProjectionSource::of<CountingProjection>());
  const auto log = sampleLog(6);
  std::vector<Event> twice = log.events();
  twice.insert(twice.end(), log.events().begin(), log.events().end());
  twice.push_back(log.events()[0]);
  ASSERT_TRUE(kit::succeeded(run.apply(twice, 5)));
  EXPECT_EQ(run.value("SELECT sum(n) FROM {schema}.counters"), "6");
  EXPECT_EQ(run.eventsApplied(), 6U);
  EXPECT_EQ(run.duplicatesSkipped(), 7U);
}

TEST_F(TestKitTest, AFailedBatchRollsBackAndItsEventsAreNotMarkedApplied) {
  class FailsOnPoison : public CountingProjection {
   public:
    using CountingProjection::CountingProjection;
    Status apply(std::span<const Event> events, Writer& db) override {
      if (Status s = CountingProjection::apply(events, db); !s) return s;
      for (const Event& event : events) {
        if (event.eventType() == "Poison") return Status::invalidEvent("poison " + event.eventId());
      }
      return Status::ok();
    }
  };
  kit::ProjectionRun run(databaseUrl(), kit::ProjectionSource::of<FailsOnPoison>());
  kit::EventLog log;
  log.add(kTopic, "ok-1", "Counted", "A").add(kTopic, "ok-2", "Counted", "A");
  log.add(kTopic, "bad", "Poison", "A");
  const Status status = run.apply(log.events(), 2);
  EXPECT_EQ(status.code(), ultracore::sdk::StatusCode::kInvalidEvent);
  EXPECT_NE(status.message().find("event_id bad"), std::string::npos) << status.message();
  EXPECT_EQ(run.value("SELECT n FROM {schema}.counters"), "2");  // the first batch only
  EXPECT_EQ(run.eventsApplied(), 2U);

  // The rolled-back event is not "already applied": a fixed one with its id goes through.
  kit::EventLog fixed;
  fixed.add(kTopic, "bad", "Counted", "A");
  ASSERT_TRUE(kit::succeeded(run.apply(fixed.events())));
  EXPECT_EQ(run.value("SELECT n FROM {schema}.counters"), "3");
}

TEST_F(TestKitTest, ReportsADatabaseErrorAsStatus) {
  class Broken : public CountingProjection {
   public:
    using CountingProjection::CountingProjection;
    Status apply(std::span<const Event>, Writer& db) override {
      return db.exec("INSERT INTO {schema}.no_such_table VALUES (1)");
    }
  };
  kit::ProjectionRun run(databaseUrl(), kit::ProjectionSource::of<Broken>());
  const Status status = run.apply(sampleLog(2).events());
  EXPECT_EQ(status.code(), ultracore::sdk::StatusCode::kDatabaseError);
  EXPECT_NE(status.message().find("no_such_table"), std::string::npos) << status.message();
  EXPECT_NE(status.message().find("event_id evt-0"), std::string::npos) << status.message();
  EXPECT_EQ(run.eventsApplied(), 0U);
}

TEST_F(TestKitTest, DeterministicProjectionPasses) {
  EXPECT_TRUE(kit::buildsDeterministically(
      databaseUrl(), kit::ProjectionSource::of<CountingProjection>(), sampleLog().events()));
}

TEST_F(TestKitTest, CatchesAProjectionStampingTheTime) {
  const auto result = kit::buildsDeterministically(
      databaseUrl(), kit::ProjectionSource::of<StampingProjection>(), sampleLog().events());
  EXPECT_FALSE(result);
  EXPECT_NE(std::string(result.message()).find("a second build from scratch"), std::string::npos)
      << result.message();
  EXPECT_NE(std::string(result.message()).find("table counters"), std::string::npos)
      << result.message();
}

TEST_F(TestKitTest, CatchesAProjectionDependingOnBatchBoundaries) {
  const auto result = kit::buildsDeterministically(
      databaseUrl(), kit::ProjectionSource::of<LastOfBatchProjection>(), sampleLog().events());
  EXPECT_FALSE(result);
  EXPECT_NE(std::string(result.message()).find("batches of 1"), std::string::npos)
      << result.message();
}

TEST_F(TestKitTest, CatchesInMemoryStateLostOnRestart) {
  kit::DeterminismOptions options;
  options.other_batch_sizes = {};
  const auto result = kit::buildsDeterministically(
      databaseUrl(), kit::ProjectionSource::of<InMemoryProjection>(), sampleLog().events(),
      options);
  EXPECT_FALSE(result);
  EXPECT_NE(std::string(result.message()).find("restart"), std::string::npos) << result.message();
}

TEST_F(TestKitTest, LoadsTheShippedPluginsAndFindsThemDeterministic) {
  kit::EventLog customers;
  customers.add("ultracore.customers.events", "c1", "CustomerCreated", "CUST-1",
                {{"first_name", "Ada"}, {"last_name", "L"}, {"email", "a@x"}});
  customers.add("ultracore.customers.events", "c2", "CustomerUpdated", "CUST-1",
                {{"email", "ada@x"}});
  customers.add("ultracore.customers.events", "c3", "CustomerCreated", "CUST-2",
                {{"first_name", "Bo"}, {"last_name", "M"}, {"email", "b@x"}});
  auto source = kit::ProjectionSource::fromPlugin(CUSTOMERS_PLUGIN, "customers");
  EXPECT_EQ(source.defaultSchema(), "customers");
  {
    kit::ProjectionRun run(databaseUrl(), source);
    ASSERT_TRUE(kit::succeeded(run.apply(customers.events())));
    EXPECT_EQ(run.value("SELECT email || ' ' || version FROM {schema}.customers "
                        "WHERE customer_id = 'CUST-1'"),
              "ada@x 2");
  }
  EXPECT_TRUE(kit::buildsDeterministically(databaseUrl(), source, customers.events()));

  kit::EventLog accounts;
  accounts.add("ultracore.accounts.events", "a1", "AccountOpened", "ACC-1",
               {{"customer_id", "CUST-1"}, {"account_type", "checking"}, {"currency", "EUR"}});
  for (int i = 0; i < 10; ++i) {
    accounts.add("ultracore.accounts.events", "d" + std::to_string(i),
                 i % 3 == 2 ? "FundsWithdrawn" : "FundsDeposited", "ACC-1",
                 {{"amount", "10.05"}});
  }
  EXPECT_TRUE(kit::buildsDeterministically(
      databaseUrl(), kit::ProjectionSource::fromPlugin(ACCOUNTS_PLUGIN, "accounts"),
      accounts.events()));
}

TEST_F(TestKitTest, PluginLoadingErrorsNameThePathAndTheProblem) {
  try {
    kit::ProjectionSource::fromPlugin(CUSTOMERS_PLUGIN, "nope");
    FAIL() << "no exception";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("no projection 'nope' (offers: customers)"),
              std::string::npos)
        << e.what();
  }
  try {
    kit::ProjectionSource::fromPlugin("/nonexistent/libx.so", "x");
    FAIL() << "no exception";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/libx.so: cannot load"), std::string::npos)
        << e.what();
  }
}

}  // namespace
