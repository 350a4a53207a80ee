#pragma once
/// @file
/// `ultracore-ctl topics ensure`: creates the manifest's topics that are missing (partitions,
/// replication factor, configs of its `topics:` section; without one, the projections' topics
/// with the broker's defaults) through the admin API, and reports every difference between a
/// declared topic and the one that exists (partition count, replication factor, each declared
/// config against DescribeConfigs). It never alters an existing topic. Exit 0: every topic
/// exists as declared; 1: a difference remains or a creation failed; 2: bad input.
///
/// `ultracore-ctl topics list [--all] [--json]`: per partition of the manifest's topics (every
/// topic of the cluster with --all): leader, replicas, in-sync replicas, low and high
/// watermarks. Exit 1 when a manifest topic does not exist.
///
/// The engine never creates a topic; operators run `topics ensure` (tools/dev does it for the
/// real-Kafka dev stack).

#include <map>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "tools/ctl/ctl_context.h"

namespace ultracore::engine {
struct Manifest;
}

namespace ultracore::ctl {

/// A topic as the manifest wants it; -1 means "the broker's default" (not compared).
struct DeclaredTopic {
  std::string name;
  int partitions = -1;
  int replication_factor = -1;
  std::map<std::string, std::string> config;
};

/// A topic as the cluster has it.
struct ExistingTopic {
  std::string name;
  int partitions = 0;
  std::vector<int> replicas;  ///< replica count of each partition
  /// Its configs as DescribeConfigs reports them (only the declared ones are read).
  std::map<std::string, std::string> config;
};

/// The manifest's `topics:` section; without one, every projection topic with broker defaults.
std::vector<DeclaredTopic> declaredTopics(const engine::Manifest& manifest);

/// One line per difference, e.g. "partitions: declared 6, actual 3" or
/// "config retention.ms: declared -1, actual 604800000"; empty when the topic is as declared.
std::vector<std::string> topicDifferences(const DeclaredTopic& declared,
                                          const ExistingTopic& existing);

void registerTopicsCommands(CLI::App& app, const CtlContext& context);

}  // namespace ultracore::ctl
