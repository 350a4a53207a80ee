#pragma once
/// @file
/// KafkaRecord: an owned copy of one consumed record, so the batch does not pin librdkafka's
/// buffers (and the consumer's memory stays bounded by the batch size).

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <librdkafka/rdkafka.h>

namespace ultracore::engine {

struct KafkaRecord {
  std::string topic;
  std::int32_t partition = 0;
  std::int64_t offset = 0;
  std::int64_t timestamp_ms = 0;
  std::optional<std::string> key;
  std::optional<std::string> value;
  std::vector<std::pair<std::string, std::optional<std::string>>> headers;

  static KafkaRecord copyOf(const rd_kafka_message_t& message);
};

/// Epoch milliseconds as ISO 8601 UTC with milliseconds ("2026-11-27T08:00:00.123Z");
/// "(no timestamp)" when negative.
std::string isoTimeMs(std::int64_t epoch_ms);

}  // namespace ultracore::engine
