#include "engine/postgres/offset_store.h"

#include <pqxx/result>
#include <pqxx/transaction>

#include "engine/postgres/sql_array.h"

namespace ultracore::engine {

std::string toString(const TopicPartition& tp) {
  return tp.topic + "[" + std::to_string(tp.partition) + "]";
}

std::map<TopicPartition, std::int64_t> OffsetStore::loadOrInit(
    pqxx::connection_base& connection, const std::vector<TopicPartition>& partitions) {
  std::vector<std::string> topics;
  std::vector<std::string> numbers;
  for (const auto& tp : partitions) {
    topics.push_back(tp.topic);
    numbers.push_back(std::to_string(tp.partition));
  }
  pqxx::work txn(connection, "ultracore-offsets-load");
  txn.exec_params0(
      "INSERT INTO ultracore_offsets (projection, topic, partition, next_offset) "
      "SELECT $1, t, p, $4 FROM unnest($2::text[], $3::int[]) AS u(t, p) "
      "ON CONFLICT DO NOTHING",
      projection_, toArrayLiteral(topics), toArrayLiteral(numbers), kFromBeginning);
  const auto rows = txn.exec_params(
      "SELECT o.topic, o.partition, o.next_offset FROM ultracore_offsets o "
      "JOIN unnest($2::text[], $3::int[]) AS u(t, p) ON o.topic = u.t AND o.partition = u.p "
      "WHERE o.projection = $1",
      projection_, toArrayLiteral(topics), toArrayLiteral(numbers));
  txn.commit();
  std::map<TopicPartition, std::int64_t> out;
  for (const auto& row : rows) {
    out[{row[0].as<std::string>(), row[1].as<std::int32_t>()}] = row[2].as<std::int64_t>();
  }
  return out;
}

bool OffsetStore::compareAndAdvance(pqxx::transaction_base& txn,
                                    const std::vector<OffsetAdvance>& advances) {
  if (advances.empty()) return true;
  std::vector<std::string> topics, partitions, expected, next;
  for (const auto& a : advances) {
    topics.push_back(a.partition.topic);
    partitions.push_back(std::to_string(a.partition.partition));
    expected.push_back(std::to_string(a.expected));
    next.push_back(std::to_string(a.next));
  }
  // The NOTIFY is delivered only if this transaction commits, and after it does: it wakes the
  // API's read-your-write waits (OffsetWatch) instead of them polling this table.
  const auto result = txn.exec_params1(
      "WITH moved AS (UPDATE ultracore_offsets o SET next_offset = u.next, updated_at = now() "
      "FROM unnest($2::text[], $3::int[], $4::bigint[], $5::bigint[]) AS u(t, p, expected, next) "
      "WHERE o.projection = $1 AND o.topic = u.t AND o.partition = u.p "
      "AND o.next_offset = u.expected RETURNING 1) "
      "SELECT count(*), pg_notify($6, $1) FROM moved",
      projection_, toArrayLiteral(topics), toArrayLiteral(partitions), toArrayLiteral(expected),
      toArrayLiteral(next), std::string(kNotifyChannel));
  return result[0].as<std::size_t>() == advances.size();
}

void OffsetStore::reset(pqxx::transaction_base& txn, std::int64_t next_offset) {
  txn.exec_params0(
      "UPDATE ultracore_offsets SET next_offset = $2, updated_at = now() WHERE projection = $1",
      projection_, next_offset);
}

}  // namespace ultracore::engine
