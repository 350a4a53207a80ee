#pragma once
/// @file
/// The admin console's message browser (GET /api/v1/messages): reads a topic's records with a
/// short-lived consumer of its own that assign()s the partitions (no group, no commits: it
/// cannot disturb any consumer group), filters them, and answers within a time budget.
///
/// A scan reads forward from a start position (oldest, newest, an offset, a time, or a
/// continuation cursor) up to each partition's high watermark as it was when the scan began.
/// It stops at `limit` matches, at the end, or when the budget is spent; the answer then says
/// how many records it examined of how many there are to examine and carries a cursor (the
/// next offset of every partition) from which the next request goes on. A search on a big
/// topic thus never holds an HTTP worker for more than about the budget.
///
/// Thread-safe: every search builds its own consumer.

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>

#include <nlohmann/json.hpp>

#include "engine/kafka/kafka_record.h"

namespace ultracore::engine {

/// The query cannot be run as asked (unknown topic or partition, bad cursor): HTTP 400/404.
class MessageQueryError : public std::runtime_error {
 public:
  MessageQueryError(int status, const std::string& code, const std::string& message)
      : std::runtime_error(message), status_(status), code_(code) {}
  int status() const { return status_; }
  const std::string& code() const { return code_; }

 private:
  int status_;
  std::string code_;
};

struct MessageQuery {
  enum class Start { kOldest, kNewest, kOffset, kTime };
  std::string topic;
  std::optional<std::int32_t> partition;  ///< nullopt: every partition
  Start start = Start::kNewest;
  std::int64_t offset = 0;   ///< kOffset: the first offset (clamped to the log)
  std::int64_t time_ms = 0;  ///< kTime: the first record at or after this time
  /// Continuation: partition -> next offset; when not empty it replaces `start`.
  std::map<std::int32_t, std::int64_t> cursor;
  // Filters, all that are set must match; empty: not filtered.
  std::string key;
  std::string aggregate_id;
  std::string event_type;
  std::string event_id;
  std::size_t limit = 50;  ///< matches per answer
  /// Only the record at exactly `offset` of `partition` (the record view).
  bool single = false;

  bool filtered() const {
    return !key.empty() || !aggregate_id.empty() || !event_type.empty() || !event_id.empty();
  }
};

/// "0:120,1:98" <-> {0: 120, 1: 98}. parseCursor throws MessageQueryError.
std::map<std::int32_t, std::int64_t> parseCursor(const std::string& text);
std::string formatCursor(const std::map<std::int32_t, std::int64_t>& cursor);

/// One record as the console shows it: position, timestamp, key, headers, and the envelope
/// (the value's JSON) when the engine's envelope parser accepts it, else the raw value and
/// the parser's error. Values larger than 256 KiB are cut (flagged "truncated").
nlohmann::json recordJson(const KafkaRecord& record);

class MessageBrowser {
 public:
  /// `kafka`: the manifest's `kafka:` properties (consumer settings).
  explicit MessageBrowser(std::map<std::string, std::string> kafka) : kafka_(std::move(kafka)) {}

  /// Runs one bounded scan. Answer: {topic, partitions, records, scanned, to_scan, done,
  /// cursor (null when done), elapsed_ms}. Throws MessageQueryError for a bad query,
  /// std::runtime_error when Kafka does not answer.
  nlohmann::json search(const MessageQuery& query, std::chrono::milliseconds budget) const;

 private:
  std::map<std::string, std::string> kafka_;
};

}  // namespace ultracore::engine
