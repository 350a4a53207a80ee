// The accounts read model: accounts.accounts, one row per account with an exact NUMERIC
// balance (DESIGN.md).
//
// A batch is folded per account in memory (in log order); the amounts stay decimal text and
// are summed by PostgreSQL as NUMERIC, never as floating point. Two set-based statements:
// one INSERT for accounts opened in the batch, one UPDATE for the others.

#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "accounts_api.h"
#include "ultracore/sdk/sdk.h"
#include "ultracore/sdk/writer.h"

namespace ultracore::plugins::accounts {
namespace {

using sdk::Event;
using sdk::Params;
using sdk::Status;
using sdk::Value;

/// An account: (tenant_id, account_id).
using Key = std::pair<std::string, std::string>;

/// What one batch does to one account.
struct Change {
  bool opened = false;  ///< an AccountOpened is in this batch
  std::string tenant_id, customer_id, account_type, currency, opened_at;
  std::vector<std::string> amounts;  ///< signed decimal movements, in order
  std::optional<std::string> status;
  std::optional<std::int64_t> version;  ///< the last explicit aggregate_version
  std::int64_t events = 0;              ///< events counted since the last explicit version
  std::string updated_at;
};

std::string arrayLiteral(const std::vector<std::string>& values) {
  // Decimal literals only (validated), so no quoting is needed.
  std::string out = "{";
  for (std::size_t i = 0; i < values.size(); ++i) out += (i ? "," : "") + values[i];
  return out + "}";
}

class AccountsProjection final : public sdk::Projection {
 public:
  explicit AccountsProjection(const sdk::ProjectionContext&) {}

  // 2: keyed by (tenant_id, account_id), so that two tenants may each have an account X.
  int schemaVersion() const override { return 2; }

  Status setupSchema(sdk::Writer& db) override {
    if (Status s = db.exec(
            "CREATE TABLE IF NOT EXISTS {schema}.accounts ("
            " account_id   text NOT NULL,"
            " tenant_id    text NOT NULL DEFAULT 'DEFAULT',"
            " customer_id  text NOT NULL,"
            " account_type text NOT NULL,"
            " currency     text NOT NULL,"
            " balance      numeric NOT NULL DEFAULT 0,"
            " status       text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'closed')),"
            " version      bigint NOT NULL,"
            " opened_at    timestamptz NOT NULL,"
            " updated_at   timestamptz NOT NULL,"
            " PRIMARY KEY (tenant_id, account_id))");
        !s) {
      return s;
    }
    // Version 1 was keyed by account_id alone (its rows already carry their tenant_id).
    bool replaced = false;
    if (Status s = sdk::ensurePrimaryKey(db, "accounts", {"tenant_id", "account_id"}, replaced); !s) {
      return s;
    }
    // A customer's accounts are looked up within the tenant; by id alone (the README's
    // queries) goes through accounts_id_idx.
    return db.exec(
        "DROP INDEX IF EXISTS {schema}.accounts_tenant_idx;"
        "DROP INDEX IF EXISTS {schema}.accounts_customer_idx;"
        "CREATE INDEX IF NOT EXISTS accounts_tenant_customer_idx ON {schema}.accounts "
        "(tenant_id, customer_id);"
        "CREATE INDEX IF NOT EXISTS accounts_id_idx ON {schema}.accounts (account_id)");
  }

  Status apply(std::span<const Event> events, sdk::Writer& db) override {
    // Ids are scoped by tenant: (tenant, id) names an account, and an event only ever reaches
    // its own tenant's row.
    std::map<Key, Change> changes;
    std::vector<Key> order;
    for (const Event& event : events) {
      const Key key{event.tenantId(), event.aggregateId()};
      auto [it, inserted] = changes.try_emplace(key);
      if (inserted) order.push_back(key);
      Change& change = it->second;
      change.tenant_id = event.tenantId();
      const std::string& type = event.eventType();
      if (type == "AccountOpened") {
        if (change.opened || change.events > 0 || change.version) {
          return Status::handlerError("AccountOpened for account '" + event.aggregateId() +
                                      "', which already has events");
        }
        auto customer = sdk::requiredString(event, "customer_id");
        if (!customer) return customer.status();
        auto account_type = sdk::requiredString(event, "account_type");
        if (!account_type) return account_type.status();
        auto currency = sdk::requiredString(event, "currency");
        if (!currency) return currency.status();
        change.opened = true;
        change.tenant_id = event.tenantId();
        change.customer_id = customer.value();
        change.account_type = account_type.value();
        change.currency = currency.value();
        change.opened_at = sdk::occurredAtOrTimestamp(event);
        change.status = "open";
      } else if (type == "FundsDeposited" || type == "FundsWithdrawn") {
        auto amount = sdk::decimalField(event, "amount", /*positive=*/true);
        if (!amount) return amount.status();
        change.amounts.push_back(type == "FundsDeposited" ? amount.value() : "-" + amount.value());
      } else if (type == "AccountClosed") {
        change.status = "closed";
      } else {
        return Status::invalidEvent("unknown event type '" + type +
                                    "' for the accounts projection");
      }
      if (event.aggregateVersion()) {
        change.version = event.aggregateVersion();
        change.events = 0;
      } else {
        ++change.events;
      }
      change.updated_at = sdk::occurredAtOrTimestamp(event);
    }

    std::vector<Params> opened;
    std::vector<Params> updated;
    for (const auto& key : order) {
      const std::string& id = key.second;
      const Change& c = changes.at(key);
      const std::string amounts = arrayLiteral(c.amounts);
      if (c.opened) {
        opened.push_back({id, c.tenant_id, c.customer_id, c.account_type, c.currency, amounts,
                          c.status, std::to_string(c.version.value_or(0) + c.events),
                          c.opened_at, c.updated_at});
      } else {
        updated.push_back({id, c.tenant_id, amounts, c.status,
                           c.version ? Value(std::to_string(*c.version)) : Value(),
                           std::to_string(c.events), c.updated_at});
      }
    }

    if (!opened.empty()) {
      auto rows = db.execBatch(
          "INSERT INTO {schema}.accounts (account_id, tenant_id, customer_id, account_type, "
          "currency, balance, status, version, opened_at, updated_at) "
          "SELECT id, tenant, customer_id, account_type, currency, "
          "COALESCE((SELECT sum(x) FROM unnest(amounts::numeric[]) AS x), 0), status, "
          "version::bigint, opened_at::timestamptz, updated_at::timestamptz "
          "FROM batch ORDER BY ord ON CONFLICT (tenant_id, account_id) DO NOTHING RETURNING account_id",
          {"id", "tenant", "customer_id", "account_type", "currency", "amounts", "status",
           "version", "opened_at", "updated_at"},
          opened);
      if (!rows) return rows.status();
      if (rows->size() != opened.size()) {
        return Status::handlerError("AccountOpened for an account that already exists");
      }
    }
    if (!updated.empty()) {
      auto rows = db.execBatch(
          "UPDATE {schema}.accounts a SET "
          "balance = a.balance + COALESCE((SELECT sum(x) FROM unnest(b.amounts::numeric[]) AS x), 0), "
          "status = COALESCE(b.status, a.status), "
          "version = COALESCE(b.version::bigint, a.version) + b.events::bigint, "
          "updated_at = b.updated_at::timestamptz "
          "FROM batch b WHERE a.tenant_id = ANY (ARRAY(SELECT tenant FROM batch)) "
          "AND a.account_id = ANY (ARRAY(SELECT id FROM batch)) "
          "AND a.tenant_id = b.tenant AND a.account_id = b.id "
          "RETURNING a.tenant_id, a.account_id",
          {"id", "tenant", "amounts", "status", "version", "events", "updated_at"}, updated);
      if (!rows) return rows.status();
      if (rows->size() != updated.size()) {
        std::string missing;
        for (const auto& row : updated) {
          bool found = false;
          for (const auto& r : rows->rows) found = found || (r[0] == row[1] && r[1] == row[0]);
          if (!found) missing += " '" + row[0].value_or("") + "'";
        }
        return Status::handlerError("event for an unknown account of that tenant (not opened yet?):" + missing);
      }
    }
    return Status::ok();
  }
};

}  // namespace
}  // namespace ultracore::plugins::accounts

ULTRACORE_PLUGIN(accounts,
                 ULTRACORE_PROJECTION("accounts", "accounts",
                                      ultracore::plugins::accounts::AccountsProjection),
                 ULTRACORE_API("accounts", ultracore::plugins::accounts::AccountsApi))
