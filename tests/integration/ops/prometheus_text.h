#pragma once
/// @file
/// A strict parser of the Prometheus text exposition format (0.0.4), for tests: it rejects
/// what a scraper would reject or silently misread.

#include <map>
#include <string>
#include <vector>

namespace ultracore::testing {

struct PromSample {
  std::string name;                           ///< as written, e.g. x_bucket
  std::map<std::string, std::string> labels;  ///< unescaped values
  double value = 0;
};

struct PromFamily {
  std::string name;
  std::string type;  ///< counter, gauge, histogram, summary, untyped
  std::string help;
  std::vector<PromSample> samples;
};

/// Parses `text`; throws std::runtime_error naming the line on any violation: bad metric or
/// label names, bad escapes, values that are not numbers, HELP/TYPE missing, repeated or after
/// the family's samples, samples of one family not contiguous, duplicate series, histograms
/// whose buckets are not cumulative, not sorted by le, without +Inf, or whose _count differs
/// from the +Inf bucket.
std::map<std::string, PromFamily> parsePrometheusText(const std::string& text);

/// The value of the one sample `name` whose labels include `labels`; throws when not exactly one.
double promValue(const std::map<std::string, PromFamily>& families, const std::string& name,
                 const std::map<std::string, std::string>& labels);

}  // namespace ultracore::testing
