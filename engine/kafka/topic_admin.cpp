#include "engine/kafka/topic_admin.h"

#include <memory>
#include <stdexcept>
#include <thread>

namespace ultracore::engine {

namespace {

struct QueueDeleter {
  void operator()(rd_kafka_queue_t* queue) const { rd_kafka_queue_destroy(queue); }
};
struct EventDeleter {
  void operator()(rd_kafka_event_t* event) const { rd_kafka_event_destroy(event); }
};
struct OptionsDeleter {
  void operator()(rd_kafka_AdminOptions_t* options) const { rd_kafka_AdminOptions_destroy(options); }
};

/// Owns the NewTopic requests until they are sent.
class Requests {
 public:
  ~Requests() { rd_kafka_NewTopic_destroy_array(items_.data(), items_.size()); }
  void add(rd_kafka_NewTopic_t* request) { items_.push_back(request); }
  rd_kafka_NewTopic_t** data() { return items_.data(); }
  std::size_t size() const { return items_.size(); }

 private:
  std::vector<rd_kafka_NewTopic_t*> items_;
};

}  // namespace

std::map<std::string, TopicError> createTopics(rd_kafka_t* rk, const std::vector<NewTopic>& topics,
                                               std::chrono::milliseconds timeout) {
  std::map<std::string, TopicError> errors;
  if (topics.empty()) return errors;
  Requests requests;
  char error[512];
  for (const NewTopic& topic : topics) {
    rd_kafka_NewTopic_t* request = rd_kafka_NewTopic_new(
        topic.name.c_str(), topic.partitions, topic.replication_factor, error, sizeof(error));
    if (request == nullptr) throw std::runtime_error("topic '" + topic.name + "': " + error);
    requests.add(request);
    for (const auto& [key, value] : topic.config) {
      if (rd_kafka_NewTopic_set_config(request, key.c_str(), value.c_str()) !=
          RD_KAFKA_RESP_ERR_NO_ERROR) {
        throw std::runtime_error("topic '" + topic.name + "': invalid config " + key);
      }
    }
  }
  const int timeout_ms = static_cast<int>(timeout.count());
  std::unique_ptr<rd_kafka_AdminOptions_t, OptionsDeleter> options(
      rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_CREATETOPICS));
  rd_kafka_AdminOptions_set_request_timeout(options.get(), timeout_ms, error, sizeof(error));
  rd_kafka_AdminOptions_set_operation_timeout(options.get(), timeout_ms, error, sizeof(error));
  std::unique_ptr<rd_kafka_queue_t, QueueDeleter> queue(rd_kafka_queue_new(rk));
  rd_kafka_CreateTopics(rk, requests.data(), requests.size(), options.get(), queue.get());

  const std::unique_ptr<rd_kafka_event_t, EventDeleter> event(
      rd_kafka_queue_poll(queue.get(), timeout_ms + 5000));
  if (!event) throw std::runtime_error("CreateTopics: no answer from Kafka");
  if (rd_kafka_event_error(event.get()) != RD_KAFKA_RESP_ERR_NO_ERROR) {
    throw std::runtime_error(std::string("CreateTopics: ") + rd_kafka_event_error_string(event.get()));
  }
  const rd_kafka_CreateTopics_result_t* result = rd_kafka_event_CreateTopics_result(event.get());
  if (result == nullptr) throw std::runtime_error("CreateTopics: unexpected answer from librdkafka");
  std::size_t count = 0;
  const rd_kafka_topic_result_t** results = rd_kafka_CreateTopics_result_topics(result, &count);
  for (std::size_t i = 0; i < count; ++i) {
    const rd_kafka_resp_err_t code = rd_kafka_topic_result_error(results[i]);
    if (code == RD_KAFKA_RESP_ERR_NO_ERROR) continue;
    const char* text = rd_kafka_topic_result_error_string(results[i]);
    errors[rd_kafka_topic_result_name(results[i])] =
        TopicError{code, std::string(rd_kafka_err2name(code)) +
                             (text != nullptr && *text != '\0' ? std::string(": ") + text : "")};
  }
  return errors;
}

std::vector<int> partitionLeaders(rd_kafka_t* rk, const std::string& topic,
                                  std::chrono::milliseconds timeout) {
  std::vector<int> leaders;
  rd_kafka_topic_t* handle = rd_kafka_topic_new(rk, topic.c_str(), nullptr);
  const rd_kafka_metadata_t* metadata = nullptr;
  if (rd_kafka_metadata(rk, 0, handle, &metadata, static_cast<int>(timeout.count())) ==
      RD_KAFKA_RESP_ERR_NO_ERROR) {
    for (int t = 0; t < metadata->topic_cnt; ++t) {
      const rd_kafka_metadata_topic_t& described = metadata->topics[t];
      if (described.err != RD_KAFKA_RESP_ERR_NO_ERROR || topic != described.topic) continue;
      leaders.assign(static_cast<std::size_t>(described.partition_cnt), -1);
      for (int p = 0; p < described.partition_cnt; ++p) {
        const rd_kafka_metadata_partition_t& partition = described.partitions[p];
        if (partition.err == RD_KAFKA_RESP_ERR_NO_ERROR && partition.id >= 0 &&
            partition.id < described.partition_cnt) {
          leaders[static_cast<std::size_t>(partition.id)] = partition.leader;
        }
      }
    }
    rd_kafka_metadata_destroy(metadata);
  }
  rd_kafka_topic_destroy(handle);
  return leaders;
}

bool waitForLeaders(rd_kafka_t* rk, const std::string& topic, int partitions,
                    std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    const std::vector<int> leaders = partitionLeaders(rk, topic, std::chrono::seconds(10));
    int led = 0;
    for (const int leader : leaders) led += leader >= 0 ? 1 : 0;
    if (led == partitions) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

}  // namespace ultracore::engine
