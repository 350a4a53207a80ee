#pragma once
/// @file
/// The API's documentation, generated from the registered routes and the schemas plugins
/// declare: GET /api/v1/openapi.json (OpenAPI 3.0) and GET /api/v1/docs (HTML).

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "ultracore/sdk/api.h"

namespace ultracore::engine {

struct RouteDoc {
  std::string plugin;
  sdk::RouteSpec spec;
  std::vector<std::string> path_parameters;
  /// The events the event catalog says the route publishes: [{topic, event_type, schema}].
  nlohmann::json events = nlohmann::json::array();
};

nlohmann::json buildOpenApi(const std::vector<RouteDoc>& routes, const nlohmann::json& schemas,
                            bool token_required);
std::string buildDocsHtml(const std::vector<RouteDoc>& routes, bool token_required);

}  // namespace ultracore::engine
