// Every kind of poison event under every on_error policy: invalid JSON, an envelope without
// aggregate_id, an unknown event type, FundsDeposited with amount "abc", a deposit to an
// unknown account. Each ends where its policy says, with topic/partition/offset recorded; the
// events after it are applied (fail: the projection stops there); the other projection is
// untouched.

#include <csignal>

#include <gtest/gtest.h>

#include "engine_harness.h"

namespace ultracore::testing {
namespace {

using namespace std::chrono_literals;

constexpr const char* kAccounts = "ultracore.accounts.events";
constexpr const char* kCustomers = "ultracore.customers.events";

std::string opened(const std::string& id, const std::string& account) {
  return envelope(id, "AccountOpened", account,
                  {{"customer_id", "C1"}, {"account_type", "checking"}, {"currency", "EUR"}});
}
std::string deposit(const std::string& id, const std::string& account, const nlohmann::json& amount) {
  return envelope(id, "FundsDeposited", account, {{"amount", amount}});
}

/// The stream, all in partition 0 so that offsets are known. Poison at offsets 3..7.
std::vector<Record> stream() {
  nlohmann::json no_aggregate = nlohmann::json::parse(deposit("p2", "X", "1"));
  no_aggregate.erase("aggregate_id");
  return {
      {kAccounts, "ACC-1", opened("o1", "ACC-1"), 0},                                 // 0
      {kAccounts, "ACC-3", opened("o3", "ACC-3"), 0},                                 // 1
      {kAccounts, "ACC-2", opened("o2", "ACC-2"), 0},                                 // 2
      {kAccounts, "K-BAD", "{not json", 0},                                           // 3
      {kAccounts, "K-NOAGG", no_aggregate.dump(), 0},                                 // 4
      {kAccounts, "ACC-2", envelope("p3", "AccountFrozen", "ACC-2", {}), 0},          // 5
      {kAccounts, "ACC-3", deposit("p4", "ACC-3", "abc"), 0},                         // 6
      {kAccounts, "NOPE", deposit("p5", "NOPE", "1"), 0},                             // 7
      {kAccounts, "ACC-1", deposit("g1", "ACC-1", "10.00"), 0},                       // 8
      {kAccounts, "ACC-3", deposit("g2", "ACC-3", "7.00"), 0},                        // 9
      {kAccounts, "ACC-2", deposit("g3", "ACC-2", "2.00"), 0},                        // 10
      {kCustomers, "C1", envelope("c1", "CustomerCreated", "C1",
                                  {{"first_name", "A"}, {"last_name", "B"}, {"email", "a@b"}})},
  };
}

const char* kExpectedPoison =
    "3:invalid_event,4:invalid_event,5:invalid_event,6:invalid_event,7:handler_error";

class PolicyTest : public ::testing::TestWithParam<std::string> {
 protected:
  PolicyTest() : broker_(DevBroker::Options{1, 2, {kAccounts, kCustomers}}) {}
  std::string q(const std::string& sql) { return queryValue(db_.url(), sql); }

  void run(const std::function<bool()>& settled) {
    auto manifest = writeManifest(dir_, broker_.bootstrap(), db_.url(),
                                  "  - { name: accounts, plugin: accounts, topics: [" +
                                      std::string(kAccounts) + "], on_error: " + GetParam() +
                                      ", batch: { max_events: 100, max_wait_ms: 200 } }\n"
                                      "  - { name: customers, plugin: customers, topics: [" +
                                      kCustomers + "], on_error: fail }\n");
    engine_ = startEngine(manifest, dir_.path() / "engine.log");
    produce(broker_.bootstrap(), stream());
    ASSERT_TRUE(waitUntil(settled, 60s)) << engine_->log();
    // The other projection is untouched by the accounts' poison.
    ASSERT_TRUE(waitUntil([&] { return q("SELECT count(*) FROM customers.customers") == "1"; }, 60s));
    EXPECT_EQ(q("SELECT state FROM ultracore_projection_status WHERE projection = 'customers'"), "running");
    EXPECT_EQ(q("SELECT count(*) FROM ultracore_dead_letters WHERE projection = 'customers'"), "0");
    EXPECT_EQ(q("SELECT count(*) FROM ultracore_skipped_events WHERE projection = 'customers'"), "0");
    EXPECT_EQ(q("SELECT count(*) FROM processed_events WHERE projection = 'customers'"), "1");
  }
  void TearDown() override {
    if (!engine_) return;
    engine_->signal(SIGTERM);
    EXPECT_EQ(engine_->wait(30s), 0) << engine_->log();
  }
  std::string balances() {
    return q("SELECT string_agg(account_id || '=' || balance, ',' ORDER BY account_id) FROM accounts.accounts");
  }
  std::string nextOffset() {
    return q("SELECT next_offset FROM ultracore_offsets WHERE projection = 'accounts' AND partition = 0");
  }

  DevBroker broker_;
  TestDatabase db_;
  TempDir dir_;
  std::unique_ptr<Subprocess> engine_;
};

TEST_P(PolicyTest, EachPoisonEndsWhereThePolicySays) {
  const std::string policy = GetParam();
  if (policy == "fail") {
    run([&] { return q("SELECT state FROM ultracore_projection_status WHERE projection = 'accounts'") == "failed"; });
    const auto detail = q("SELECT detail FROM ultracore_projection_status WHERE projection = 'accounts'");
    EXPECT_NE(detail.find("ultracore.accounts.events[0]@3"), std::string::npos) << detail;
    EXPECT_EQ(nextOffset(), "3");
    EXPECT_EQ(balances(), "ACC-1=0,ACC-2=0,ACC-3=0");
    EXPECT_EQ(q("SELECT count(*) FROM ultracore_dead_letters"), "0");
    return;
  }
  run([&] { return nextOffset() == "11"; });
  if (policy == "skip") {
    EXPECT_EQ(q("SELECT string_agg(\"offset\" || ':' || error_code, ',' ORDER BY \"offset\") "
                "FROM ultracore_skipped_events WHERE projection = 'accounts' "
                "AND topic = 'ultracore.accounts.events' AND partition = 0"),
              kExpectedPoison);
    EXPECT_EQ(q("SELECT count(*) FROM ultracore_dead_letters"), "0");
  } else {
    EXPECT_EQ(q("SELECT string_agg(\"offset\" || ':' || error_code || ':' || policy || ':' || status, ',' "
                "ORDER BY \"offset\") FROM ultracore_dead_letters WHERE projection = 'accounts' "
                "AND topic = 'ultracore.accounts.events' AND partition = 0"),
              "3:invalid_event:" + policy + ":open,4:invalid_event:" + policy +
                  ":open,5:invalid_event:" + policy + ":open,6:invalid_event:" + policy +
                  ":open,7:handler_error:" + policy + ":open");
    // The whole record is kept.
    EXPECT_EQ(q("SELECT convert_from(record_value, 'UTF8') || '|' || convert_from(record_key, 'UTF8') "
                "FROM ultracore_dead_letters WHERE \"offset\" = 3"),
              "{not json|K-BAD");
    EXPECT_EQ(q("SELECT count(*) FROM ultracore_skipped_events"), "0");
  }
  if (policy == "park") {
    // Poison parks its aggregate (by key when the envelope did not parse); later events of a
    // parked aggregate wait; the others flow.
    EXPECT_EQ(q("SELECT string_agg(aggregate_id, ',' ORDER BY aggregate_id) FROM ultracore_parked_aggregates"),
              "ACC-2,ACC-3,K-BAD,K-NOAGG,NOPE");
    EXPECT_EQ(q("SELECT string_agg(\"offset\" || ':' || aggregate_id || ':' || event_id, ',' ORDER BY id) "
                "FROM ultracore_parked_events"),
              "9:ACC-3:g2,10:ACC-2:g3");
    EXPECT_EQ(balances(), "ACC-1=10.00,ACC-2=0,ACC-3=0");
    EXPECT_EQ(q("SELECT count(*) FROM processed_events WHERE projection = 'accounts'"), "4");
  } else {
    EXPECT_EQ(balances(), "ACC-1=10.00,ACC-2=2.00,ACC-3=7.00");
    EXPECT_EQ(q("SELECT count(*) FROM processed_events WHERE projection = 'accounts'"), "6");
  }
  EXPECT_EQ(q("SELECT state FROM ultracore_projection_status WHERE projection = 'accounts'"), "running");
}

INSTANTIATE_TEST_SUITE_P(Policies, PolicyTest, ::testing::Values("fail", "skip", "dead_letter", "park"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace ultracore::testing
