// The accounts plugin's event catalog (issue 16): what the accounts projection applies and
// what the accounts API publishes, with the schemas of their event_data.

#include "ultracore/sdk/catalog.h"

namespace ultracore::plugins::accounts {
namespace {

using nlohmann::json;

constexpr const char* kTopic = "ultracore.accounts.events";

json requiredText() { return {{"type", "string"}, {"minLength", 1}}; }

/// A decimal amount: a decimal string ("100.25") or a JSON number; the projection refuses zero
/// and negative amounts.
json amount() {
  return {{"type", {"string", "number"}},
          {"pattern", "^[0-9]+(\\.[0-9]+)?$"},
          {"description", "exact decimal greater than 0"}};
}

json opened() {
  return {{"type", "object"},
          {"required", {"customer_id", "account_type", "currency"}},
          {"properties",
           {{"customer_id", requiredText()},
            {"account_type", requiredText()},
            {"currency", requiredText()}}}};
}

json movement() {
  return {{"type", "object"}, {"required", {"amount"}}, {"properties", {{"amount", amount()}}}};
}

/// What the API sends: exactly these fields; ISO 4217 currency codes, amounts as strings.
json strict(json schema) {
  schema["additionalProperties"] = false;
  return schema;
}

sdk::EventCatalog catalog() {
  json api_opened = strict(opened());
  api_opened["properties"]["currency"]["pattern"] = "^[A-Z]{3}$";
  json api_movement = strict(movement());
  api_movement["properties"]["amount"]["type"] = "string";
  return sdk::EventCatalog()
      .consumes("accounts", "AccountOpened", opened(), "inserts the account, balance 0")
      .consumes("accounts", "FundsDeposited", movement(), "adds the amount to the balance")
      .consumes("accounts", "FundsWithdrawn", movement(), "subtracts the amount")
      .consumes("accounts", "AccountClosed", {{"type", "object"}}, "marks the account closed")
      .produces("POST /api/v1/accounts", kTopic, "AccountOpened", api_opened)
      .produces("POST /api/v1/accounts/{id}/deposits", kTopic, "FundsDeposited", api_movement)
      .produces("POST /api/v1/accounts/{id}/withdrawals", kTopic, "FundsWithdrawn", api_movement)
      .produces("POST /api/v1/accounts/{id}/close", kTopic, "AccountClosed",
                strict({{"type", "object"}}));
}

}  // namespace
}  // namespace ultracore::plugins::accounts

ULTRACORE_EVENT_CATALOG(ultracore::plugins::accounts::catalog)
