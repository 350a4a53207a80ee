// The accounts commands and queries (issue 4). Commands check the read models
// (accounts.accounts, and customers.customers for a new account's owner). The routes declare
// what they read and which aggregate they act on, so the engine runs them consistently (issue
// 14): a command on an account waits for the account's earlier events and holds its lock, so
// two withdrawals can never both pass the balance check; events carry aggregate_version.

#include "accounts_api.h"

#include <cctype>
#include <optional>
#include <random>
#include <utility>
#include <variant>

namespace ultracore::plugins::accounts {
namespace {

using nlohmann::json;
using sdk::Reply;
using sdk::Request;

constexpr const char* kTopic = "ultracore.accounts.events";

const char* kSelect =
    "SELECT account_id, tenant_id, customer_id, account_type, currency, balance::text AS balance, "
    "status, version::text AS version, "
    "to_char(opened_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') AS opened_at, "
    "to_char(updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') AS updated_at "
    "FROM {schema}.accounts ";

json accountJson(const sdk::Rows& rows, std::size_t i) {
  json account = sdk::rowObject(rows, i);
  account["version"] = std::stoll(account["version"].get<std::string>());
  return account;
}

std::string newAccountId() {
  thread_local std::mt19937_64 random{std::random_device{}()};
  static const char* kHex = "0123456789ABCDEF";
  std::uint64_t bits = random();
  std::string id = "ACC-";
  for (int i = 0; i < 12; ++i, bits >>= 4) id.push_back(kHex[bits & 0xF]);
  return id;
}

/// The account's status and version in this tenant, or an error Reply (404, or the database's).
std::variant<std::pair<std::string, std::int64_t>, Reply> statusOf(sdk::Reader& db,
                                                                   const Request& request,
                                                                   const std::string& id) {
  auto rows = db.query(
      "SELECT status, version::text FROM {schema}.accounts WHERE tenant_id = $1 AND "
      "account_id = $2",
      {request.tenant_id, id});
  if (!rows) return Reply::fromStatus(rows.status());
  if (rows->empty()) {
    return Reply::error(404, "account_not_found", "account '" + id + "' not found");
  }
  return std::make_pair(rows->rows[0][0].value_or(""), std::stoll(rows->rows[0][1].value_or("0")));
}

/// The body's positive decimal amount, or an error naming the field.
std::variant<std::string, Reply> amountOf(const json& body) {
  const auto it = body.find("amount");
  if (it == body.end() || it->is_null()) {
    return Reply::error(400, "missing_field", "field 'amount' is required", "amount");
  }
  auto amount = sdk::decimalText(*it, /*positive=*/false);
  if (!amount) {
    return Reply::error(400, "invalid_field", "field 'amount' " + amount.status().message(),
                        "amount");
  }
  if (!sdk::decimalText(*it, /*positive=*/true)) {
    return Reply::error(422, "invalid_amount", "field 'amount' must be greater than 0", "amount");
  }
  return amount.value();
}

const json kAmountSchema{
    {"type", "object"},
    {"required", {"amount"}},
    {"properties",
     {{"amount",
       {{"type", "string"}, {"description", "exact decimal, e.g. \"100.25\" (a number is accepted)"}}}}}};

/// Deposits and withdrawals: same checks, a different event.
Reply movement(const Request& request, sdk::Reader& db, bool withdrawal) {
  auto amount = amountOf(request.body);
  if (auto* error = std::get_if<Reply>(&amount)) return *error;
  const std::string& value = std::get<std::string>(amount);
  const std::string id = request.param("id");
  auto rows = db.query(
      "SELECT status, balance >= $3::numeric, version::text FROM {schema}.accounts "
      "WHERE tenant_id = $1 AND account_id = $2",
      {request.tenant_id, id, value});
  if (!rows) return Reply::fromStatus(rows.status());
  if (rows->empty()) {
    return Reply::error(404, "account_not_found", "account '" + id + "' not found");
  }
  if (rows->rows[0][0] == "closed") {
    return Reply::error(409, "account_closed", "account '" + id + "' is closed");
  }
  if (withdrawal && rows->rows[0][1] != "t") {
    return Reply::error(422, "insufficient_funds",
                        "withdrawal of " + value + " exceeds the balance of account '" + id + "'",
                        "amount");
  }
  return Reply::publish({kTopic, withdrawal ? "FundsWithdrawn" : "FundsDeposited", "Account", id,
                         std::stoll(rows->rows[0][2].value_or("0")) + 1, {{"amount", value}}},
                        202, {{"account_id", id}});
}

}  // namespace

AccountsApi::AccountsApi(const sdk::ApiContext&) {
  schema("Account",
         {{"type", "object"},
          {"properties",
           {{"account_id", {{"type", "string"}}}, {"tenant_id", {{"type", "string"}}},
            {"customer_id", {{"type", "string"}}}, {"account_type", {{"type", "string"}}},
            {"currency", {{"type", "string"}}},
            {"balance", {{"type", "string"}, {"description", "exact decimal"}}},
            {"status", {{"type", "string"}, {"enum", {"open", "closed"}}}},
            {"version", {{"type", "integer"}}}, {"opened_at", {{"type", "string"}}},
            {"updated_at", {{"type", "string"}}}}}});
  const json account_ref{{"$ref", "#/components/schemas/Account"}};

  route({"POST", "/api/v1/accounts", sdk::RouteKind::kCommand, "accounts", "Open an account",
         "Publishes AccountOpened for an existing customer of the tenant (404 otherwise; 409 if "
         "the customer is deleted). currency: 3 upper-case letters.",
         {{"type", "object"},
          {"required", {"customer_id", "account_type", "currency"}},
          {"properties",
           {{"customer_id", {{"type", "string"}}},
            {"account_type", {{"type", "string"}}},
            {"currency", {{"type", "string"}, {"pattern", "^[A-Z]{3}$"}}}}}},
         json(nullptr), {}, {"customers@customer_id"}},
        [](const Request& request, sdk::Reader& db) {
          std::string customer, type, currency;
          if (auto error = sdk::requireString(request.body, "customer_id", customer)) return *error;
          if (auto error = sdk::requireString(request.body, "account_type", type)) return *error;
          if (auto error = sdk::requireString(request.body, "currency", currency)) return *error;
          bool iso = currency.size() == 3;
          for (unsigned char c : currency) iso = iso && std::isupper(c);
          if (!iso) {
            return Reply::error(400, "invalid_field", "currency must be 3 upper-case letters",
                                "currency");
          }
          auto rows = db.query("SELECT status FROM {schema:customers}.customers "
                               "WHERE tenant_id = $1 AND customer_id = $2",
                               {request.tenant_id, customer});
          if (!rows) return Reply::fromStatus(rows.status());
          if (rows->empty()) {
            return Reply::error(404, "customer_not_found", "customer '" + customer + "' not found",
                                "customer_id");
          }
          if (rows->rows[0][0] == "deleted") {
            return Reply::error(409, "customer_deleted", "customer '" + customer + "' is deleted",
                                "customer_id");
          }
          const std::string id = newAccountId();
          return Reply::publish({kTopic, "AccountOpened", "Account", id, 1,
                                 {{"customer_id", customer},
                                  {"account_type", type},
                                  {"currency", currency}}},
                                201, {{"account_id", id}});
        });

  route({"POST", "/api/v1/accounts/{id}/deposits", sdk::RouteKind::kCommand, "accounts",
         "Deposit", "Publishes FundsDeposited (404 unknown account, 409 closed, 422 amount <= 0).",
         kAmountSchema, json(nullptr), {}, {"accounts"}, "id"},
        [](const Request& request, sdk::Reader& db) { return movement(request, db, false); });

  route({"POST", "/api/v1/accounts/{id}/withdrawals", sdk::RouteKind::kCommand, "accounts",
         "Withdraw",
         "Publishes FundsWithdrawn (404 unknown account, 409 closed, 422 above the balance, "
         "which includes every earlier accepted command on the account).",
         kAmountSchema, json(nullptr), {}, {"accounts"}, "id"},
        [](const Request& request, sdk::Reader& db) { return movement(request, db, true); });

  route({"POST", "/api/v1/accounts/{id}/close", sdk::RouteKind::kCommand, "accounts",
         "Close an account", "Publishes AccountClosed (404 unknown, 409 already closed).",
         json(nullptr), json(nullptr), {}, {"accounts"}, "id"},
        [](const Request& request, sdk::Reader& db) {
          const std::string id = request.param("id");
          auto status = statusOf(db, request, id);
          if (auto* error = std::get_if<Reply>(&status)) return *error;
          const auto& [state, version] = std::get<std::pair<std::string, std::int64_t>>(status);
          if (state == "closed") {
            return Reply::error(409, "account_closed", "account '" + id + "' is closed");
          }
          return Reply::publish(
              {kTopic, "AccountClosed", "Account", id, version + 1, json::object()}, 202,
              {{"account_id", id}});
        });

  route({"GET", "/api/v1/accounts/{id}", sdk::RouteKind::kQuery, "accounts", "Read an account",
         "The account as projected; balance is an exact decimal string. ETag: its version.",
         json(nullptr), account_ref, {}, {"accounts"}, "id"},
        [](const Request& request, sdk::Reader& db) {
          const std::string id = request.param("id");
          auto rows = db.query(std::string(kSelect) + "WHERE tenant_id = $1 AND account_id = $2",
                               {request.tenant_id, id});
          if (!rows) return Reply::fromStatus(rows.status());
          if (rows->empty()) {
            return Reply::error(404, "account_not_found", "account '" + id + "' not found");
          }
          return Reply::ok(accountJson(rows.value(), 0));
        });

  route({"GET", "/api/v1/customers/{id}/accounts", sdk::RouteKind::kQuery, "accounts",
         "A customer's accounts", "Every account of the customer in this tenant, by account_id.",
         json(nullptr),
         {{"type", "object"}, {"properties", {{"items", {{"type", "array"}, {"items", account_ref}}}}}},
         {}},
        [](const Request& request, sdk::Reader& db) {
          const std::string id = request.param("id");
          auto customer = db.query("SELECT 1 FROM {schema:customers}.customers "
                                   "WHERE tenant_id = $1 AND customer_id = $2",
                                   {request.tenant_id, id});
          if (!customer) return Reply::fromStatus(customer.status());
          if (customer->empty()) {
            return Reply::error(404, "customer_not_found", "customer '" + id + "' not found");
          }
          auto rows = db.query(std::string(kSelect) +
                                   "WHERE tenant_id = $1 AND customer_id = $2 ORDER BY account_id",
                               {request.tenant_id, id});
          if (!rows) return Reply::fromStatus(rows.status());
          json items = json::array();
          for (std::size_t i = 0; i < rows->size(); ++i) items.push_back(accountJson(rows.value(), i));
          return Reply::ok({{"items", items}});
        });
}

}  // namespace ultracore::plugins::accounts
