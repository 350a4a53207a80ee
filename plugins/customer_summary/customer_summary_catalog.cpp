// The customer_summary plugin's event catalog (issue 16): the customer and account events
// its projection applies (it publishes none), with what it reads of their event_data.

#include "ultracore/sdk/catalog.h"

namespace ultracore::plugins::customer_summary {
namespace {

using nlohmann::json;

json requiredText() { return {{"type", "string"}, {"minLength", 1}}; }
json optionalText() { return {{"type", {"string", "null"}}}; }

json names(bool create) {
  json schema{{"type", "object"},
              {"properties", {{"first_name", optionalText()}, {"last_name", optionalText()}}}};
  if (create) {
    schema["required"] = {"first_name", "last_name"};
    schema["properties"] = {{"first_name", requiredText()}, {"last_name", requiredText()}};
  }
  return schema;
}

json movement() {
  return {{"type", "object"},
          {"required", {"amount"}},
          {"properties",
           {{"amount", {{"type", {"string", "number"}}, {"pattern", "^[0-9]+(\\.[0-9]+)?$"}}}}}};
}

sdk::EventCatalog catalog() {
  const json any{{"type", "object"}};
  return sdk::EventCatalog()
      .consumes("customer_summary", "CustomerCreated", names(true), "adds the customer's row")
      .consumes("customer_summary", "CustomerUpdated", names(false), "renames")
      .consumes("customer_summary", "CustomerDeleted", any, "marks the row deleted")
      .consumes("customer_summary", "AccountOpened",
                {{"type", "object"},
                 {"required", {"customer_id", "currency"}},
                 {"properties", {{"customer_id", requiredText()}, {"currency", requiredText()}}}},
                "counts the account under its customer")
      .consumes("customer_summary", "FundsDeposited", movement(), "adds to the balances")
      .consumes("customer_summary", "FundsWithdrawn", movement(), "subtracts from the balances")
      .consumes("customer_summary", "AccountClosed", any, "counts the account closed");
}

}  // namespace
}  // namespace ultracore::plugins::customer_summary

ULTRACORE_EVENT_CATALOG(ultracore::plugins::customer_summary::catalog)
