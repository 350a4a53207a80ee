#pragma once
/// @file
/// The consistency token a command answers with (`X-Consistency-Token`, `consistency_token`)
/// and a query accepts back (`?consistent_with=`, `X-Consistent-With`): the Kafka positions of
/// the command's events, "topic:partition:offset[,topic:partition:offset...]". Pure functions;
/// the decoder reads untrusted input (a fuzz target, tests/fuzz/consistency_token_fuzz.cpp).

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace ultracore::engine {

struct ConsistencyPosition {
  std::string topic;
  std::int32_t partition = 0;
  std::int64_t offset = 0;
  bool operator==(const ConsistencyPosition&) const = default;
};

std::string encodeConsistencyToken(const std::vector<ConsistencyPosition>& positions);

/// nullopt unless every comma-separated part is TOPIC:PARTITION:OFFSET with a non-empty topic
/// (which may itself hold ':') and decimal partition and offset, both >= 0 and in range.
std::optional<std::vector<ConsistencyPosition>> decodeConsistencyToken(const std::string& token);

/// The aggregate version of an `If-Match` header (the ETag a GET answered): `7`, `"7"` or
/// `W/"7"`; nullopt for anything else (empty, signs, spaces, more than 18 digits, a list).
std::optional<std::int64_t> parseIfMatch(std::string value);

}  // namespace ultracore::engine
