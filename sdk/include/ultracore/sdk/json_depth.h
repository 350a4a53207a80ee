#pragma once
/// @file
/// How deeply a JSON text nests, checked before nlohmann::json parses it. nlohmann parses
/// iteratively, but copying, comparing or dumping a value recurses once per level: a 600 KB
/// body of nested arrays crashed the engine's API, and such an event_data the engine (issue 15,
/// found by tests/fuzz/envelope_fuzz.cpp). Header only; pure functions.

#include <cstddef>
#include <string_view>

namespace ultracore::sdk {

/// The deepest nesting any envelope, command body or event file may have: far more than any
/// document of ours needs, far less than what overflows a thread's stack.
inline constexpr std::size_t kMaxJsonDepth = 100;

/// True when `text` opens more than `max_depth` arrays or objects inside one another (brackets
/// inside strings do not count). Linear, no allocation; for valid JSON the count is exactly the
/// nesting depth, for invalid JSON the parser refuses the text anyway.
inline bool jsonNestingExceeds(std::string_view text, std::size_t max_depth = kMaxJsonDepth) {
  std::size_t depth = 0;
  bool in_string = false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\') {
        ++i;  // the escaped character, whatever it is
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > max_depth) return true;
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  return false;
}

}  // namespace ultracore::sdk
