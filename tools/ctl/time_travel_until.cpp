#include "tools/ctl/time_travel.h"

#include <algorithm>
#include <cstdint>
#include <ctime>
#include <regex>
#include <string>

// `--until`'s parser, apart from the build so that its fuzz target
// (tests/fuzz/until_fuzz.cpp) links without PostgreSQL, Kafka or plugins.

namespace ultracore::ctl {
namespace {

using TopicPartition = std::pair<std::string, std::int32_t>;

// libstdc++'s std::regex matches recursively, a few stack frames per character: a 200 KB
// --until overflowed the stack (found by tests/fuzz/until_fuzz.cpp). Longer texts than any
// valid one are refused before a regex sees them.
constexpr std::size_t kMaxTimeChars = 64;    // 2026-11-27T08:00:00.123456789+01:00 is 35
constexpr std::size_t kMaxItemChars = 300;   // a topic is at most 249 characters

/// `text` for a message: at most 80 characters.
std::string shown(const std::string& text) {
  return text.size() <= 80 ? text : text.substr(0, 77) + "...";
}

std::string trimmed(const std::string& text) {
  const char* kSpace = " \t\n\v\f\r";
  const std::size_t first = text.find_first_not_of(kSpace);
  if (first == std::string::npos) return "";
  return text.substr(first, text.find_last_not_of(kSpace) - first + 1);
}

std::int64_t parseTimeMs(const std::string& text) {
  static const std::regex kIso(
      R"(^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?(Z|z|[+-]\d{2}(?::?\d{2})?)$)");
  std::smatch m;
  if (text.size() > kMaxTimeChars || !std::regex_match(text, m, kIso)) {
    throw CtlError("--until '" + shown(text) +
                       "': expected ISO 8601 with a zone (2026-11-27T08:00:00Z, "
                       "2026-11-27T08:00:00.250+01:00), epoch milliseconds, or "
                       "TOPIC:PARTITION=OFFSET[,...]",
                   2);
  }
  std::tm tm{};
  tm.tm_year = std::stoi(m[1]) - 1900;
  tm.tm_mon = std::stoi(m[2]) - 1;
  tm.tm_mday = std::stoi(m[3]);
  tm.tm_hour = std::stoi(m[4]);
  tm.tm_min = std::stoi(m[5]);
  tm.tm_sec = m[6].matched ? std::stoi(m[6]) : 0;
  const std::tm asked = tm;
  const std::time_t seconds = timegm(&tm);
  // timegm normalises (Feb 30 -> Mar 2): a changed field means the date does not exist.
  if (tm.tm_year != asked.tm_year || tm.tm_mon != asked.tm_mon || tm.tm_mday != asked.tm_mday ||
      tm.tm_hour != asked.tm_hour || tm.tm_min != asked.tm_min || tm.tm_sec != asked.tm_sec) {
    throw CtlError("--until '" + text + "': no such date or time", 2);
  }
  std::int64_t ms = static_cast<std::int64_t>(seconds) * 1000;
  if (m[7].matched) {
    // Kafka timestamps are whole milliseconds: ts <= T holds exactly when ts <= floor(T).
    const std::string fraction = (m[7].str() + "00").substr(0, 3);
    ms += std::stoi(fraction);
  }
  const std::string zone = m[8];
  if (zone != "Z" && zone != "z") {
    const int sign = zone[0] == '-' ? -1 : 1;
    const int hours = std::stoi(zone.substr(1, 2));
    const std::string rest = zone.size() > 3 ? zone.substr(zone.size() - 2) : "00";
    const int minutes = std::stoi(rest);
    if (hours > 23 || minutes > 59) throw CtlError("--until '" + text + "': bad zone offset", 2);
    ms -= sign * (hours * 60 + minutes) * 60 * 1000LL;
  }
  return ms;
}

std::string tpText(const TopicPartition& tp) { return tp.first + ":" + std::to_string(tp.second); }

}  // namespace

TimeTravelUntil parseUntil(const std::string& raw) {
  std::string text = raw;
  text.erase(0, text.find_first_not_of(" \t"));
  text.erase(text.find_last_not_of(" \t") + 1);
  TimeTravelUntil until;
  if (text.empty()) throw CtlError("--until is empty", 2);
  if (text.find('=') != std::string::npos) {
    until.kind = TimeTravelUntil::Kind::kOffsets;
    static const std::regex kItem(R"(^\s*([A-Za-z0-9._-]+):(\d+)=(\d+)\s*$)");
    std::size_t start = 0;
    while (start <= text.size()) {
      std::size_t end = text.find(',', start);
      if (end == std::string::npos) end = text.size();
      const std::string item = trimmed(text.substr(start, end - start));
      start = end + 1;
      std::smatch m;
      if (item.size() > kMaxItemChars || !std::regex_match(item, m, kItem)) {
        throw CtlError("--until: '" + shown(item) + "' is not TOPIC:PARTITION=NEXT_OFFSET", 2);
      }
      try {
        const TopicPartition tp{m[1].str(), std::stoi(m[2].str())};
        if (!until.offsets.emplace(tp, std::stoll(m[3])).second) {
          throw CtlError("--until: " + tpText(tp) + " is listed twice", 2);
        }
      } catch (const std::out_of_range&) {
        throw CtlError("--until: '" + item + "': number out of range", 2);
      }
    }
    return until;
  }
  until.kind = TimeTravelUntil::Kind::kTime;
  if (std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    try {
      until.time_ms = std::stoll(text);
    } catch (const std::out_of_range&) {
      throw CtlError("--until '" + shown(text) + "': out of range", 2);
    }
    return until;
  }
  until.time_ms = parseTimeMs(text);
  return until;
}

}  // namespace ultracore::ctl
