#pragma once
/// @file
/// Short-lived librdkafka handles for ultracore-ctl commands (tail, produce, rebuild), built
/// from the manifest's `kafka:` map. Consumers never join a consumer group: they read with
/// assign(), so they cannot disturb the engine's groups or its committed offsets.

#include <atomic>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "engine/kafka/kafka_config.h"
#include "engine/kafka/kafka_record.h"

namespace ultracore::ctl {

/// A consumer for assign()-only reading: a private group.id (librdkafka needs one for
/// assign(); it is never joined), no offset commits, no offset store. `extra` overrides the
/// manifest's properties (e.g. auto.offset.reset, enable.partition.eof).
engine::KafkaHandle makeAssignConsumer(const std::map<std::string, std::string>& properties,
                                       const std::map<std::string, std::string>& extra);

/// The manifest's `kafka:` properties without the consumer-only ones, for a producer or an
/// admin client (librdkafka would warn about each), and with `allow.auto.create.topics=false`:
/// no client of ours makes a broker create a topic (`ultracore-ctl topics ensure` does that).
std::map<std::string, std::string> producerProperties(
    const std::map<std::string, std::string>& properties);

/// The partition ids of `topic`, sorted. Throws CtlError (exit 2) when the topic does not
/// exist, CtlError (exit 1) when the cluster does not answer within `timeout_ms`.
std::vector<std::int32_t> topicPartitions(rd_kafka_t* rk, const std::string& topic,
                                          int timeout_ms = 10000);

/// Low and high watermark of one partition. Throws CtlError when the broker does not answer.
std::pair<std::int64_t, std::int64_t> watermarks(rd_kafka_t* rk, const std::string& topic,
                                                 std::int32_t partition, int timeout_ms = 10000);

/// Epoch milliseconds as ISO 8601 UTC with milliseconds (engine/kafka/kafka_record.h).
using engine::isoTimeMs;

/// Installs SIGINT/SIGTERM handlers that set the returned flag (and nothing else), so a
/// command can finish cleanly. Call once per process.
const std::atomic<bool>& installStopSignals();

}  // namespace ultracore::ctl
