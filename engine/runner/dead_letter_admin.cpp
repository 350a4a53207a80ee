#include "engine/runner/dead_letter_admin.h"

#include <thread>

#include <pqxx/binarystring>
#include <pqxx/result>
#include <pqxx/transaction>

namespace ultracore::engine {
namespace {

std::string text(const pqxx::field& field) { return field.is_null() ? "" : field.c_str(); }

std::optional<std::string> optionalText(const pqxx::field& field) {
  if (field.is_null()) return std::nullopt;
  return std::string(field.c_str());
}

std::optional<std::string> bytes(const pqxx::field& field) {
  if (field.is_null()) return std::nullopt;
  return pqxx::binarystring(field).str();
}

const char* orNull(const std::optional<std::string>& value) {
  return value ? value->c_str() : nullptr;
}

}  // namespace

std::vector<DeadLetterSummary> listDeadLetters(pqxx::transaction_base& txn,
                                               const DeadLetterFilter& filter) {
  const auto rows = txn.exec_params(
      "SELECT id, projection, policy, status, topic, partition, \"offset\", "
      "coalesce(aggregate_id, convert_from(record_key, 'UTF8'), ''), coalesce(event_type, ''), "
      "error_code, error, to_char(created_at, 'YYYY-MM-DD HH24:MI:SS') "
      "FROM ultracore_dead_letters WHERE ($1::text IS NULL OR projection IN ($1, ultracore_live_key($1))) "
      "AND ($2::text IS NULL OR status = $2) AND ($3::text IS NULL OR aggregate_id = $3 "
      "OR (aggregate_id IS NULL AND record_key = convert_to($3, 'UTF8'))) "
      "AND ($4::text IS NULL OR event_id = $4) ORDER BY id "
      "LIMIT CASE WHEN $5::bigint > 0 THEN $5::bigint END",
      orNull(filter.projection), orNull(filter.status), orNull(filter.aggregate),
      orNull(filter.event_id), static_cast<std::int64_t>(filter.limit));
  std::vector<DeadLetterSummary> out;
  for (const auto& row : rows) {
    out.push_back({row[0].as<std::int64_t>(), text(row[1]), text(row[2]), text(row[3]), text(row[4]),
                   row[5].as<std::int32_t>(), row[6].as<std::int64_t>(), text(row[7]), text(row[8]),
                   text(row[9]), text(row[10]), text(row[11])});
  }
  return out;
}

DeadLetterDetail deadLetterDetail(pqxx::transaction_base& txn, std::int64_t id) {
  const auto rows = txn.exec_params(
      "SELECT id, projection, policy, status, topic, partition, \"offset\", "
      "coalesce(aggregate_id, convert_from(record_key, 'UTF8'), ''), coalesce(event_type, ''), "
      "error_code, error, created_at::text, record_key, record_value, headers::text, "
      "timestamp_ms, event_id, aggregate_id, attempts, retry_requested_at::text, "
      "last_retry_at::text, last_retry_error, resolved_at::text, resolution, "
      "(SELECT aggregate_id FROM ultracore_parked_aggregates p WHERE p.dead_letter_id = d.id), "
      "(SELECT count(*) FROM ultracore_parked_events e WHERE e.projection = d.projection AND "
      " e.aggregate_id = (SELECT aggregate_id FROM ultracore_parked_aggregates p "
      "                   WHERE p.dead_letter_id = d.id)) "
      "FROM ultracore_dead_letters d WHERE id = $1",
      id);
  if (rows.empty()) {
    throw DeadLetterError(DeadLetterError::Kind::kNotFound, "no dead letter " + std::to_string(id));
  }
  const auto& r = rows[0];
  DeadLetterDetail d;
  d.summary = {r[0].as<std::int64_t>(), text(r[1]), text(r[2]), text(r[3]), text(r[4]),
               r[5].as<std::int32_t>(), r[6].as<std::int64_t>(), text(r[7]), text(r[8]),
               text(r[9]), text(r[10]), text(r[11])};
  d.key = bytes(r[12]);
  d.value = bytes(r[13]);
  d.headers_json = text(r[14]);
  if (!r[15].is_null()) d.timestamp_ms = r[15].as<std::int64_t>();
  d.event_id = optionalText(r[16]);
  d.aggregate_id = optionalText(r[17]);
  d.attempts = r[18].as<int>();
  d.retry_requested_at = optionalText(r[19]);
  d.last_retry_at = optionalText(r[20]);
  d.last_retry_error = optionalText(r[21]);
  d.resolved_at = optionalText(r[22]);
  d.resolution = optionalText(r[23]);
  d.parked_aggregate = optionalText(r[24]);
  d.parked_events = r[25].is_null() ? 0 : r[25].as<std::int64_t>();
  return d;
}

DeadLetterState readDeadLetterState(pqxx::connection& connection, std::int64_t id) {
  pqxx::read_transaction txn(connection);
  const auto rows = txn.exec_params(
      "SELECT d.status, d.projection, coalesce(d.last_retry_error, ''), coalesce(d.resolution, ''), "
      "p.aggregate_id, (SELECT count(*) FROM ultracore_parked_events e "
      " WHERE e.projection = p.projection AND e.aggregate_id = p.aggregate_id) "
      "FROM ultracore_dead_letters d LEFT JOIN ultracore_parked_aggregates p "
      "ON p.dead_letter_id = d.id WHERE d.id = $1",
      id);
  if (rows.empty()) {
    throw DeadLetterError(DeadLetterError::Kind::kNotFound, "no dead letter " + std::to_string(id));
  }
  DeadLetterState state{text(rows[0][0]), text(rows[0][1]), text(rows[0][2]), text(rows[0][3]),
                        optionalText(rows[0][4]), text(rows[0][5])};
  return state;
}

std::string requestDeadLetterRetry(pqxx::connection& connection, std::int64_t id) {
  pqxx::work txn(connection);
  const auto rows = txn.exec_params(
      "UPDATE ultracore_dead_letters SET status = 'retry_requested', "
      "retry_requested_at = now() WHERE id = $1 AND status IN ('open', 'retry_requested') "
      "RETURNING projection",
      id);
  txn.commit();
  if (rows.empty()) {
    const DeadLetterState state = readDeadLetterState(connection, id);
    throw DeadLetterError(DeadLetterError::Kind::kConflict,
                          "dead letter " + std::to_string(id) + " is " + state.status +
                              "; only an open dead letter can be retried");
  }
  return text(rows[0][0]);
}

std::string discardDeadLetter(pqxx::connection& connection, std::int64_t id,
                              const std::string& reason) {
  if (reason.empty()) {
    throw DeadLetterError(DeadLetterError::Kind::kInvalid, "the reason must not be empty");
  }
  pqxx::work txn(connection);
  const auto rows = txn.exec_params(
      "UPDATE ultracore_dead_letters SET status = 'discarded', resolved_at = now(), "
      "resolution = $2 WHERE id = $1 AND status = 'open' RETURNING projection",
      id, reason);
  txn.commit();
  if (rows.empty()) {
    const DeadLetterState state = readDeadLetterState(connection, id);
    throw DeadLetterError(DeadLetterError::Kind::kConflict,
                          "dead letter " + std::to_string(id) + " is " + state.status +
                              "; only an open dead letter can be discarded");
  }
  return text(rows[0][0]);
}

std::pair<bool, DeadLetterState> waitForDeadLetter(
    pqxx::connection& connection, std::int64_t id, std::chrono::milliseconds timeout,
    const std::function<bool(const DeadLetterState&)>& done) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    DeadLetterState state = readDeadLetterState(connection, id);
    if (done(state)) return {true, state};
    if (std::chrono::steady_clock::now() >= deadline) return {false, state};
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
}

std::vector<ParkedAggregate> listParkedAggregates(pqxx::transaction_base& txn,
                                                  const std::optional<std::string>& projection) {
  const auto rows = txn.exec_params(
      "SELECT p.projection, p.aggregate_id, p.dead_letter_id, d.status, "
      "p.topic || '[' || p.partition || ']@' || d.\"offset\", "
      "(SELECT count(*) FROM ultracore_parked_events e WHERE e.projection = p.projection "
      " AND e.aggregate_id = p.aggregate_id), to_char(p.parked_at, 'YYYY-MM-DD HH24:MI:SS') "
      "FROM ultracore_parked_aggregates p JOIN ultracore_dead_letters d ON d.id = p.dead_letter_id "
      "WHERE $1::text IS NULL OR p.projection IN ($1, ultracore_live_key($1)) ORDER BY p.projection, p.parked_at, p.aggregate_id",
      orNull(projection));
  std::vector<ParkedAggregate> out;
  for (const auto& row : rows) {
    out.push_back({text(row[0]), text(row[1]), row[2].as<std::int64_t>(), text(row[3]), text(row[4]),
                   row[5].as<std::int64_t>(), text(row[6])});
  }
  return out;
}

std::vector<ParkedEvent> listParkedEvents(pqxx::transaction_base& txn,
                                          const std::optional<std::string>& projection) {
  const auto rows = txn.exec_params(
      "SELECT id, projection, aggregate_id, topic, partition, \"offset\", coalesce(event_id, ''), "
      "coalesce(event_type, ''), dead_letter_id FROM ultracore_parked_events "
      "WHERE $1::text IS NULL OR projection IN ($1, ultracore_live_key($1)) ORDER BY projection, aggregate_id, id",
      orNull(projection));
  std::vector<ParkedEvent> out;
  for (const auto& row : rows) {
    out.push_back({row[0].as<std::int64_t>(), text(row[1]), text(row[2]), text(row[3]),
                   row[4].as<std::int32_t>(), row[5].as<std::int64_t>(), text(row[6]), text(row[7]),
                   row[8].as<std::int64_t>()});
  }
  return out;
}

}  // namespace ultracore::engine
