#pragma once
/// @file
/// processed_events, the idempotency record: which events a projection (a generation's key)
/// applied, claimed in the batch's transaction; a fingerprint of what each one held, so an
/// event_id reused for another event is a conflict and not a silent skip (issue 15.4); and the
/// retention that prunes old rows in small steps (issue 18).

#include <cstdint>
#include <string>
#include <vector>

#include <pqxx/transaction_base>

#include "ultracore/sdk/event.h"
#include "ultracore/sdk/status.h"

namespace ultracore::engine {

/// FNV-1a 64 of aggregate_id, event_type and event_data (canonical JSON: keys sorted), each
/// followed by 0x1f. Not of stamps such as occurred_at or user_id, which a retried command may
/// renew: a true re-send has the same fingerprint. Stable across builds (it is stored).
std::int64_t eventFingerprint(const sdk::Event& event);

/// One event to claim, and where it was read.
struct DedupeItem {
  const sdk::Event* event = nullptr;
  std::string topic;
  std::int32_t partition = 0;
  std::int64_t offset = 0;
};

struct DedupeClaim {
  /// Per item, in order: true when this transaction inserted its row (apply it); false when
  /// the event_id was applied before, or earlier in this batch, with the same content.
  std::vector<bool> fresh;
  std::size_t duplicates = 0;
  /// Not ok (kInvalidEvent) when an item's event_id was applied with other content: its
  /// message names both positions. The transaction must then not commit.
  sdk::Status conflict;
};

/// Inserts the items' processed_events rows under `key` (ON CONFLICT DO NOTHING). A second
/// statement runs only when some were already there, to compare their fingerprints.
/// `table`: another table of processed_events' shape (projection, event_id, aggregate_id,
/// event_type, topic, partition, offset, fingerprint; unique on projection, event_id), such as
/// time travel's own record in its target schema; quoted and qualified by the caller.
DedupeClaim claimEvents(pqxx::transaction_base& txn, const std::string& key,
                        const std::vector<DedupeItem>& items,
                        const std::string& table = "processed_events");

/// Deletes at most `limit` rows of `keys` processed more than `retention_s` seconds ago, the
/// oldest first (one short statement: retention runs as many small steps, never one huge
/// DELETE). `cursor` (a processed_at, as text) carries where the previous step stopped, so a
/// step does not walk again past rows of projections that keep theirs (the processed_at index
/// is shared); empty at first, updated here. Returns the rows deleted.
std::int64_t pruneProcessedEvents(pqxx::transaction_base& txn, const std::vector<std::string>& keys,
                                  std::int64_t retention_s, std::int64_t limit,
                                  std::string& cursor);

/// "7d", "12h", "30m", "90s" (the largest whole unit), "forever" for 0.
std::string formatRetention(std::int64_t seconds);

}  // namespace ultracore::engine
