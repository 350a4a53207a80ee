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
  /// aborted and the answer is kTransient; `gate_refused` tells the two apart.
  ///
  /// Group commit: calls that arrive while every transactional producer of the pool is busy
  /// share the next transaction. Each call's gate runs on its own thread once all the group's
  /// records are acknowledged; the transaction commits only when every gate answered true, so
  /// a call whose gate refuses also aborts the others of its group (kTransient, not refused:
  /// they may retry). A transaction costs the broker several requests and a marker per
  /// partition, whatever it holds: grouping is what lets the API publish hundreds of locked
  /// commands per second on one broker.
  sdk::Result<std::vector<RecordPositionOut>> produceGated(
      const std::vector<OutgoingRecord>& records,
      const std::function<bool(const std::vector<RecordPositionOut>&)>& gate,
      bool& gate_refused);

  /// Group commit's counts since start: transactions committed, the calls they carried, and
  /// the calls in the group now forming (waiting for a producer).
  struct TransactionStats {
    std::uint64_t transactions_committed = 0;
    std::uint64_t calls_committed = 0;
    std::size_t calls_waiting = 0;
  };
  TransactionStats transactionStats();

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
  struct Group;
  /// The group a call joins: the one still forming (its leader waits for a producer), or a new
  /// one it leads. `leader` is set when the caller leads it.
  std::shared_ptr<Group> joinGroup(
      const std::vector<OutgoingRecord>& records,
      const std::function<bool(const std::vector<RecordPositionOut>&)>& gate, std::size_t& index,
      bool& leader);
  /// The leader's part: takes a producer, seals the group, produces every record, lets the
  /// members gate, commits or aborts, and publishes each member's outcome.
  void leadGroup(Group& group);
  /// begin, produce, gates, commit (or abort) for the sealed `group`. Fills `healthy` false
  /// on a fatal error.
  sdk::Status runTransaction(rd_kafka_t* rk, Group& group, bool& healthy);
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
  std::mutex forming_mutex_;
  std::shared_ptr<Group> forming_;  ///< the group whose leader waits for a producer, if any
  std::atomic<std::uint64_t> transactions_committed_{0};
  std::atomic<std::uint64_t> calls_committed_{0};
  std::mutex partitions_mutex_;
  std::map<std::string, std::pair<int, std::chrono::steady_clock::time_point>> partitions_;
  std::atomic<bool> stop_{false};
  std::thread poller_;
};

}  // namespace ultracore::engine
