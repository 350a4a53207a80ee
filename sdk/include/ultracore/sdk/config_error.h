#pragma once
/// @file
/// Placing a mistake in a projection's `config:` in the manifest. Header only, no state.
///
/// A projection's factory (its constructor throwing) or its setupSchema() may report a
/// mistake in the manifest entry's `config:` map by putting configErrorAt(...) text in its
/// error message. The engine rewrites every such marker into "<file>:<line>:<column>" of the
/// manifest (`ultracore-engine --check`, start-up, reload), so an operator sees where to edit.
/// A message without markers is shown as it is.
///
/// Marker syntax: "@config" + JSON pointer into `config` + "#" + offset + ":", e.g.
/// "@config/on/FundsDeposited/0#57:". The offset is the 0-based character offset into that
/// string value (0 for a non-string value or the value itself).

#include <cstddef>
#include <string>
#include <string_view>

namespace ultracore::sdk {

/// One JSON pointer segment: "~" -> "~0", "/" -> "~1" (RFC 6901). The engine uses it too, for
/// manifest positions and JSON Schema paths.
inline std::string configPointerSegment(std::string_view key) {
  std::string out;
  for (char c : key) {
    if (c == '~') {
      out += "~0";
    } else if (c == '/') {
      out += "~1";
    } else {
      out.push_back(c);
    }
  }
  return out;
}

/// "@config<pointer>#<offset>: <message>". `pointer` is "" (config itself) or starts with '/'.
inline std::string configErrorAt(std::string_view pointer, std::size_t offset,
                                 std::string_view message) {
  return "@config" + std::string(pointer) + "#" + std::to_string(offset) + ": " +
         std::string(message);
}

}  // namespace ultracore::sdk
