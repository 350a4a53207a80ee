#pragma once
/// @file
/// Event: a read-only view of one Kafka record whose value is the envelope of DESIGN.md.
/// The engine parses and validates the envelope before a plugin sees it: every accessor below
/// is present, except aggregateVersion(), which the envelope may omit.
///
/// nlohmann::json is part of the SDK on purpose: event_data is free-form JSON and every plugin
/// needs to read it. Its ABI is pinned by the build fingerprint (version.h).

#include <cstdint>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

namespace ultracore::sdk {

/// The envelope fields of one event (DESIGN.md, "Event envelope").
struct Envelope {
  std::string event_id;
  std::string event_type;
  std::string aggregate_type;
  std::string aggregate_id;
  std::optional<std::int64_t> aggregate_version;
  std::string tenant_id;
  std::string user_id;
  std::string occurred_at;  ///< ISO-8601 UTC, as produced ("2026-11-26T12:00:00.000Z")
  nlohmann::json event_data = nlohmann::json::object();
};

/// Where the record sits in Kafka.
struct RecordPosition {
  std::string topic;
  std::int32_t partition = 0;
  std::int64_t offset = 0;
  std::int64_t timestamp_ms = 0;  ///< the record's Kafka timestamp
};

/// Immutable once built; owned by the engine, valid for the duration of the call it is
/// passed to. Safe to read from any thread.
class Event {
 public:
  Event(Envelope envelope, RecordPosition position)
      : envelope_(std::move(envelope)), position_(std::move(position)) {}

  const std::string& eventId() const { return envelope_.event_id; }
  const std::string& eventType() const { return envelope_.event_type; }
  const std::string& aggregateType() const { return envelope_.aggregate_type; }
  const std::string& aggregateId() const { return envelope_.aggregate_id; }
  std::optional<std::int64_t> aggregateVersion() const { return envelope_.aggregate_version; }
  const std::string& tenantId() const { return envelope_.tenant_id; }
  const std::string& userId() const { return envelope_.user_id; }
  const std::string& occurredAt() const { return envelope_.occurred_at; }
  const nlohmann::json& data() const { return envelope_.event_data; }

  const std::string& topic() const { return position_.topic; }
  std::int32_t partition() const { return position_.partition; }
  std::int64_t offset() const { return position_.offset; }
  std::int64_t timestampMs() const { return position_.timestamp_ms; }

  const Envelope& envelope() const { return envelope_; }
  const RecordPosition& position() const { return position_; }

 private:
  Envelope envelope_;
  RecordPosition position_;
};

}  // namespace ultracore::sdk
