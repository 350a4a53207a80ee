#pragma once
/// @file
/// A JSON Schema subset validator for the event catalog (issue 16): what the engine checks of
/// an event's `event_data` before the API or `ultracore-ctl produce` publishes it. nlohmann/json
/// only. Keywords: type (a name or a list of names), nullable (OpenAPI 3.0: also null),
/// required, properties, enum, minimum, maximum, minLength, maxLength (Unicode code points),
/// pattern (ECMAScript, unanchored, as JSON Schema says), items (one schema for every element),
/// additionalProperties (a boolean or a schema). Other keywords are ignored.
///
/// A string longer than kMaxPatternInput is not matched against a pattern (std::regex
/// recurses per character): it fails the pattern rule, saying so.

#include <cstddef>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

namespace ultracore::engine {

constexpr std::size_t kMaxPatternInput = 4096;

/// Why a value does not match: where (a JSON Pointer into the value, "" for the value itself),
/// which keyword, and a sentence saying what was expected.
struct SchemaViolation {
  std::string path;
  std::string rule;
  std::string message;
};

/// nullopt when `value` matches `schema`. A null or empty schema matches everything. Call
/// checkSchema first: a keyword of the wrong shape here is ignored.
std::optional<SchemaViolation> validateJson(const nlohmann::json& schema,
                                            const nlohmann::json& value);

/// nullopt when the checked keywords of `schema` (and of its nested schemas) have the shape
/// JSON Schema gives them and every pattern compiles; else what is wrong, `path` pointing into
/// the schema.
std::optional<SchemaViolation> checkSchema(const nlohmann::json& schema);

}  // namespace ultracore::engine
