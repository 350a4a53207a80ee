#pragma once
/// @file
/// `materialize --history N`: the state a year of traffic leaves in the database (N earlier
/// processed_events rows per projection, N/10 customers and accounts), loaded with COPY, and
/// the PostgreSQL figures that explain a pass's cost (sizes, WAL, buffer reads, the seed
/// queries' times).

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace ultracore::bench {

/// Aggregate ids of the loaded history start with this, so checks can leave them out.
constexpr const char* kHistoryPrefix = "HIST-";

struct HistoryLoad {
  std::int64_t rows = 0;  ///< processed_events rows (all projections)
  double copy_s = 0;      ///< COPY of every table
  double index_s = 0;     ///< rebuilding processed_events' indexes and constraints
  double vacuum_s = 0;    ///< VACUUM ANALYZE + CHECKPOINT
};

/// Empties the engine's tables and read models of the bench database (as before the first
/// pass: the schema stays), then loads `rows_per_projection` processed_events rows for each of
/// `projections` (random UUIDs, the projections' topics over `partitions` partitions, offsets
/// and processed_at spread over the past year in time order) and rows_per_projection / 10
/// customers and accounts, by COPY. processed_events' indexes are dropped for the COPY and
/// rebuilt (as CREATE INDEX builds them: denser than a year of inserts leaves them).
HistoryLoad loadHistory(const std::string& url, const std::vector<std::string>& projections,
                        std::int64_t rows_per_projection, int partitions);

/// Empties what the engine wrote (read models, processed_events, offsets) for another pass.
void resetEngineTables(const std::string& url);

/// Cumulative server counters; the difference of two snapshots is what a pass cost.
struct PgCounters {
  std::int64_t wal_records = 0, wal_fpi = 0, wal_bytes = 0;
  std::int64_t checkpoints = 0, buffers_backend = 0;
  std::int64_t pe_idx_blks_read = 0, pe_idx_blks_hit = 0;    ///< processed_events' indexes
  std::int64_t pe_heap_blks_read = 0, pe_heap_blks_hit = 0;  ///< processed_events' heap
};
PgCounters readCounters(const std::string& url);
nlohmann::json counterDelta(const PgCounters& before, const PgCounters& after, double events);

/// Sizes of processed_events (every partition, if partitioned) and of the read models.
struct TableSizes {
  std::int64_t pe_rows = 0, pe_heap_bytes = 0, pe_index_bytes = 0;
  std::int64_t read_model_bytes = 0;  ///< customers + accounts, with indexes
};
TableSizes readSizes(const std::string& url);

/// The seed's queries on processed_events (DESIGN.md), each run 5 times: median ms, and the
/// plan of the last run (EXPLAIN ANALYZE, BUFFERS).
struct SeedQuery {
  std::string sql;
  double median_ms = 0;
  std::string plan;
};
std::vector<SeedQuery> timeSeedQueries(const std::string& url, const std::string& aggregate_id);

}  // namespace ultracore::bench
