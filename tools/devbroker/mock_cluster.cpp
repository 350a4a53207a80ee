#include "mock_cluster.h"

#include <algorithm>

namespace ultracore::devbroker {

KafkaHandle makeClient(rd_kafka_type_t type, const std::map<std::string, std::string>& props,
                       const std::function<void(rd_kafka_conf_t*)>& customize) {
  char err[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  for (const auto& [key, value] : props) {
    if (rd_kafka_conf_set(conf, key.c_str(), value.c_str(), err, sizeof(err)) != RD_KAFKA_CONF_OK) {
      rd_kafka_conf_destroy(conf);
      throw std::runtime_error("librdkafka property " + key + "=" + value + ": " + err);
    }
  }
  if (customize) customize(conf);
  rd_kafka_t* rk = rd_kafka_new(type, conf, err, sizeof(err));
  if (!rk) {
    rd_kafka_conf_destroy(conf);
    throw std::runtime_error(std::string("cannot create librdkafka client: ") + err);
  }
  return KafkaHandle(rk);
}

MockCluster::MockCluster(int brokers) : brokers_(brokers) {
  // The host handle only keeps the mock's books; it never talks to a broker itself.
  host_ = makeClient(RD_KAFKA_PRODUCER,
                     {{"client.id", "ultracore-devbroker-host"}, {"log_level", "4"}});
  cluster_ = rd_kafka_mock_cluster_new(host_.get(), brokers);
  if (!cluster_) throw std::runtime_error("rd_kafka_mock_cluster_new failed");
  bootstrap_ = rd_kafka_mock_cluster_bootstraps(cluster_);
  inspector_ = makeClient(RD_KAFKA_PRODUCER, {{"bootstrap.servers", bootstrap_},
                                              {"client.id", "ultracore-devbroker-control"},
                                              {"allow.auto.create.topics", "false"},
                                              {"log_level", "3"}});
}

MockCluster::~MockCluster() {
  inspector_.reset();
  if (cluster_) rd_kafka_mock_cluster_destroy(cluster_);
  host_.reset();
}

bool MockCluster::createTopic(const std::string& name, int partitions) {
  auto err = rd_kafka_mock_topic_create(cluster_, name.c_str(), partitions, std::min(3, brokers_));
  if (err == RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) return false;
  if (err) throw KafkaError("cannot create topic " + name, err);
  return true;
}

std::vector<TopicInfo> listTopics(rd_kafka_t* rk, std::chrono::milliseconds timeout) {
  const rd_kafka_metadata_t* md = nullptr;
  auto err = rd_kafka_metadata(rk, 1, nullptr, &md, static_cast<int>(timeout.count()));
  if (err) throw KafkaError("metadata request failed", err);
  std::vector<TopicInfo> out;
  for (int i = 0; i < md->topic_cnt; ++i) {
    const auto& t = md->topics[i];
    if (t.err || t.partition_cnt <= 0) continue;
    out.push_back({t.topic, t.partition_cnt});
  }
  rd_kafka_metadata_destroy(md);
  std::sort(out.begin(), out.end(),
            [](const TopicInfo& a, const TopicInfo& b) { return a.name < b.name; });
  return out;
}

std::vector<TopicInfo> MockCluster::topics(std::chrono::milliseconds timeout) {
  std::lock_guard lock(inspector_mutex_);
  return listTopics(inspector_.get(), timeout);
}

std::vector<PartitionWatermarks> MockCluster::watermarks(const std::string& topic,
                                                         int32_t partitions,
                                                         std::chrono::milliseconds timeout) {
  std::lock_guard lock(inspector_mutex_);
  std::vector<PartitionWatermarks> out;
  for (int32_t p = 0; p < partitions; ++p) {
    PartitionWatermarks w;
    w.partition = p;
    w.error = rd_kafka_query_watermark_offsets(inspector_.get(), topic.c_str(), p, &w.low, &w.high,
                                               static_cast<int>(timeout.count()));
    out.push_back(w);
  }
  return out;
}

bool validTopicName(const std::string& name) {
  if (name.empty() || name.size() > 249 || name == "." || name == "..") return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-';
  });
}

}  // namespace ultracore::devbroker
