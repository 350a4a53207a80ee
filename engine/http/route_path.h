#pragma once
/// @file
/// RoutePath: a route's path pattern ("/api/v1/customers/{id}"), matched segment by segment.

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ultracore::engine {

/// Immutable after construction; safe to share between threads.
class RoutePath {
 public:
  /// Throws std::invalid_argument for a pattern that does not start with '/' or has an
  /// unterminated or empty `{}`.
  explicit RoutePath(const std::string& pattern);

  /// The path parameters when `path` (already percent-decoded) matches, nullopt otherwise.
  std::optional<std::map<std::string, std::string>> match(std::string_view path) const;

  const std::string& pattern() const { return pattern_; }
  /// Names of the `{name}` segments, in order.
  std::vector<std::string> parameters() const;

 private:
  struct Segment {
    std::string text;
    bool parameter = false;
  };
  std::string pattern_;
  std::vector<Segment> segments_;
};

/// Splits "/a/b/" into {"a", "b"}; an empty path gives {}.
std::vector<std::string_view> splitPath(std::string_view path);

}  // namespace ultracore::engine
