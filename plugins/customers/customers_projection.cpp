// The customers read model: customers.customers, one row per customer (DESIGN.md).
//
// A batch is folded per customer in memory (in log order), then written with two set-based
// statements: one INSERT for customers created in the batch, one UPDATE for the others.

#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "customers_api.h"
#include "ultracore/sdk/sdk.h"

namespace ultracore::plugins::customers {
namespace {

using sdk::Event;
using sdk::Params;
using sdk::Result;
using sdk::Status;
using sdk::Value;

/// The fields a CustomerCreated sets and a CustomerUpdated may change, in column order.
constexpr const char* kFields[] = {"first_name", "last_name", "email", "phone", "date_of_birth"};
constexpr std::size_t kFieldCount = std::size(kFields);

/// A customer: (tenant_id, customer_id).
using Key = std::pair<std::string, std::string>;

/// What one batch does to one customer.
struct Change {
  bool created = false;  ///< a CustomerCreated is in this batch
  std::string tenant_id;
  std::string created_at;
  Value fields[kFieldCount];
  bool touched[kFieldCount] = {};  ///< for updates of an existing row: which fields to set
  std::optional<std::string> status;
  std::optional<std::int64_t> version;  ///< the last explicit aggregate_version
  std::int64_t events = 0;              ///< events counted since the last explicit version
  std::string updated_at;
};

Status applyFields(const Event& event, Change& change, bool all_required) {
  for (std::size_t i = 0; i < kFieldCount; ++i) {
    const char* field = kFields[i];
    const bool required = all_required && i < 3;
    if (required) {
      auto value = sdk::requiredString(event, field);
      if (!value) return value.status();
      change.fields[i] = value.value();
      change.touched[i] = true;
    } else if (sdk::hasField(event, field)) {
      auto value = sdk::optionalString(event, field);
      if (!value) return value.status();
      change.fields[i] = value.value();
      change.touched[i] = true;
    }
  }
  return Status::ok();
}

class CustomersProjection final : public sdk::Projection {
 public:
  explicit CustomersProjection(const sdk::ProjectionContext&) {}

  // 2: keyed by (tenant_id, customer_id), so that two tenants may each have a customer X.
  int schemaVersion() const override { return 2; }

  Status setupSchema(sdk::Writer& db) override {
    if (Status s = db.exec(
            "CREATE TABLE IF NOT EXISTS {schema}.customers ("
            " customer_id   text NOT NULL,"
            " tenant_id     text NOT NULL DEFAULT 'DEFAULT',"
            " first_name    text NOT NULL,"
            " last_name     text NOT NULL,"
            " email         text NOT NULL,"
            " phone         text,"
            " date_of_birth date,"
            " status        text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'deleted')),"
            " version       bigint NOT NULL,"
            " created_at    timestamptz NOT NULL,"
            " updated_at    timestamptz NOT NULL,"
            " PRIMARY KEY (tenant_id, customer_id))");
        !s) {
      return s;
    }
    // Version 1 was keyed by customer_id alone (its rows already carry their tenant_id).
    bool replaced = false;
    if (Status s = sdk::ensurePrimaryKey(db, "customers", {"tenant_id", "customer_id"}, replaced); !s) {
      return s;
    }
    // The key leads with tenant_id; by id alone (the README's queries) goes through this one.
    return db.exec(
        "DROP INDEX IF EXISTS {schema}.customers_tenant_idx;"
        "CREATE INDEX IF NOT EXISTS customers_id_idx ON {schema}.customers (customer_id)");
  }

  Status apply(std::span<const Event> events, sdk::Writer& db) override {
    // Ids are scoped by tenant: (tenant, id) names a customer, and an event only ever reaches
    // its own tenant's row.
    std::map<Key, Change> changes;
    std::vector<Key> order;  // first appearance, for deterministic statements
    for (const Event& event : events) {
      const Key key{event.tenantId(), event.aggregateId()};
      auto [it, inserted] = changes.try_emplace(key);
      if (inserted) order.push_back(key);
      Change& change = it->second;
      change.tenant_id = event.tenantId();
      if (event.eventType() == "CustomerCreated") {
        if (change.created || change.events > 0) {
          return Status::handlerError("CustomerCreated for customer '" + event.aggregateId() +
                                      "', which already has events");
        }
        change.created = true;
        change.tenant_id = event.tenantId();
        change.created_at = sdk::occurredAtOrTimestamp(event);
        change.status = "active";
        if (Status s = applyFields(event, change, true); !s) return s;
      } else if (event.eventType() == "CustomerUpdated") {
        if (Status s = applyFields(event, change, false); !s) return s;
      } else if (event.eventType() == "CustomerDeleted") {
        change.status = "deleted";
      } else {
        return Status::invalidEvent("unknown event type '" + event.eventType() +
                                    "' for the customers projection");
      }
      if (event.aggregateVersion()) {
        change.version = event.aggregateVersion();
        change.events = 0;
      } else {
        ++change.events;
      }
      change.updated_at = sdk::occurredAtOrTimestamp(event);
    }

    std::vector<Params> created;
    std::vector<Params> updated;
    for (const auto& key : order) {
      const std::string& id = key.second;
      const Change& c = changes.at(key);
      const std::string version = std::to_string(c.version.value_or(0) + c.events);
      if (c.created) {
        Params row{id, c.tenant_id};
        for (const auto& field : c.fields) row.push_back(field);
        row.insert(row.end(), {c.status, version, c.created_at, c.updated_at});
        created.push_back(std::move(row));
      } else {
        std::string mask;
        for (bool touched : c.touched) mask.push_back(touched ? '1' : '0');
        Params row{id, c.tenant_id, mask};
        for (const auto& field : c.fields) row.push_back(field);
        row.insert(row.end(), {c.status, c.version ? Value(std::to_string(*c.version)) : Value(),
                               std::to_string(c.events), c.updated_at});
        updated.push_back(std::move(row));
      }
    }

    if (!created.empty()) {
      auto rows = db.execBatch(
          "INSERT INTO {schema}.customers (customer_id, tenant_id, first_name, last_name, email, "
          "phone, date_of_birth, status, version, created_at, updated_at) "
          "SELECT id, tenant, f1, f2, f3, f4, f5::date, status, version::bigint, "
          "created_at::timestamptz, updated_at::timestamptz FROM batch ORDER BY ord "
          "ON CONFLICT (tenant_id, customer_id) DO NOTHING RETURNING tenant_id, customer_id",
          {"id", "tenant", "f1", "f2", "f3", "f4", "f5", "status", "version", "created_at",
           "updated_at"},
          created);
      if (!rows) return rows.status();
      if (rows->size() != created.size()) {
        return Status::handlerError(missingIds(created, rows.value(), "CustomerCreated for a customer that already exists"));
      }
    }
    if (!updated.empty()) {
      auto rows = db.execBatch(
          "UPDATE {schema}.customers c SET "
          "first_name = CASE WHEN substr(b.mask, 1, 1) = '1' THEN b.f1 ELSE c.first_name END, "
          "last_name = CASE WHEN substr(b.mask, 2, 1) = '1' THEN b.f2 ELSE c.last_name END, "
          "email = CASE WHEN substr(b.mask, 3, 1) = '1' THEN b.f3 ELSE c.email END, "
          "phone = CASE WHEN substr(b.mask, 4, 1) = '1' THEN b.f4 ELSE c.phone END, "
          "date_of_birth = CASE WHEN substr(b.mask, 5, 1) = '1' THEN b.f5::date "
          "ELSE c.date_of_birth END, "
          "status = COALESCE(b.status, c.status), "
          "version = COALESCE(b.version::bigint, c.version) + b.events::bigint, "
          "updated_at = b.updated_at::timestamptz "
          "FROM batch b WHERE c.tenant_id = ANY (ARRAY(SELECT tenant FROM batch)) "
          "AND c.customer_id = ANY (ARRAY(SELECT id FROM batch)) "
          "AND c.tenant_id = b.tenant AND c.customer_id = b.id "
          "RETURNING c.tenant_id, c.customer_id",
          {"id", "tenant", "mask", "f1", "f2", "f3", "f4", "f5", "status", "version", "events",
           "updated_at"},
          updated);
      if (!rows) return rows.status();
      if (rows->size() != updated.size()) {
        return Status::handlerError(
            missingIds(updated, rows.value(), "event for an unknown customer (of that tenant)"));
      }
    }
    return Status::ok();
  }

 private:
  /// "<problem>: 'CUST-1', 'CUST-2'" for the (id, tenant) rows of `sent` that `returned`
  /// (tenant, id) lacks.
  static std::string missingIds(const std::vector<Params>& sent, const sdk::Rows& returned,
                                const std::string& problem) {
    std::string out = problem + ":";
    for (const auto& row : sent) {
      bool found = false;
      for (const auto& r : returned.rows) found = found || (r[0] == row[1] && r[1] == row[0]);
      if (!found) out += " '" + row[0].value_or("") + "'";
    }
    return out;
  }
};

}  // namespace
}  // namespace ultracore::plugins::customers

ULTRACORE_PLUGIN(customers,
                 ULTRACORE_PROJECTION("customers", "customers",
                                      ultracore::plugins::customers::CustomersProjection),
                 ULTRACORE_API("customers", ultracore::plugins::customers::CustomersApi))
