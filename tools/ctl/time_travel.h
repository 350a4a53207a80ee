#pragma once
/// @file
/// Time travel: a projection's read model as it was at a moment of the log, built into a
/// schema of its own for audit queries. Never switched live; the engine's offsets,
/// processed_events and live schemas are not touched (only read: which schemas are live).
///
/// The moment is either a time (records whose Kafka timestamp is <= it) or a list of
/// per-partition next offsets as ultracore_offsets stores them (records with offset < N;
/// partitions not listed contribute nothing). Every partition of the projection's topics is read
/// with assign() (no consumer group) from the log start up to the high watermark captured when
/// the build starts: later records are never applied, whatever their timestamp.
///
/// Duplicate event_ids are skipped with an in-memory set (the first occurrence in log order of
/// each partition wins; memory grows with the number of distinct events read). A record that is
/// not a valid envelope, or that apply() rejects, stops the build when the projection's
/// on_error is `fail`; otherwise it alone is skipped (the batch is retried event by event with
/// savepoints), printed on stderr and listed in SCHEMA.ultracore_time_travel_skipped.
/// This is the log replayed once, which is not always what the live read model went through:
/// under `park` the live engine also holds back the aggregate's later events, and an operator
/// may later retry a dead letter (applied then, out of log order); time travel skips the one
/// event and goes on. A PostgreSQL fault (transient or not) ends the build as failed; rerun it
/// with --replace.
/// SCHEMA.ultracore_time_travel holds one row describing the build; its status is `building`
/// while it runs, `complete` at the end, `failed` (with the error) when it stopped.

#include <cstdint>
#include <map>
#include <string>
#include <utility>

#include "tools/ctl/ctl_context.h"

namespace ultracore::ctl {

/// What `--until` means.
struct TimeTravelUntil {
  enum class Kind { kTime, kOffsets };
  Kind kind = Kind::kTime;
  std::int64_t time_ms = 0;  ///< kTime: records with timestamp <= this (epoch ms) belong
  /// kOffsets: (topic, partition) -> next offset; records with offset < it belong.
  std::map<std::pair<std::string, std::int32_t>, std::int64_t> offsets;

  /// Canonical text: the time as ISO 8601 UTC with milliseconds, or the offsets list sorted.
  std::string describe() const;
};

/// Parses `--until`: ISO 8601 with a zone ("2026-11-27T08:00:00Z", ".123", "+01:00"), epoch
/// milliseconds (all digits), or "TOPIC:PARTITION=NEXT_OFFSET[,...]". Throws CtlError (exit 2).
TimeTravelUntil parseUntil(const std::string& text);

struct TimeTravelRequest {
  std::string projection;  ///< the manifest's name
  std::string until;       ///< as given to --until
  std::string schema;      ///< --into: must not exist (unless replace), never a live schema
  bool replace = false;    ///< drop SCHEMA first (only if an earlier time-travel build made it)
};

/// Builds the read model; prints progress on stderr and a summary on stdout. Throws CtlError
/// (exit 2: bad request or refused schema; exit 1: the build failed) or ManifestError.
void runTimeTravel(const CtlContext& context, const TimeTravelRequest& request);

}  // namespace ultracore::ctl
