// Ids are scoped by tenant (issue 20 item 5, DESIGN.md "Read model"): in the customers,
// accounts and customer_summary projections, two tenants may each own id X, and an event of
// one tenant never changes another tenant's row. Version 1 of these tables was keyed by the
// id alone; setupSchema() re-keys them in place and keeps their rows.
//
// Before the fix: the second tenant's CustomerCreated/AccountOpened for an existing id was
// refused ("already exists"), and customer_summary, which had no tenant at all, let an event
// of tenant-b change tenant-a's summary.

#include <gtest/gtest.h>

#include "ultracore/sdk/testing/testing.h"

namespace kit = ultracore::sdk::testing;

namespace {

constexpr const char* kCustomers = "ultracore.customers.events";
constexpr const char* kAccounts = "ultracore.accounts.events";

nlohmann::json envelope(const std::string& event_id, const std::string& type,
                        const std::string& aggregate_id, const std::string& tenant,
                        const nlohmann::json& data = nlohmann::json::object()) {
  return {{"event_id", event_id},        {"event_type", type},
          {"aggregate_id", aggregate_id}, {"tenant_id", tenant},
          {"user_id", "test-user"},       {"occurred_at", "2026-11-26T12:00:00.000Z"},
          {"event_data", data}};
}

nlohmann::json person(const std::string& first, const std::string& email) {
  return {{"first_name", first}, {"last_name", "Same"}, {"email", email}};
}

nlohmann::json account(const std::string& customer, const std::string& currency = "EUR") {
  return {{"customer_id", customer}, {"account_type", "checking"}, {"currency", currency}};
}

/// Both tenants own CUST-1 and ACC-1; tenant-b's events touch only its own rows.
kit::EventLog twoTenantsOneId() {
  kit::EventLog log;
  log.add(kCustomers, envelope("c1", "CustomerCreated", "CUST-1", "tenant-a", person("Ann", "ann@a")));
  log.add(kAccounts, envelope("a1", "AccountOpened", "ACC-1", "tenant-a", account("CUST-1")));
  log.add(kAccounts, envelope("a2", "FundsDeposited", "ACC-1", "tenant-a", {{"amount", "10"}}));
  log.add(kCustomers, envelope("c2", "CustomerCreated", "CUST-1", "tenant-b", person("Bob", "bob@b")));
  log.add(kAccounts, envelope("a3", "AccountOpened", "ACC-1", "tenant-b", account("CUST-1", "USD")));
  log.add(kAccounts, envelope("a4", "FundsDeposited", "ACC-1", "tenant-b", {{"amount", "7.5"}}));
  log.add(kCustomers, envelope("c3", "CustomerUpdated", "CUST-1", "tenant-b", {{"email", "new@b"}}));
  log.add(kAccounts, envelope("a5", "AccountClosed", "ACC-1", "tenant-b"));
  return log;
}

class TenancyTest : public kit::ProjectionTest {
 protected:
  kit::ProjectionSource customers_ = kit::ProjectionSource::fromPlugin(CUSTOMERS_PLUGIN, "customers");
  kit::ProjectionSource accounts_ = kit::ProjectionSource::fromPlugin(ACCOUNTS_PLUGIN, "accounts");
  kit::ProjectionSource summary_ =
      kit::ProjectionSource::fromPlugin(CUSTOMER_SUMMARY_PLUGIN, "customer_summary");

  /// The events of `log` on `topic` only, in order.
  static std::vector<ultracore::sdk::Event> on(const kit::EventLog& log, const std::string& topic) {
    std::vector<ultracore::sdk::Event> out;
    for (const auto& event : log.events()) {
      if (event.topic() == topic) out.push_back(event);
    }
    return out;
  }

  /// The primary key's columns of {schema}.table, comma-separated.
  static std::string primaryKey(kit::ProjectionRun& run, const std::string& table) {
    return run.value(
        "SELECT string_agg(a.attname, ',' ORDER BY k.ord) FROM pg_constraint c "
        "CROSS JOIN LATERAL unnest(c.conkey) WITH ORDINALITY AS k(attnum, ord) "
        "JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum "
        "WHERE c.conrelid = ('{schema}.' || $1)::regclass AND c.contype = 'p'",
        {table});
  }
};

TEST_F(TenancyTest, TwoTenantsEachOwnACustomerOfOneId) {
  const auto log = twoTenantsOneId();
  kit::ProjectionRun run(databaseUrl(), customers_);
  ASSERT_TRUE(kit::succeeded(run.apply(on(log, kCustomers), 1)));
  EXPECT_EQ(run.value("SELECT string_agg(tenant_id || ':' || first_name || ':' || email || ':' || version, ' ' "
                      "ORDER BY tenant_id) FROM {schema}.customers WHERE customer_id = 'CUST-1'"),
            "tenant-a:Ann:ann@a:1 tenant-b:Bob:new@b:2");
  EXPECT_TRUE(kit::buildsDeterministically(databaseUrl(), customers_, on(log, kCustomers)));
}

TEST_F(TenancyTest, TwoTenantsEachOwnAnAccountOfOneId) {
  const auto log = twoTenantsOneId();
  kit::ProjectionRun run(databaseUrl(), accounts_);
  ASSERT_TRUE(kit::succeeded(run.apply(on(log, kAccounts))));
  EXPECT_EQ(run.value("SELECT string_agg(tenant_id || ':' || currency || ':' || balance || ':' || status, ' ' "
                      "ORDER BY tenant_id) FROM {schema}.accounts WHERE account_id = 'ACC-1'"),
            "tenant-a:EUR:10:open tenant-b:USD:7.5:closed");
  EXPECT_TRUE(kit::buildsDeterministically(databaseUrl(), accounts_, on(log, kAccounts)));
}

TEST_F(TenancyTest, TheSummaryCountsEachTenantsAccountsForItsOwnCustomer) {
  const auto log = twoTenantsOneId();
  kit::ProjectionRun run(databaseUrl(), summary_);
  ASSERT_TRUE(kit::succeeded(run.apply(log.events(), 3)));
  EXPECT_EQ(run.value("SELECT string_agg(tenant_id || ':' || name || ':' || open_accounts || ':' || balances, ' ' "
                      "ORDER BY tenant_id) FROM {schema}.customers WHERE customer_id = 'CUST-1'"),
            R"(tenant-a:Ann Same:1:{"EUR": 10} tenant-b:Bob Same:0:{"USD": 7.5})");
  EXPECT_TRUE(kit::buildsDeterministically(databaseUrl(), summary_, log.events()));
}

// An event of tenant-b for an id that only tenant-a owns is refused (poison for on_error) and
// changes nothing, in each projection.
TEST_F(TenancyTest, AnEventForAnotherTenantsIdIsRefusedAndChangesNothing) {
  kit::EventLog setup;
  setup.add(kCustomers, envelope("c1", "CustomerCreated", "CUST-1", "tenant-a", person("Ann", "ann@a")));
  setup.add(kAccounts, envelope("a1", "AccountOpened", "ACC-1", "tenant-a", account("CUST-1")));
  kit::EventLog hostile;
  hostile.add(kCustomers, envelope("x1", "CustomerUpdated", "CUST-1", "tenant-b", {{"email", "evil@b"}}));
  hostile.add(kAccounts, envelope("x2", "FundsDeposited", "ACC-1", "tenant-b", {{"amount", "99"}}));

  kit::ProjectionRun customers(databaseUrl(), customers_);
  ASSERT_TRUE(kit::succeeded(customers.apply(on(setup, kCustomers))));
  EXPECT_EQ(customers.apply(on(hostile, kCustomers)).code(), ultracore::sdk::StatusCode::kHandlerError);
  EXPECT_EQ(customers.value("SELECT string_agg(tenant_id || ':' || email, ' ') FROM {schema}.customers"),
            "tenant-a:ann@a");

  kit::ProjectionRun accounts(databaseUrl(), accounts_);
  ASSERT_TRUE(kit::succeeded(accounts.apply(on(setup, kAccounts))));
  EXPECT_EQ(accounts.apply(on(hostile, kAccounts)).code(), ultracore::sdk::StatusCode::kHandlerError);
  EXPECT_EQ(accounts.value("SELECT string_agg(tenant_id || ':' || balance, ' ') FROM {schema}.accounts"),
            "tenant-a:0");

  kit::ProjectionRun summary(databaseUrl(), summary_);
  ASSERT_TRUE(kit::succeeded(summary.apply(setup.events())));
  EXPECT_EQ(summary.apply(on(hostile, kAccounts)).code(), ultracore::sdk::StatusCode::kHandlerError);
  EXPECT_EQ(summary.value("SELECT string_agg(tenant_id || ':' || balances, ' ') FROM {schema}.customers"),
            R"(tenant-a:{"EUR": 0})");
}

// Tables of schema version 1 (keyed by the id alone) are re-keyed by setupSchema() on the next
// start; their rows stay, and a second tenant can then own the same id.
TEST_F(TenancyTest, VersionOneTablesAreRekeyedInPlaceAndKeepTheirRows) {
  kit::EventLog later;
  later.add(kCustomers, envelope("c9", "CustomerCreated", "CUST-OLD", "tenant-b", person("New", "n@b")));
  later.add(kAccounts, envelope("a9", "AccountOpened", "ACC-OLD", "tenant-b", account("CUST-OLD")));
  later.add(kAccounts, envelope("a10", "FundsDeposited", "ACC-OLD", "tenant-a", {{"amount", "1"}}));

  kit::ProjectionRun customers(databaseUrl(), customers_);
  customers.query(
      "DROP TABLE {schema}.customers; CREATE TABLE {schema}.customers (customer_id text PRIMARY KEY, "
      "tenant_id text NOT NULL DEFAULT 'DEFAULT', first_name text NOT NULL, last_name text NOT NULL, "
      "email text NOT NULL, phone text, date_of_birth date, status text NOT NULL DEFAULT 'active', "
      "version bigint NOT NULL, created_at timestamptz NOT NULL, updated_at timestamptz NOT NULL); "
      "CREATE INDEX customers_tenant_idx ON {schema}.customers (tenant_id, customer_id); "
      "INSERT INTO {schema}.customers VALUES ('CUST-OLD', 'tenant-a', 'Old', 'Row', 'o@a', NULL, NULL, "
      "'active', 3, now(), now())");
  customers.restart();
  EXPECT_EQ(primaryKey(customers, "customers"), "tenant_id,customer_id");
  ASSERT_TRUE(kit::succeeded(customers.apply(on(later, kCustomers))));
  EXPECT_EQ(customers.value("SELECT string_agg(tenant_id || ':' || email || ':' || version, ' ' ORDER BY tenant_id) "
                            "FROM {schema}.customers"),
            "tenant-a:o@a:3 tenant-b:n@b:1");
  customers.restart();  // idempotent
  EXPECT_EQ(primaryKey(customers, "customers"), "tenant_id,customer_id");

  kit::ProjectionRun accounts(databaseUrl(), accounts_);
  accounts.query(
      "DROP TABLE {schema}.accounts; CREATE TABLE {schema}.accounts (account_id text PRIMARY KEY, "
      "tenant_id text NOT NULL DEFAULT 'DEFAULT', customer_id text NOT NULL, account_type text NOT NULL, "
      "currency text NOT NULL, balance numeric NOT NULL DEFAULT 0, status text NOT NULL DEFAULT 'open', "
      "version bigint NOT NULL, opened_at timestamptz NOT NULL, updated_at timestamptz NOT NULL); "
      "CREATE INDEX accounts_customer_idx ON {schema}.accounts (customer_id); "
      "INSERT INTO {schema}.accounts VALUES ('ACC-OLD', 'tenant-a', 'CUST-OLD', 'checking', 'EUR', 5, "
      "'open', 1, now(), now())");
  accounts.restart();
  EXPECT_EQ(primaryKey(accounts, "accounts"), "tenant_id,account_id");
  ASSERT_TRUE(kit::succeeded(accounts.apply(on(later, kAccounts))));
  EXPECT_EQ(accounts.value("SELECT string_agg(tenant_id || ':' || balance, ' ' ORDER BY tenant_id) "
                           "FROM {schema}.accounts"),
            "tenant-a:6 tenant-b:0");

  kit::ProjectionRun summary(databaseUrl(), summary_);
  summary.query(
      "DROP TABLE {schema}.customers, {schema}.accounts; "
      "CREATE TABLE {schema}.customers (customer_id text PRIMARY KEY, first_name text, last_name text, "
      "name text GENERATED ALWAYS AS (first_name || ' ' || last_name) STORED, status text, "
      "open_accounts integer NOT NULL DEFAULT 0, balances jsonb NOT NULL DEFAULT '{}'::jsonb); "
      "CREATE TABLE {schema}.accounts (account_id text PRIMARY KEY, customer_id text NOT NULL, "
      "currency text NOT NULL, balance numeric NOT NULL DEFAULT 0, status text NOT NULL); "
      "CREATE INDEX accounts_customer_idx ON {schema}.accounts (customer_id); "
      "INSERT INTO {schema}.customers (customer_id, first_name, last_name, status, open_accounts, balances) "
      "VALUES ('CUST-OLD', 'Old', 'Row', 'active', 1, '{\"EUR\": 5}'); "
      "INSERT INTO {schema}.accounts VALUES ('ACC-OLD', 'CUST-OLD', 'EUR', 5, 'open')");
  summary.restart();
  EXPECT_EQ(primaryKey(summary, "customers"), "tenant_id,customer_id");
  EXPECT_EQ(primaryKey(summary, "accounts"), "tenant_id,account_id");
  bool warned = false;
  for (const auto& line : summary.logs()) warned = warned || line.find("ultracore-ctl rebuild") != std::string::npos;
  EXPECT_TRUE(warned) << "the version 1 rows were given tenant DEFAULT without a warning";
  kit::EventLog after;
  after.add(kAccounts, envelope("a11", "FundsDeposited", "ACC-OLD", "DEFAULT", {{"amount", "1"}}));
  after.add(kCustomers, envelope("c11", "CustomerCreated", "CUST-OLD", "tenant-b", person("New", "n@b")));
  ASSERT_TRUE(kit::succeeded(summary.apply(after.events())));
  EXPECT_EQ(summary.value("SELECT string_agg(tenant_id || ':' || name || ':' || balances, ' ' ORDER BY tenant_id) "
                          "FROM {schema}.customers"),
            R"(DEFAULT:Old Row:{"EUR": 6} tenant-b:New Same:{})");
}

}  // namespace
