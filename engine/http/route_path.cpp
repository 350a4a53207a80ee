#include "engine/http/route_path.h"

#include <stdexcept>

namespace ultracore::engine {

std::vector<std::string_view> splitPath(std::string_view path) {
  std::vector<std::string_view> parts;
  std::size_t start = 0;
  while (start <= path.size()) {
    const std::size_t slash = path.find('/', start);
    const std::size_t end = slash == std::string_view::npos ? path.size() : slash;
    if (end > start) parts.push_back(path.substr(start, end - start));
    if (slash == std::string_view::npos) break;
    start = slash + 1;
  }
  return parts;
}

RoutePath::RoutePath(const std::string& pattern) : pattern_(pattern) {
  if (pattern.empty() || pattern[0] != '/') {
    throw std::invalid_argument("route path '" + pattern + "' must start with '/'");
  }
  for (std::string_view part : splitPath(pattern)) {
    if (part.front() == '{') {
      if (part.back() != '}' || part.size() < 3) {
        throw std::invalid_argument("route path '" + pattern + "': bad parameter '" +
                                    std::string(part) + "'");
      }
      segments_.push_back({std::string(part.substr(1, part.size() - 2)), true});
    } else {
      segments_.push_back({std::string(part), false});
    }
  }
}

std::optional<std::map<std::string, std::string>> RoutePath::match(std::string_view path) const {
  const auto parts = splitPath(path);
  if (parts.size() != segments_.size()) return std::nullopt;
  std::map<std::string, std::string> params;
  for (std::size_t i = 0; i < parts.size(); ++i) {
    if (segments_[i].parameter) {
      params[segments_[i].text] = std::string(parts[i]);  // httplib decoded the path
    } else if (parts[i] != segments_[i].text) {
      return std::nullopt;
    }
  }
  return params;
}

std::vector<std::string> RoutePath::parameters() const {
  std::vector<std::string> names;
  for (const auto& segment : segments_) {
    if (segment.parameter) names.push_back(segment.text);
  }
  return names;
}

}  // namespace ultracore::engine
