#pragma once
/// @file
/// How many events of each type a projection consumed, per topic (issue 16: the event
/// catalog's "seen" counts and the undeclared-events metric): every record whose envelope
/// parsed, whatever the projection then did with it (applied, skipped as a duplicate, dead
/// lettered). A batch read again after a failure (a resync) counts again. Since the engine
/// started; in memory only. Bounded: at most kMaxTypesPerTopic types per topic, the rest
/// counted under kOtherTypes. Written by the runner thread once per batch, read by any thread.

#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>
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

  /// Counts the event `event_of(item)` points to (nullptr: none) for each item.
  template <typename Range, typename EventOf>
  void add(const Range& items, EventOf event_of) {
    std::lock_guard lock(mutex_);
    for (const auto& item : items) {
      const sdk::Event* event = event_of(item);
      if (event == nullptr) continue;
      auto& types = counts_[event->topic()];
      auto it = types.find(event->eventType());
      if (it == types.end()) {
        // One slot stays for kOtherTypes, so a topic never holds more than the maximum.
        const bool room = types.size() < kMaxTypesPerTopic - 1;
        it = types.emplace(room ? event->eventType() : std::string(kOtherTypes), 0).first;
        if (!room) it = types.find(kOtherTypes);
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
