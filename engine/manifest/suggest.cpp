#include "engine/manifest/suggest.h"

#include <algorithm>

namespace ultracore::engine {

std::size_t editDistance(std::string_view a, std::string_view b) {
  // Optimal string alignment: Levenshtein plus transposition of two neighbours.
  const std::size_t rows = a.size() + 1;
  const std::size_t cols = b.size() + 1;
  std::vector<std::size_t> d(rows * cols);
  auto at = [&](std::size_t i, std::size_t j) -> std::size_t& { return d[i * cols + j]; };
  for (std::size_t i = 0; i < rows; ++i) at(i, 0) = i;
  for (std::size_t j = 0; j < cols; ++j) at(0, j) = j;
  for (std::size_t i = 1; i < rows; ++i) {
    for (std::size_t j = 1; j < cols; ++j) {
      const std::size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      at(i, j) = std::min({at(i - 1, j) + 1, at(i, j - 1) + 1, at(i - 1, j - 1) + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) {
        at(i, j) = std::min(at(i, j), at(i - 2, j - 2) + 1);
      }
    }
  }
  return at(rows - 1, cols - 1);
}

std::optional<std::string> nearestName(std::string_view word,
                                       const std::vector<std::string>& candidates) {
  std::optional<std::string> best;
  std::size_t best_distance = 0;
  // A shortened key ('max_body' for 'max_body_bytes') is a typo too, however far by edits.
  constexpr std::size_t kMinPrefix = 3;
  if (word.size() >= kMinPrefix) {
    for (const std::string& candidate : candidates) {
      if (candidate.size() > word.size() && candidate.compare(0, word.size(), word) == 0) {
        return candidate;
      }
    }
  }
  for (const std::string& candidate : candidates) {
    const std::size_t distance = editDistance(word, candidate);
    if (!best || distance < best_distance) {
      best = candidate;
      best_distance = distance;
    }
  }
  // Beyond this a suggestion is noise: 'xyz' is no typo of 'api'.
  const std::size_t limit = std::max<std::size_t>(2, word.size() / 3);
  if (best && best_distance <= limit && best_distance < std::max(word.size(), best->size())) {
    return best;
  }
  return std::nullopt;
}

}  // namespace ultracore::engine
