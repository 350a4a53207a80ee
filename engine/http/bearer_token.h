#pragma once
/// @file
/// The one token rule of the API and admin servers: `Authorization: Bearer <token>`, compared
/// in constant time.

#include <string>

namespace ultracore::engine {

/// Compares without an early exit, so the time taken does not reveal the matching prefix.
bool constantTimeEquals(const std::string& a, const std::string& b);

/// True when `authorization` (the header's value) is "Bearer " followed by exactly `token`.
bool bearerTokenMatches(const std::string& authorization, const std::string& token);

}  // namespace ultracore::engine
