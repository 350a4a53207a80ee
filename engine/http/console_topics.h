#pragma once
/// @file
/// The admin console's views of the cluster: topics (GET /api/v1/topics) and consumer groups
/// (GET /api/v1/groups).
///
/// TopicRates keeps, for the manifest's topics (and those an operator listed with ?all=1 in
/// the last ten minutes, at most kMaxTrackedTopics), the sum of their partitions' high
/// watermarks sampled every few seconds over the last ten minutes: messages/s is the slope of
/// that sum. Memory is bounded: at most 120 points per tracked topic.
///
/// Thread-safe: sample() runs on the console's sampler thread, the rest on HTTP workers.

#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include <librdkafka/rdkafka.h>
#include <nlohmann/json.hpp>

#include "engine/kafka/topic_admin.h"

namespace ultracore::engine {

class TopicRates {
 public:
  static constexpr std::size_t kMaxTrackedTopics = 200;
  static constexpr std::int64_t kWindowMs = 10 * 60 * 1000;

  explicit TopicRates(std::vector<std::string> manifest_topics);
  /// Also tracks `topics` from now on (they were just shown), within kMaxTrackedTopics.
  void track(const std::vector<std::string>& topics);
  /// Reads the high watermarks of the tracked topics' partitions (each query at most
  /// `timeout`, all of them until `deadline`: a silent broker cannot hold the sampler, and
  /// with it the engine's shutdown) and appends one point per topic read completely.
  void sample(rd_kafka_t* rk, const std::map<std::string, TopicMetadata>& cluster,
              std::chrono::milliseconds timeout, std::chrono::steady_clock::time_point deadline);
  /// Messages per second over the last `window` (null when fewer than two points).
  nlohmann::json rate(const std::string& topic, std::chrono::seconds window);
  /// [{t_ms, messages_per_second}] between consecutive points, oldest first.
  nlohmann::json history(const std::string& topic);

 private:
  struct Point {
    std::int64_t t_ms;
    std::int64_t total;  ///< sum of the partitions' high watermarks
  };
  std::mutex mutex_;
  std::set<std::string> manifest_;
  std::map<std::string, std::int64_t> extra_;  ///< topic -> last asked for (ms)
  std::map<std::string, std::deque<Point>> points_;
};

/// GET /api/v1/topics: the manifest's topics, or every topic of the cluster (`all`), each with
/// its partitions (leader, replicas, ISR, low/high watermarks), total messages (high - low),
/// messages/s over the last minute and five minutes and the rate history.
nlohmann::json topicsJson(rd_kafka_t* rk, const std::vector<std::string>& manifest_topics,
                          bool all, TopicRates& rates);

/// One consumer group of UltraCore: a projection runner's group and the key under which it
/// stores its offsets in PostgreSQL.
struct OwnGroup {
  std::string group_id;
  std::string projection;
  std::string offsets_key;
};

/// GET /api/v1/groups: every consumer group of the cluster with its state, members and their
/// assignments, committed offsets and lag per partition (high watermark - committed); for
/// UltraCore's groups also the offsets stored in PostgreSQL (`stored`: offsets_key's rows in
/// ultracore_offsets, read through `stored_offsets`) beside Kafka's. A broker that does not
/// support the group APIs gives {"error": ...} with the reason and the groups left empty.
nlohmann::json groupsJson(rd_kafka_t* rk, const std::vector<OwnGroup>& own,
                          const std::map<std::string, PartitionOffsets>& stored_offsets);

}  // namespace ultracore::engine
