#pragma once
/// @file
/// EventProducer: the API's one idempotent Kafka producer per process (enable.idempotence,
/// acks=all). produce() blocks until the broker's delivery report, so a command never answers
/// 2xx for an event that was not stored.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <thread>

#include "engine/kafka/kafka_config.h"
#include "ultracore/sdk/status.h"

namespace ultracore::engine {

/// Where a produced record was stored.
struct RecordPositionOut {
  std::string topic;
  std::int32_t partition = 0;
  std::int64_t offset = 0;
};

/// Created on the main thread; produce() and reachable() are thread-safe.
class EventProducer {
 public:
  /// `kafka` is the manifest's property map; consumer-only properties are left out. Unless
  /// the manifest sets them, message.timeout.ms is 5000 (the bounded wait before a 503) and
  /// the partitioner is murmur2_random (the Java client's, so every client agrees on a key's
  /// partition). Throws KafkaConfigError.
  explicit EventProducer(const std::map<std::string, std::string>& kafka);
  ~EventProducer();
  EventProducer(const EventProducer&) = delete;
  EventProducer& operator=(const EventProducer&) = delete;

  /// Produces one record keyed by `key` and waits for its delivery report. kTransient when
  /// the broker did not acknowledge it within message.timeout.ms.
  sdk::Result<RecordPositionOut> produce(const std::string& topic, const std::string& key,
                                         const std::string& value);

  /// True when a broker answered a metadata request within `timeout`.
  bool reachable(std::chrono::milliseconds timeout);

  /// The partition's log end (high watermark) as the broker says within `timeout`;
  /// std::nullopt when it did not answer.
  std::optional<std::int64_t> logEnd(const std::string& topic, std::int32_t partition,
                                     std::chrono::milliseconds timeout);

 private:
  KafkaHandle handle_;
  int message_timeout_ms_ = 5000;
  std::atomic<bool> stop_{false};
  std::thread poller_;
};

}  // namespace ultracore::engine
