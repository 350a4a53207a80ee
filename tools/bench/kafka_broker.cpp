#include "tools/bench/kafka_broker.h"

#include <cctype>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>
#include <stdexcept>
#include <thread>

#include <librdkafka/rdkafka.h>

#include "engine/kafka/topic_admin.h"

namespace ultracore::bench {
namespace {

const std::filesystem::path kClusterScript =
    std::filesystem::path(ULTRACORE_SOURCE_DIR) / "tools/kafka/cluster";

std::string trimmed(std::string text) {
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) text.pop_back();
  return text;
}

std::string readFile(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::stringstream out;
  out << in.rdbuf();
  return out.str();
}

/// Runs tools/kafka/cluster with `args` to completion (output to `log`); throws with the log's
/// end when it fails.
void runClusterScript(const std::vector<std::string>& args, const std::filesystem::path& log,
                      std::chrono::seconds timeout) {
  std::vector<std::string> argv{kClusterScript.string()};
  argv.insert(argv.end(), args.begin(), args.end());
  Process script(argv, log);
  const int code = script.wait(timeout);
  if (code != 0) {
    const std::string text = script.log();
    throw std::runtime_error("tools/kafka/cluster " + args.at(0) + " failed (exit " +
                             std::to_string(code) + "):\n" +
                             text.substr(text.size() > 2000 ? text.size() - 2000 : 0));
  }
}

/// "3.9.2" from the jar names tools/kafka/install resolved, "" if not found.
std::string kafkaVersion() {
  const std::string command =
      std::string("'") + ULTRACORE_SOURCE_DIR + "/tools/kafka/install' --print-dir 2>/dev/null";
  FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) return "";
  char buffer[1024] = {};
  const bool ok = std::fgets(buffer, sizeof(buffer), pipe) != nullptr;
  ::pclose(pipe);
  if (!ok) return "";
  std::error_code ignored;
  for (const auto& entry : std::filesystem::directory_iterator(trimmed(buffer), ignored)) {
    const std::string name = entry.path().filename().string();
    const std::string prefix = "kafka_2.13-";
    if (name.rfind(prefix, 0) == 0 && name.size() > prefix.size() + 4 &&
        name.substr(name.size() - 4) == ".jar") {
      return name.substr(prefix.size(), name.size() - prefix.size() - 4);
    }
  }
  return "";
}

/// A client handle for admin requests; destroyed by the caller.
rd_kafka_t* adminClient(const std::string& bootstrap) {
  char error[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  if (rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap.c_str(), error, sizeof(error)) !=
      RD_KAFKA_CONF_OK) {
    rd_kafka_conf_destroy(conf);
    throw std::runtime_error(error);
  }
  rd_kafka_conf_set(conf, "log_level", "3", error, sizeof(error));
  rd_kafka_t* client = rd_kafka_new(RD_KAFKA_PRODUCER, conf, error, sizeof(error));
  if (client == nullptr) throw std::runtime_error(std::string("rd_kafka_new: ") + error);
  return client;
}

/// True when every partition of `topic` (of `partitions`) has a leader.
}  // namespace

Broker::Broker(const TempDir& dir, const std::vector<std::pair<std::string, int>>& topics,
               const BrokerChoice& choice) {
  if (!choice.bootstrap.empty()) {
    kind_ = "real";
    bootstrap_ = choice.bootstrap;
    description_ = "Apache Kafka at " + bootstrap_ + " (existing cluster)";
    try {
      createTopics(topics);
    } catch (...) {
      stop();  // the topics created before the failure
      throw;
    }
    return;
  }
  if (choice.kind == "real") {
    kind_ = "real";
    startCluster(dir);
    try {
      createTopics(topics);
    } catch (...) {
      stop();
      throw;
    }
    return;
  }
  if (choice.kind != "mock") {
    throw std::runtime_error("--kafka-broker takes mock or real, not " + choice.kind);
  }
  kind_ = "mock";
  description_ = "dev broker (librdkafka mock cluster)";
  std::vector<std::string> argv{(binDir() / "ultracore-devbroker").string(), "--bootstrap-file",
                                (dir.path() / "bootstrap").string()};
  for (const auto& [name, partitions] : topics) {
    argv.push_back("--topic");
    argv.push_back(name + ":" + std::to_string(partitions));
  }
  devbroker_ = std::make_unique<Process>(argv, dir.path() / "devbroker.log");
  const auto file = dir.path() / "bootstrap";
  const auto deadline = Clock::now() + std::chrono::seconds(30);
  while (!std::filesystem::exists(file)) {
    if (!devbroker_->running() || Clock::now() > deadline) {
      throw std::runtime_error("dev broker did not start: " + devbroker_->log());
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  bootstrap_ = trimmed(readFile(file));
}

Broker::~Broker() {
  try {
    stop();
  } catch (const std::exception& e) {
    std::cerr << "warning: " << e.what() << "\n";
  }
}

void Broker::startCluster(const TempDir& dir) {
  cluster_dir_ = dir.path() / "kafka";
  std::cerr << "starting Apache Kafka (one KRaft node, tools/kafka/cluster)...\n";
  try {
    runClusterScript({"up", cluster_dir_.string(), "--brokers", "1"},
                     dir.path() / "kafka-up.log", std::chrono::seconds(180));
  } catch (...) {
    stop();  // a node may have started before the script gave up
    throw;
  }
  bootstrap_ = trimmed(readFile(cluster_dir_ / "bootstrap"));
  // `cluster up` can return before the node listens (its readiness check skips a node whose
  // pid does not show the java command line yet): wait for a metadata answer here.
  rd_kafka_t* client = adminClient(bootstrap_);
  const auto deadline = Clock::now() + std::chrono::seconds(120);
  for (;;) {
    const rd_kafka_metadata_t* metadata = nullptr;
    if (rd_kafka_metadata(client, 0, nullptr, &metadata, 2000) == RD_KAFKA_RESP_ERR_NO_ERROR) {
      const bool ready = metadata->broker_cnt > 0;
      rd_kafka_metadata_destroy(metadata);
      if (ready) break;
    }
    if (Clock::now() > deadline) {
      rd_kafka_destroy(client);
      stop();
      throw std::runtime_error("Apache Kafka at " + bootstrap_ +
                               " did not answer within 120 s; see " +
                               (dir.path() / "kafka/node-1/server.log").string() +
                               " (ULTRACORE_BENCH_KEEP=1 keeps it)");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  rd_kafka_destroy(client);
  const std::string pid = trimmed(readFile(cluster_dir_ / "node-1" / "pid"));
  if (!pid.empty()) kafka_pid_ = std::stoi(pid);
  const std::string version = kafkaVersion();
  description_ = "Apache Kafka" + (version.empty() ? "" : " " + version) +
                 ", 1 KRaft node started by the bench";
}

void Broker::createTopics(const std::vector<std::pair<std::string, int>>& topics) {
  rd_kafka_t* client = adminClient(bootstrap_);
  std::string failure;
  try {
    std::vector<engine::NewTopic> requests;
    for (const auto& [name, partitions] : topics) requests.push_back({name, partitions, -1, {}});
    const auto errors = engine::createTopics(client, requests, std::chrono::seconds(60));
    for (const auto& [name, partitions] : topics) {
      const auto error = errors.find(name);
      if (error == errors.end()) {
        if (cluster_dir_.empty()) created_.push_back(name);
      } else if (error->second.code == RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
        failure += "topic " + name + " already exists on " + bootstrap_ +
                   ": the bench needs its own empty topics (it deletes nothing it did not "
                   "create); delete it or use another cluster; ";
      } else {
        failure += "creating topic " + name + ": " + error->second.message + "; ";
      }
    }
  } catch (const std::runtime_error& e) {
    failure = e.what();
  }
  for (const auto& [name, partitions] : topics) {
    if (!failure.empty()) break;
    if (!engine::waitForLeaders(client, name, partitions, std::chrono::seconds(60))) {
      failure = "topic " + name + " has partitions without a leader 60 s after its creation";
    }
  }
  rd_kafka_destroy(client);
  if (!failure.empty()) throw std::runtime_error(failure);
}

double Broker::cpuSecondsSoFar() const {
  if (devbroker_) return devbroker_->cpuSecondsSoFar();
  if (kafka_pid_ > 0) return cpuSecondsOf(kafka_pid_);
  return -1;
}

void Broker::stop() {
  if (devbroker_) devbroker_->stop();
  if (!cluster_dir_.empty()) {
    const auto dir = cluster_dir_;
    cluster_dir_.clear();
    kafka_pid_ = -1;
    runClusterScript({"down", dir.string()}, dir.parent_path() / "kafka-down.log",
                     std::chrono::seconds(90));
  }
  if (!created_.empty()) {
    rd_kafka_t* client = adminClient(bootstrap_);
    std::vector<rd_kafka_DeleteTopic_t*> requests;
    for (const auto& name : created_) requests.push_back(rd_kafka_DeleteTopic_new(name.c_str()));
    rd_kafka_queue_t* queue = rd_kafka_queue_new(client);
    rd_kafka_DeleteTopics(client, requests.data(), requests.size(), nullptr, queue);
    rd_kafka_event_t* event = rd_kafka_queue_poll(queue, 60000);
    std::string failure = event == nullptr ? "no answer within 60 s" : "";
    if (event != nullptr && rd_kafka_event_error(event) != RD_KAFKA_RESP_ERR_NO_ERROR) {
      failure = rd_kafka_event_error_string(event);
    }
    if (event != nullptr) rd_kafka_event_destroy(event);
    rd_kafka_queue_destroy(queue);
    for (auto* request : requests) rd_kafka_DeleteTopic_destroy(request);
    rd_kafka_destroy(client);
    created_.clear();
    if (!failure.empty()) {
      std::cerr << "warning: deleting the bench's topics on " << bootstrap_ << ": " << failure
                << "\n";
    }
  }
}

}  // namespace ultracore::bench
