#include "engine/runner/envelope.h"

#include <nlohmann/json.hpp>

namespace ultracore::engine {
namespace {

using nlohmann::json;

sdk::Status fieldError(const std::string& field, const std::string& problem) {
  return sdk::Status::invalidEvent("invalid envelope: '" + field + "' " + problem);
}

/// Reads a string field; `required` fields must be present and non-empty.
sdk::Status readString(const json& object, const char* field, bool required, std::string& out) {
  const auto it = object.find(field);
  if (it == object.end() || it->is_null()) {
    return required ? fieldError(field, "is missing") : sdk::Status::ok();
  }
  if (!it->is_string()) return fieldError(field, "must be a string");
  out = it->get<std::string>();
  if (required && out.empty()) return fieldError(field, "is empty");
  return sdk::Status::ok();
}

}  // namespace

sdk::Result<sdk::Envelope> parseEnvelope(std::string_view text) {
  json document = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (document.is_discarded()) return sdk::Status::invalidEvent("invalid envelope: not valid JSON");
  if (!document.is_object()) return sdk::Status::invalidEvent("invalid envelope: not a JSON object");

  sdk::Envelope envelope;
  envelope.tenant_id = "DEFAULT";
  for (auto [field, required, target] :
       {std::tuple{"event_id", true, &envelope.event_id},
        std::tuple{"event_type", true, &envelope.event_type},
        std::tuple{"aggregate_id", true, &envelope.aggregate_id},
        std::tuple{"aggregate_type", false, &envelope.aggregate_type},
        std::tuple{"tenant_id", false, &envelope.tenant_id},
        std::tuple{"user_id", false, &envelope.user_id},
        std::tuple{"occurred_at", false, &envelope.occurred_at}}) {
    if (auto status = readString(document, field, required, *target); !status) return status;
  }
  if (envelope.tenant_id.empty()) envelope.tenant_id = "DEFAULT";

  if (const auto it = document.find("aggregate_version"); it != document.end() && !it->is_null()) {
    if (!it->is_number_integer() || it->get<std::int64_t>() < 1) {
      return fieldError("aggregate_version", "must be an integer >= 1");
    }
    envelope.aggregate_version = it->get<std::int64_t>();
  }
  if (const auto it = document.find("event_data"); it != document.end() && !it->is_null()) {
    if (!it->is_object()) return fieldError("event_data", "must be an object");
    envelope.event_data = std::move(*it);
  }
  return envelope;
}

}  // namespace ultracore::engine
