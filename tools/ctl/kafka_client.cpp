#include "tools/ctl/kafka_client.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <ctime>
#include <set>

#include "tools/ctl/ctl_context.h"

namespace ultracore::ctl {
namespace {

std::atomic<bool> stop_requested{false};

void onStopSignal(int) { stop_requested.store(true); }

const std::set<std::string> kConsumerOnly = {"group.id",
                                             "group.instance.id",
                                             "session.timeout.ms",
                                             "heartbeat.interval.ms",
                                             "max.poll.interval.ms",
                                             "auto.offset.reset",
                                             "enable.auto.commit",
                                             "enable.auto.offset.store",
                                             "auto.commit.interval.ms",
                                             "partition.assignment.strategy",
                                             "isolation.level",
                                             "fetch.wait.max.ms",
                                             "fetch.min.bytes",
                                             "fetch.max.bytes",
                                             "enable.partition.eof",
                                             "check.crcs"};

/// librdkafka's own log lines: only errors reach stderr (warnings such as "consumer property
/// ignored by a producer" would only be noise for an operator).
void logToStderr(const rd_kafka_t*, int level, const char* facility, const char* message) {
  if (level <= 3) std::fprintf(stderr, "kafka: %s: %s\n", facility, message);
}

}  // namespace

engine::KafkaHandle makeAssignConsumer(const std::map<std::string, std::string>& properties,
                                       const std::map<std::string, std::string>& extra) {
  const std::map<std::string, std::string> enforced = {
      {"group.id", "ultracore-ctl." + std::to_string(::getpid())},
      {"client.id", "ultracore-ctl"},
      {"enable.auto.commit", "false"},
      {"enable.auto.offset.store", "false"},
      {"allow.auto.create.topics", "false"},
  };
  engine::KafkaConf conf;
  try {
    conf = engine::makeKafkaConf({&properties, &enforced, &extra});
  } catch (const engine::KafkaConfigError& e) {
    throw CtlError(e.what(), 2);
  }
  rd_kafka_conf_set_log_cb(conf.get(), logToStderr);
  char error[512];
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf.get(), error, sizeof(error));
  if (rk == nullptr) throw CtlError(std::string("cannot create a Kafka consumer: ") + error);
  conf.release();  // rd_kafka_new took it
  return engine::KafkaHandle(rk);
}

std::map<std::string, std::string> producerProperties(
    const std::map<std::string, std::string>& properties) {
  std::map<std::string, std::string> result;
  for (const auto& [key, value] : properties) {
    if (kConsumerOnly.count(key) == 0) result[key] = value;
  }
  result["allow.auto.create.topics"] = "false";
  return result;
}

std::vector<std::int32_t> topicPartitions(rd_kafka_t* rk, const std::string& topic,
                                          int timeout_ms) {
  // All topics, not this one: asking for one topic by name makes a broker with
  // auto.create.topics.enable (and the dev broker) create it.
  const rd_kafka_metadata_t* metadata = nullptr;
  const rd_kafka_resp_err_t err = rd_kafka_metadata(rk, 1, nullptr, &metadata, timeout_ms);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    throw CtlError("Kafka metadata for topic '" + topic + "': " + rd_kafka_err2str(err));
  }
  std::vector<std::int32_t> partitions;
  rd_kafka_resp_err_t topic_err = RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART;
  for (int i = 0; i < metadata->topic_cnt; ++i) {
    const auto& t = metadata->topics[i];
    if (topic != t.topic) continue;
    topic_err = t.err;
    for (int p = 0; p < t.partition_cnt; ++p) partitions.push_back(t.partitions[p].id);
  }
  rd_kafka_metadata_destroy(metadata);
  if (topic_err != RD_KAFKA_RESP_ERR_NO_ERROR || partitions.empty()) {
    throw CtlError("topic '" + topic + "' does not exist (" + rd_kafka_err2str(topic_err) + ")", 2);
  }
  std::sort(partitions.begin(), partitions.end());
  return partitions;
}

std::pair<std::int64_t, std::int64_t> watermarks(rd_kafka_t* rk, const std::string& topic,
                                                 std::int32_t partition, int timeout_ms) {
  std::int64_t low = -1, high = -1;
  const rd_kafka_resp_err_t err =
      rd_kafka_query_watermark_offsets(rk, topic.c_str(), partition, &low, &high, timeout_ms);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    throw CtlError("log start/end of " + topic + "[" + std::to_string(partition) +
                   "]: " + rd_kafka_err2str(err));
  }
  return {low, high};
}

const std::atomic<bool>& installStopSignals() {
  struct sigaction action {};
  action.sa_handler = onStopSignal;
  sigemptyset(&action.sa_mask);
  sigaction(SIGINT, &action, nullptr);
  sigaction(SIGTERM, &action, nullptr);
  return stop_requested;
}

}  // namespace ultracore::ctl
