#pragma once
/// @file
/// FailureStore: the SQL behind the on_error policies and the operator's dead-letter workflow
/// (ultracore_dead_letters, ultracore_skipped_events, ultracore_parked_aggregates,
/// ultracore_parked_events; see migrations/0001_engine.sql and 0003_failures.sql).
///
/// Stateless apart from the projection name; every call runs in the caller's transaction, so
/// a failed event is recorded in the same transaction that moves the offsets past it.

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <pqxx/transaction_base>

#include "engine/kafka/kafka_record.h"
#include "ultracore/sdk/event.h"
#include "ultracore/sdk/status.h"

namespace ultracore::engine {

/// Short stable name of a status code, stored as error_code ("handler_error", ...).
const char* statusCodeName(sdk::StatusCode code);

/// Work the runner must do for the operator, found by FailureStore::pendingRequests.
struct FailureRequest {
  enum class Kind { kRetry, kRelease };
  Kind kind = Kind::kRetry;
  std::int64_t dead_letter_id = 0;
  std::string aggregate_id;  ///< kRelease: the parked aggregate
  std::string topic;
  std::int32_t partition = 0;
};

/// One stored record (a dead letter or a parked event) read back for a re-apply.
struct StoredRecord {
  std::int64_t id = 0;
  KafkaRecord record;
};

class FailureStore {
 public:
  explicit FailureStore(std::string projection) : projection_(std::move(projection)) {}

  void recordSkipped(pqxx::transaction_base& txn, const KafkaRecord& record,
                     const sdk::Event* event, const sdk::Status& error);

  /// Keeps the whole record; returns the dead letter's id (the existing one when that position
  /// was dead-lettered before, e.g. after an offset reset: reopened if it was retried or
  /// discarded, since its event failed again).
  std::int64_t recordDeadLetter(pqxx::transaction_base& txn, const std::string& policy,
                                const KafkaRecord& record, const sdk::Event* event,
                                const sdk::Status& error, int attempts);

  /// Parks `aggregate_id` behind dead letter `dead_letter_id` (no-op when already parked).
  void parkAggregate(pqxx::transaction_base& txn, const std::string& aggregate_id,
                     std::int64_t dead_letter_id, const KafkaRecord& blocking);

  /// Which of `aggregates` are parked, with their blocking dead letter. Takes FOR SHARE locks,
  /// so a concurrent release either finishes first or waits for this transaction.
  std::map<std::string, std::int64_t> parkedAmong(pqxx::transaction_base& txn,
                                                  const std::vector<std::string>& aggregates);

  /// Holds `record` back behind the parked aggregate.
  void storeParked(pqxx::transaction_base& txn, const std::string& aggregate_id,
                   std::int64_t dead_letter_id, const KafkaRecord& record,
                   const sdk::Event* event);

  /// Retries the operator asked for and parked aggregates whose blocking dead letter was
  /// resolved (discarded), oldest first.
  std::vector<FailureRequest> pendingRequests(pqxx::transaction_base& txn);

  /// Locks a dead letter in state retry_requested; nullopt when it is not (any more).
  std::optional<StoredRecord> lockRetryRequested(pqxx::transaction_base& txn, std::int64_t id);
  void markRetried(pqxx::transaction_base& txn, std::int64_t id);
  void markRetryFailed(pqxx::transaction_base& txn, std::int64_t id, const sdk::Status& error);

  /// The aggregate parked behind dead letter `id`, locked; nullopt when none is.
  std::optional<std::string> lockParkedBehind(pqxx::transaction_base& txn, std::int64_t id);
  /// Locks a parked aggregate whose blocking dead letter is resolved; false when it is not.
  bool lockReleasable(pqxx::transaction_base& txn, const std::string& aggregate_id);
  /// The parked events of an aggregate, in the order they were consumed.
  std::vector<StoredRecord> parkedEvents(pqxx::transaction_base& txn,
                                         const std::string& aggregate_id);
  void removeParkedEvent(pqxx::transaction_base& txn, std::int64_t id);
  /// Moves the aggregate's block to a new dead letter (a released event failed again).
  void reblock(pqxx::transaction_base& txn, const std::string& aggregate_id,
               std::int64_t dead_letter_id, const KafkaRecord& blocking);
  void unpark(pqxx::transaction_base& txn, const std::string& aggregate_id);

 private:
  std::string projection_;
};

}  // namespace ultracore::engine
