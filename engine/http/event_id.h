#pragma once
/// @file
/// The event_id of an event a command publishes under an Idempotency-Key.
///
/// A retry of a command whose first attempt was published but whose key was never stored (the
/// API process died between the delivery report and the key's INSERT) publishes again. With a
/// random id that duplicate would be applied a second time; with the id derived here it carries
/// the first attempt's event_id, and every projection skips it (processed_events is unique per
/// projection and event_id).

#include <cstddef>
#include <string>

#include "ultracore/sdk/api.h"

namespace ultracore::engine {

/// A name-based UUID, version 5 (SHA-1, RFC 4122 section 4.3), of `name` in the namespace
/// `namespace_uuid` (text form), as lower-case text. Throws std::invalid_argument for a
/// namespace that is not a UUID.
std::string uuidV5(const std::string& namespace_uuid, const std::string& name);

/// The event_id of the `index`-th (0-based) event of a command sent by `tenant` with
/// `idempotency_key`: uuidV5 over those three and the event's content (topic, event_type,
/// aggregate_type, aggregate_id, event_data; not aggregate_version or occurred_at, which a
/// retry may renew). The content is part of the name so that a retry whose handler produced
/// another event (a server-assigned id, say) gets another id and is applied, as without a key,
/// instead of being skipped as the first one's duplicate.
std::string commandEventId(const std::string& tenant, const std::string& idempotency_key,
                           std::size_t index, const sdk::NewEvent& event);

}  // namespace ultracore::engine
