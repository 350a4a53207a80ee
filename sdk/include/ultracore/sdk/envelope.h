#pragma once
/// @file
/// The envelope of DESIGN.md: how a Kafka record's JSON value becomes an Envelope. The engine
/// and the test kit both use these functions, so an event the kit accepts is one the engine
/// accepts. Header only; pure functions.

#include <cstdint>
#include <string>
#include <string_view>
#include <tuple>

#include <nlohmann/json.hpp>

#include "ultracore/sdk/event.h"
#include "ultracore/sdk/json_depth.h"
#include "ultracore/sdk/status.h"

namespace ultracore::sdk {

/// Required: event_id, event_type, aggregate_id (non-empty
/// strings); optional aggregate_type (""), tenant_id ("DEFAULT"), user_id (""),
/// occurred_at (""), aggregate_version (integer >= 1), event_data (object, default {}).
/// Errors are kInvalidEvent naming the field.
inline Result<Envelope> envelopeFromJson(const nlohmann::json& document) {
  auto fieldError = [](const std::string& field, const std::string& problem) {
    return Status::invalidEvent("invalid envelope: '" + field + "' " + problem);
  };
  if (!document.is_object()) return Status::invalidEvent("invalid envelope: not a JSON object");
  Envelope envelope;
  envelope.tenant_id = "DEFAULT";
  for (auto [field, required, target] :
       {std::tuple{"event_id", true, &envelope.event_id},
        std::tuple{"event_type", true, &envelope.event_type},
        std::tuple{"aggregate_id", true, &envelope.aggregate_id},
        std::tuple{"aggregate_type", false, &envelope.aggregate_type},
        std::tuple{"tenant_id", false, &envelope.tenant_id},
        std::tuple{"user_id", false, &envelope.user_id},
        std::tuple{"occurred_at", false, &envelope.occurred_at}}) {
    const auto it = document.find(field);
    if (it == document.end() || it->is_null()) {
      if (required) return fieldError(field, "is missing");
      continue;
    }
    if (!it->is_string()) return fieldError(field, "must be a string");
    *target = it->get<std::string>();
    if (required && target->empty()) return fieldError(field, "is empty");
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
    envelope.event_data = *it;
  }
  return envelope;
}

inline Result<Envelope> parseEnvelope(std::string_view text) {
  if (jsonNestingExceeds(text)) {
    return Status::invalidEvent("invalid envelope: nested deeper than " +
                                std::to_string(kMaxJsonDepth) + " levels");
  }
  nlohmann::json document = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (document.is_discarded()) return Status::invalidEvent("invalid envelope: not valid JSON");
  return envelopeFromJson(document);
}

}  // namespace ultracore::sdk
