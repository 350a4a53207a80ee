// SIGHUP with sql views: a changed `on:` restarts only that view, with the new statements; a
// changed `tables:` without a new schema_version is refused (the running views are kept) with
// a message that says to rebuild.

#include <csignal>
#include <fstream>

#include <gtest/gtest.h>

#include "engine_harness.h"

namespace ultracore::testing {
namespace {

using namespace std::chrono_literals;

constexpr const char* kAccounts = "ultracore.accounts.events";

std::string view(const std::string& name, const std::string& tables_extra,
                 const std::string& deposit_sql) {
  return "  - name: " + name + "\n    plugin: sql\n    topics: [" + std::string(kAccounts) +
         "]\n    batch: { max_events: 50, max_wait_ms: 5 }\n    config:\n      schema_version: 1\n"
         "      tables: CREATE TABLE IF NOT EXISTS {schema}.deposits (account_id text PRIMARY KEY, "
         "n bigint NOT NULL" + tables_extra + ")\n      on:\n        FundsDeposited: \"" +
         deposit_sql + "\"\n";
}

std::size_t count(const std::string& text, const std::string& what) {
  std::size_t n = 0;
  for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

TEST(SqlReloadTest, ChangedStatementsRestartOnlyThatViewChangedTablesAreRefused) {
  DevBroker broker(DevBroker::Options{1, 2, {kAccounts}});
  TestDatabase db;
  TempDir dir;
  const auto manifest = dir.path() / "projections.yaml";
  const std::string count_one =
      "INSERT INTO {schema}.deposits VALUES (:aggregate_id, 1) ON CONFLICT (account_id) DO UPDATE "
      "SET n = deposits.n + 1";
  const std::string count_ten =
      "INSERT INTO {schema}.deposits VALUES (:aggregate_id, 10) ON CONFLICT (account_id) DO "
      "UPDATE SET n = deposits.n + 10";
  auto write = [&](const std::string& views) {
    std::ofstream out(manifest);
    out << "kafka:\n  bootstrap.servers: " << broker.bootstrap()
        << "\n  session.timeout.ms: 3000\n  heartbeat.interval.ms: 500\n"
        << "postgres:\n  url: " << db.url()
        << "\napi:\n  listen: 127.0.0.1:0\nadmin:\n  listen: 127.0.0.1:0\nplugins:\n"
        << "  - { name: sql, library: " << (binaryDir() / "plugins/sql/libultracore_sql.so").string()
        << " }\nprojections:\n"
        << views;
  };
  write(view("first", "", count_one) + view("second", "", count_one));
  auto engine = startEngine(manifest, dir.path() / "engine.log");
  ASSERT_TRUE(waitForEngineRunning(*engine)) << engine->log();
  int event = 0;
  auto deposit = [&] {
    ++event;
    produce(broker.bootstrap(),
            {{kAccounts, "ACC-1",
              envelope("evt-" + std::to_string(event), "FundsDeposited", "ACC-1", {{"amount", "1"}})}});
  };
  auto n = [&](const std::string& schema) {
    return queryValue(db.url(), "SELECT n FROM " + schema + ".deposits WHERE account_id = 'ACC-1'");
  };
  deposit();
  ASSERT_TRUE(waitUntil([&] { return n("first") == "1" && n("second") == "1"; }, 60s))
      << engine->log();

  // `on:` of `second` changes: only `second` restarts, and applies the new statement.
  write(view("first", "", count_one) + view("second", "", count_ten));
  engine->signal(SIGHUP);
  ASSERT_TRUE(waitUntil([&] { return engine->log().find("1 restarted (second), 1 untouched") !=
                                     std::string::npos; },
                        60s))
      << engine->log();
  deposit();
  ASSERT_TRUE(waitUntil([&] { return n("first") == "2" && n("second") == "11"; }, 60s))
      << n("first") << " " << n("second") << "\n" << engine->log();
  EXPECT_EQ(count(engine->log(), "[first] starting"), 1u) << engine->log();

  // `tables:` of `first` changes without a new schema_version: refused, both keep running.
  write(view("first", ", extra text", count_one) + view("second", "", count_ten));
  engine->signal(SIGHUP);
  ASSERT_TRUE(waitUntil([&] { return engine->log().find("reload refused") != std::string::npos; },
                        60s))
      << engine->log();
  const std::string log = engine->log();
  EXPECT_NE(log.find("tables changed without a new schema_version"), std::string::npos) << log;
  EXPECT_NE(log.find("Raise schema_version and rebuild the view from the log: ultracore-ctl "
                     "rebuild first"),
            std::string::npos)
      << log;
  EXPECT_NE(log.find(manifest.string() + ":"), std::string::npos) << log;
  deposit();
  ASSERT_TRUE(waitUntil([&] { return n("first") == "3" && n("second") == "21"; }, 60s))
      << n("first") << " " << n("second") << "\n" << engine->log();
  EXPECT_EQ(count(engine->log(), "[first] starting"), 1u) << engine->log();

  engine->signal(SIGTERM);
  EXPECT_EQ(engine->wait(60s), 0) << engine->log();
}

}  // namespace
}  // namespace ultracore::testing
