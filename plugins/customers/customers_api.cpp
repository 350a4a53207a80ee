// The customers commands and queries (issue 4): POST/PATCH/DELETE /api/v1/customers...,
// GET /api/v1/customers/{id} and the keyset-paginated list. Commands check the read model
// (customers.customers); their routes declare it and the customer they act on, so the engine
// runs them consistently (issue 14), and their events carry aggregate_version.

#include "customers_api.h"

#include <cctype>
#include <random>
#include <utility>
#include <variant>

namespace ultracore::plugins::customers {
namespace {

using nlohmann::json;
using sdk::Reply;
using sdk::Request;

constexpr const char* kTopic = "ultracore.customers.events";
constexpr const char* kFields[] = {"first_name", "last_name", "email", "phone", "date_of_birth"};

const char* kSelect =
    "SELECT customer_id, tenant_id, first_name, last_name, email, phone, "
    "date_of_birth::text AS date_of_birth, status, version::text AS version, "
    "to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') AS created_at, "
    "to_char(updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') AS updated_at "
    "FROM {schema}.customers ";

json customerJson(const sdk::Rows& rows, std::size_t i) {
  json customer = sdk::rowObject(rows, i);
  customer["version"] = std::stoll(customer["version"].get<std::string>());
  return customer;
}

bool validId(const std::string& id) {
  if (id.empty() || id.size() > 64) return false;
  for (unsigned char c : id) {
    if (!std::isalnum(c) && c != '-' && c != '_' && c != '.') return false;
  }
  return true;
}

bool validDate(const std::string& text) {
  if (text.size() != 10 || text[4] != '-' || text[7] != '-') return false;
  for (std::size_t i : {0, 1, 2, 3, 5, 6, 8, 9}) {
    if (!std::isdigit(static_cast<unsigned char>(text[i]))) return false;
  }
  const int month = std::stoi(text.substr(5, 2));
  const int day = std::stoi(text.substr(8, 2));
  return month >= 1 && month <= 12 && day >= 1 && day <= 31;
}

std::string newCustomerId() {
  thread_local std::mt19937_64 random{std::random_device{}()};
  static const char* kHex = "0123456789ABCDEF";
  std::uint64_t bits = random();
  std::string id = "CUST-";
  for (int i = 0; i < 12; ++i, bits >>= 4) id.push_back(kHex[bits & 0xF]);
  return id;
}

/// Validates the customer fields present in `body`; `create` requires the first three.
std::optional<Reply> validateFields(const json& body, bool create, json& data) {
  for (const auto& [name, value] : body.items()) {
    bool known = name == "customer_id" && create;
    for (const char* field : kFields) known = known || name == field;
    if (!known) return Reply::error(400, "unknown_field", "unknown field '" + name + "'", name);
  }
  for (std::size_t i = 0; i < std::size(kFields); ++i) {
    const char* field = kFields[i];
    const bool required = i < 3;
    if (required && (create || body.contains(field))) {
      std::string value;
      if (auto error = sdk::requireString(body, field, value)) return error;
      data[field] = value;
    } else if (body.contains(field)) {
      if (auto error = sdk::optionalString(body, field)) return error;
      const json& value = body[field];
      if (std::string(field) == "date_of_birth" && value.is_string() &&
          !validDate(value.get<std::string>())) {
        return Reply::error(400, "invalid_field", "field 'date_of_birth' must be YYYY-MM-DD",
                            field);
      }
      if (create && value.is_null()) continue;
      data[field] = value;
    }
  }
  return std::nullopt;
}

/// The customer's status and version in this tenant, or an error Reply (404, or the database's).
std::variant<std::pair<std::string, std::int64_t>, Reply> statusOf(sdk::Reader& db,
                                                                   const Request& request,
                                                                   const std::string& id) {
  auto rows = db.query("SELECT status, version::text FROM {schema}.customers WHERE tenant_id = $1 "
                       "AND customer_id = $2",
                       {request.tenant_id, id});
  if (!rows) return Reply::fromStatus(rows.status());
  if (rows->empty()) {
    return Reply::error(404, "customer_not_found", "customer '" + id + "' not found");
  }
  return std::make_pair(rows->rows[0][0].value_or(""), std::stoll(rows->rows[0][1].value_or("0")));
}

json customerSchema(bool create) {
  json properties{{"first_name", {{"type", "string"}}},
                  {"last_name", {{"type", "string"}}},
                  {"email", {{"type", "string"}}},
                  {"phone", {{"type", "string"}, {"nullable", true}}},
                  {"date_of_birth", {{"type", "string"}, {"format", "date"}, {"nullable", true}}}};
  json schema{{"type", "object"}, {"additionalProperties", false}};
  if (create) {
    properties["customer_id"] = {{"type", "string"},
                                 {"description", "optional; the server assigns CUST-... otherwise"}};
    schema["required"] = {"first_name", "last_name", "email"};
  }
  schema["properties"] = properties;
  return schema;
}

}  // namespace

CustomersApi::CustomersApi(const sdk::ApiContext&) {
  schema("Customer",
         {{"type", "object"},
          {"properties",
           {{"customer_id", {{"type", "string"}}}, {"tenant_id", {{"type", "string"}}},
            {"first_name", {{"type", "string"}}}, {"last_name", {{"type", "string"}}},
            {"email", {{"type", "string"}}}, {"phone", {{"type", "string"}, {"nullable", true}}},
            {"date_of_birth", {{"type", "string"}, {"nullable", true}}},
            {"status", {{"type", "string"}, {"enum", {"active", "deleted"}}}},
            {"version", {{"type", "integer"}}}, {"created_at", {{"type", "string"}}},
            {"updated_at", {{"type", "string"}}}}}});
  const json customer_ref{{"$ref", "#/components/schemas/Customer"}};

  route({"POST", "/api/v1/customers", sdk::RouteKind::kCommand, "customers", "Create a customer",
         "Publishes CustomerCreated. The server assigns CUST-... unless the body carries "
         "customer_id (409 if the tenant has a customer of that id).",
         customerSchema(true), json(nullptr), {}, {"customers@customer_id"}},
        [](const Request& request, sdk::Reader& db) {
          json data = json::object();
          if (auto error = validateFields(request.body, true, data)) return *error;
          std::string id;
          if (request.body.contains("customer_id")) {
            if (auto error = sdk::requireString(request.body, "customer_id", id)) return *error;
            if (!validId(id)) {
              return Reply::error(400, "invalid_field",
                                  "customer_id must be 1-64 characters of [A-Za-z0-9_.-]",
                                  "customer_id");
            }
            // Ids are scoped by tenant: another tenant's customer of that id is neither a
            // conflict nor revealed.
            auto rows = db.query("SELECT 1 FROM {schema}.customers WHERE tenant_id = $1 AND "
                                 "customer_id = $2",
                                 {request.tenant_id, id});
            if (!rows) return Reply::fromStatus(rows.status());
            if (!rows->empty()) {
              return Reply::error(409, "customer_exists", "customer '" + id + "' already exists",
                                  "customer_id");
            }
          } else {
            id = newCustomerId();
          }
          return Reply::publish({kTopic, "CustomerCreated", "Customer", id, 1, data},
                                201, {{"customer_id", id}});
        });

  route({"PATCH", "/api/v1/customers/{id}", sdk::RouteKind::kCommand, "customers",
         "Update a customer", "Publishes CustomerUpdated with the fields given (at least one).",
         customerSchema(false), json(nullptr), {}, {"customers"}, "id"},
        [](const Request& request, sdk::Reader& db) {
          json data = json::object();
          if (auto error = validateFields(request.body, false, data)) return *error;
          if (data.empty()) {
            return Reply::error(400, "empty_update", "give at least one field to change");
          }
          const std::string id = request.param("id");
          auto status = statusOf(db, request, id);
          if (auto* error = std::get_if<Reply>(&status)) return *error;
          const auto& [state, version] = std::get<std::pair<std::string, std::int64_t>>(status);
          if (state == "deleted") {
            return Reply::error(409, "customer_deleted", "customer '" + id + "' is deleted");
          }
          return Reply::publish({kTopic, "CustomerUpdated", "Customer", id, version + 1, data},
                                202, {{"customer_id", id}});
        });

  route({"DELETE", "/api/v1/customers/{id}", sdk::RouteKind::kCommand, "customers",
         "Delete a customer", "Publishes CustomerDeleted; the row stays with status 'deleted'.",
         json(nullptr), json(nullptr), {}, {"customers"}, "id"},
        [](const Request& request, sdk::Reader& db) {
          const std::string id = request.param("id");
          auto status = statusOf(db, request, id);
          if (auto* error = std::get_if<Reply>(&status)) return *error;
          const auto& [state, version] = std::get<std::pair<std::string, std::int64_t>>(status);
          if (state == "deleted") {
            return Reply::error(409, "customer_deleted", "customer '" + id + "' is deleted");
          }
          return Reply::publish(
              {kTopic, "CustomerDeleted", "Customer", id, version + 1, json::object()}, 202,
              {{"customer_id", id}});
        });

  route({"GET", "/api/v1/customers/{id}", sdk::RouteKind::kQuery, "customers",
         "Read a customer", "The customer as projected (404 if not in this tenant). ETag: its "
         "version.",
         json(nullptr), customer_ref, {}, {"customers"}, "id"},
        [](const Request& request, sdk::Reader& db) {
          const std::string id = request.param("id");
          auto rows = db.query(std::string(kSelect) + "WHERE tenant_id = $1 AND customer_id = $2",
                               {request.tenant_id, id});
          if (!rows) return Reply::fromStatus(rows.status());
          if (rows->empty()) {
            return Reply::error(404, "customer_not_found", "customer '" + id + "' not found");
          }
          return Reply::ok(customerJson(rows.value(), 0));
        });

  route({"GET", "/api/v1/customers", sdk::RouteKind::kQuery, "customers", "List customers",
         "Keyset pagination by customer_id: limit (1-500, default 50) and after (the last "
         "customer_id of the previous page, given back as next_after; null at the end).",
         json(nullptr),
         {{"type", "object"},
          {"properties",
           {{"items", {{"type", "array"}, {"items", customer_ref}}},
            {"next_after", {{"type", "string"}, {"nullable", true}}}}}},
         {"limit", "after"}},
        [](const Request& request, sdk::Reader& db) {
          int limit = 50;
          if (auto text = request.queryParam("limit")) {
            try {
              std::size_t used = 0;
              limit = std::stoi(*text, &used);
              if (used != text->size()) limit = 0;
            } catch (const std::exception&) {
              limit = 0;
            }
            if (limit < 1 || limit > 500) {
              return Reply::error(400, "invalid_field", "limit must be an integer from 1 to 500",
                                  "limit");
            }
          }
          const std::string after = request.queryParam("after").value_or("");
          auto rows = db.query(std::string(kSelect) +
                                   "WHERE tenant_id = $1 AND customer_id > $2 "
                                   "ORDER BY customer_id LIMIT $3::int",
                               {request.tenant_id, after, std::to_string(limit)});
          if (!rows) return Reply::fromStatus(rows.status());
          json items = json::array();
          for (std::size_t i = 0; i < rows->size(); ++i) items.push_back(customerJson(rows.value(), i));
          json next = nullptr;
          if (static_cast<int>(rows->size()) == limit) next = items.back()["customer_id"];
          return Reply::ok({{"items", items}, {"next_after", next}});
        });
}

}  // namespace ultracore::plugins::customers
