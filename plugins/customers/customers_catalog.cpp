// The customers plugin's event catalog (issue 16): what the customers projection applies and
// what the customers API publishes, with the schemas of their event_data. The projection's
// schemas say what it needs (it tolerates extra fields); the API's say exactly what it sends.

#include "ultracore/sdk/catalog.h"

namespace ultracore::plugins::customers {
namespace {

using nlohmann::json;

constexpr const char* kTopic = "ultracore.customers.events";

json requiredText() { return {{"type", "string"}, {"minLength", 1}}; }
json optionalText() { return {{"type", {"string", "null"}}}; }

/// What the projection reads of a CustomerCreated (`create`) or a CustomerUpdated.
json consumed(bool create) {
  json schema{{"type", "object"},
              {"properties",
               {{"first_name", requiredText()},
                {"last_name", requiredText()},
                {"email", requiredText()},
                {"phone", optionalText()},
                {"date_of_birth", optionalText()}}}};
  if (create) schema["required"] = {"first_name", "last_name", "email"};
  return schema;
}

/// What the API sends: only these fields, of bounded length.
json produced(bool create) {
  const auto bounded = [](int max, bool nullable) {
    json text{{"type", "string"}, {"maxLength", max}};
    if (nullable) text["type"] = {"string", "null"};
    return text;
  };
  json schema = consumed(create);
  schema["additionalProperties"] = false;
  schema["properties"]["first_name"]["maxLength"] = 200;
  schema["properties"]["last_name"]["maxLength"] = 200;
  schema["properties"]["email"]["maxLength"] = 254;
  schema["properties"]["phone"] = bounded(40, true);
  schema["properties"]["date_of_birth"] = bounded(10, true);
  schema["properties"]["date_of_birth"]["pattern"] = "^[0-9]{4}-[0-9]{2}-[0-9]{2}$";
  return schema;
}

json empty() { return {{"type", "object"}}; }

sdk::EventCatalog catalog() {
  return sdk::EventCatalog()
      .consumes("customers", "CustomerCreated", consumed(true), "inserts the customer")
      .consumes("customers", "CustomerUpdated", consumed(false), "sets the fields it carries")
      .consumes("customers", "CustomerDeleted", empty(), "marks the customer deleted")
      .produces("POST /api/v1/customers", kTopic, "CustomerCreated", produced(true))
      .produces("PATCH /api/v1/customers/{id}", kTopic, "CustomerUpdated", produced(false))
      .produces("DELETE /api/v1/customers/{id}", kTopic, "CustomerDeleted",
                {{"type", "object"}, {"additionalProperties", false}});
}

}  // namespace
}  // namespace ultracore::plugins::customers

ULTRACORE_EVENT_CATALOG(ultracore::plugins::customers::catalog)
