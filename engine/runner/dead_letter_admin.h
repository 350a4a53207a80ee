#pragma once
/// @file
/// The operator's side of the dead-letter workflow: list, show, retry and discard dead letters
/// and list parked aggregates. One implementation for `ultracore-ctl dead-letters ...` /
/// `ultracore-ctl parked list` and the admin console's endpoints (/api/v1/dead-letters,
/// /api/v1/parked), so that both do exactly the same.
///
/// A retry or discard only changes the dead letter's row: the engine that runs its projection
/// does the work (FailureStore::pendingRequests): a retry re-applies the stored record through
/// the current plugin exactly once, a resolved dead letter releases its parked aggregate's
/// events in order. waitForDeadLetter follows the outcome.
///
/// Stateless functions; each runs on the connection or transaction it is given.

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <pqxx/connection>
#include <pqxx/transaction_base>

namespace ultracore::engine {

/// Why an operator action on a dead letter was refused.
class DeadLetterError : public std::runtime_error {
 public:
  enum class Kind {
    kNotFound,  ///< no dead letter with that id
    kConflict,  ///< its status does not allow the action (e.g. retrying a discarded one)
    kInvalid,   ///< bad input (an empty reason)
  };
  DeadLetterError(Kind kind, const std::string& message) : std::runtime_error(message), kind_(kind) {}
  Kind kind() const { return kind_; }

 private:
  Kind kind_;
};

/// Filters of a list; an empty optional does not filter. `projection` matches the name and
/// the live generation's key (ultracore_live_key); `aggregate` matches the aggregate id, or
/// the record key of a dead letter whose event could not be parsed.
struct DeadLetterFilter {
  std::optional<std::string> projection;
  std::optional<std::string> status;  ///< open, retry_requested, retried, discarded
  std::optional<std::string> aggregate;
  std::optional<std::string> event_id;
  std::size_t limit = 0;  ///< 0: all
};

struct DeadLetterSummary {
  std::int64_t id = 0;
  std::string projection;
  std::string policy;
  std::string status;
  std::string topic;
  std::int32_t partition = 0;
  std::int64_t offset = 0;
  std::string aggregate;  ///< aggregate id, else the record key as text, else ""
  std::string event_type;
  std::string error_code;
  std::string error;
  std::string created_at;  ///< "YYYY-MM-DD HH:MM:SS"
};

/// Oldest first.
std::vector<DeadLetterSummary> listDeadLetters(pqxx::transaction_base& txn,
                                               const DeadLetterFilter& filter);

/// One dead letter with its whole record. Nullable columns are empty optionals.
struct DeadLetterDetail {
  DeadLetterSummary summary;
  std::optional<std::string> key;    ///< the record's bytes
  std::optional<std::string> value;  ///< the record's bytes
  std::string headers_json;          ///< [{"key": ..., "value": ...}, ...]
  std::optional<std::int64_t> timestamp_ms;
  std::optional<std::string> event_id;
  std::optional<std::string> aggregate_id;
  int attempts = 0;
  std::optional<std::string> retry_requested_at;
  std::optional<std::string> last_retry_at;
  std::optional<std::string> last_retry_error;
  std::optional<std::string> resolved_at;
  std::optional<std::string> resolution;
  std::optional<std::string> parked_aggregate;  ///< the aggregate it holds back
  std::int64_t parked_events = 0;               ///< events held back behind it
};

/// Throws DeadLetterError(kNotFound).
DeadLetterDetail deadLetterDetail(pqxx::transaction_base& txn, std::int64_t id);

/// What a caller waits on after an action.
struct DeadLetterState {
  std::string status;
  std::string projection;
  std::string last_retry_error;
  std::string resolution;
  std::optional<std::string> parked_aggregate;  ///< aggregate it still blocks
  std::string parked_count;
};

/// Throws DeadLetterError(kNotFound).
DeadLetterState readDeadLetterState(pqxx::connection& connection, std::int64_t id);

/// Asks the engine running the dead letter's projection to re-apply it (status
/// retry_requested). Returns the projection. Throws DeadLetterError: kNotFound, or kConflict
/// when the dead letter is neither open nor already retry_requested.
std::string requestDeadLetterRetry(pqxx::connection& connection, std::int64_t id);

/// Gives up on an open dead letter (kept for audit with `reason`); a parked aggregate behind
/// it is then released by the engine. Returns the projection. Throws DeadLetterError:
/// kInvalid (empty reason), kNotFound, kConflict (not open).
std::string discardDeadLetter(pqxx::connection& connection, std::int64_t id,
                              const std::string& reason);

/// Reads the state until `done` holds or `timeout` passes (polling every 200 ms); returns
/// whether it held and the last state read.
std::pair<bool, DeadLetterState> waitForDeadLetter(
    pqxx::connection& connection, std::int64_t id, std::chrono::milliseconds timeout,
    const std::function<bool(const DeadLetterState&)>& done);

struct ParkedAggregate {
  std::string projection;
  std::string aggregate_id;
  std::int64_t dead_letter_id = 0;
  std::string dead_letter_status;
  std::string blocked_at;  ///< topic[partition]@offset of the blocking dead letter
  std::int64_t parked_events = 0;
  std::string parked_at;  ///< "YYYY-MM-DD HH:MM:SS"
};

struct ParkedEvent {
  std::int64_t id = 0;
  std::string projection;
  std::string aggregate_id;
  std::string topic;
  std::int32_t partition = 0;
  std::int64_t offset = 0;
  std::string event_id;
  std::string event_type;
  std::int64_t dead_letter_id = 0;  ///< the one it waits behind
};

/// Parked aggregates (of `projection`, or all), by projection and time parked.
std::vector<ParkedAggregate> listParkedAggregates(pqxx::transaction_base& txn,
                                                  const std::optional<std::string>& projection);
/// Their held-back events, in the order they will be released.
std::vector<ParkedEvent> listParkedEvents(pqxx::transaction_base& txn,
                                          const std::optional<std::string>& projection);

}  // namespace ultracore::engine
