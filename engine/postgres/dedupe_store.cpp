#include "engine/postgres/dedupe_store.h"

#include <map>
#include <unordered_map>

#include <pqxx/result>

#include "engine/postgres/sql_array.h"

namespace ultracore::engine {
namespace {

constexpr std::uint64_t kFnvOffset = 14695981039346656037ULL;
constexpr std::uint64_t kFnvPrime = 1099511628211ULL;

void mix(std::uint64_t& hash, std::string_view text) {
  for (const char c : text) {
    hash ^= static_cast<unsigned char>(c);
    hash *= kFnvPrime;
  }
  hash ^= 0x1f;
  hash *= kFnvPrime;
}

std::string position(const std::string& topic, std::int32_t partition, std::int64_t offset) {
  return topic + "[" + std::to_string(partition) + "]@" + std::to_string(offset);
}

}  // namespace

std::int64_t eventFingerprint(const sdk::Event& event) {
  std::uint64_t hash = kFnvOffset;
  mix(hash, event.aggregateId());
  mix(hash, event.eventType());
  mix(hash, event.data().dump());
  return static_cast<std::int64_t>(hash);
}

DedupeClaim claimEvents(pqxx::transaction_base& txn, const std::string& key,
                        const std::vector<DedupeItem>& items, const std::string& table) {
  DedupeClaim claim;
  claim.fresh.assign(items.size(), false);
  if (items.empty()) return claim;
  std::vector<std::string> ids, aggregates, types, topics, partitions, offsets, fingerprints;
  std::vector<std::int64_t> item_fingerprints;
  for (const DedupeItem& item : items) {
    ids.push_back(item.event->eventId());
    aggregates.push_back(item.event->aggregateId());
    types.push_back(item.event->eventType());
    topics.push_back(item.topic);
    partitions.push_back(std::to_string(item.partition));
    offsets.push_back(std::to_string(item.offset));
    item_fingerprints.push_back(eventFingerprint(*item.event));
    fingerprints.push_back(std::to_string(item_fingerprints.back()));
  }
  const auto inserted = txn.exec_params(
      "INSERT INTO " + table + " (projection, event_id, aggregate_id, event_type, topic, "
      "partition, \"offset\", fingerprint) "
      "SELECT $1, e, a, t, tp, p, o, f FROM unnest($2::text[], $3::text[], $4::text[], "
      "$5::text[], $6::int[], $7::bigint[], $8::bigint[]) WITH ORDINALITY AS u(e, a, t, tp, p, "
      "o, f, ord) ORDER BY ord ON CONFLICT (projection, event_id) DO NOTHING RETURNING event_id",
      key, toArrayLiteral(ids), toArrayLiteral(aggregates), toArrayLiteral(types),
      toArrayLiteral(topics), toArrayLiteral(partitions), toArrayLiteral(offsets),
      toArrayLiteral(fingerprints));
  std::unordered_map<std::string, int> returned;
  for (const auto& row : inserted) ++returned[row[0].as<std::string>()];
  std::vector<std::string> seen_before;
  for (std::size_t i = 0; i < items.size(); ++i) {
    const auto it = returned.find(ids[i]);
    if (it != returned.end() && it->second > 0) {  // the first of the batch with this id
      --it->second;
      claim.fresh[i] = true;
    } else {
      seen_before.push_back(ids[i]);
    }
  }
  if (seen_before.empty()) return claim;  // the usual case: no second statement
  struct Stored {
    std::string topic;
    std::int32_t partition = 0;
    std::int64_t offset = 0;
    std::optional<std::int64_t> fingerprint;  ///< none on rows written before migration 0007
  };
  std::map<std::string, Stored> stored;
  for (const auto& row : txn.exec_params(
           "SELECT event_id, topic, partition, \"offset\", fingerprint FROM " + table +
           " WHERE projection = $1 AND event_id = ANY($2::text[])",
           key, toArrayLiteral(seen_before))) {
    Stored s{row[1].as<std::string>(), row[2].as<std::int32_t>(), row[3].as<std::int64_t>(),
             std::nullopt};
    if (!row[4].is_null()) s.fingerprint = row[4].as<std::int64_t>();
    stored.emplace(row[0].as<std::string>(), std::move(s));
  }
  for (std::size_t i = 0; i < items.size(); ++i) {
    if (claim.fresh[i]) continue;
    ++claim.duplicates;
    const auto it = stored.find(ids[i]);
    // Not visible: applied by a transaction that committed after this statement's snapshot
    // began; its content is unknown here, and a re-send is by far the likelier.
    if (it == stored.end() || !it->second.fingerprint) continue;
    if (*it->second.fingerprint == item_fingerprints[i]) continue;
    const DedupeItem& item = items[i];
    claim.conflict = sdk::Status(
        sdk::StatusCode::kInvalidEvent,
        "event_id '" + ids[i] + "' was applied at " +
            position(it->second.topic, it->second.partition, it->second.offset) +
            " with other content (aggregate_id, event_type or event_data differ) than the record "
            "at " + position(item.topic, item.partition, item.offset) +
            ": an event_id reused by another event, not a re-send");
    return claim;
  }
  return claim;
}

std::int64_t pruneProcessedEvents(pqxx::transaction_base& txn, const std::vector<std::string>& keys,
                                  std::int64_t retention_s, std::int64_t limit,
                                  std::string& cursor) {
  // The oldest rows first through the processed_at index, from where the last step stopped;
  // ctid: exactly the rows just found. Rows are stamped with their transaction's start, so
  // none can appear behind the cursor, which always lies more than the window in the past.
  const auto row = txn.exec_params1(
      "WITH doomed AS (SELECT ctid, processed_at FROM processed_events "
      "WHERE projection = ANY($1::text[]) AND processed_at < now() - make_interval(secs => $2) "
      "AND ($4::text IS NULL OR processed_at >= $4::timestamptz) ORDER BY processed_at LIMIT $3), "
      "gone AS (DELETE FROM processed_events p USING doomed d WHERE p.ctid = d.ctid "
      "RETURNING d.processed_at) "
      "SELECT count(*), max(processed_at)::text FROM gone",
      toArrayLiteral(keys), retention_s, limit,
      cursor.empty() ? std::optional<std::string>() : std::optional<std::string>(cursor));
  const auto deleted = row[0].as<std::int64_t>();
  if (deleted > 0) cursor = row[1].as<std::string>();
  return deleted;
}

std::string formatRetention(std::int64_t seconds) {
  if (seconds <= 0) return "forever";
  if (seconds % 86400 == 0) return std::to_string(seconds / 86400) + "d";
  if (seconds % 3600 == 0) return std::to_string(seconds / 3600) + "h";
  if (seconds % 60 == 0) return std::to_string(seconds / 60) + "m";
  return std::to_string(seconds) + "s";
}

}  // namespace ultracore::engine
