#pragma once
/// @file
/// The event catalog (issue 16): UltraCore's schema registry. Built from the manifest and the
/// catalogs the loaded plugins declare (sdk/include/ultracore/sdk/catalog.h): per topic, each
/// event type with its schemas, its producers (API routes) and its consumers (the manifest's
/// projections, bound to topics by the manifest). Served by the admin server
/// (`GET /api/v1/catalog`), used by the API and `ultracore-ctl produce` to validate events
/// before they publish them. Immutable once built; safe to read from any thread.

#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/manifest/manifest.h"
#include "engine/plugin/json_schema.h"
#include "engine/plugin/plugin_loader.h"

namespace ultracore::engine {

/// Why an event does not match its declared schema.
struct CatalogRejection {
  std::string topic;
  std::string event_type;
  std::string declared_by;  ///< "projection customers" or "route POST /api/v1/customers (customers)"
  SchemaViolation violation;  ///< path is "/event_data/..."

  /// One line: where, which rule, what was expected.
  std::string message() const;
  /// The API's 422 body: {"error": {"code": "event_schema_violation", "message", "field",
  /// "rule", "event_type", "topic", "declared_by"}}.
  nlohmann::json errorBody() const;
};

class EventCatalog {
 public:
  /// Applied events by manifest projection name, then (topic, event_type).
  using Seen = std::map<std::string, std::map<std::pair<std::string, std::string>, std::uint64_t>>;

  /// Every projection of the manifest whose plugin is loaded, and every loaded plugin's
  /// producers. Plugins `plugins` lacks are left out.
  static EventCatalog build(const Manifest& manifest, const PluginRegistry& plugins);

  /// nullopt when every schema declared for (topic, event_type) accepts `event_data`, or when
  /// nobody declares that type on that topic (undeclared: not checked, counted by the engine).
  std::optional<CatalogRejection> validate(const std::string& topic, const std::string& event_type,
                                           const nlohmann::json& event_data) const;
  /// What the route "METHOD /path" of `plugin` declares it produces: [{topic, event_type,
  /// schema}], for the API docs.
  nlohmann::json producedBy(const std::string& plugin, const std::string& route) const;
  /// Whether anyone (producer or consumer) declares the type on the topic.
  bool declares(const std::string& topic, const std::string& event_type) const;

  /// --check's warnings for the event types a projection's `config.on` mapping names (the sql
  /// plugin's statements per event type) that nobody declares on any of its topics, each
  /// "FILE:LINE:COLUMN: projection 'NAME': ..." at the statement, with a "did you mean" when a
  /// declared type is near. A projection whose topics carry no declaration gets none (the
  /// catalog knows nothing there to compare with).
  std::vector<std::string> undeclaredHandledTypes(const Manifest& manifest) const;

  /// The body of GET /api/v1/catalog; `seen` adds the counts (see docs/OPERATIONS.md).
  nlohmann::json toJson(const Seen& seen = {}) const;
  /// Per topic, events applied whose type none of the topic's consumers declares: for each
  /// type, the most any one consuming projection applied.
  std::map<std::string, std::uint64_t> undeclaredSeen(const Seen& seen) const;

 private:
  struct Declaration {
    std::string plugin;
    std::string owner;  ///< the manifest projection name, or the route "METHOD /path"
    nlohmann::json schema;
    std::string description;
  };
  struct EventType {
    std::vector<Declaration> producers;
    std::vector<Declaration> consumers;
  };
  struct Consumer {
    std::string projection;  ///< manifest name
    std::string plugin;
    bool declares = false;   ///< its plugin declares any consumed types for it
  };
  std::map<std::string, std::map<std::string, EventType>> topics_;  ///< topic -> type -> ...
  std::map<std::string, std::vector<Consumer>> consumers_;          ///< topic -> projections
  std::vector<std::pair<std::string, bool>> plugins_;               ///< (plugin, declares)
};

}  // namespace ultracore::engine
