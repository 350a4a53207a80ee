#pragma once
/// @file
/// The Kafka admin API as UltraCore uses it: topic creation (`ultracore-ctl topics ensure`, the
/// benchmark's broker, the tests' Kafka cluster), the cluster's topics with their partitions,
/// leaders and replicas (`ultracore-ctl topics list`, the admin console), and consumer groups
/// with members, assignments and committed offsets (the admin console).
///
/// Every call takes a librdkafka handle (a producer is enough: none of them joins a group) and
/// is thread-safe as librdkafka is.

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <librdkafka/rdkafka.h>

namespace ultracore::engine {

struct NewTopic {
  std::string name;
  int partitions = 1;
  int replication_factor = -1;  ///< -1: the cluster's default.replication.factor
  std::map<std::string, std::string> config;
};

/// Why one topic was not created.
struct TopicError {
  rd_kafka_resp_err_t code = RD_KAFKA_RESP_ERR_NO_ERROR;
  std::string message;  ///< librdkafka's error name, then the broker's text
};

/// Creates `topics` in one CreateTopics request on `rk` and waits at most `timeout` for the
/// answer. Returns the topics that were not created, with why (a topic that exists already is
/// one of them: RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS). Throws std::runtime_error when a topic
/// is invalid (its name or counts) or when the request as a whole fails or times out.
std::map<std::string, TopicError> createTopics(rd_kafka_t* rk, const std::vector<NewTopic>& topics,
                                               std::chrono::milliseconds timeout);

/// The leader of each partition of `topic` (-1: none or unknown), from one metadata request;
/// empty when the topic is unknown or the request fails.
std::vector<int> partitionLeaders(rd_kafka_t* rk, const std::string& topic,
                                  std::chrono::milliseconds timeout);

/// Waits until each of the `partitions` partitions of `topic` has a leader (a created topic is
/// not usable before). False when `timeout` passes first.
bool waitForLeaders(rd_kafka_t* rk, const std::string& topic, int partitions,
                    std::chrono::milliseconds timeout);

/// One partition as the cluster's metadata describes it.
struct PartitionMetadata {
  std::int32_t id = 0;
  std::int32_t leader = -1;  ///< -1: none
  std::vector<std::int32_t> replicas;
  std::vector<std::int32_t> isr;
  rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;
};

struct TopicMetadata {
  std::string name;
  std::vector<PartitionMetadata> partitions;  ///< sorted by id
};

/// Every topic of the cluster, from one metadata request for all topics: never some topics by
/// name, which can make a broker with auto.create.topics.enable create them. Throws
/// std::runtime_error when the cluster does not answer within `timeout`.
std::map<std::string, TopicMetadata> describeCluster(rd_kafka_t* rk,
                                                     std::chrono::milliseconds timeout);

/// (topic, partition) -> offset.
using PartitionOffsets = std::map<std::pair<std::string, std::int32_t>, std::int64_t>;

struct GroupMember {
  std::string member_id;
  std::string client_id;
  std::string host;
  std::string group_instance_id;  ///< "" when not static
  std::vector<std::pair<std::string, std::int32_t>> assignment;
};

/// One consumer group of the cluster. Each step that failed leaves its error text and the
/// rest of the group as far as it was read.
struct ConsumerGroup {
  std::string group_id;
  std::string state;  ///< librdkafka's state name ("Stable", "Empty", ...)
  bool simple = false;  ///< no members' protocol: offsets committed without joining
  std::string assignor;
  std::int32_t coordinator = -1;
  std::vector<GroupMember> members;
  PartitionOffsets committed;  ///< offsets committed to Kafka
  std::string describe_error;  ///< DescribeConsumerGroups failed for this group
  std::string offsets_error;   ///< ListConsumerGroupOffsets failed for this group
};

struct ConsumerGroupList {
  std::vector<ConsumerGroup> groups;  ///< sorted by group id
  /// Brokers that could not list their groups (the list may miss theirs), one line each.
  std::vector<std::string> errors;
};

/// Every consumer group of the cluster (ListConsumerGroups), each described
/// (DescribeConsumerGroups: state, members, assignments) with its committed offsets
/// (ListConsumerGroupOffsets, one group per request as librdkafka 2.0 requires). Throws
/// std::runtime_error when the listing as a whole fails or times out (a broker that does not
/// support the request answers so). Each call waits at most `timeout`.
ConsumerGroupList describeConsumerGroups(rd_kafka_t* rk, std::chrono::milliseconds timeout);

}  // namespace ultracore::engine
