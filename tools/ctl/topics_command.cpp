#include "tools/ctl/topics_command.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <optional>
#include <set>
#include <thread>

#include <librdkafka/rdkafka.h>
#include <nlohmann/json.hpp>

#include "engine/kafka/kafka_config.h"
#include "engine/kafka/topic_admin.h"
#include "engine/manifest/manifest.h"
#include "tools/ctl/kafka_client.h"
#include "tools/ctl/table.h"

namespace ultracore::ctl {
namespace {

using nlohmann::json;

constexpr int kMetadataTimeoutMs = 10000;
constexpr int kAdminTimeoutMs = 30000;
/// How long ensure waits for created topics to show up with a leader for every partition, so
/// that whatever runs next (tools/dev starts the engine) finds them ready.
constexpr auto kReadyTimeout = std::chrono::seconds(30);

struct ListOptions {
  bool all = false;
  bool json_output = false;
};

using PartitionInfo = engine::PartitionMetadata;
using TopicInfo = engine::TopicMetadata;

struct QueueDeleter {
  void operator()(rd_kafka_queue_t* queue) const { rd_kafka_queue_destroy(queue); }
};
struct EventDeleter {
  void operator()(rd_kafka_event_t* event) const { rd_kafka_event_destroy(event); }
};
struct OptionsDeleter {
  void operator()(rd_kafka_AdminOptions_t* options) const {
    rd_kafka_AdminOptions_destroy(options);
  }
};
using Event = std::unique_ptr<rd_kafka_event_t, EventDeleter>;

/// A producer handle for admin requests and metadata; it never produces.
engine::KafkaHandle makeAdminClient(const CtlContext& context, const engine::Manifest& manifest) {
  const std::map<std::string, std::string> properties =
      producerProperties(context.kafkaProperties(manifest));
  const std::map<std::string, std::string> enforced = {{"client.id", "ultracore-ctl"}};
  engine::KafkaConf conf;
  try {
    conf = engine::makeKafkaConf({&properties, &enforced});
  } catch (const engine::KafkaConfigError& e) {
    throw CtlError(e.what(), 2);
  }
  rd_kafka_conf_set_log_cb(
      conf.get(), [](const rd_kafka_t*, int level, const char* facility, const char* message) {
        if (level <= 3) std::fprintf(stderr, "kafka: %s: %s\n", facility, message);
      });
  char error[512];
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf.get(), error, sizeof(error));
  if (rk == nullptr) throw CtlError(std::string("cannot create a Kafka client: ") + error);
  conf.release();
  return engine::KafkaHandle(rk);
}

/// Every topic of the cluster (engine::describeCluster), a failure as CtlError.
std::map<std::string, TopicInfo> clusterTopics(rd_kafka_t* rk) {
  try {
    return engine::describeCluster(rk, std::chrono::milliseconds(kMetadataTimeoutMs));
  } catch (const std::runtime_error& e) {
    throw CtlError(e.what());
  }
}

/// Waits for the result event of one admin request on `queue`.
Event adminResult(rd_kafka_queue_t* queue, const char* what) {
  Event event(rd_kafka_queue_poll(queue, kAdminTimeoutMs + 5000));
  if (!event) throw CtlError(std::string(what) + ": no answer from Kafka");
  if (rd_kafka_event_error(event.get()) != RD_KAFKA_RESP_ERR_NO_ERROR) {
    throw CtlError(std::string(what) + ": " + rd_kafka_event_error_string(event.get()));
  }
  return event;
}

std::unique_ptr<rd_kafka_AdminOptions_t, OptionsDeleter> adminOptions(rd_kafka_t* rk,
                                                                      rd_kafka_admin_op_t op) {
  std::unique_ptr<rd_kafka_AdminOptions_t, OptionsDeleter> options(
      rd_kafka_AdminOptions_new(rk, op));
  char error[512];
  rd_kafka_AdminOptions_set_request_timeout(options.get(), kAdminTimeoutMs, error, sizeof(error));
  return options;
}

/// Creates `topics`; the error text per topic that could not be created (absent: created).
/// A topic that another client created meanwhile counts as an error too: the caller
/// re-reads the cluster and compares it like any existing topic.
std::map<std::string, std::string> createTopics(rd_kafka_t* rk,
                                                const std::vector<DeclaredTopic>& topics) {
  std::vector<engine::NewTopic> requests;
  for (const DeclaredTopic& topic : topics) {
    requests.push_back({topic.name, topic.partitions, topic.replication_factor, topic.config});
  }
  std::map<std::string, std::string> errors;
  try {
    for (const auto& [name, error] :
         engine::createTopics(rk, requests, std::chrono::milliseconds(kAdminTimeoutMs))) {
      errors[name] = error.message;
    }
  } catch (const std::runtime_error& e) {
    throw CtlError(e.what());
  }
  return errors;
}

/// The current values of the configs `wanted` names, per topic (DescribeConfigs). A config the
/// broker does not report is absent from the topic's map.
std::map<std::string, std::map<std::string, std::string>> describeConfigs(
    rd_kafka_t* rk, const std::map<std::string, std::set<std::string>>& wanted) {
  std::map<std::string, std::map<std::string, std::string>> described;
  if (wanted.empty()) return described;
  std::vector<rd_kafka_ConfigResource_t*> resources;
  for (const auto& [topic, keys] : wanted) {
    resources.push_back(rd_kafka_ConfigResource_new(RD_KAFKA_RESOURCE_TOPIC, topic.c_str()));
  }
  std::unique_ptr<rd_kafka_queue_t, QueueDeleter> queue(rd_kafka_queue_new(rk));
  const auto options = adminOptions(rk, RD_KAFKA_ADMIN_OP_DESCRIBECONFIGS);
  rd_kafka_DescribeConfigs(rk, resources.data(), resources.size(), options.get(), queue.get());
  rd_kafka_ConfigResource_destroy_array(resources.data(), resources.size());
  const Event event = adminResult(queue.get(), "DescribeConfigs");
  const rd_kafka_DescribeConfigs_result_t* result =
      rd_kafka_event_DescribeConfigs_result(event.get());
  if (result == nullptr) throw CtlError("DescribeConfigs: unexpected answer from librdkafka");
  std::size_t count = 0;
  const rd_kafka_ConfigResource_t** results =
      rd_kafka_DescribeConfigs_result_resources(result, &count);
  for (std::size_t i = 0; i < count; ++i) {
    const std::string topic = rd_kafka_ConfigResource_name(results[i]);
    const rd_kafka_resp_err_t err = rd_kafka_ConfigResource_error(results[i]);
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      const char* text = rd_kafka_ConfigResource_error_string(results[i]);
      throw CtlError("DescribeConfigs of topic '" + topic +
                     "': " + (text != nullptr ? text : rd_kafka_err2str(err)));
    }
    auto& values = described[topic];
    std::size_t entries = 0;
    const rd_kafka_ConfigEntry_t** configs = rd_kafka_ConfigResource_configs(results[i], &entries);
    const auto it = wanted.find(topic);
    for (std::size_t e = 0; e < entries; ++e) {
      const std::string name = rd_kafka_ConfigEntry_name(configs[e]);
      if (it == wanted.end() || it->second.count(name) == 0) continue;
      const char* value = rd_kafka_ConfigEntry_value(configs[e]);
      values[name] = value != nullptr ? value : "(not shown: sensitive)";
    }
  }
  return described;
}

std::string describeDeclared(const DeclaredTopic& topic) {
  std::string text = topic.partitions < 0 ? "broker's default partitions"
                                          : std::to_string(topic.partitions) + " partition(s)";
  text += topic.replication_factor < 0
              ? ", broker's default replication factor"
              : ", replication factor " + std::to_string(topic.replication_factor);
  for (const auto& [key, value] : topic.config) text += ", " + key + "=" + value;
  return text;
}

std::string describeExisting(const TopicInfo& topic) {
  std::set<std::size_t> factors;
  for (const auto& p : topic.partitions) factors.insert(p.replicas.size());
  std::string text = std::to_string(topic.partitions.size()) + " partition(s), replication factor ";
  if (factors.size() == 1) {
    text += std::to_string(*factors.begin());
  } else if (!factors.empty()) {
    text += std::to_string(*factors.begin()) + ".." + std::to_string(*factors.rbegin());
  } else {
    text += "unknown";
  }
  return text;
}

/// Every partition has a leader and the topic has the partitions asked for.
bool ready(const std::map<std::string, TopicInfo>& cluster, const DeclaredTopic& topic) {
  const auto it = cluster.find(topic.name);
  if (it == cluster.end() || it->second.partitions.empty()) return false;
  if (topic.partitions > 0 && static_cast<int>(it->second.partitions.size()) != topic.partitions) {
    return false;
  }
  return std::all_of(it->second.partitions.begin(), it->second.partitions.end(),
                     [](const PartitionInfo& p) { return p.leader >= 0; });
}

void ensure(const CtlContext& context) {
  const auto manifest = engine::loadManifest(context.config);
  const std::vector<DeclaredTopic> declared = declaredTopics(manifest);
  if (declared.empty()) {
    std::printf("the manifest names no topic: nothing to ensure\n");
    return;
  }
  const engine::KafkaHandle client = makeAdminClient(context, manifest);
  std::map<std::string, TopicInfo> cluster = clusterTopics(client.get());

  std::vector<DeclaredTopic> missing;
  for (const DeclaredTopic& topic : declared) {
    if (cluster.count(topic.name) == 0) missing.push_back(topic);
  }
  std::set<std::string> created;
  std::vector<std::string> failures;
  if (!missing.empty()) {
    const auto errors = createTopics(client.get(), missing);
    for (const DeclaredTopic& topic : missing) {
      const auto error = errors.find(topic.name);
      if (error == errors.end()) {
        created.insert(topic.name);
        std::printf("created   %s: %s\n", topic.name.c_str(), describeDeclared(topic).c_str());
      } else if (error->second.rfind("TOPIC_ALREADY_EXISTS", 0) != 0) {
        failures.push_back("topic '" + topic.name + "': not created: " + error->second);
      }  // already exists: created by someone else meanwhile; compared below like the others
    }
    // Until every created partition has a leader, a consumer or producer started right after
    // would find the topic "unavailable"; wait (bounded) so that tools/dev can go on at once.
    const auto deadline = std::chrono::steady_clock::now() + kReadyTimeout;
    for (;;) {
      cluster = clusterTopics(client.get());
      const bool all_ready = std::all_of(missing.begin(), missing.end(), [&](const auto& topic) {
        return created.count(topic.name) == 0 || ready(cluster, topic);
      });
      if (all_ready) break;
      if (std::chrono::steady_clock::now() >= deadline) {
        for (const DeclaredTopic& topic : missing) {
          if (created.count(topic.name) != 0 && !ready(cluster, topic)) {
            failures.push_back("topic '" + topic.name + "': created, but not every partition " +
                               "has a leader after " + std::to_string(kReadyTimeout.count()) +
                               " s");
          }
        }
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
  }

  // Existing topics (and any created meanwhile by someone else): compare with the manifest.
  std::map<std::string, std::set<std::string>> wanted_configs;
  for (const DeclaredTopic& topic : declared) {
    if (created.count(topic.name) != 0 || cluster.count(topic.name) == 0) continue;
    for (const auto& [key, value] : topic.config) wanted_configs[topic.name].insert(key);
  }
  const auto configs = describeConfigs(client.get(), wanted_configs);
  std::size_t differing = 0;
  for (const DeclaredTopic& topic : declared) {
    if (created.count(topic.name) != 0) continue;
    const auto it = cluster.find(topic.name);
    if (it == cluster.end()) continue;  // its creation failed: reported above
    ExistingTopic existing;
    existing.name = topic.name;
    existing.partitions = static_cast<int>(it->second.partitions.size());
    for (const auto& p : it->second.partitions) {
      existing.replicas.push_back(static_cast<int>(p.replicas.size()));
    }
    if (const auto c = configs.find(topic.name); c != configs.end()) existing.config = c->second;
    const std::vector<std::string> differences = topicDifferences(topic, existing);
    if (differences.empty()) {
      std::printf("exists    %s: %s\n", topic.name.c_str(), describeExisting(it->second).c_str());
      continue;
    }
    ++differing;
    for (const std::string& difference : differences) {
      std::printf("MISMATCH  %s: %s\n", topic.name.c_str(), difference.c_str());
    }
  }
  for (const std::string& failure : failures) std::fprintf(stderr, "%s\n", failure.c_str());
  if (differing > 0 || !failures.empty()) {
    std::string message;
    if (differing > 0) {
      message = std::to_string(differing) +
                " topic(s) differ from the manifest; ensure never alters an existing topic: "
                "change the manifest, or the topic with Kafka's own tools (kafka-topics.sh "
                "--alter, kafka-configs.sh --alter)";
    }
    if (!failures.empty()) {
      if (!message.empty()) message += "; ";
      message += std::to_string(failures.size()) + " topic(s) could not be created";
    }
    throw CtlError(message, 1);
  }
}

std::string joinIds(const std::vector<std::int32_t>& ids) {
  std::string text;
  for (const std::int32_t id : ids) {
    if (!text.empty()) text += ",";
    text += std::to_string(id);
  }
  return text;
}

json idArray(const std::vector<std::int32_t>& ids) {
  json array = json::array();
  for (const std::int32_t id : ids) array.push_back(id);
  return array;
}

void list(const CtlContext& context, const ListOptions& options) {
  const auto manifest = engine::loadManifest(context.config);
  const engine::KafkaHandle client = makeAdminClient(context, manifest);
  const std::map<std::string, TopicInfo> cluster = clusterTopics(client.get());
  std::vector<std::string> names;
  if (options.all) {
    for (const auto& [name, info] : cluster) names.push_back(name);
  } else {
    for (const DeclaredTopic& topic : declaredTopics(manifest)) names.push_back(topic.name);
  }

  std::vector<std::string> absent;
  json out = json::array();
  Table table({"topic", "partition", "leader", "replicas", "isr", "low", "high"});
  for (const std::string& name : names) {
    const auto it = cluster.find(name);
    if (it == cluster.end()) {
      absent.push_back(name);
      out.push_back({{"topic", name}, {"exists", false}, {"partitions", json::array()}});
      continue;
    }
    json partitions = json::array();
    for (const PartitionInfo& p : it->second.partitions) {
      std::int64_t low = -1, high = -1;
      const rd_kafka_resp_err_t err = rd_kafka_query_watermark_offsets(
          client.get(), name.c_str(), p.id, &low, &high, kMetadataTimeoutMs);
      json row = {{"partition", p.id},
                  {"leader", p.leader},
                  {"replicas", idArray(p.replicas)},
                  {"isr", idArray(p.isr)},
                  {"low", nullptr},
                  {"high", nullptr}};
      std::string low_text = "?", high_text = "?";
      if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        row["low"] = low;
        row["high"] = high;
        low_text = std::to_string(low);
        high_text = std::to_string(high);
      } else {
        row["error"] = rd_kafka_err2str(err);
        high_text = std::string("? (") + rd_kafka_err2name(err) + ")";
      }
      partitions.push_back(std::move(row));
      table.add({name, std::to_string(p.id), p.leader < 0 ? "none" : std::to_string(p.leader),
                 joinIds(p.replicas), joinIds(p.isr), low_text, high_text});
    }
    out.push_back({{"topic", name}, {"exists", true}, {"partitions", std::move(partitions)}});
  }
  if (options.json_output) {
    std::printf("%s\n", json{{"topics", out}}.dump(2).c_str());
  } else {
    table.print(stdout, 120);
  }
  if (!absent.empty()) {
    std::string text;
    for (const auto& name : absent) text += (text.empty() ? "'" : ", '") + name + "'";
    throw CtlError("topic(s) " + text + " of the manifest do not exist; create them with "
                   "ultracore-ctl topics ensure");
  }
}

}  // namespace

std::vector<DeclaredTopic> declaredTopics(const engine::Manifest& manifest) {
  std::vector<DeclaredTopic> topics;
  if (manifest.topics_declared) {
    for (const engine::TopicSpec& topic : manifest.topics) {
      topics.push_back({topic.name, topic.partitions, topic.replication_factor, topic.config});
    }
    return topics;
  }
  std::set<std::string> seen;
  for (const engine::ProjectionSpec& projection : manifest.projections) {
    for (const std::string& topic : projection.topics) {
      if (seen.insert(topic).second) topics.push_back({topic, -1, -1, {}});
    }
  }
  return topics;
}

std::vector<std::string> topicDifferences(const DeclaredTopic& declared,
                                          const ExistingTopic& existing) {
  std::vector<std::string> differences;
  if (declared.partitions > 0 && declared.partitions != existing.partitions) {
    differences.push_back("partitions: declared " + std::to_string(declared.partitions) +
                          ", actual " + std::to_string(existing.partitions));
  }
  if (declared.replication_factor > 0) {
    std::set<int> factors(existing.replicas.begin(), existing.replicas.end());
    if (factors.size() != 1 || *factors.begin() != declared.replication_factor) {
      std::string actual;
      if (factors.empty()) {
        actual = "unknown";
      } else if (factors.size() == 1) {
        actual = std::to_string(*factors.begin());
      } else {
        actual = std::to_string(*factors.begin()) + ".." + std::to_string(*factors.rbegin()) +
                 " (differs between partitions)";
      }
      differences.push_back("replication_factor: declared " +
                            std::to_string(declared.replication_factor) + ", actual " + actual);
    }
  }
  for (const auto& [key, value] : declared.config) {
    const auto it = existing.config.find(key);
    if (it == existing.config.end()) {
      differences.push_back("config " + key + ": declared " + value +
                            ", actual: not reported by the broker (not a topic config?)");
    } else if (it->second != value) {
      differences.push_back("config " + key + ": declared " + value + ", actual " + it->second);
    }
  }
  return differences;
}

void registerTopicsCommands(CLI::App& app, const CtlContext& context) {
  auto* topics = app.add_subcommand("topics", "the manifest's Kafka topics: ensure, list");
  topics->require_subcommand(1);
  auto* ensure_cmd = topics->add_subcommand(
      "ensure",
      "create the manifest's missing topics (partitions, replication factor, configs) and "
      "report every difference of the existing ones; never alters a topic. Exit 0 when all "
      "exist as declared, 1 when a difference remains");
  ensure_cmd->callback([&context] { ensure(context); });

  auto options = std::make_shared<ListOptions>();
  auto* list_cmd = topics->add_subcommand(
      "list", "partitions, leader, replicas, ISR and low/high watermarks of the manifest's topics");
  list_cmd->add_flag("--all", options->all, "every topic of the cluster, internal ones too");
  list_cmd->add_flag("--json", options->json_output, "JSON instead of a table");
  list_cmd->callback([&context, options] { list(context, *options); });
}

}  // namespace ultracore::ctl
