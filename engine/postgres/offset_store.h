#pragma once
/// @file
/// The engine's offset store: PostgreSQL is the authority on where each projection resumes.

#include <compare>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <pqxx/connection>
#include <pqxx/transaction_base>

namespace ultracore::engine {

struct TopicPartition {
  std::string topic;
  std::int32_t partition = 0;
  auto operator<=>(const TopicPartition&) const = default;
};

std::string toString(const TopicPartition& tp);

/// Moves one partition's stored offset from `expected` to `next`.
struct OffsetAdvance {
  TopicPartition partition;
  std::int64_t expected = 0;
  std::int64_t next = 0;
};

/// Stateless; every call takes the connection or transaction to use.
class OffsetStore {
 public:
  /// Stored for a partition nothing was consumed from yet: start at the log's beginning.
  static constexpr std::int64_t kFromBeginning = -2;
  /// compareAndAdvance sends `NOTIFY ultracore_offsets, '<projection>'` in the caller's
  /// transaction (see OffsetWatch).
  static constexpr const char* kNotifyChannel = "ultracore_offsets";

  explicit OffsetStore(std::string projection) : projection_(std::move(projection)) {}

  /// Creates missing rows (kFromBeginning) and returns the stored next offset of each.
  std::map<TopicPartition, std::int64_t> loadOrInit(pqxx::connection_base& connection,
                                                    const std::vector<TopicPartition>& partitions);

  /// The compare-and-set of DESIGN.md invariant 3, inside the batch's transaction: every
  /// partition moves from its expected offset or none does. Returns false when any stored
  /// offset differs (another runner owns the partition now); the caller must roll back.
  bool compareAndAdvance(pqxx::transaction_base& txn, const std::vector<OffsetAdvance>& advances);

  /// Sets stored offsets unconditionally (operator reset / replay).
  void reset(pqxx::transaction_base& txn, std::int64_t next_offset);

  const std::string& projection() const { return projection_; }

 private:
  std::string projection_;
};

}  // namespace ultracore::engine
