#pragma once
/// @file
/// The Kafka a benchmark runs on: the dev broker (librdkafka's mock cluster), a one-node Apache
/// Kafka started with tools/kafka/cluster in the bench's scratch directory, or an existing
/// cluster (`--bootstrap`). Created and destroyed on the bench's main thread.

#include <string>
#include <utility>
#include <vector>

#include "tools/bench/bench_support.h"

namespace ultracore::bench {

/// What `--kafka-broker` and `--bootstrap` asked for.
struct BrokerChoice {
  std::string kind = "mock";  ///< "mock" (ultracore-devbroker) or "real" (Apache Kafka)
  std::string bootstrap;      ///< an existing cluster: the bench only creates its topics there
};

/// The broker of one bench run, with the bench's topics created (name, partitions). A cluster
/// the bench started is stopped by stop() or the destructor (also when the bench fails); on an
/// existing cluster only the topics the bench created are deleted at the end.
class Broker {
 public:
  Broker(const TempDir& dir, const std::vector<std::pair<std::string, int>>& topics,
         const BrokerChoice& choice);
  ~Broker();
  Broker(const Broker&) = delete;
  Broker& operator=(const Broker&) = delete;

  const std::string& bootstrap() const { return bootstrap_; }
  /// For tables: "dev broker (librdkafka mock)", "Apache Kafka, 1 node (started by the bench)"
  /// or "Apache Kafka at HOST:PORT (existing cluster)".
  const std::string& description() const { return description_; }
  /// "mock" or "real", for the JSON.
  const std::string& kind() const { return kind_; }
  /// user+sys CPU so far of the broker process the bench started (the dev broker or the Kafka
  /// node); -1 on an existing cluster.
  double cpuSecondsSoFar() const;
  /// Stops what the bench started (idempotent); deletes the topics it created on an existing
  /// cluster.
  void stop();

 private:
  void startCluster(const TempDir& dir);
  void createTopics(const std::vector<std::pair<std::string, int>>& topics);

  std::unique_ptr<Process> devbroker_;
  std::filesystem::path cluster_dir_;  ///< set while a cluster the bench started may run
  int kafka_pid_ = -1;                 ///< the node of that cluster
  std::vector<std::string> created_;   ///< topics created on an existing cluster
  std::string bootstrap_;
  std::string description_;
  std::string kind_;
};

}  // namespace ultracore::bench
