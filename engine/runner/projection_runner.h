#pragma once
/// @file
/// ProjectionRunner: one manifest projection's consumer, batches and transactions.
///
/// Owns its own consumer group member and its own PostgreSQL connection, on its own thread,
/// so one stuck projection never stops another. PostgreSQL is the authority on offsets: on
/// every assignment the runner reads them from the offset store, and every batch commits the
/// projection's rows, processed_events rows and the new offsets (a compare-and-set from the
/// batch's start) in one transaction.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include <librdkafka/rdkafka.h>
#include <pqxx/connection>
#include <pqxx/dbtransaction>

#include "engine/kafka/kafka_config.h"
#include "engine/kafka/kafka_record.h"
#include "engine/manifest/manifest.h"
#include "engine/postgres/offset_store.h"
#include "engine/runner/event_type_counts.h"
#include "engine/runner/failure_store.h"
#include "ultracore/sdk/projection.h"


namespace ultracore::engine {

struct RunnerSettings {
  ProjectionSpec spec;
  std::string schema;                        ///< resolved schema the projection writes into
  std::map<std::string, std::string> kafka;  ///< manifest-level librdkafka properties
  std::string postgres_url;
  /// Where offsets, processed_events rows, dead letters and parked events are stored: the
  /// generation's key (migrations/0004_generations.sql). Empty: the projection's name.
  std::string key;
  /// The generation this runner materializes; 0: not fenced (tests of the runner alone). Every
  /// transaction first checks, under a share lock on the projection's ultracore_generations row,
  /// that this generation is still the live one (or, for a rebuild, still the one being built);
  /// if not, the runner stops as superseded and writes nothing.
  int generation = 0;
  bool building = false;  ///< a rebuild's runner: reports "rebuilding" while it runs
  /// The manifest projection this runner materializes a generation of (a rebuild's runner is
  /// named after its key); empty: spec.name.
  std::string projection;
  /// Which of the projection's live workers this is (0-based; spec.workers of them share the
  /// consumer group). Only the log label differs: storage keys and status stay the name's.
  int worker = 0;
  /// The engine process's instance id (`ultracore-engine --instance-id`); empty: dynamic group
  /// membership. Set: every runner joins with a static `group.instance.id` derived from it
  /// (staticMemberId), so a restarted engine gets its partitions back at once instead of after
  /// session.timeout.ms.
  std::string instance_id;
};

/// The `group.instance.id` of a runner: "<instance>.<key>.w<worker>", with the characters Kafka
/// does not accept in an id (anything but [A-Za-z0-9._-], e.g. the '@' of "name@g2") as '-'.
/// Unique per consumer group as long as each engine process has its own instance id.
std::string staticMemberId(const std::string& instance_id, const std::string& key, int worker);

/// Throws std::invalid_argument unless `instance_id` is 1..100 characters of [A-Za-z0-9._-].
void validateInstanceId(const std::string& instance_id);

enum class RunnerState { kStarting, kRunning, kWaiting, kStopped, kFailed, kPaused };
const char* toString(RunnerState state);

/// A fixed-bucket histogram that any thread may read while one thread observes into it.
/// Buckets are upper bounds (le); counts are per bucket, not cumulative (the exporter sums).
class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds);
  void observe(double value);
  const std::vector<double>& bounds() const { return bounds_; }
  /// Per-bucket counts, the last one for values above every bound (+Inf).
  std::vector<std::uint64_t> counts() const;
  double sum() const { return sum_.load(std::memory_order_relaxed); }

 private:
  std::vector<double> bounds_;
  std::unique_ptr<std::atomic<std::uint64_t>[]> counts_;
  std::atomic<double> sum_{0};
};

/// One owned partition as the admin endpoint sees it.
struct PartitionProgress {
  TopicPartition partition;
  std::int64_t stored_offset = 0;   ///< next offset to consume (OffsetStore::kFromBeginning: none)
  std::int64_t cached_high = -1;    ///< librdkafka's last known log end; -1 unknown
  std::int64_t cached_low = -1;     ///< librdkafka's last known log start; -1 unknown
};

/// Counters readable from any thread.
struct RunnerCounters {
  std::atomic<std::uint64_t> events_applied{0};
  std::atomic<std::uint64_t> events_duplicate{0};
  std::atomic<std::uint64_t> events_failed{0};
  std::atomic<std::uint64_t> batches_committed{0};
  std::atomic<std::uint64_t> cas_conflicts{0};
  std::atomic<std::uint64_t> events_parked{0};   ///< held back behind a parked aggregate
  std::atomic<std::uint64_t> events_retried{0};  ///< dead letters re-applied for the operator
  /// processed_events rows removed by dedupe.retention (counted on the projection's first
  /// worker by the engine's pruner).
  std::atomic<std::uint64_t> processed_events_pruned{0};
  Histogram batch_size{{1, 5, 10, 25, 50, 100, 250, 500, 1000, 5000}};  ///< events per commit
  Histogram commit_seconds{{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5}};
  EventTypeCounts event_types;  ///< consumed events by topic and type (the event catalog)
};

class ProjectionRunner {
 public:
  ProjectionRunner(RunnerSettings settings, std::shared_ptr<sdk::Projection> projection);
  ~ProjectionRunner();
  ProjectionRunner(const ProjectionRunner&) = delete;
  ProjectionRunner& operator=(const ProjectionRunner&) = delete;

  void start();
  /// Asks the thread to finish its batch, leave the group and end. Does not block.
  void requestStop();
  void join();

  const std::string& name() const { return settings_.spec.name; }
  /// The name in log lines: "<name>#<worker>" when the projection has several workers.
  const std::string& label() const { return label_; }
  /// The storage key (RunnerSettings::key, else the name).
  const std::string& key() const { return offsets_.projection(); }
  const RunnerSettings& settings() const { return settings_; }
  /// The state as operators read it: "rebuilding" for a rebuild's runner that is running.
  std::string stateName() const;
  /// Stopped because another generation became live (or the rebuild was cancelled).
  bool superseded() const { return superseded_.load(); }
  RunnerState state() const { return state_.load(); }
  std::string detail() const;
  const RunnerCounters& counters() const { return counters_; }
  void countPruned(std::uint64_t rows) { counters_.processed_events_pruned += rows; }
  const std::vector<std::string>& topics() const { return settings_.spec.topics; }

  /// The partitions this runner owns now and their stored offsets (refreshed by the runner
  /// thread about every 200 ms). Any thread.
  std::vector<PartitionProgress> partitions() const;
  /// Operator pause: the runner pauses fetching on its assignment (and on any later one) and
  /// reports kPaused; resume undoes it. Any thread; takes effect within one poll.
  void requestPause(bool paused) { pause_requested_ = paused; }
  bool pauseRequested() const { return pause_requested_.load(); }

 private:
  /// One consumed record and, when its envelope parsed, the event built from it.
  struct Item {
    KafkaRecord record;
    std::optional<sdk::Event> event;
    sdk::Status parse_status;
  };
  enum class Outcome { kOk, kResync, kStopped };

  void run();
  void pollLoop();
  bool usesCooperativeAssignor() const;  ///< the consumer's partition.assignment.strategy names it
  /// Idle: moves the stored offsets of partitions whose consumer position is past their last
  /// record (transaction markers, aborted transactions) there, so lag reaches 0 and a wait for
  /// the log end ends. Offsets are never assumed contiguous (DESIGN.md invariant 5).
  void advanceOverGaps();
  void connectPostgres();
  void createConsumer();
  void onRebalance(rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t* partitions);
  static void rebalanceTrampoline(rd_kafka_t* rk, rd_kafka_resp_err_t err,
                                  rd_kafka_topic_partition_list_t* partitions, void* opaque);
  void assignFromStore(rd_kafka_topic_partition_list_t* partitions);
  void handleConsumerError(const rd_kafka_message_t& message);
  /// Which of the projection's topics the cluster lacks (all-topics metadata: asking for a
  /// topic by name could make a broker create it). Reports `waiting` naming them while any is
  /// missing; the same request lets librdkafka's group notice a topic that appeared and rejoin
  /// with it. No answer from Kafka: changes nothing (the unreachable path reports that).
  void checkTopics();
  /// Back to running after a transient fault, unless a topic is still missing.
  void resumeRunning();
  std::string missingTopicsMessage() const;
  /// librdkafka's error events (served by consumer_poll on the runner thread).
  static void errorTrampoline(rd_kafka_t* rk, int err, const char* reason, void* opaque);
  void onKafkaError(int err, const char* reason);

  Outcome flushPending();
  Outcome processRange(std::vector<Item>& items, std::size_t begin, std::size_t end);
  sdk::Status commitEvents(std::span<Item> items, bool& cas_lost);
  Outcome handlePoison(Item& item, const sdk::Status& error, int attempts);
  sdk::Status commitPoison(const Item& item, const sdk::Status& error, int attempts,
                           bool& cas_lost);
  /// After a discarded batch: forgets what is pending and seeks every partition this runner
  /// keeps back to its stored offset (deferred while revoking: see resync_due_).
  Outcome resync();
  /// Seeks the whole assignment to the offsets stored in PostgreSQL; clears resync_due_ only
  /// when every partition moved (a failure is logged, waited for, and tried again).
  void seekToStored();
  /// The aggregate a poison item parks under (policy park): its aggregate_id, else its key.
  static std::optional<std::string> parkKey(const Item& item);
  static Item makeItem(KafkaRecord record);

  /// Operator work (dead-letters retry, release after discard) for partitions this runner
  /// owns; called between batches, never with events pending.
  void serviceFailureRequests();
  /// Re-applies one dead letter exactly once; on success releases what it held parked.
  void retryDeadLetter(std::int64_t id);
  void releaseResolved(const std::string& aggregate_id);
  /// Applies an aggregate's parked events in order inside `txn`; stops at the first that
  /// fails, which becomes the aggregate's new blocking dead letter.
  void releaseParked(pqxx::dbtransaction& txn, const std::string& aggregate_id);
  /// Parses, dedupes (processed_events) and applies one stored record in a subtransaction of
  /// `txn`. Returns the poison status (rolled back) or ok; throws on transient faults.
  sdk::Status applyStored(pqxx::dbtransaction& txn, Item& item);
  void commitToKafka(const std::vector<OffsetAdvance>& advances);
  std::vector<OffsetAdvance> advancesFor(std::span<const Item> items) const;
  /// Sleeps for the backoff of `attempt` unless a stop is requested; false when stopping.
  bool backoff(int attempt);

  void setState(RunnerState state, const std::string& detail);
  /// The generation fence, first statement of every transaction that writes; false (and the
  /// runner stopping as superseded) when this runner's generation is no longer current. Throws
  /// TransientError while a switch freezes the live generation (a live runner waits it out).
  bool generationHolds(pqxx::transaction_base& txn);
  /// Applies pause_requested_ to the consumer when it changed; runner thread.
  void applyPause();
  void pauseAssignment(rd_kafka_topic_partition_list_t* partitions);
  void publishProgress();
  void fail(const std::string& detail);

  RunnerSettings settings_;
  std::string label_;
  std::shared_ptr<sdk::Projection> projection_;
  OffsetStore offsets_;
  FailureStore failures_;
  std::unique_ptr<pqxx::connection> connection_;
  KafkaHandle consumer_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> superseded_{false};
  bool revoking_ = false;  ///< inside the revoke callback: never seek partitions being taken away
  /// A batch was discarded and the kept partitions are not yet back at their stored offsets:
  /// pollLoop takes no record until seekToStored() succeeds.
  bool resync_due_ = false;

  std::map<TopicPartition, std::int64_t> expected_;  ///< stored next offset per owned partition
  std::vector<KafkaRecord> pending_;
  std::chrono::steady_clock::time_point batch_started_;
  std::chrono::steady_clock::time_point next_request_check_;
  int transient_streak_ = 0;  ///< consecutive transient faults: the backoff's exponent
  std::vector<std::string> missing_topics_;  ///< subscribed topics the cluster lacks (sorted)
  std::chrono::steady_clock::time_point next_topic_check_;
  bool topic_check_requested_ = false;  ///< set by the error callback (same thread)
  std::string same_fault_;    ///< SQLSTATE of the last failed commit ("" none or not SQL)
  int same_fault_count_ = 0;  ///< how many commits in a row failed with it
  int splitting_for_fault_ = 0;  ///< > 0 inside a split for a recurring transient fault

  std::atomic<RunnerState> state_{RunnerState::kStarting};
  mutable std::mutex detail_mutex_;
  std::string detail_;
  RunnerCounters counters_;

  std::atomic<bool> pause_requested_{false};
  bool paused_ = false;  ///< what the consumer was last told (runner thread)
  /// The consumer got an assignment at least once (runner thread; see run()'s shutdown).
  bool assigned_once_ = false;
  std::chrono::steady_clock::time_point next_progress_;
  mutable std::mutex progress_mutex_;
  std::vector<PartitionProgress> progress_;
};

}  // namespace ultracore::engine
