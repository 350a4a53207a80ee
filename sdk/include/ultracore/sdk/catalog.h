#pragma once
/// @file
/// The event catalog (issue 16): what a plugin declares about the events it handles. Each
/// projection names the event types it consumes and each API route the event types it
/// produces, each with a JSON Schema for `event_data`. The engine lists them per topic
/// (`GET /api/v1/catalog` and the admin page's Catalog view), counts what it sees, and
/// validates events against the schemas before the API or `ultracore-ctl produce` publishes
/// them (docs/PLUGINS.md, "Declaring event types").
///
/// Optional and compatible with ABI 3: a plugin declares its catalog with
/// ULTRACORE_EVENT_CATALOG, which exports one more C function, `ultracore_plugin_catalog`,
/// returning the declarations as JSON text. A plugin without it loads as before and shows as
/// "undeclared" in the catalog.
///
///   sdk::EventCatalog catalog() {
///     const nlohmann::json created = {{"type", "object"}, {"required", {"email"}}, ...};
///     return sdk::EventCatalog()
///         .consumes("customers", "CustomerCreated", created)
///         .produces("POST /api/v1/customers", "ultracore.customers.events", "CustomerCreated",
///                   created);
///   }
///   ULTRACORE_EVENT_CATALOG(catalog)
///
/// Schema keywords the engine checks: type (also a list; "integer", "number", "string",
/// "boolean", "object", "array", "null"), nullable (OpenAPI), required, properties, enum,
/// minimum, maximum, minLength, maxLength, pattern (ECMAScript, unanchored), items,
/// additionalProperties (false or a schema). Others (description, format, ...) are shown,
/// not checked.

#include <exception>
#include <string>
#include <utility>

#include <nlohmann/json.hpp>

namespace ultracore::sdk {

/// The catalog's JSON text layout; the loader refuses another.
constexpr int kCatalogFormat = 1;
constexpr const char* kPluginCatalogSymbol = "ultracore_plugin_catalog";
using PluginCatalogFunction = const char* (*)();

/// A plugin's declarations. Value type; built once when the engine loads the plugin.
class EventCatalog {
 public:
  /// Projection `projection` (its ULTRACORE_PROJECTION name) applies events of `event_type`
  /// whose event_data matches `schema` (null: any).
  EventCatalog& consumes(std::string projection, std::string event_type,
                         nlohmann::json schema = nullptr, std::string description = "") {
    consumes_.push_back({{"projection", std::move(projection)},
                         {"event_type", std::move(event_type)},
                         {"schema", std::move(schema)},
                         {"description", std::move(description)}});
    return *this;
  }
  /// The API route `route` ("METHOD PATH" exactly as its RouteSpec, e.g.
  /// "POST /api/v1/customers") publishes events of `event_type` to `topic`.
  EventCatalog& produces(std::string route, std::string topic, std::string event_type,
                         nlohmann::json schema = nullptr, std::string description = "") {
    produces_.push_back({{"route", std::move(route)},
                         {"topic", std::move(topic)},
                         {"event_type", std::move(event_type)},
                         {"schema", std::move(schema)},
                         {"description", std::move(description)}});
    return *this;
  }

  nlohmann::json toJson() const {
    return {{"format", kCatalogFormat}, {"consumes", consumes_}, {"produces", produces_}};
  }

 private:
  nlohmann::json consumes_ = nlohmann::json::array();
  nlohmann::json produces_ = nlohmann::json::array();
};

namespace detail {

/// The JSON text of `build()`'s catalog; {"error": "..."} when it throws (nothing crosses
/// into the engine, which refuses the plugin with that message).
template <typename F>
std::string catalogText(F&& build) noexcept {
  try {
    return build().toJson().dump();
  } catch (const std::exception& e) {
    try {
      return nlohmann::json{{"error", std::string("exception: ") + e.what()}}.dump();
    } catch (...) {
    }
  } catch (...) {
  }
  return "{\"error\": \"exception of unknown type\"}";
}

}  // namespace detail
}  // namespace ultracore::sdk

/// Exports the plugin's catalog: `function` is a `sdk::EventCatalog ()` function. Use once per
/// plugin, beside ULTRACORE_PLUGIN.
#define ULTRACORE_EVENT_CATALOG(function)                                                   \
  extern "C" __attribute__((visibility("default"))) const char* ultracore_plugin_catalog() { \
    static const std::string kText = ::ultracore::sdk::detail::catalogText(function);       \
    return kText.c_str();                                                                   \
  }
