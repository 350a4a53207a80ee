#pragma once
/// @file
/// Parses and validates the JSON envelope of DESIGN.md. A record that fails here is poison.

#include <string_view>

#include "ultracore/sdk/event.h"
#include "ultracore/sdk/status.h"

namespace ultracore::engine {

/// Required: event_id, event_type, aggregate_id (non-empty strings). Optional with defaults:
/// aggregate_type (""), tenant_id ("DEFAULT"), user_id (""), occurred_at (""),
/// aggregate_version (integer >= 1), event_data (object, default {}).
/// Errors are kInvalidEvent naming the field.
sdk::Result<sdk::Envelope> parseEnvelope(std::string_view json);

}  // namespace ultracore::engine
