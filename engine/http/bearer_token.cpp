#include "engine/http/bearer_token.h"

#include <algorithm>

namespace ultracore::engine {

bool constantTimeEquals(const std::string& a, const std::string& b) {
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  const std::size_t n = std::max(a.size(), b.size());
  for (std::size_t i = 0; i < n; ++i) {
    const unsigned char x = i < a.size() ? static_cast<unsigned char>(a[i]) : 0;
    const unsigned char y = i < b.size() ? static_cast<unsigned char>(b[i]) : 0;
    diff |= static_cast<unsigned char>(x ^ y);
  }
  return diff == 0;
}

bool bearerTokenMatches(const std::string& authorization, const std::string& token) {
  static const std::string kPrefix = "Bearer ";
  return authorization.size() > kPrefix.size() &&
         authorization.compare(0, kPrefix.size(), kPrefix) == 0 &&
         constantTimeEquals(authorization.substr(kPrefix.size()), token);
}

}  // namespace ultracore::engine
