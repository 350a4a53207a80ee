#include "engine/kafka/topic_admin.h"

#include <algorithm>
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

using Event = std::unique_ptr<rd_kafka_event_t, EventDeleter>;
using Queue = std::unique_ptr<rd_kafka_queue_t, QueueDeleter>;
using Options = std::unique_ptr<rd_kafka_AdminOptions_t, OptionsDeleter>;

Options adminOptions(rd_kafka_t* rk, rd_kafka_admin_op_t op, std::chrono::milliseconds timeout) {
  Options options(rd_kafka_AdminOptions_new(rk, op));
  char error[512];
  rd_kafka_AdminOptions_set_request_timeout(options.get(), static_cast<int>(timeout.count()), error,
                                            sizeof(error));
  return options;
}

/// The result event of one admin request; throws when there is none in time or it failed.
Event adminResult(rd_kafka_queue_t* queue, std::chrono::milliseconds timeout, const char* what) {
  Event event(rd_kafka_queue_poll(queue, static_cast<int>(timeout.count()) + 2000));
  if (!event) throw std::runtime_error(std::string(what) + ": no answer from Kafka");
  if (rd_kafka_event_error(event.get()) != RD_KAFKA_RESP_ERR_NO_ERROR) {
    throw std::runtime_error(std::string(what) + ": " + rd_kafka_event_error_string(event.get()));
  }
  return event;
}

std::string errorText(const rd_kafka_error_t* error) {
  return std::string(rd_kafka_error_name(error)) + ": " + rd_kafka_error_string(error);
}

void describeGroups(rd_kafka_t* rk, std::vector<ConsumerGroup>& groups,
                    std::chrono::milliseconds timeout) {
  if (groups.empty()) return;
  std::vector<const char*> names;
  for (const ConsumerGroup& group : groups) names.push_back(group.group_id.c_str());
  const Options options = adminOptions(rk, RD_KAFKA_ADMIN_OP_DESCRIBECONSUMERGROUPS, timeout);
  const Queue queue(rd_kafka_queue_new(rk));
  rd_kafka_DescribeConsumerGroups(rk, names.data(), names.size(), options.get(), queue.get());
  Event event;
  try {
    event = adminResult(queue.get(), timeout, "DescribeConsumerGroups");
  } catch (const std::exception& e) {
    for (ConsumerGroup& group : groups) group.describe_error = e.what();
    return;
  }
  const auto* result = rd_kafka_event_DescribeConsumerGroups_result(event.get());
  std::size_t count = 0;
  const rd_kafka_ConsumerGroupDescription_t** described =
      result == nullptr ? nullptr : rd_kafka_DescribeConsumerGroups_result_groups(result, &count);
  for (std::size_t i = 0; i < count; ++i) {
    const rd_kafka_ConsumerGroupDescription_t* d = described[i];
    const std::string id = rd_kafka_ConsumerGroupDescription_group_id(d);
    const auto it = std::find_if(groups.begin(), groups.end(),
                                 [&](const ConsumerGroup& g) { return g.group_id == id; });
    if (it == groups.end()) continue;
    if (const rd_kafka_error_t* error = rd_kafka_ConsumerGroupDescription_error(d)) {
      it->describe_error = errorText(error);
      continue;
    }
    it->state = rd_kafka_consumer_group_state_name(rd_kafka_ConsumerGroupDescription_state(d));
    it->simple = rd_kafka_ConsumerGroupDescription_is_simple_consumer_group(d) != 0;
    const char* assignor = rd_kafka_ConsumerGroupDescription_partition_assignor(d);
    it->assignor = assignor != nullptr ? assignor : "";
    if (const rd_kafka_Node_t* node = rd_kafka_ConsumerGroupDescription_coordinator(d)) {
      it->coordinator = rd_kafka_Node_id(node);
    }
    const std::size_t members = rd_kafka_ConsumerGroupDescription_member_count(d);
    for (std::size_t m = 0; m < members; ++m) {
      const rd_kafka_MemberDescription_t* member = rd_kafka_ConsumerGroupDescription_member(d, m);
      GroupMember out;
      const auto text = [](const char* s) { return s != nullptr ? std::string(s) : std::string(); };
      out.member_id = text(rd_kafka_MemberDescription_consumer_id(member));
      out.client_id = text(rd_kafka_MemberDescription_client_id(member));
      out.host = text(rd_kafka_MemberDescription_host(member));
      out.group_instance_id = text(rd_kafka_MemberDescription_group_instance_id(member));
      const rd_kafka_MemberAssignment_t* assignment = rd_kafka_MemberDescription_assignment(member);
      const rd_kafka_topic_partition_list_t* partitions =
          assignment != nullptr ? rd_kafka_MemberAssignment_partitions(assignment) : nullptr;
      for (int p = 0; partitions != nullptr && p < partitions->cnt; ++p) {
        out.assignment.emplace_back(partitions->elems[p].topic, partitions->elems[p].partition);
      }
      std::sort(out.assignment.begin(), out.assignment.end());
      it->members.push_back(std::move(out));
    }
  }
}

void groupOffsets(rd_kafka_t* rk, ConsumerGroup& group, std::chrono::milliseconds timeout) {
  // NULL partitions: every partition the group has committed.
  rd_kafka_ListConsumerGroupOffsets_t* request =
      rd_kafka_ListConsumerGroupOffsets_new(group.group_id.c_str(), nullptr);
  const Options options = adminOptions(rk, RD_KAFKA_ADMIN_OP_LISTCONSUMERGROUPOFFSETS, timeout);
  const Queue queue(rd_kafka_queue_new(rk));
  rd_kafka_ListConsumerGroupOffsets(rk, &request, 1, options.get(), queue.get());
  rd_kafka_ListConsumerGroupOffsets_destroy(request);
  try {
    const Event event = adminResult(queue.get(), timeout, "ListConsumerGroupOffsets");
    const auto* result = rd_kafka_event_ListConsumerGroupOffsets_result(event.get());
    std::size_t count = 0;
    const rd_kafka_group_result_t** groups =
        result == nullptr ? nullptr : rd_kafka_ListConsumerGroupOffsets_result_groups(result, &count);
    for (std::size_t i = 0; i < count; ++i) {
      if (const rd_kafka_error_t* error = rd_kafka_group_result_error(groups[i])) {
        group.offsets_error = errorText(error);
        continue;
      }
      const rd_kafka_topic_partition_list_t* partitions = rd_kafka_group_result_partitions(groups[i]);
      for (int p = 0; partitions != nullptr && p < partitions->cnt; ++p) {
        const rd_kafka_topic_partition_t& tp = partitions->elems[p];
        if (tp.err != RD_KAFKA_RESP_ERR_NO_ERROR || tp.offset < 0) continue;
        group.committed[{tp.topic, tp.partition}] = tp.offset;
      }
    }
  } catch (const std::exception& e) {
    group.offsets_error = e.what();
  }
}

}  // namespace

std::map<std::string, TopicMetadata> describeCluster(rd_kafka_t* rk,
                                                     std::chrono::milliseconds timeout) {
  const rd_kafka_metadata_t* metadata = nullptr;
  const rd_kafka_resp_err_t err =
      rd_kafka_metadata(rk, 1, nullptr, &metadata, static_cast<int>(timeout.count()));
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    throw std::runtime_error(std::string("Kafka metadata: ") + rd_kafka_err2str(err) +
                             " (is the cluster at bootstrap.servers running?)");
  }
  std::map<std::string, TopicMetadata> topics;
  for (int i = 0; i < metadata->topic_cnt; ++i) {
    const auto& t = metadata->topics[i];
    if (t.err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART) continue;
    TopicMetadata info{t.topic, {}};
    for (int p = 0; p < t.partition_cnt; ++p) {
      const auto& part = t.partitions[p];
      info.partitions.push_back(
          {part.id, part.leader, std::vector<std::int32_t>(part.replicas, part.replicas + part.replica_cnt),
           std::vector<std::int32_t>(part.isrs, part.isrs + part.isr_cnt), part.err});
    }
    std::sort(info.partitions.begin(), info.partitions.end(),
              [](const PartitionMetadata& a, const PartitionMetadata& b) { return a.id < b.id; });
    topics.emplace(info.name, std::move(info));
  }
  rd_kafka_metadata_destroy(metadata);
  return topics;
}

ConsumerGroupList describeConsumerGroups(rd_kafka_t* rk, std::chrono::milliseconds timeout) {
  ConsumerGroupList out;
  {
    const Options options = adminOptions(rk, RD_KAFKA_ADMIN_OP_LISTCONSUMERGROUPS, timeout);
    const Queue queue(rd_kafka_queue_new(rk));
    rd_kafka_ListConsumerGroups(rk, options.get(), queue.get());
    const Event event = adminResult(queue.get(), timeout, "ListConsumerGroups");
    const auto* result = rd_kafka_event_ListConsumerGroups_result(event.get());
    if (result == nullptr) throw std::runtime_error("ListConsumerGroups: unexpected answer from librdkafka");
    std::size_t count = 0;
    const rd_kafka_ConsumerGroupListing_t** listed = rd_kafka_ListConsumerGroups_result_valid(result, &count);
    for (std::size_t i = 0; i < count; ++i) {
      ConsumerGroup group;
      group.group_id = rd_kafka_ConsumerGroupListing_group_id(listed[i]);
      group.simple = rd_kafka_ConsumerGroupListing_is_simple_consumer_group(listed[i]) != 0;
      group.state = rd_kafka_consumer_group_state_name(rd_kafka_ConsumerGroupListing_state(listed[i]));
      out.groups.push_back(std::move(group));
    }
    std::size_t error_count = 0;
    const rd_kafka_error_t** errors = rd_kafka_ListConsumerGroups_result_errors(result, &error_count);
    for (std::size_t i = 0; i < error_count; ++i) out.errors.push_back(errorText(errors[i]));
  }
  std::sort(out.groups.begin(), out.groups.end(),
            [](const ConsumerGroup& a, const ConsumerGroup& b) { return a.group_id < b.group_id; });
  describeGroups(rk, out.groups, timeout);
  for (ConsumerGroup& group : out.groups) groupOffsets(rk, group, timeout);
  return out;
}

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
