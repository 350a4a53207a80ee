#pragma once
/// @file
/// EventProducer: the API's Kafka producers, per process: an idempotent one
/// (enable.idempotence, acks=all) for commands that publish one event without an aggregate
/// lock, and a small pool of transactional ones, created as needed, for commands that publish
/// several events (stored atomically in one Kafka transaction: read_committed consumers, the
/// engine's default, see all of them or none) and for commands on a locked aggregate, whose
/// transaction commits only after the lock's holder proved it still holds it (produceGated). Every call blocks until Kafka acknowledged the events, so a command
/// never answers 2xx for an event that was not stored.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
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

/// The stored end of each partition: (topic, partition) -> next offset.
using LogEnds = std::map<std::pair<std::string, std::int32_t>, std::int64_t>;

/// Created on the main thread; every public call is thread-safe.
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

  /// Publishes `records` in one Kafka transaction that commits only if `gate` answers true once
  /// every record is acknowledged (uncommitted, so invisible to read_committed consumers);
  /// `gate` gets their positions. When it answers false, or anything fails, the transaction is
  /// aborted and the answer is kTransient; `gate_refused` tells the two apart. Transactions run
  /// on a small pool of transactional producers, so commands on different aggregates overlap.
  sdk::Result<std::vector<RecordPositionOut>> produceGated(
      const std::vector<OutgoingRecord>& records,
      const std::function<bool(const std::vector<RecordPositionOut>&)>& gate,
      bool& gate_refused);

  /// Every partition's end (high watermark, open transactions included) of `topics`, in one
  /// ListOffsets round per broker; std::nullopt when Kafka did not answer within `timeout`.
  std::optional<LogEnds> logEnds(const std::vector<std::string>& topics,
                                 std::chrono::milliseconds timeout);

  /// True when a broker answered a metadata request within `timeout`.
  bool reachable(std::chrono::milliseconds timeout);

  /// The transactional.id of the transactional producer: unique per process.
  const std::string& transactionalId() const { return transactional_id_; }

  /// The partition's log end (high watermark) as the broker says within `timeout`;
  /// std::nullopt when it did not answer.
  std::optional<std::int64_t> logEnd(const std::string& topic, std::int32_t partition,
                                     std::chrono::milliseconds timeout);

 private:
  /// A transactional producer of the pool: initialized, no transaction open.
  struct TxnProducer {
    KafkaHandle handle;
  };
  /// Takes an idle producer of the pool or creates one (at most kTxnProducers exist).
  sdk::Result<std::unique_ptr<TxnProducer>> acquireTxn();
  /// Returns it to the pool, or drops it when `healthy` is false (fenced, fatal error).
  void releaseTxn(std::unique_ptr<TxnProducer> producer, bool healthy);
  /// begin, produce, gate, commit (or abort). Fills `healthy` false on a fatal error.
  sdk::Result<std::vector<RecordPositionOut>> runTransaction(
      rd_kafka_t* rk, const std::vector<OutgoingRecord>& records,
      const std::function<bool(const std::vector<RecordPositionOut>&)>& gate, bool& gate_refused,
      bool& healthy);
  /// Partition count of `topic` (cached for a while); std::nullopt when unknown.
  std::optional<int> partitionCount(const std::string& topic, std::chrono::milliseconds timeout);

  std::map<std::string, std::string> settings_;  ///< the producer properties (both producers)
  KafkaHandle handle_;
  int message_timeout_ms_ = 5000;
  std::string transactional_id_;
  std::mutex txn_mutex_;  ///< guards the pool below
  std::condition_variable txn_freed_;
  std::vector<std::unique_ptr<TxnProducer>> idle_txn_;
  std::size_t txn_count_ = 0;   ///< producers in the pool, idle or in use
  std::size_t txn_serial_ = 0;  ///< suffix of the next producer's transactional.id
  std::thread warmer_;  ///< creates the pool's producers at start (init_transactions is slow)
  std::mutex partitions_mutex_;
  std::map<std::string, std::pair<int, std::chrono::steady_clock::time_point>> partitions_;
  std::atomic<bool> stop_{false};
  std::thread poller_;
};

}  // namespace ultracore::engine
