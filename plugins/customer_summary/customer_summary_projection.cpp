// customer_summary: one row per customer with the name, the number of open accounts and the
// total balance per currency, built from BOTH ultracore.customers.events and
// ultracore.accounts.events (docs/PLUGINS.md walks through it).
//
// Kafka orders events per aggregate only, so across the two topics anything goes: an account
// may be opened before its customer's CustomerCreated arrives. Account events after
// AccountOpened carry only the account id, so the projection keeps its own account ->
// customer map with each account's balance (`{schema}.accounts`) and recomputes the
// summaries of the customers a batch touched from that table. Every row is therefore a
// function of the events applied so far, whatever the interleaving or batch boundaries.
// Ids are scoped by tenant: every key is (tenant_id, id), and an account counts only for
// its own tenant's customer of that id.

#include <map>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "ultracore/sdk/sdk.h"

namespace ultracore::plugins::customer_summary {
namespace {

using sdk::Event;
using sdk::Params;
using sdk::Status;
using sdk::Value;

/// What one batch does to one customer's name and status.
struct CustomerChange {
  Value first_name, last_name;
  bool first_touched = false, last_touched = false;
  Value status;  ///< null: unchanged
};

/// What one batch does to one account (folded in log order, like the accounts plugin).
struct AccountChange {
  bool opened = false;
  std::string customer_id, currency;
  std::vector<std::string> amounts;  ///< signed decimal literals
  Value status;
};

std::string arrayLiteral(const std::vector<std::string>& decimals) {
  std::string out = "{";  // validated decimal literals: no quoting needed
  for (std::size_t i = 0; i < decimals.size(); ++i) out += (i ? "," : "") + decimals[i];
  return out + "}";
}

Status setName(const Event& event, const char* field, bool required, Value& value,
               bool& touched) {
  if (required) {
    auto text = sdk::requiredString(event, field);
    if (!text) return text.status();
    value = text.value();
    touched = true;
  } else if (sdk::hasField(event, field)) {
    auto text = sdk::optionalString(event, field);
    if (!text) return text.status();
    value = text.value();
    touched = true;
  }
  return Status::ok();
}

/// A customer or an account: (tenant_id, id). Ids are scoped by tenant.
using Key = std::pair<std::string, std::string>;

/// "<problem>: 'A', 'B'" for the (tenant, id) rows (columns 0 and 1) of `sent` that
/// `returned` (same two columns first) lacks.
std::string missing(const std::vector<Params>& sent, const sdk::Rows& returned,
                    const std::string& problem) {
  std::set<std::pair<Value, Value>> seen;
  for (const auto& row : returned.rows) seen.emplace(row[0], row[1]);
  std::string out = problem + ":";
  for (const auto& row : sent) {
    if (seen.count({row[0], row[1]}) == 0) out += " '" + row[1].value_or("") + "'";
  }
  return out;
}

class CustomerSummaryProjection final : public sdk::Projection {
 public:
  explicit CustomerSummaryProjection(const sdk::ProjectionContext& context)
      : logger_(context.logger), name_(context.projection_name) {}

  // 2: both tables keyed by (tenant_id, id), so that two tenants may each have an id X.
  int schemaVersion() const override { return 2; }

  Status setupSchema(sdk::Writer& db) override {
    if (Status s = db.exec(
            "CREATE TABLE IF NOT EXISTS {schema}.customers ("
            " tenant_id     text NOT NULL,"
            " customer_id   text NOT NULL,"
            " first_name    text,"  // NULL until the customer's CustomerCreated arrives
            " last_name     text,"
            " name          text GENERATED ALWAYS AS (first_name || ' ' || last_name) STORED,"
            " status        text CHECK (status IN ('active', 'deleted')),"
            " open_accounts integer NOT NULL DEFAULT 0,"
            " balances      jsonb NOT NULL DEFAULT '{}'::jsonb,"  // {"EUR": 100.25}, exact
            " PRIMARY KEY (tenant_id, customer_id));"
            "CREATE TABLE IF NOT EXISTS {schema}.accounts ("
            " tenant_id   text NOT NULL,"
            " account_id  text NOT NULL,"
            " customer_id text NOT NULL,"
            " currency    text NOT NULL,"
            " balance     numeric NOT NULL DEFAULT 0,"
            " status      text NOT NULL CHECK (status IN ('open', 'closed')),"
            " PRIMARY KEY (tenant_id, account_id));"
            // Version 1 had no tenant_id: its rows get DEFAULT (see the warning below).
            "ALTER TABLE {schema}.customers ADD COLUMN IF NOT EXISTS tenant_id text NOT NULL "
            "DEFAULT 'DEFAULT';"
            "ALTER TABLE {schema}.customers ALTER COLUMN tenant_id DROP DEFAULT;"
            "ALTER TABLE {schema}.accounts ADD COLUMN IF NOT EXISTS tenant_id text NOT NULL "
            "DEFAULT 'DEFAULT';"
            "ALTER TABLE {schema}.accounts ALTER COLUMN tenant_id DROP DEFAULT;"
            "DROP INDEX IF EXISTS {schema}.accounts_customer_idx;"
            "CREATE INDEX IF NOT EXISTS accounts_tenant_customer_idx ON {schema}.accounts "
            "(tenant_id, customer_id)");
        !s) {
      return s;
    }
    bool customers_rekeyed = false, accounts_rekeyed = false;
    if (Status s = sdk::ensurePrimaryKey(db, "customers", {"tenant_id", "customer_id"},
                                         customers_rekeyed);
        !s) {
      return s;
    }
    if (Status s = sdk::ensurePrimaryKey(db, "accounts", {"tenant_id", "account_id"},
                                         accounts_rekeyed);
        !s) {
      return s;
    }
    if (customers_rekeyed || accounts_rekeyed) {
      auto rows = db.query("SELECT (SELECT count(*) FROM {schema}.customers) + "
                           "(SELECT count(*) FROM {schema}.accounts)");
      if (!rows) return rows.status();
      if (rows->rows[0][0].value_or("0") != "0" && logger_ != nullptr) {
        // Version 1's rows do not say their tenant: right for a one-tenant deployment only.
        logger_->warn("projection '" + name_ + "': schema '" + db.schema() +
                      "' was keyed by id alone (schema version 1); its existing rows were "
                      "given tenant DEFAULT. If events of other tenants were applied, rebuild it: "
                      "ultracore-ctl rebuild " + name_);
      }
    }
    return Status::ok();
  }

  Status apply(std::span<const Event> events, sdk::Writer& db) override {
    std::map<Key, CustomerChange> customers;
    std::vector<Key> customer_order;
    std::map<Key, AccountChange> accounts;
    std::vector<Key> account_order;

    for (const Event& event : events) {
      const std::string& type = event.eventType();
      const Key key{event.tenantId(), event.aggregateId()};
      if (type == "CustomerCreated" || type == "CustomerUpdated" || type == "CustomerDeleted") {
        auto [it, inserted] = customers.try_emplace(key);
        if (inserted) customer_order.push_back(key);
        CustomerChange& c = it->second;
        const bool created = type == "CustomerCreated";
        if (type == "CustomerDeleted") {
          c.status = "deleted";
          continue;
        }
        if (created) c.status = "active";
        if (Status s = setName(event, "first_name", created, c.first_name, c.first_touched); !s)
          return s;
        if (Status s = setName(event, "last_name", created, c.last_name, c.last_touched); !s)
          return s;
      } else if (type == "AccountOpened" || type == "FundsDeposited" ||
                 type == "FundsWithdrawn" || type == "AccountClosed") {
        auto [it, inserted] = accounts.try_emplace(key);
        if (inserted) account_order.push_back(key);
        AccountChange& a = it->second;
        if (type == "AccountOpened") {
          if (a.opened || !a.amounts.empty() || a.status) {
            return Status::handlerError("AccountOpened for account '" + event.aggregateId() +
                                        "', which already has events");
          }
          auto customer = sdk::requiredString(event, "customer_id");
          if (!customer) return customer.status();
          auto currency = sdk::requiredString(event, "currency");
          if (!currency) return currency.status();
          a.opened = true;
          a.customer_id = customer.value();
          a.currency = currency.value();
          a.status = "open";
        } else if (type == "AccountClosed") {
          a.status = "closed";
        } else {
          auto amount = sdk::decimalField(event, "amount", /*positive=*/true);
          if (!amount) return amount.status();
          a.amounts.push_back(type == "FundsDeposited" ? amount.value() : "-" + amount.value());
        }
      } else {
        return Status::invalidEvent("unknown event type '" + type +
                                    "' for the customer_summary projection");
      }
    }

    std::set<Key> touched(customer_order.begin(), customer_order.end());

    if (!customer_order.empty()) {
      std::vector<Params> rows;
      for (const auto& key : customer_order) {
        const CustomerChange& c = customers.at(key);
        rows.push_back({key.first, key.second,
                        std::string(c.first_touched ? "1" : "0") + (c.last_touched ? "1" : "0"),
                        c.first_name, c.last_name, c.status});
      }
      const std::vector<std::string> columns = {"tenant", "id", "mask", "first_name",
                                                "last_name", "status"};
      // A customer's row may already exist from its accounts (other topic): insert, then set
      // exactly the fields the events touched.
      auto inserted = db.execBatch(
          "INSERT INTO {schema}.customers (tenant_id, customer_id) SELECT tenant, id FROM batch "
          "ORDER BY ord ON CONFLICT (tenant_id, customer_id) DO NOTHING",
          columns, rows);
      if (!inserted) return inserted.status();
      auto updated = db.execBatch(
          "UPDATE {schema}.customers c SET "
          "first_name = CASE WHEN substr(b.mask, 1, 1) = '1' THEN b.first_name ELSE c.first_name END, "
          "last_name = CASE WHEN substr(b.mask, 2, 1) = '1' THEN b.last_name ELSE c.last_name END, "
          "status = COALESCE(b.status, c.status) "
          "FROM batch b WHERE c.tenant_id = ANY (ARRAY(SELECT tenant FROM batch)) "
          "AND c.customer_id = ANY (ARRAY(SELECT id FROM batch)) "
          "AND c.tenant_id = b.tenant AND c.customer_id = b.id",
          columns, rows);
      if (!updated) return updated.status();
    }

    std::vector<Params> opened, moved;
    for (const auto& key : account_order) {
      const AccountChange& a = accounts.at(key);
      if (a.opened) {
        opened.push_back(
            {key.first, key.second, a.customer_id, a.currency, arrayLiteral(a.amounts), a.status});
      } else {
        moved.push_back({key.first, key.second, arrayLiteral(a.amounts), a.status});
      }
    }
    if (!opened.empty()) {
      auto rows = db.execBatch(
          "INSERT INTO {schema}.accounts (tenant_id, account_id, customer_id, currency, balance, "
          "status) SELECT tenant, id, customer_id, currency, "
          "COALESCE((SELECT sum(x) FROM unnest(amounts::numeric[]) AS x), 0), status "
          "FROM batch ORDER BY ord ON CONFLICT (tenant_id, account_id) DO NOTHING "
          "RETURNING tenant_id, account_id, customer_id",
          {"tenant", "id", "customer_id", "currency", "amounts", "status"}, opened);
      if (!rows) return rows.status();
      if (rows->size() != opened.size()) {
        return Status::handlerError(
            missing(opened, rows.value(), "AccountOpened for an account that already exists"));
      }
      for (const auto& row : rows->rows) touched.emplace(row[0].value_or(""), row[2].value_or(""));
    }
    if (!moved.empty()) {
      auto rows = db.execBatch(
          "UPDATE {schema}.accounts a SET "
          "balance = a.balance + "
          "COALESCE((SELECT sum(x) FROM unnest(b.amounts::numeric[]) AS x), 0), "
          "status = COALESCE(b.status, a.status) "
          "FROM batch b WHERE a.tenant_id = ANY (ARRAY(SELECT tenant FROM batch)) "
          "AND a.account_id = ANY (ARRAY(SELECT id FROM batch)) "
          "AND a.tenant_id = b.tenant AND a.account_id = b.id "
          "RETURNING a.tenant_id, a.account_id, a.customer_id",
          {"tenant", "id", "amounts", "status"}, moved);
      if (!rows) return rows.status();
      if (rows->size() != moved.size()) {
        return Status::handlerError(missing(
            moved, rows.value(), "event for an unknown account of that tenant (not opened yet?)"));
      }
      for (const auto& row : rows->rows) touched.emplace(row[0].value_or(""), row[2].value_or(""));
    }

    if (touched.empty()) return Status::ok();
    std::vector<Params> ids;
    for (const auto& [tenant, id] : touched) ids.push_back({tenant, id});
    auto refreshed = db.execBatch(
        "INSERT INTO {schema}.customers AS c (tenant_id, customer_id, open_accounts, balances) "
        "SELECT b.tenant, b.id, "
        " (SELECT count(*) FROM {schema}.accounts a WHERE a.tenant_id = b.tenant "
        "  AND a.customer_id = b.id AND a.status = 'open'), "
        " COALESCE((SELECT jsonb_object_agg(currency, total ORDER BY currency) FROM "
        "  (SELECT currency, sum(balance) AS total FROM {schema}.accounts a "
        "   WHERE a.tenant_id = b.tenant AND a.customer_id = b.id GROUP BY currency) "
        "  AS per_currency), '{}'::jsonb) "
        "FROM batch b ORDER BY b.ord "
        "ON CONFLICT (tenant_id, customer_id) DO UPDATE SET open_accounts = EXCLUDED.open_accounts, "
        "balances = EXCLUDED.balances",
        {"tenant", "id"}, ids);
    return refreshed.status();
  }

 private:
  sdk::Logger* logger_;
  std::string name_;
};

}  // namespace
}  // namespace ultracore::plugins::customer_summary

ULTRACORE_PLUGIN(customer_summary,
                 ULTRACORE_PROJECTION("customer_summary", "customer_summary",
                                      ultracore::plugins::customer_summary::
                                          CustomerSummaryProjection))
