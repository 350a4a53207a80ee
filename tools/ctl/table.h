#pragma once
/// @file
/// Plain-text output for ultracore-ctl: aligned columns for lists, "key: value" for one row.

#include <cstdio>
#include <string>
#include <utility>
#include <vector>

namespace ultracore::ctl {

class Table {
 public:
  explicit Table(std::vector<std::string> header) : header_(std::move(header)) {}
  void add(std::vector<std::string> row) { rows_.push_back(std::move(row)); }
  std::size_t size() const { return rows_.size(); }
  /// Columns separated by two spaces, padded; cells cut to `max_width` characters.
  void print(std::FILE* out = stdout, std::size_t max_width = 60) const;

 private:
  std::vector<std::string> header_;
  std::vector<std::vector<std::string>> rows_;
};

/// Prints "key: value" lines with keys aligned.
void printFields(const std::vector<std::pair<std::string, std::string>>& fields,
                 std::FILE* out = stdout);

}  // namespace ultracore::ctl
