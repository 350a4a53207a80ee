#pragma once
/// @file
/// The dev broker's control channel: JSON over HTTP on 127.0.0.1 (see README.md).

#include <memory>
#include <string>

#include "mock_cluster.h"

namespace ultracore::devbroker {

class ControlServer {
 public:
  /// `cluster` must outlive the server. `default_partitions` applies to POST /topics.
  /// `data_dir` is only reported by GET /health ("" = no journal).
  ControlServer(MockCluster& cluster, int default_partitions, std::string data_dir);
  ~ControlServer();  ///< stops serving
  ControlServer(const ControlServer&) = delete;
  ControlServer& operator=(const ControlServer&) = delete;

  /// Binds 127.0.0.1:port (0 = ephemeral) and serves on its own thread. Returns the port.
  /// Throws std::runtime_error when the port cannot be bound.
  int start(int port);
  void stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace ultracore::devbroker
