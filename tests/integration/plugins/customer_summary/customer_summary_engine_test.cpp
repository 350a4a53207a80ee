// customer_summary in the engine, next to the customers and accounts projections, after a
// mixed load on both topics: its table must equal a SQL aggregate over customers.customers
// and accounts.accounts.

#include <csignal>
#include <fstream>

#include <gtest/gtest.h>

#include "engine_harness.h"

namespace ultracore::testing {
namespace {

using namespace std::chrono_literals;

constexpr const char* kCustomers = "ultracore.customers.events";
constexpr const char* kAccounts = "ultracore.accounts.events";

/// The same summary, computed from the two domain read models.
constexpr const char* kExpected =
    "SELECT c.customer_id, c.first_name, c.last_name, c.status, "
    " (SELECT count(*) FROM accounts.accounts a WHERE a.customer_id = c.customer_id "
    "  AND a.status = 'open')::int AS open_accounts, "
    " COALESCE((SELECT jsonb_object_agg(currency, total) FROM (SELECT currency, sum(balance) "
    "  AS total FROM accounts.accounts a WHERE a.customer_id = c.customer_id GROUP BY currency) "
    "  AS p), '{}'::jsonb) AS balances "
    "FROM customers.customers c";
constexpr const char* kActual =
    "SELECT customer_id, first_name, last_name, status, open_accounts, balances "
    "FROM customer_summary.customers";

TEST(CustomerSummaryEngineTest, MatchesAnAggregateOverCustomersAndAccountsAfterAMixedLoad) {
  DevBroker broker(DevBroker::Options{1, 4, {kCustomers, kAccounts}});
  TestDatabase db;
  TempDir dir;
  const auto manifest = dir.path() / "projections.yaml";
  {
    std::ofstream out(manifest);
    out << "kafka:\n  bootstrap.servers: " << broker.bootstrap()
        << "\n  session.timeout.ms: 3000\n  heartbeat.interval.ms: 500\n"
        << "postgres:\n  url: " << db.url() << "\napi:\n  listen: 127.0.0.1:0\nadmin:\n  listen: 127.0.0.1:0\nplugins:\n";
    for (const char* plugin : {"customers", "accounts", "customer_summary"}) {
      out << "  - { name: " << plugin << ", library: "
          << (binaryDir() / "plugins" / plugin / ("libultracore_" + std::string(plugin) + ".so")).string()
          << " }\n";
    }
    out << "projections:\n"
        << "  - { name: customers, plugin: customers, topics: [" << kCustomers << "] }\n"
        << "  - { name: accounts, plugin: accounts, topics: [" << kAccounts << "] }\n"
        << "  - name: customer_summary\n    plugin: customer_summary\n"
        << "    topics: [" << kCustomers << ", " << kAccounts << "]\n"
        << "    batch: { max_events: 37, max_wait_ms: 5 }\n";
  }
  auto engine = startEngine(manifest, dir.path() / "engine.log");
  ASSERT_TRUE(waitForEngineRunning(*engine)) << engine->log();

  // A deterministic pseudo-random mixed load: accounts often before their customers.
  std::uint64_t seed = 42;
  auto next = [&seed](std::uint64_t bound) {
    seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
    return (seed >> 33) % bound;
  };
  const char* currencies[] = {"EUR", "USD", "GBP"};
  std::vector<Record> records;
  std::size_t customer_events = 0, account_events = 0;
  int event = 0;
  auto id = [&event] { return "evt-" + std::to_string(++event); };
  for (int c = 0; c < 40; ++c) {
    const std::string customer = "CUST-" + std::to_string(c);
    std::vector<Record> customer_records{
        {kCustomers, customer,
         envelope(id(), "CustomerCreated", customer,
                  {{"first_name", "F" + std::to_string(c)}, {"last_name", "L"},
                   {"email", customer + "@example.com"}})}};
    if (next(4) == 0) {
      customer_records.push_back({kCustomers, customer,
                                  envelope(id(), "CustomerUpdated", customer,
                                           {{"last_name", "Renamed" + std::to_string(c)}})});
    }
    if (next(10) == 0) {
      customer_records.push_back(
          {kCustomers, customer, envelope(id(), "CustomerDeleted", customer, {})});
    }
    std::vector<Record> account_records;
    const auto accounts = next(4);
    for (std::uint64_t a = 0; a < accounts; ++a) {
      const std::string account = "ACC-" + std::to_string(c) + "-" + std::to_string(a);
      account_records.push_back(
          {kAccounts, account,
           envelope(id(), "AccountOpened", account,
                    {{"customer_id", customer}, {"account_type", "checking"},
                     {"currency", currencies[next(3)]}})});
      for (std::uint64_t m = next(6); m > 0; --m) {
        const std::string amount = std::to_string(1 + next(500)) + "." + std::to_string(next(10)) +
                                   std::to_string(next(10));
        account_records.push_back({kAccounts, account,
                                   envelope(id(), next(3) == 0 ? "FundsWithdrawn" : "FundsDeposited",
                                            account, {{"amount", amount}})});
      }
      if (next(5) == 0) {
        account_records.push_back(
            {kAccounts, account, envelope(id(), "AccountClosed", account, {})});
      }
    }
    customer_events += customer_records.size();
    account_events += account_records.size();
    // Half the customers' accounts are produced before the customer itself.
    if (c % 2 == 0) std::swap(customer_records, account_records);
    records.insert(records.end(), customer_records.begin(), customer_records.end());
    records.insert(records.end(), account_records.begin(), account_records.end());
  }
  // Producer retries: a few records sent twice (applied once).
  for (std::size_t i = 0; i < records.size(); i += 17) records.push_back(records[i]);
  produce(broker.bootstrap(), records);

  auto processed = [&](const std::string& projection) {
    return queryValue(db.url(),
                      "SELECT count(*) FROM processed_events WHERE projection = '" + projection + "'");
  };
  ASSERT_TRUE(waitUntil(
      [&] {
        return processed("customers") == std::to_string(customer_events) &&
               processed("accounts") == std::to_string(account_events) &&
               processed("customer_summary") == std::to_string(customer_events + account_events);
      },
      120s))
      << "customers " << processed("customers") << "/" << customer_events << ", accounts "
      << processed("accounts") << "/" << account_events << ", customer_summary "
      << processed("customer_summary") << "\n"
      << engine->log();

  auto expectSummaryMatches = [&](const std::string& when) {
    EXPECT_EQ(queryValue(db.url(), "SELECT count(*) FROM customer_summary.customers"), "40") << when;
    EXPECT_EQ(queryValue(db.url(), std::string("SELECT count(*) FROM ((") + kExpected +
                                       ") EXCEPT (" + kActual + ")) t"),
              "0")
        << when;
    EXPECT_EQ(queryValue(db.url(), std::string("SELECT count(*) FROM ((") + kActual +
                                       ") EXCEPT (" + kExpected + ")) t"),
              "0")
        << when;
  };
  expectSummaryMatches("after the mixed load");
  // The load is not trivial: several currencies, closed accounts, customers without accounts.
  EXPECT_NE(queryValue(db.url(), "SELECT count(*) FROM customer_summary.customers "
                                 "WHERE jsonb_typeof(balances) = 'object' AND balances <> '{}'"),
            "0");
  EXPECT_NE(queryValue(db.url(), "SELECT count(*) FROM accounts.accounts WHERE status = 'closed'"),
            "0");
  EXPECT_EQ(queryValue(db.url(), "SELECT count(*) FROM ultracore_dead_letters"), "0");


  // Rebuild either read model from the log (the README's manual replay: empty its tables,
  // forget what it applied, rewind its offsets), then the summary must match again.
  for (const auto& [projection, table] : std::vector<std::pair<std::string, std::string>>{
           {"accounts", "accounts.accounts"},
           {"customer_summary", "customer_summary.customers, customer_summary.accounts"}}) {
    engine->signal(SIGTERM);
    ASSERT_EQ(engine->wait(60s), 0) << engine->log();
    queryValue(db.url(), "TRUNCATE " + table +
                             "; DELETE FROM processed_events WHERE projection = '" + projection +
                             "'; UPDATE ultracore_offsets SET next_offset = -2 WHERE projection = '" +
                             projection + "'");
    ASSERT_EQ(processed(projection), "0");
    engine = startEngine(manifest, dir.path() / ("engine-rebuild-" + projection + ".log"));
    ASSERT_TRUE(waitUntil(
        [&] {
          return processed("accounts") == std::to_string(account_events) &&
                 processed("customer_summary") == std::to_string(customer_events + account_events);
        },
        120s))
        << engine->log();
    expectSummaryMatches("after rebuilding " + projection);
  }

  engine->signal(SIGTERM);
  EXPECT_EQ(engine->wait(60s), 0) << engine->log();
}

}  // namespace
}  // namespace ultracore::testing
