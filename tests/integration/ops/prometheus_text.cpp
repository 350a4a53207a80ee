#include "prometheus_text.h"

#include <cmath>
#include <cstdlib>
#include <regex>
#include <set>
#include <sstream>
#include <stdexcept>

namespace ultracore::testing {
namespace {

const std::regex kMetricName("[a-zA-Z_:][a-zA-Z0-9_:]*");
const std::regex kLabelName("[a-zA-Z_][a-zA-Z0-9_]*");
const std::set<std::string> kTypes = {"counter", "gauge", "histogram", "summary", "untyped"};

double parseNumber(const std::string& text, const std::string& where) {
  if (text == "+Inf" || text == "Inf") return HUGE_VAL;
  if (text == "-Inf") return -HUGE_VAL;
  if (text == "NaN") return NAN;
  if (text.empty()) throw std::runtime_error(where + ": empty value");
  char* end = nullptr;
  const double value = std::strtod(text.c_str(), &end);
  if (end != text.c_str() + text.size() || text.find_first_of("xXpP") != std::string::npos) {
    throw std::runtime_error(where + ": '" + text + "' is not a number");
  }
  return value;
}

/// The family a sample name belongs to, given the declared families.
std::string familyOf(const std::string& name, const std::map<std::string, PromFamily>& families) {
  if (families.count(name) != 0) return name;
  for (const char* suffix : {"_bucket", "_sum", "_count"}) {
    const std::string s(suffix);
    if (name.size() > s.size() && name.compare(name.size() - s.size(), s.size(), s) == 0) {
      const std::string base = name.substr(0, name.size() - s.size());
      const auto it = families.find(base);
      if (it != families.end() && (it->second.type == "histogram" || it->second.type == "summary")) {
        return base;
      }
    }
  }
  return "";
}

PromSample parseSample(const std::string& line, const std::string& where) {
  PromSample sample;
  std::size_t i = 0;
  while (i < line.size() && line[i] != '{' && line[i] != ' ') ++i;
  sample.name = line.substr(0, i);
  if (!std::regex_match(sample.name, kMetricName)) {
    throw std::runtime_error(where + ": bad metric name '" + sample.name + "'");
  }
  if (i < line.size() && line[i] == '{') {
    ++i;
    while (true) {
      if (i < line.size() && line[i] == '}') { ++i; break; }
      std::size_t eq = line.find('=', i);
      if (eq == std::string::npos) throw std::runtime_error(where + ": label without '='");
      const std::string label = line.substr(i, eq - i);
      if (!std::regex_match(label, kLabelName) || label.rfind("__", 0) == 0) {
        throw std::runtime_error(where + ": bad label name '" + label + "'");
      }
      i = eq + 1;
      if (i >= line.size() || line[i] != '"') throw std::runtime_error(where + ": label value not quoted");
      ++i;
      std::string value;
      for (;; ++i) {
        if (i >= line.size()) throw std::runtime_error(where + ": unterminated label value");
        if (line[i] == '"') break;
        if (line[i] == '\\') {
          ++i;
          if (i >= line.size()) throw std::runtime_error(where + ": dangling escape");
          if (line[i] == '\\') value += '\\';
          else if (line[i] == '"') value += '"';
          else if (line[i] == 'n') value += '\n';
          else throw std::runtime_error(where + ": bad escape \\" + std::string(1, line[i]));
        } else {
          value += line[i];
        }
      }
      ++i;
      if (!sample.labels.emplace(label, value).second) {
        throw std::runtime_error(where + ": label '" + label + "' twice");
      }
      if (i < line.size() && line[i] == ',') { ++i; continue; }
      if (i < line.size() && line[i] == '}') { ++i; break; }
      throw std::runtime_error(where + ": expected ',' or '}' in labels");
    }
  }
  if (i >= line.size() || line[i] != ' ') throw std::runtime_error(where + ": no value");
  std::istringstream rest(line.substr(i + 1));
  std::string value, timestamp, extra;
  rest >> value >> timestamp >> extra;
  if (!extra.empty()) throw std::runtime_error(where + ": trailing text");
  sample.value = parseNumber(value, where);
  if (!timestamp.empty()) {
    char* end = nullptr;
    std::strtoll(timestamp.c_str(), &end, 10);
    if (*end != '\0') throw std::runtime_error(where + ": bad timestamp");
  }
  return sample;
}

void checkHistogram(const PromFamily& family) {
  // Group by the labels other than le.
  std::map<std::map<std::string, std::string>, std::vector<const PromSample*>> buckets;
  std::map<std::map<std::string, std::string>, double> counts;
  for (const auto& s : family.samples) {
    auto labels = s.labels;
    if (s.name == family.name + "_bucket") {
      if (labels.count("le") == 0) throw std::runtime_error(family.name + ": bucket without le");
      labels.erase("le");
      buckets[labels].push_back(&s);
    } else if (s.name == family.name + "_count") {
      counts[labels] = s.value;
    } else if (s.name != family.name + "_sum") {
      throw std::runtime_error(family.name + ": histogram sample " + s.name);
    }
  }
  if (buckets.empty()) throw std::runtime_error(family.name + ": histogram without buckets");
  for (const auto& [labels, series] : buckets) {
    double previous_le = -HUGE_VAL;
    double previous = 0;
    for (const PromSample* s : series) {
      const double le = parseNumber(s->labels.at("le"), family.name + " le");
      if (!(le > previous_le)) throw std::runtime_error(family.name + ": le not increasing");
      if (s->value < previous) throw std::runtime_error(family.name + ": buckets not cumulative");
      previous_le = le;
      previous = s->value;
    }
    if (series.back()->labels.at("le") != "+Inf") {
      throw std::runtime_error(family.name + ": last bucket is not le=\"+Inf\"");
    }
    const auto count = counts.find(labels);
    if (count == counts.end() || count->second != series.back()->value) {
      throw std::runtime_error(family.name + ": _count missing or != the +Inf bucket");
    }
  }
}

}  // namespace

std::map<std::string, PromFamily> parsePrometheusText(const std::string& text) {
  std::map<std::string, PromFamily> families;
  std::set<std::string> closed;  // families whose samples ended
  std::set<std::string> series;
  std::string current;
  std::istringstream in(text);
  std::string line;
  int number = 0;
  if (!text.empty() && text.back() != '\n') throw std::runtime_error("text does not end in a newline");
  while (std::getline(in, line)) {
    const std::string where = "line " + std::to_string(++number) + " '" + line + "'";
    if (line.empty()) continue;
    if (line[0] == '#') {
      std::istringstream words(line);
      std::string hash, keyword, name;
      words >> hash >> keyword >> name;
      if (keyword != "HELP" && keyword != "TYPE") continue;  // a comment
      if (!std::regex_match(name, kMetricName)) throw std::runtime_error(where + ": bad name");
      if (closed.count(name) != 0 || (families.count(name) != 0 && !families[name].samples.empty())) {
        throw std::runtime_error(where + ": " + keyword + " after the family's samples");
      }
      auto& family = families[name];
      family.name = name;
      std::string rest;
      std::getline(words, rest);
      if (!rest.empty() && rest[0] == ' ') rest.erase(0, 1);
      if (keyword == "TYPE") {
        if (!family.type.empty()) throw std::runtime_error(where + ": TYPE twice");
        if (kTypes.count(rest) == 0) throw std::runtime_error(where + ": unknown type");
        family.type = rest;
      } else {
        if (!family.help.empty()) throw std::runtime_error(where + ": HELP twice");
        family.help = rest;
      }
      if (current != name && !current.empty()) closed.insert(current);
      current = name;
      continue;
    }
    PromSample sample = parseSample(line, where);
    const std::string family_name = familyOf(sample.name, families);
    if (family_name.empty() || families[family_name].type.empty() || families[family_name].help.empty()) {
      throw std::runtime_error(where + ": sample without HELP and TYPE");
    }
    if (family_name != current) {
      if (closed.count(family_name) != 0) throw std::runtime_error(where + ": family not contiguous");
      if (!current.empty()) closed.insert(current);
      current = family_name;
    }
    std::string key = sample.name;
    for (const auto& [k, v] : sample.labels) key += "|" + k + "=" + v;
    if (!series.insert(key).second) throw std::runtime_error(where + ": duplicate series");
    families[family_name].samples.push_back(std::move(sample));
  }
  for (const auto& [name, family] : families) {
    if (family.type.empty()) throw std::runtime_error(name + ": HELP without TYPE");
    if (family.type == "histogram") checkHistogram(family);
    if (family.type == "counter") {
      for (const auto& s : family.samples) {
        if (s.value < 0) throw std::runtime_error(name + ": negative counter");
      }
    }
  }
  return families;
}

double promValue(const std::map<std::string, PromFamily>& families, const std::string& name,
                 const std::map<std::string, std::string>& labels) {
  std::vector<double> found;
  for (const auto& [family_name, family] : families) {
    for (const auto& s : family.samples) {
      if (s.name != name) continue;
      bool match = true;
      for (const auto& [k, v] : labels) {
        const auto it = s.labels.find(k);
        match = match && it != s.labels.end() && it->second == v;
      }
      if (match) found.push_back(s.value);
    }
  }
  if (found.size() != 1) {
    throw std::runtime_error(name + ": " + std::to_string(found.size()) + " matching samples");
  }
  return found.front();
}

}  // namespace ultracore::testing
