#pragma once
/// @file
/// Topic creation through the Kafka admin API, shared by `ultracore-ctl topics ensure`, the
/// benchmark's broker and the tests' Kafka cluster.

#include <chrono>
#include <map>
#include <string>
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

}  // namespace ultracore::engine
