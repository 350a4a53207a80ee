#include "tools/ctl/envelope_file.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <random>

#include "tools/ctl/kafka_client.h"
#include "ultracore/sdk/envelope.h"
#include "ultracore/sdk/json_depth.h"

namespace ultracore::ctl {
namespace {

// ordered_json: what is sent keeps the file's key order; the SDK parser reads a plain copy.
using json = nlohmann::ordered_json;

bool absent(const json& document, const char* field) {
  const auto it = document.find(field);
  return it == document.end() || it->is_null() ||
         (it->is_string() && it->get<std::string>().empty());
}

/// 1-based line of byte offset `byte` (1-based, as nlohmann's parse_error reports it).
int lineOf(const std::string& text, std::size_t byte) {
  const std::size_t end = std::min(text.size(), byte > 0 ? byte - 1 : 0);
  return 1 +
         static_cast<int>(std::count(text.begin(), text.begin() + static_cast<long>(end), '\n'));
}

/// nlohmann's parse error without its "[json.exception.parse_error.101] parse error at line
/// 1, column 5:" prefix (our message names the line already).
std::string parseReason(const json::parse_error& e) {
  std::string what = e.what();
  const auto colon = what.find(": ", what.find("parse error"));
  return "not valid JSON: " + (colon == std::string::npos ? what : what.substr(colon + 2));
}

/// Any other nlohmann error while parsing (out_of_range.406: a number too large for a double,
/// "1e999") without its "[json.exception.out_of_range.406] " prefix.
std::string parseReason(const json::exception& e) {
  std::string what = e.what();
  const auto bracket = what.find("] ");
  return "not valid JSON: " + (bracket == std::string::npos ? what : what.substr(bracket + 2));
}

void check(EnvelopeFile& file, std::string where, json document,
           const EnvelopeFileOptions& options) {
  if (options.generate_ids && document.is_object()) {
    if (absent(document, "event_id")) document["event_id"] = randomUuid();
    if (absent(document, "occurred_at")) {
      document["occurred_at"] = isoTimeMs(std::chrono::duration_cast<std::chrono::milliseconds>(
                                              std::chrono::system_clock::now().time_since_epoch())
                                              .count());
    }
  }
  const auto envelope = sdk::envelopeFromJson(nlohmann::json(document));
  if (!envelope) {
    std::string reason = envelope.status().message();
    if (!options.generate_ids && document.is_object() && absent(document, "event_id")) {
      reason += " (--generate-ids fills it with a new UUID)";
    }
    file.errors.push_back(where + ": " + reason);
    return;
  }
  file.entries.push_back({std::move(where), envelope->aggregate_id, std::move(document)});
}

}  // namespace

std::string randomUuid() {
  static thread_local std::mt19937_64 engine{std::random_device{}()};
  std::uint64_t high = engine(), low = engine();
  high = (high & 0xffffffffffff0fffULL) | 0x0000000000004000ULL;  // version 4
  low = (low & 0x3fffffffffffffffULL) | 0x8000000000000000ULL;    // variant 10
  char text[37];
  std::snprintf(text, sizeof(text), "%08x-%04x-%04x-%04x-%012llx",
                static_cast<unsigned>(high >> 32), static_cast<unsigned>((high >> 16) & 0xffff),
                static_cast<unsigned>(high & 0xffff), static_cast<unsigned>(low >> 48),
                static_cast<unsigned long long>(low & 0xffffffffffffULL));
  return text;
}

EnvelopeFile readEnvelopeFile(const std::string& text, const std::string& name,
                              const EnvelopeFileOptions& options) {
  EnvelopeFile file;
  const std::string label = name == "-" ? "stdin" : name;
  const auto first = text.find_first_not_of(" \t\r\n");
  if (first == std::string::npos) {
    file.errors.push_back(label + ": no envelopes (the file is empty)");
    return file;
  }
  // +1: a file may hold its envelopes in one array.
  if (sdk::jsonNestingExceeds(text, sdk::kMaxJsonDepth + 1)) {
    file.errors.push_back(label + ": JSON nested deeper than " +
                          std::to_string(sdk::kMaxJsonDepth) + " levels");
    return file;
  }
  if (text[first] == '[') {
    json array;
    try {
      array = json::parse(text);
    } catch (const json::parse_error& e) {
      file.errors.push_back(label + ":" + std::to_string(lineOf(text, e.byte)) + ": " +
                            parseReason(e));
      return file;
    } catch (const json::exception& e) {
      file.errors.push_back(label + ": " + parseReason(e));
      return file;
    }
    if (array.empty()) file.errors.push_back(label + ": no envelopes (the array is empty)");
    for (std::size_t i = 0; i < array.size(); ++i) {
      check(file, label + ": array index " + std::to_string(i), std::move(array[i]), options);
    }
    return file;
  }
  // A single object, possibly pretty-printed over several lines; otherwise JSON lines.
  if (text[first] == '{') {
    json document = json::parse(text, nullptr, false);
    if (document.is_object()) {
      check(file, label + ":" + std::to_string(lineOf(text, first + 1)), std::move(document),
            options);
      return file;
    }
  }
  std::size_t start = 0;
  int line = 0;
  while (start <= text.size()) {
    std::size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    ++line;
    const std::string content = text.substr(start, end - start);
    start = end + 1;
    if (content.find_first_not_of(" \t\r") == std::string::npos) continue;
    const std::string where = label + ":" + std::to_string(line);
    try {
      check(file, where, json::parse(content), options);
    } catch (const json::parse_error& e) {
      file.errors.push_back(where + ": " + parseReason(e));
    } catch (const json::exception& e) {
      file.errors.push_back(where + ": " + parseReason(e));
    }
  }
  return file;
}

}  // namespace ultracore::ctl
