#pragma once
/// @file
/// The benchmark subcommands; each prints one table and writes `json_path` when set.

#include <cstddef>
#include <string>
#include <vector>

#include "tools/bench/kafka_broker.h"

namespace ultracore::bench {

struct MaterializeOptions {
  std::size_t events = 1000000;
  std::size_t baseline_sample = 20000;
  bool engine_both_ways = false;  ///< also time the engine with batch.synchronous_commit flipped
  std::size_t history = 0;  ///< materialize --history: earlier processed_events rows per projection
  int partitions = 48;  ///< per topic: keeps each partition far below the mock's 5 MiB
  int max_events = 500;
  int max_wait_ms = 20;
  int workers = 2;  ///< `workers:` of both projections (config/projections.yaml ships 2)
  int timeout_s = 1800;
  std::vector<std::string> kafka;  ///< extra consumer properties, "key=value"
  bool synchronous_commit = false;  ///< `batch.synchronous_commit` of both projections
  BrokerChoice broker;              ///< `--kafka-broker`, `--bootstrap`
  std::string json_path;
};
int runMaterialize(const MaterializeOptions& options);
int runRebuild(const MaterializeOptions& options);

struct LatencyOptions {
  std::vector<int> rates{50, 200};
  int duration_s = 20;
  int idle_s = 10;  ///< seconds without requests after the warm-up, for the idle CPU
  int partitions = 12;
  int max_wait_ms = 20;
  int workers = 16;  ///< keep-alive connections; the API serves 16 at a time (thread per connection)
  int projection_workers = 2;  ///< `workers:` of both projections (as shipped)
  bool synchronous_commit = false;  ///< `batch.synchronous_commit` of both projections
  std::vector<std::string> kafka;   ///< extra librdkafka properties of the manifest, "key=value"
  BrokerChoice broker;              ///< `--kafka-broker`, `--bootstrap`
  std::string json_path;
  std::string samples_path;  ///< every request as CSV (rate, start, command, read-your-write, GET)
  /// Deposits (commands on one account each, issue 14) at this rate, spread over
  /// `spread_accounts` and then concentrated on `hot_accounts`; 0 skips them.
  int account_rate = 200;
  int spread_accounts = 400;
  int hot_accounts = 4;
};
int runLatency(const LatencyOptions& options);

}  // namespace ultracore::bench
