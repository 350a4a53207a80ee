#pragma once
/// @file
/// How many events of each type a projection applied, per topic (issue 16: the event
/// catalog's "seen" counts and the undeclared-events metric). Since the engine started; in
/// memory only. Bounded: at most kMaxTypesPerTopic types per topic, the rest counted under
/// kOtherTypes. Written by the runner thread once per committed batch, read by any thread.

#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>
#include <span>
#include <string>
#include <utility>

#include "ultracore/sdk/event.h"

namespace ultracore::engine {

class EventTypeCounts {
 public:
  static constexpr std::size_t kMaxTypesPerTopic = 256;
  static constexpr const char* kOtherTypes = "(other types)";
  /// (topic, event_type) -> events.
  using Snapshot = std::map<std::pair<std::string, std::string>, std::uint64_t>;

  void add(std::span<const sdk::Event> events) {
    std::lock_guard lock(mutex_);
    for (const auto& event : events) {
      auto& types = counts_[event.topic()];
      auto it = types.find(event.eventType());
      if (it == types.end()) {
        // One slot stays for kOtherTypes, so a topic never holds more than the maximum.
        const bool room = types.size() < kMaxTypesPerTopic - 1;
        it = types.emplace(room ? event.eventType() : std::string(kOtherTypes), 0).first;
      }
      ++it->second;
    }
  }

  Snapshot snapshot() const {
    std::lock_guard lock(mutex_);
    Snapshot out;
    for (const auto& [topic, types] : counts_) {
      for (const auto& [type, count] : types) out[{topic, type}] = count;
    }
    return out;
  }

 private:
  mutable std::mutex mutex_;
  std::map<std::string, std::map<std::string, std::uint64_t>> counts_;
};

}  // namespace ultracore::engine
