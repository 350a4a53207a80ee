#pragma once
/// @file
/// Reads a file of event envelopes for `ultracore-ctl produce`: JSON lines (one envelope per
/// non-blank line), one JSON array of envelopes, or a single (possibly multi-line) object.
/// Every envelope is checked with the SDK's parser (sdk::envelopeFromJson), the same rules the
/// engine applies, so a file that passes is one the engine accepts.

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace ultracore::ctl {

struct EnvelopeFileOptions {
  /// Fill a missing (absent, null or empty) event_id with a fresh random UUID and a missing
  /// occurred_at with the current time. Off: a missing event_id is an error.
  bool generate_ids = false;
};

struct EnvelopeEntry {
  std::string where;  ///< "FILE:LINE" or "FILE: array index I", for messages
  std::string aggregate_id;
  nlohmann::ordered_json document;  ///< after --generate-ids filled it; keys in file order
};

struct EnvelopeFile {
  std::vector<EnvelopeEntry> entries;
  std::vector<std::string> errors;  ///< "FILE:LINE: reason", in file order; empty = all valid
};

/// Parses `text`; `name` is what messages call the file ("-" reads as "stdin").
EnvelopeFile readEnvelopeFile(const std::string& text, const std::string& name,
                              const EnvelopeFileOptions& options);

/// A random (version 4) UUID, lower case.
std::string randomUuid();

}  // namespace ultracore::ctl
