#pragma once
/// @file
/// "Did you mean ...?" for names the operator typed. Pure functions.

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ultracore::engine {

/// Edit distance counting insertions, deletions, substitutions and swaps of neighbours.
std::size_t editDistance(std::string_view a, std::string_view b);

/// The candidate nearest to `word`, if it is close enough to be a plausible typo.
std::optional<std::string> nearestName(std::string_view word,
                                       const std::vector<std::string>& candidates);

}  // namespace ultracore::engine
