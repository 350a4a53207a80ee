#include "engine/runner/failure_store.h"

#include <nlohmann/json.hpp>
#include <pqxx/binarystring>
#include <pqxx/result>

#include "engine/postgres/sql_array.h"

namespace ultracore::engine {
namespace {

std::string hexBytes(const std::string& bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out = "\\x";
  out.reserve(2 + bytes.size() * 2);
  for (unsigned char c : bytes) {
    out.push_back(kDigits[c >> 4]);
    out.push_back(kDigits[c & 0xf]);
  }
  return out;
}

std::string headersJson(const KafkaRecord& record) {
  nlohmann::json headers = nlohmann::json::array();
  for (const auto& [name, value] : record.headers) {
    headers.push_back({{"key", name}, {"value", value ? nlohmann::json(*value) : nlohmann::json()}});
  }
  return headers.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

/// bytea parameters travel as hex text; a null pointer is SQL NULL.
struct Bytes {
  explicit Bytes(const std::optional<std::string>& value) {
    if (value) {
      hex = hexBytes(*value);
      pointer = hex.c_str();
    }
  }
  std::string hex;
  const char* pointer = nullptr;
};

std::optional<std::string> bytesOf(const pqxx::field& field) {
  if (field.is_null()) return std::nullopt;
  return pqxx::binarystring(field).str();
}

/// Columns: id, topic, partition, offset, record_key, record_value, timestamp_ms.
StoredRecord storedFrom(const pqxx::row& row) {
  StoredRecord stored;
  stored.id = row[0].as<std::int64_t>();
  stored.record.topic = row[1].as<std::string>();
  stored.record.partition = row[2].as<std::int32_t>();
  stored.record.offset = row[3].as<std::int64_t>();
  stored.record.key = bytesOf(row[4]);
  stored.record.value = bytesOf(row[5]);
  stored.record.timestamp_ms = row[6].is_null() ? 0 : row[6].as<std::int64_t>();
  return stored;
}

const char* eventField(const sdk::Event* event, const std::string& (sdk::Event::*getter)() const) {
  return event ? (event->*getter)().c_str() : nullptr;
}

}  // namespace

const char* statusCodeName(sdk::StatusCode code) {
  switch (code) {
    case sdk::StatusCode::kOk: return "ok";
    case sdk::StatusCode::kInvalidEvent: return "invalid_event";
    case sdk::StatusCode::kHandlerError: return "handler_error";
    case sdk::StatusCode::kDatabaseError: return "database_error";
    case sdk::StatusCode::kTransient: return "transient";
    case sdk::StatusCode::kInvalidArgument: return "invalid_argument";
  }
  return "unknown";
}

void FailureStore::recordSkipped(pqxx::transaction_base& txn, const KafkaRecord& record,
                                 const sdk::Event* event, const sdk::Status& error) {
  txn.exec_params0(
      "INSERT INTO ultracore_skipped_events (projection, topic, partition, \"offset\", "
      "event_id, aggregate_id, event_type, error_code, error) "
      "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT DO NOTHING",
      projection_, record.topic, record.partition, record.offset,
      eventField(event, &sdk::Event::eventId), eventField(event, &sdk::Event::aggregateId),
      eventField(event, &sdk::Event::eventType), statusCodeName(error.code()), error.message());
}

std::int64_t FailureStore::recordDeadLetter(pqxx::transaction_base& txn, const std::string& policy,
                                            const KafkaRecord& record, const sdk::Event* event,
                                            const sdk::Status& error, int attempts) {
  const Bytes key(record.key);
  const Bytes value(record.value);
  const auto inserted = txn.exec_params(
      "INSERT INTO ultracore_dead_letters (projection, policy, topic, partition, \"offset\", "
      "record_key, record_value, headers, timestamp_ms, event_id, aggregate_id, event_type, "
      "error_code, error, attempts) "
      "VALUES ($1, $2, $3, $4, $5, $6::bytea, $7::bytea, $8::jsonb, $9, $10, $11, $12, $13, "
      "$14, $15) "
      // The same record failing again (a replay that kept the failure tables): a resolved dead
      // letter opens again, so the event is neither missing with nothing open nor released at
      // once. An open (or retry_requested) one stays as it is.
      "ON CONFLICT (projection, topic, partition, \"offset\") DO UPDATE SET status = 'open', "
      "policy = EXCLUDED.policy, error_code = EXCLUDED.error_code, error = EXCLUDED.error, "
      "attempts = ultracore_dead_letters.attempts + EXCLUDED.attempts, resolved_at = NULL, "
      "resolution = NULL, retry_requested_at = NULL "
      "WHERE ultracore_dead_letters.status IN ('retried', 'discarded') RETURNING id",
      projection_, policy, record.topic, record.partition, record.offset, key.pointer,
      value.pointer, headersJson(record), record.timestamp_ms,
      eventField(event, &sdk::Event::eventId), eventField(event, &sdk::Event::aggregateId),
      eventField(event, &sdk::Event::eventType), statusCodeName(error.code()), error.message(),
      attempts);
  if (!inserted.empty()) return inserted[0][0].as<std::int64_t>();
  return txn
      .exec_params1("SELECT id FROM ultracore_dead_letters WHERE projection = $1 AND topic = $2 "
                    "AND partition = $3 AND \"offset\" = $4",
                    projection_, record.topic, record.partition, record.offset)[0]
      .as<std::int64_t>();
}

void FailureStore::parkAggregate(pqxx::transaction_base& txn, const std::string& aggregate_id,
                                 std::int64_t dead_letter_id, const KafkaRecord& blocking) {
  txn.exec_params0(
      "INSERT INTO ultracore_parked_aggregates (projection, aggregate_id, dead_letter_id, topic, "
      "partition) VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
      projection_, aggregate_id, dead_letter_id, blocking.topic, blocking.partition);
}

std::map<std::string, std::int64_t> FailureStore::parkedAmong(
    pqxx::transaction_base& txn, const std::vector<std::string>& aggregates) {
  std::map<std::string, std::int64_t> parked;
  if (aggregates.empty()) return parked;
  const auto rows = txn.exec_params(
      "SELECT aggregate_id, dead_letter_id FROM ultracore_parked_aggregates "
      "WHERE projection = $1 AND aggregate_id = ANY($2::text[]) FOR SHARE",
      projection_, toArrayLiteral(aggregates));
  for (const auto& row : rows) parked[row[0].as<std::string>()] = row[1].as<std::int64_t>();
  return parked;
}

void FailureStore::storeParked(pqxx::transaction_base& txn, const std::string& aggregate_id,
                               std::int64_t dead_letter_id, const KafkaRecord& record,
                               const sdk::Event* event) {
  const Bytes key(record.key);
  const Bytes value(record.value);
  txn.exec_params0(
      "INSERT INTO ultracore_parked_events (projection, aggregate_id, dead_letter_id, topic, "
      "partition, \"offset\", record_key, record_value, headers, timestamp_ms, event_id, "
      "event_type) VALUES ($1, $2, $3, $4, $5, $6, $7::bytea, $8::bytea, $9::jsonb, $10, $11, "
      "$12) ON CONFLICT DO NOTHING",
      projection_, aggregate_id, dead_letter_id, record.topic, record.partition, record.offset,
      key.pointer, value.pointer, headersJson(record), record.timestamp_ms,
      eventField(event, &sdk::Event::eventId), eventField(event, &sdk::Event::eventType));
}

std::vector<FailureRequest> FailureStore::pendingRequests(pqxx::transaction_base& txn) {
  const auto rows = txn.exec_params(
      "SELECT 0 AS kind, id, '', topic, partition FROM ultracore_dead_letters "
      "WHERE projection = $1 AND status = 'retry_requested' "
      "UNION ALL "
      "SELECT 1, p.dead_letter_id, p.aggregate_id, p.topic, p.partition "
      "FROM ultracore_parked_aggregates p JOIN ultracore_dead_letters d ON d.id = p.dead_letter_id "
      "WHERE p.projection = $1 AND d.status IN ('discarded', 'retried') "
      "ORDER BY 2",
      projection_);
  std::vector<FailureRequest> out;
  for (const auto& row : rows) {
    FailureRequest request;
    request.kind = row[0].as<int>() == 0 ? FailureRequest::Kind::kRetry : FailureRequest::Kind::kRelease;
    request.dead_letter_id = row[1].as<std::int64_t>();
    request.aggregate_id = row[2].as<std::string>();
    request.topic = row[3].as<std::string>();
    request.partition = row[4].as<std::int32_t>();
    out.push_back(std::move(request));
  }
  return out;
}

std::optional<StoredRecord> FailureStore::lockRetryRequested(pqxx::transaction_base& txn,
                                                             std::int64_t id) {
  const auto rows = txn.exec_params(
      "SELECT id, topic, partition, \"offset\", record_key, record_value, timestamp_ms "
      "FROM ultracore_dead_letters WHERE projection = $1 AND id = $2 "
      "AND status = 'retry_requested' FOR UPDATE",
      projection_, id);
  if (rows.empty()) return std::nullopt;
  return storedFrom(rows[0]);
}

void FailureStore::markRetried(pqxx::transaction_base& txn, std::int64_t id) {
  txn.exec_params0(
      "UPDATE ultracore_dead_letters SET status = 'retried', resolved_at = now(), "
      "resolution = 'retried', last_retry_at = now(), last_retry_error = NULL WHERE id = $1",
      id);
}

void FailureStore::markRetryFailed(pqxx::transaction_base& txn, std::int64_t id,
                                   const sdk::Status& error) {
  txn.exec_params0(
      "UPDATE ultracore_dead_letters SET status = 'open', attempts = attempts + 1, "
      "last_retry_at = now(), last_retry_error = $2 WHERE id = $1",
      id, std::string(statusCodeName(error.code())) + ": " + error.message());
}

std::optional<std::string> FailureStore::lockParkedBehind(pqxx::transaction_base& txn,
                                                          std::int64_t id) {
  const auto rows = txn.exec_params(
      "SELECT aggregate_id FROM ultracore_parked_aggregates WHERE projection = $1 "
      "AND dead_letter_id = $2 FOR UPDATE",
      projection_, id);
  if (rows.empty()) return std::nullopt;
  return rows[0][0].as<std::string>();
}

bool FailureStore::lockReleasable(pqxx::transaction_base& txn, const std::string& aggregate_id) {
  return !txn
              .exec_params(
                  "SELECT 1 FROM ultracore_parked_aggregates p JOIN ultracore_dead_letters d "
                  "ON d.id = p.dead_letter_id WHERE p.projection = $1 AND p.aggregate_id = $2 "
                  "AND d.status IN ('discarded', 'retried') FOR UPDATE OF p",
                  projection_, aggregate_id)
              .empty();
}

std::vector<StoredRecord> FailureStore::parkedEvents(pqxx::transaction_base& txn,
                                                     const std::string& aggregate_id) {
  const auto rows = txn.exec_params(
      "SELECT id, topic, partition, \"offset\", record_key, record_value, timestamp_ms "
      "FROM ultracore_parked_events WHERE projection = $1 AND aggregate_id = $2 ORDER BY id",
      projection_, aggregate_id);
  std::vector<StoredRecord> out;
  for (const auto& row : rows) out.push_back(storedFrom(row));
  return out;
}

void FailureStore::removeParkedEvent(pqxx::transaction_base& txn, std::int64_t id) {
  txn.exec_params0("DELETE FROM ultracore_parked_events WHERE id = $1", id);
}

void FailureStore::reblock(pqxx::transaction_base& txn, const std::string& aggregate_id,
                           std::int64_t dead_letter_id, const KafkaRecord& blocking) {
  txn.exec_params0(
      "UPDATE ultracore_parked_aggregates SET dead_letter_id = $3, topic = $4, partition = $5, "
      "parked_at = now() WHERE projection = $1 AND aggregate_id = $2",
      projection_, aggregate_id, dead_letter_id, blocking.topic, blocking.partition);
}

void FailureStore::unpark(pqxx::transaction_base& txn, const std::string& aggregate_id) {
  txn.exec_params0(
      "DELETE FROM ultracore_parked_aggregates WHERE projection = $1 AND aggregate_id = $2",
      projection_, aggregate_id);
}

}  // namespace ultracore::engine
