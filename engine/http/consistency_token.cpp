#include "engine/http/consistency_token.h"

#include <algorithm>
#include <cctype>
#include <stdexcept>

namespace ultracore::engine {
namespace {

bool allDigits(const std::string& text) {
  return !text.empty() && std::all_of(text.begin(), text.end(),
                                      [](char c) { return c >= '0' && c <= '9'; });
}

}  // namespace

std::string encodeConsistencyToken(const std::vector<ConsistencyPosition>& positions) {
  std::string token;
  for (const auto& p : positions) {
    if (!token.empty()) token += ",";
    token += p.topic + ":" + std::to_string(p.partition) + ":" + std::to_string(p.offset);
  }
  return token;
}

std::optional<std::vector<ConsistencyPosition>> decodeConsistencyToken(const std::string& token) {
  std::vector<ConsistencyPosition> positions;
  std::size_t start = 0;
  while (start <= token.size()) {
    std::size_t comma = token.find(',', start);
    if (comma == std::string::npos) comma = token.size();
    const std::string part = token.substr(start, comma - start);
    const std::size_t second = part.rfind(':');
    const std::size_t first = second == std::string::npos || second == 0
                                  ? std::string::npos
                                  : part.rfind(':', second - 1);
    if (first == std::string::npos || first == 0) return std::nullopt;
    try {
      ConsistencyPosition p;
      p.topic = part.substr(0, first);
      const std::string partition = part.substr(first + 1, second - first - 1);
      const std::string offset = part.substr(second + 1);
      // stoi alone would also take " 1", "+1" and "-0": digits only.
      if (!allDigits(partition) || !allDigits(offset)) return std::nullopt;
      p.partition = std::stoi(partition);
      p.offset = std::stoll(offset);
      positions.push_back(std::move(p));
    } catch (const std::exception&) {
      return std::nullopt;
    }
    start = comma + 1;
  }
  if (positions.empty()) return std::nullopt;
  return positions;
}

std::optional<std::int64_t> parseIfMatch(std::string value) {
  if (value.rfind("W/", 0) == 0) value = value.substr(2);
  if (value.size() >= 2 && value.front() == '"' && value.back() == '"') {
    value = value.substr(1, value.size() - 2);
  }
  if (value.empty() || value.size() > 18 ||
      !std::all_of(value.begin(), value.end(), [](unsigned char c) { return std::isdigit(c); })) {
    return std::nullopt;
  }
  return std::stoll(value);
}

}  // namespace ultracore::engine
