#pragma once
/// @file
/// librdkafka's mock cluster, hosted by this process, plus a small client to look at it.

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

namespace ultracore::devbroker {

/// A librdkafka failure with its error code.
class KafkaError : public std::runtime_error {
 public:
  KafkaError(const std::string& what, rd_kafka_resp_err_t code)
      : std::runtime_error(what + ": " + rd_kafka_err2str(code)), code_(code) {}
  rd_kafka_resp_err_t code() const { return code_; }

 private:
  rd_kafka_resp_err_t code_;
};

/// Owns an rd_kafka_t handle.
struct KafkaHandleDeleter {
  void operator()(rd_kafka_t* rk) const { rd_kafka_destroy(rk); }
};
using KafkaHandle = std::unique_ptr<rd_kafka_t, KafkaHandleDeleter>;

/// Creates a client. `customize` may install callbacks on the configuration before creation.
/// Throws std::runtime_error on a bad property.
KafkaHandle makeClient(rd_kafka_type_t type, const std::map<std::string, std::string>& props,
                       const std::function<void(rd_kafka_conf_t*)>& customize = {});

struct PartitionWatermarks {
  int32_t partition = 0;
  int64_t low = -1;
  int64_t high = -1;
  rd_kafka_resp_err_t error = RD_KAFKA_RESP_ERR_NO_ERROR;
};

struct TopicInfo {
  std::string name;
  int32_t partitions = 0;
};

/// The mock cluster. Its brokers listen on 127.0.0.1 with ephemeral ports.
/// Thread-safety: the rd_kafka_mock_* calls used here are safe from any thread (they post to
/// the mock's own thread or take its lock); the inspection client is guarded by a mutex.
class MockCluster {
 public:
  explicit MockCluster(int brokers);
  ~MockCluster();
  MockCluster(const MockCluster&) = delete;
  MockCluster& operator=(const MockCluster&) = delete;

  rd_kafka_mock_cluster_t* get() const { return cluster_; }
  int brokers() const { return brokers_; }
  const std::string& bootstrap() const { return bootstrap_; }

  /// Creates a topic; returns false when it already exists. Throws on other errors.
  bool createTopic(const std::string& name, int partitions);

  /// All topics with their partition counts (sorted by name). Throws KafkaError on time-out.
  std::vector<TopicInfo> topics(std::chrono::milliseconds timeout);
  /// Low/high watermarks of every partition of a topic.
  std::vector<PartitionWatermarks> watermarks(const std::string& topic, int32_t partitions,
                                              std::chrono::milliseconds timeout);

 private:
  int brokers_;
  KafkaHandle host_;
  rd_kafka_mock_cluster_t* cluster_ = nullptr;
  std::string bootstrap_;
  std::mutex inspector_mutex_;
  KafkaHandle inspector_;
};

/// Reads the topic list of a cluster through an existing client.
std::vector<TopicInfo> listTopics(rd_kafka_t* rk, std::chrono::milliseconds timeout);

/// Kafka's own rule for topic names.
bool validTopicName(const std::string& name);

}  // namespace ultracore::devbroker
