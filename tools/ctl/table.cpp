#include "tools/ctl/table.h"

#include <algorithm>

namespace ultracore::ctl {
namespace {

std::string cut(std::string text, std::size_t max_width) {
  std::replace(text.begin(), text.end(), '\n', ' ');
  if (text.size() > max_width) text = text.substr(0, max_width - 3) + "...";
  return text;
}

}  // namespace

void Table::print(std::FILE* out, std::size_t max_width) const {
  std::vector<std::size_t> widths(header_.size(), 0);
  auto measure = [&](const std::vector<std::string>& row) {
    for (std::size_t c = 0; c < row.size() && c < widths.size(); ++c) {
      widths[c] = std::max(widths[c], cut(row[c], max_width).size());
    }
  };
  measure(header_);
  for (const auto& row : rows_) measure(row);
  auto line = [&](const std::vector<std::string>& row) {
    std::string text;
    for (std::size_t c = 0; c < widths.size(); ++c) {
      std::string cell = c < row.size() ? cut(row[c], max_width) : "";
      if (c + 1 < widths.size()) cell.resize(widths[c], ' ');
      text += cell;
      if (c + 1 < widths.size()) text += "  ";
    }
    while (!text.empty() && text.back() == ' ') text.pop_back();
    std::fprintf(out, "%s\n", text.c_str());
  };
  line(header_);
  for (const auto& row : rows_) line(row);
}

void printFields(const std::vector<std::pair<std::string, std::string>>& fields, std::FILE* out) {
  std::size_t width = 0;
  for (const auto& [key, value] : fields) width = std::max(width, key.size());
  for (const auto& [key, value] : fields) {
    std::fprintf(out, "%-*s  %s\n", static_cast<int>(width + 1), (key + ":").c_str(),
                 value.c_str());
  }
}

}  // namespace ultracore::ctl
