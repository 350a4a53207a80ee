// The shipped example view `account_activity` (config/projections.yaml, plugin sql) in the
// engine next to the C++ accounts projection, after a mixed load, after a live rebuild and
// after a replay in place (and in a time-travel build): its daily rows equal the deposits and withdrawals of the events,
// and their sum per account equals accounts.accounts' balance. A FundsDeposited without an
// amount (`:data.amount!`) is dead-lettered with its statement and place in the log.

#include <fstream>
#include <map>

#include <gtest/gtest.h>

#include "engine/manifest/manifest.h"
#include "engine_harness.h"

namespace ultracore::testing {
namespace {

using namespace std::chrono_literals;

constexpr const char* kAccounts = "ultracore.accounts.events";

/// The shipped entry, as the engine reads it (defaults for every ${VAR}).
engine::ProjectionSpec shippedView() {
  std::ifstream in(sourceDir() / "config/projections.yaml");
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const auto manifest = engine::parseManifest(text, sourceDir() / "config/projections.yaml",
                                              engine::EnvLookup());
  const auto* spec = manifest.findProjection("account_activity");
  if (spec == nullptr) throw std::runtime_error("config/projections.yaml has no account_activity");
  return *spec;
}

TEST(AccountActivityTest, EqualsTheEventsAndTheAccountsBalanceAfterLoadRebuildAndReplay) {
  const engine::ProjectionSpec view = shippedView();
  ASSERT_EQ(view.plugin, "sql");
  DevBroker broker(DevBroker::Options{1, 4, {kAccounts}});
  TestDatabase db;
  TempDir dir;
  const auto manifest = dir.path() / "projections.yaml";
  {
    std::ofstream out(manifest);
    out << "kafka:\n  bootstrap.servers: " << broker.bootstrap()
        << "\n  session.timeout.ms: 3000\n  heartbeat.interval.ms: 500\n"
        << "postgres:\n  url: " << db.url()
        << "\napi:\n  listen: 127.0.0.1:0\nadmin:\n  listen: 127.0.0.1:0\nplugins:\n";
    for (const char* plugin : {"accounts", "sql"}) {
      out << "  - { name: " << plugin << ", library: "
          << (binaryDir() / "plugins" / plugin / ("libultracore_" + std::string(plugin) + ".so"))
                 .string()
          << " }\n";
    }
    out << "projections:\n"
        << "  - { name: accounts, plugin: accounts, topics: [" << kAccounts
        << "], on_error: dead_letter }\n"
        << "  - name: account_activity\n    plugin: sql\n    topics: [" << kAccounts << "]\n"
        << "    on_error: " << engine::toString(view.on_error) << "\n"
        << "    batch: { max_events: 37, max_wait_ms: 5 }\n"
        << "    config: " << view.config.dump() << "\n";  // JSON is YAML
  }
  auto engine = startEngine(manifest, dir.path() / "engine.log");
  ASSERT_TRUE(waitForEngineRunning(*engine)) << engine->log();

  // A deterministic mixed load over five days; amounts in cents to compute the expectation.
  std::uint64_t seed = 7;
  auto next = [&seed](std::uint64_t bound) {
    seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
    return (seed >> 33) % bound;
  };
  std::map<std::pair<std::string, std::string>, std::pair<long, long>> expected;  // cents
  std::vector<Record> records;
  int event = 0;
  auto record = [&](const std::string& type, const std::string& account, int day,
                    const nlohmann::json& data) {
    records.push_back({kAccounts, account,
                       nlohmann::json{{"event_id", "evt-" + std::to_string(++event)},
                                      {"event_type", type},
                                      {"aggregate_type", "Account"},
                                      {"aggregate_id", account},
                                      {"tenant_id", "DEFAULT"},
                                      {"user_id", "test-user"},
                                      {"occurred_at", "2026-11-2" + std::to_string(day) +
                                                          "T23:59:59.000Z"},
                                      {"event_data", data}}
                           .dump()});
  };
  for (int a = 0; a < 60; ++a) {
    const std::string account = "ACC-" + std::to_string(a);
    record("AccountOpened", account, 0,
           {{"customer_id", "CUST-" + std::to_string(a % 7)}, {"account_type", "checking"},
            {"currency", "EUR"}});
    for (std::uint64_t m = next(12); m > 0; --m) {
      const long cents = 1 + static_cast<long>(next(50000));
      const int day = static_cast<int>(next(5));
      const bool deposit = next(3) != 0;
      char amount[32];
      std::snprintf(amount, sizeof amount, "%ld.%02ld", cents / 100, cents % 100);
      record(deposit ? "FundsDeposited" : "FundsWithdrawn", account, day, {{"amount", amount}});
      auto& sums = expected[{account, "2026-11-2" + std::to_string(day)}];
      (deposit ? sums.first : sums.second) += cents;
    }
    if (next(5) == 0) record("AccountClosed", account, 4, nlohmann::json::object());
  }
  // Poison for both projections: a deposit without its amount.
  record("FundsDeposited", "ACC-1", 3, nlohmann::json::object());
  const std::size_t poison_offset_event = records.size();
  const std::size_t total = records.size();
  for (std::size_t i = 0; i < records.size(); i += 19) records.push_back(records[i]);  // re-sends
  produce(broker.bootstrap(), records);
  ASSERT_GT(poison_offset_event, 0U);

  std::string values;
  for (const auto& [key, sums] : expected) {
    values += std::string(values.empty() ? "" : ", ") + "('" + key.first + "', '" + key.second +
              "'::date, " + std::to_string(sums.first) + " / 100.0, " +
              std::to_string(sums.second) + " / 100.0)";
  }
  const std::string from_events = "SELECT * FROM (VALUES " + values +
                                  ") AS e(account_id, day, deposits, withdrawals)";
  const std::string view_rows =
      "SELECT account_id, day, deposits, withdrawals FROM account_activity.daily";
  const std::string balances = "SELECT tenant_id, account_id, balance FROM accounts.accounts";
  const std::string view_balances =
      "SELECT a.tenant_id, a.account_id, COALESCE(sum(d.deposits - d.withdrawals), 0) "
      "FROM accounts.accounts a LEFT JOIN account_activity.daily d "
      "ON d.tenant_id = a.tenant_id AND d.account_id = a.account_id GROUP BY 1, 2";
  auto differences = [&](const std::string& a, const std::string& b) {
    return queryValue(db.url(), "SELECT count(*) FROM (((" + a + ") EXCEPT (" + b + ")) UNION ALL ((" +
                                    b + ") EXCEPT (" + a + "))) t");
  };
  auto applied = [&](const std::string& key) {
    return queryValue(db.url(),
                      "SELECT count(*) FROM processed_events WHERE projection = '" + key + "'");
  };
  // Every event but the poison one is applied (ignored types too: the view skips them).
  const std::string good = std::to_string(total - 1);
  auto expectViewMatches = [&](const std::string& when) {
    EXPECT_EQ(differences(from_events, view_rows), "0") << when;
    EXPECT_EQ(differences(balances, view_balances), "0") << when;
    EXPECT_EQ(queryValue(db.url(), "SELECT count(*) FROM account_activity.daily"),
              std::to_string(expected.size()))
        << when;
  };

  ASSERT_TRUE(waitUntil([&] { return applied("accounts") == good && applied("account_activity") == good; },
                        120s))
      << applied("accounts") << " " << applied("account_activity") << "/" << good << "\n"
      << engine->log();
  expectViewMatches("after the mixed load");
  EXPECT_NE(queryValue(db.url(), "SELECT count(*) FROM accounts.accounts WHERE status = 'closed'"),
            "0");
  // The poison event: dead-lettered, its message naming the statement and its place in the log.
  const std::string error = queryValue(
      db.url(), "SELECT error FROM ultracore_dead_letters WHERE projection = 'account_activity'");
  EXPECT_NE(error.find("statement 1 of FundsDeposited (config/on/FundsDeposited) failed for "
                       "ultracore.accounts.events["),
            std::string::npos)
      << error;
  EXPECT_NE(error.find("required parameter :data.amount! is missing or null"), std::string::npos)
      << error;

  // A live rebuild into generation 2, switched when caught up.
  const std::string admin = "http://127.0.0.1:" + std::to_string(adminPort(*engine));
  auto [rebuild_status, rebuild_output] =
      runCtl(manifest, {"rebuild", "--admin-url", admin, "account_activity", "--plain"}, dir.path() / "rebuild.log",
             180s);
  ASSERT_EQ(rebuild_status, 0) << rebuild_output << engine->log();
  ASSERT_TRUE(waitUntil([&] { return applied("account_activity@g2") == good; }, 120s))
      << applied("account_activity@g2") << "\n" << engine->log();
  expectViewMatches("after a rebuild");

  // A replay in place (reset): the tables are emptied and built again from the log.
  auto [reset_status, reset_output] = runCtl(manifest, {"reset", "--admin-url", admin, "account_activity", "--yes"},
                                             dir.path() / "reset.log");
  ASSERT_EQ(reset_status, 0) << reset_output << engine->log();
  ASSERT_TRUE(waitUntil([&] { return applied("account_activity@g2") == good; }, 120s))
      << engine->log();
  expectViewMatches("after a replay");

  // Time travel (--until now) builds the same view into a schema of its own.
  auto [travel_status, travel_output] =
      runCtl(manifest, {"rebuild", "account_activity", "--until", "9999999999999", "--into",
                        "activity_audit"},
             dir.path() / "travel.log");
  ASSERT_EQ(travel_status, 0) << travel_output;
  EXPECT_EQ(differences(from_events, "SELECT account_id, day, deposits, withdrawals FROM "
                                     "activity_audit.daily"),
            "0");

  engine->signal(SIGTERM);
  EXPECT_EQ(engine->wait(60s), 0) << engine->log();
}

}  // namespace
}  // namespace ultracore::testing
