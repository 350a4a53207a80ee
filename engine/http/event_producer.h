#pragma once
/// @file
/// EventProducer: the API's Kafka producers, one per process: an idempotent one
/// (enable.idempotence, acks=all) for commands that publish one event, and a transactional one,
/// created at the first command that publishes several, so that their events are stored
/// atomically in one Kafka transaction (read_committed consumers, the engine's default, see
/// all of them or none). Every call blocks until Kafka acknowledged the events, so a command
/// never answers 2xx for an event that was not stored.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "engine/kafka/kafka_config.h"
#include "ultracore/sdk/status.h"

namespace ultracore::engine {

/// Where a produced record was stored.
struct RecordPositionOut {
  std::string topic;
  std::int32_t partition = 0;
  std::int64_t offset = 0;
};

/// One record to publish.
struct OutgoingRecord {
  std::string topic;
  std::string key;
  std::string value;
};

/// Created on the main thread; produce(), produceAtomically() and reachable() are thread-safe.
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

  /// Publishes `records` all or nothing: one record through produce(); several in one Kafka
  /// transaction (one transaction at a time per process). On any failure the transaction is
  /// aborted, so none of them is ever visible to a read_committed consumer, and the answer is
  /// kTransient. Positions are in the order of `records`.
  sdk::Result<std::vector<RecordPositionOut>> produceAtomically(
      const std::vector<OutgoingRecord>& records);

  /// True when a broker answered a metadata request within `timeout`.
  bool reachable(std::chrono::milliseconds timeout);

  /// The transactional.id of the transactional producer: unique per process.
  const std::string& transactionalId() const { return transactional_id_; }

  /// The partition's log end (high watermark) as the broker says within `timeout`;
  /// std::nullopt when it did not answer.
  std::optional<std::int64_t> logEnd(const std::string& topic, std::int32_t partition,
                                     std::chrono::milliseconds timeout);

 private:
  sdk::Status ensureTransactional();  ///< creates and initializes it; caller holds txn_mutex_
  sdk::Result<std::vector<RecordPositionOut>> produceInTransaction(
      const std::vector<OutgoingRecord>& records);

  std::map<std::string, std::string> settings_;  ///< the producer properties (both producers)
  KafkaHandle handle_;
  int message_timeout_ms_ = 5000;
  std::string transactional_id_;
  std::mutex txn_mutex_;  ///< one transaction at a time; guards txn_handle_
  KafkaHandle txn_handle_;
  std::atomic<bool> stop_{false};
  std::thread poller_;
};

}  // namespace ultracore::engine
