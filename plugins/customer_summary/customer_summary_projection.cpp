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

#include <map>
#include <optional>
#include <set>
#include <string>
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

/// "<problem>: 'A', 'B'" for the ids in `sent` (column 0) that `returned` lacks.
std::string missing(const std::vector<Params>& sent, const sdk::Rows& returned,
                    const std::string& problem) {
  std::set<std::string> seen;
  for (const auto& row : returned.rows) seen.insert(row[0].value_or(""));
  std::string out = problem + ":";
  for (const auto& row : sent) {
    if (seen.count(row[0].value_or("")) == 0) out += " '" + row[0].value_or("") + "'";
  }
  return out;
}

class CustomerSummaryProjection final : public sdk::Projection {
 public:
  explicit CustomerSummaryProjection(const sdk::ProjectionContext&) {}

  int schemaVersion() const override { return 1; }

  Status setupSchema(sdk::Writer& db) override {
    return db.exec(
        "CREATE TABLE IF NOT EXISTS {schema}.customers ("
        " customer_id   text PRIMARY KEY,"
        " first_name    text,"  // NULL until the customer's CustomerCreated arrives
        " last_name     text,"
        " name          text GENERATED ALWAYS AS (first_name || ' ' || last_name) STORED,"
        " status        text CHECK (status IN ('active', 'deleted')),"
        " open_accounts integer NOT NULL DEFAULT 0,"
        " balances      jsonb NOT NULL DEFAULT '{}'::jsonb);"  // {"EUR": 100.25}, exact numeric
        "CREATE TABLE IF NOT EXISTS {schema}.accounts ("
        " account_id  text PRIMARY KEY,"
        " customer_id text NOT NULL,"
        " currency    text NOT NULL,"
        " balance     numeric NOT NULL DEFAULT 0,"
        " status      text NOT NULL CHECK (status IN ('open', 'closed')));"
        "CREATE INDEX IF NOT EXISTS accounts_customer_idx ON {schema}.accounts (customer_id)");
  }

  Status apply(std::span<const Event> events, sdk::Writer& db) override {
    std::map<std::string, CustomerChange> customers;
    std::vector<std::string> customer_order;
    std::map<std::string, AccountChange> accounts;
    std::vector<std::string> account_order;

    for (const Event& event : events) {
      const std::string& type = event.eventType();
      if (type == "CustomerCreated" || type == "CustomerUpdated" || type == "CustomerDeleted") {
        auto [it, inserted] = customers.try_emplace(event.aggregateId());
        if (inserted) customer_order.push_back(event.aggregateId());
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
        auto [it, inserted] = accounts.try_emplace(event.aggregateId());
        if (inserted) account_order.push_back(event.aggregateId());
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

    std::set<std::string> touched(customer_order.begin(), customer_order.end());

    if (!customer_order.empty()) {
      std::vector<Params> rows;
      for (const auto& id : customer_order) {
        const CustomerChange& c = customers.at(id);
        rows.push_back({id, std::string(c.first_touched ? "1" : "0") + (c.last_touched ? "1" : "0"),
                        c.first_name, c.last_name, c.status});
      }
      const std::vector<std::string> columns = {"id", "mask", "first_name", "last_name", "status"};
      // A customer's row may already exist from its accounts (other topic): insert, then set
      // exactly the fields the events touched.
      auto inserted = db.execBatch(
          "INSERT INTO {schema}.customers (customer_id) SELECT id FROM batch ORDER BY ord "
          "ON CONFLICT (customer_id) DO NOTHING",
          columns, rows);
      if (!inserted) return inserted.status();
      auto updated = db.execBatch(
          "UPDATE {schema}.customers c SET "
          "first_name = CASE WHEN substr(b.mask, 1, 1) = '1' THEN b.first_name ELSE c.first_name END, "
          "last_name = CASE WHEN substr(b.mask, 2, 1) = '1' THEN b.last_name ELSE c.last_name END, "
          "status = COALESCE(b.status, c.status) "
          "FROM batch b WHERE c.customer_id = ANY (ARRAY(SELECT id FROM batch)) AND c.customer_id = b.id",
          columns, rows);
      if (!updated) return updated.status();
    }

    std::vector<Params> opened, moved;
    for (const auto& id : account_order) {
      const AccountChange& a = accounts.at(id);
      if (a.opened) {
        opened.push_back({id, a.customer_id, a.currency, arrayLiteral(a.amounts), a.status});
      } else {
        moved.push_back({id, arrayLiteral(a.amounts), a.status});
      }
    }
    if (!opened.empty()) {
      auto rows = db.execBatch(
          "INSERT INTO {schema}.accounts (account_id, customer_id, currency, balance, status) "
          "SELECT id, customer_id, currency, "
          "COALESCE((SELECT sum(x) FROM unnest(amounts::numeric[]) AS x), 0), status "
          "FROM batch ORDER BY ord ON CONFLICT (account_id) DO NOTHING "
          "RETURNING account_id, customer_id",
          {"id", "customer_id", "currency", "amounts", "status"}, opened);
      if (!rows) return rows.status();
      if (rows->size() != opened.size()) {
        return Status::handlerError(
            missing(opened, rows.value(), "AccountOpened for an account that already exists"));
      }
      for (const auto& row : rows->rows) touched.insert(row[1].value_or(""));
    }
    if (!moved.empty()) {
      auto rows = db.execBatch(
          "UPDATE {schema}.accounts a SET "
          "balance = a.balance + "
          "COALESCE((SELECT sum(x) FROM unnest(b.amounts::numeric[]) AS x), 0), "
          "status = COALESCE(b.status, a.status) "
          "FROM batch b WHERE a.account_id = ANY (ARRAY(SELECT id FROM batch)) AND a.account_id = b.id "
          "RETURNING a.account_id, a.customer_id",
          {"id", "amounts", "status"}, moved);
      if (!rows) return rows.status();
      if (rows->size() != moved.size()) {
        return Status::handlerError(
            missing(moved, rows.value(), "event for an unknown account (not opened yet?)"));
      }
      for (const auto& row : rows->rows) touched.insert(row[1].value_or(""));
    }

    if (touched.empty()) return Status::ok();
    std::vector<Params> ids;
    for (const auto& id : touched) ids.push_back({id});
    auto refreshed = db.execBatch(
        "INSERT INTO {schema}.customers AS c (customer_id, open_accounts, balances) "
        "SELECT b.id, "
        " (SELECT count(*) FROM {schema}.accounts a WHERE a.customer_id = b.id "
        "  AND a.status = 'open'), "
        " COALESCE((SELECT jsonb_object_agg(currency, total ORDER BY currency) FROM "
        "  (SELECT currency, sum(balance) AS total FROM {schema}.accounts a "
        "   WHERE a.customer_id = b.id GROUP BY currency) AS per_currency), '{}'::jsonb) "
        "FROM batch b ORDER BY b.ord "
        "ON CONFLICT (customer_id) DO UPDATE SET open_accounts = EXCLUDED.open_accounts, "
        "balances = EXCLUDED.balances",
        {"id"}, ids);
    return refreshed.status();
  }
};

}  // namespace
}  // namespace ultracore::plugins::customer_summary

ULTRACORE_PLUGIN(customer_summary,
                 ULTRACORE_PROJECTION("customer_summary", "customer_summary",
                                      ultracore::plugins::customer_summary::
                                          CustomerSummaryProjection))
