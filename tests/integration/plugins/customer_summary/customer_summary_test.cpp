// customer_summary with the plugin test kit: no Kafka, a throwaway schema.

#include <gtest/gtest.h>

#include "ultracore/sdk/testing/testing.h"

namespace kit = ultracore::sdk::testing;

namespace {

constexpr const char* kCustomers = "ultracore.customers.events";
constexpr const char* kAccounts = "ultracore.accounts.events";

class CustomerSummaryKitTest : public kit::ProjectionTest {
 protected:
  kit::ProjectionSource source_ =
      kit::ProjectionSource::fromPlugin(CUSTOMER_SUMMARY_PLUGIN, "customer_summary");

  static kit::EventLog mixedLog() {
    kit::EventLog log;
    // The account arrives before its customer: the topics are not ordered with each other.
    log.add(kAccounts, "a1", "AccountOpened", "ACC-1",
            {{"customer_id", "CUST-1"}, {"account_type", "checking"}, {"currency", "EUR"}});
    log.add(kAccounts, "a2", "FundsDeposited", "ACC-1", {{"amount", "100.10"}});
    log.add(kCustomers, "c1", "CustomerCreated", "CUST-1",
            {{"first_name", "Ada"}, {"last_name", "Lovelace"}, {"email", "ada@example.com"}});
    log.add(kAccounts, "a3", "AccountOpened", "ACC-2",
            {{"customer_id", "CUST-1"}, {"account_type", "savings"}, {"currency", "EUR"}});
    log.add(kAccounts, "a4", "FundsDeposited", "ACC-2", {{"amount", 0.2}});
    log.add(kAccounts, "a5", "AccountOpened", "ACC-3",
            {{"customer_id", "CUST-1"}, {"account_type", "checking"}, {"currency", "USD"}});
    log.add(kAccounts, "a6", "FundsDeposited", "ACC-3", {{"amount", "5"}});
    log.add(kAccounts, "a7", "FundsWithdrawn", "ACC-3", {{"amount", "1.25"}});
    log.add(kAccounts, "a8", "AccountClosed", "ACC-2");
    log.add(kCustomers, "c2", "CustomerUpdated", "CUST-1", {{"last_name", "King"}});
    log.add(kCustomers, "c3", "CustomerCreated", "CUST-2",
            {{"first_name", "Bo"}, {"last_name", "Nil"}, {"email", "bo@example.com"}});
    log.add(kCustomers, "c4", "CustomerCreated", "CUST-3",
            {{"first_name", "Cy"}, {"last_name", "Gone"}, {"email", "cy@example.com"}});
    log.add(kCustomers, "c5", "CustomerDeleted", "CUST-3");
    return log;
  }
};

TEST_F(CustomerSummaryKitTest, SummarisesNamesOpenAccountsAndBalancesPerCurrency) {
  kit::ProjectionRun run(databaseUrl(), source_);
  ASSERT_TRUE(kit::succeeded(run.apply(mixedLog().events(), 4)));
  EXPECT_EQ(run.value("SELECT name || '|' || status || '|' || open_accounts || '|' || balances "
                      "FROM {schema}.customers WHERE customer_id = 'CUST-1'"),
            R"(Ada King|active|2|{"EUR": 100.30, "USD": 3.75})");
  EXPECT_EQ(run.value("SELECT name || '|' || open_accounts || '|' || balances "
                      "FROM {schema}.customers WHERE customer_id = 'CUST-2'"),
            "Bo Nil|0|{}");
  EXPECT_EQ(run.value("SELECT status FROM {schema}.customers WHERE customer_id = 'CUST-3'"),
            "deleted");
  EXPECT_EQ(run.value("SELECT count(*) FROM {schema}.customers"), "3");
}

TEST_F(CustomerSummaryKitTest, ACustomerKnownOnlyFromItsAccountsHasNoNameYet) {
  kit::EventLog log;
  log.add(kAccounts, "a1", "AccountOpened", "ACC-9",
          {{"customer_id", "CUST-9"}, {"account_type", "checking"}, {"currency", "GBP"}});
  kit::ProjectionRun run(databaseUrl(), source_);
  ASSERT_TRUE(kit::succeeded(run.apply(log.events())));
  EXPECT_EQ(run.value("SELECT coalesce(name, '<null>') || '|' || open_accounts || '|' || balances "
                      "FROM {schema}.customers WHERE customer_id = 'CUST-9'"),
            R"(<null>|1|{"GBP": 0})");
}

TEST_F(CustomerSummaryKitTest, RejectsBadEvents) {
  for (const auto& [type, data] : std::vector<std::pair<std::string, nlohmann::json>>{
           {"FundsDeposited", {{"amount", "-3"}}},
           {"AccountOpened", {{"currency", "EUR"}}},
           {"SomethingElse", nlohmann::json::object()}}) {
    kit::EventLog log;
    log.add(kAccounts, "x", type, "ACC-X", data);
    kit::ProjectionRun run(databaseUrl(), source_);
    EXPECT_FALSE(run.apply(log.events()).isOk()) << type;
  }
  kit::EventLog unknown;
  unknown.add(kAccounts, "y", "FundsDeposited", "ACC-NEVER-OPENED", {{"amount", "1"}});
  kit::ProjectionRun run(databaseUrl(), source_);
  const auto status = run.apply(unknown.events());
  EXPECT_EQ(status.code(), ultracore::sdk::StatusCode::kHandlerError);
  EXPECT_NE(status.message().find("ACC-NEVER-OPENED"), std::string::npos) << status.message();
}

TEST_F(CustomerSummaryKitTest, IsDeterministic) {
  EXPECT_TRUE(kit::buildsDeterministically(databaseUrl(), source_, mixedLog().events()));
}

}  // namespace
