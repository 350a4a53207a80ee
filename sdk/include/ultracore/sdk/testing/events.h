#pragma once
/// @file
/// Test kit, part 1: events for a projection test, built in code or read from JSON lines.
/// Header only, no database and no Kafka. Parses the envelope exactly as the engine does
/// (DESIGN.md, "Event envelope"), so an event the kit accepts is one the engine accepts.
///
/// Everything here is a value type; use from one thread at a time.

#include <cstdint>
#include <fstream>
#include <istream>
#include <map>
#include <stdexcept>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include <nlohmann/json.hpp>

#include "ultracore/sdk/envelope.h"
#include "ultracore/sdk/event.h"
#include "ultracore/sdk/status.h"

namespace ultracore::sdk::testing {

// The envelope rules are the engine's own (ultracore/sdk/envelope.h).
using ::ultracore::sdk::envelopeFromJson;
using ::ultracore::sdk::parseEnvelope;

/// An ordered list of events as one topic-partition log would deliver them. Offsets are
/// assigned per (topic, partition) in the order events are added; the record timestamp is
/// derived from the offset, so two logs built the same way are identical.
class EventLog {
 public:
  /// Adds a parsed envelope. Throws std::invalid_argument when it is not a valid envelope.
  EventLog& add(const std::string& topic, const nlohmann::json& envelope, int partition = 0) {
    auto parsed = envelopeFromJson(envelope);
    if (!parsed) throw std::invalid_argument(parsed.status().message());
    return add(topic, std::move(parsed.value()), partition);
  }

  EventLog& add(const std::string& topic, Envelope envelope, int partition = 0) {
    std::int64_t& next = next_offset_[{topic, partition}];
    RecordPosition position{topic, partition, next, kBaseTimestampMs + next};
    ++next;
    events_.emplace_back(std::move(envelope), std::move(position));
    return *this;
  }

  /// The envelope of DESIGN.md with the usual defaults, for events built in code.
  EventLog& add(const std::string& topic, const std::string& event_id,
                const std::string& event_type, const std::string& aggregate_id,
                const nlohmann::json& data = nlohmann::json::object(),
                const std::string& occurred_at = "2026-11-26T12:00:00.000Z") {
    return add(topic, nlohmann::json{{"event_id", event_id},
                                     {"event_type", event_type},
                                     {"aggregate_id", aggregate_id},
                                     {"tenant_id", "DEFAULT"},
                                     {"user_id", "test-user"},
                                     {"occurred_at", occurred_at},
                                     {"event_data", data}});
  }

  /// Reads JSON lines. A line is either an envelope (for `default_topic`) or a record
  /// `{"topic": "...", "partition": 0, "value": {envelope}}`. Blank lines and lines starting
  /// with '#' are ignored. Throws std::invalid_argument naming `source` and the line number.
  EventLog& addJsonLines(std::istream& in, const std::string& default_topic,
                         const std::string& source = "<stream>") {
    std::string line;
    for (int number = 1; std::getline(in, line); ++number) {
      const auto first = line.find_first_not_of(" \t\r");
      if (first == std::string::npos || line[first] == '#') continue;
      auto document = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
      auto where = source + ":" + std::to_string(number) + ": ";
      if (document.is_discarded()) throw std::invalid_argument(where + "not valid JSON");
      std::string topic = default_topic;
      int partition = 0;
      if (document.is_object() && document.contains("value") && !document.contains("event_id")) {
        if (auto t = document.find("topic"); t != document.end() && t->is_string()) topic = *t;
        if (auto p = document.find("partition"); p != document.end() && p->is_number_integer()) {
          partition = p->get<int>();
        }
        document = nlohmann::json(document["value"]);
      }
      if (topic.empty()) throw std::invalid_argument(where + "no topic and no default topic");
      auto parsed = envelopeFromJson(document);
      if (!parsed) throw std::invalid_argument(where + parsed.status().message());
      add(topic, std::move(parsed.value()), partition);
    }
    return *this;
  }

  EventLog& addJsonLinesFile(const std::string& path, const std::string& default_topic) {
    std::ifstream in(path);
    if (!in) throw std::invalid_argument(path + ": cannot open");
    return addJsonLines(in, default_topic, path);
  }

  const std::vector<Event>& events() const { return events_; }
  std::size_t size() const { return events_.size(); }

 private:
  static constexpr std::int64_t kBaseTimestampMs = 1795694400000;  // 2026-11-26T12:00:00Z

  std::vector<Event> events_;
  std::map<std::pair<std::string, int>, std::int64_t> next_offset_;
};

}  // namespace ultracore::sdk::testing
