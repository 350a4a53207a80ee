#include "engine/http/event_producer.h"

#include <condition_variable>
#include <memory>
#include <mutex>
#include <set>

#include <spdlog/spdlog.h>

namespace ultracore::engine {
namespace {

/// One record's delivery report, shared between the waiting HTTP thread and the poller.
struct Delivery {
  std::mutex mutex;
  std::condition_variable done_cv;
  bool done = false;
  rd_kafka_resp_err_t error = RD_KAFKA_RESP_ERR_NO_ERROR;
  std::int32_t partition = 0;
  std::int64_t offset = -1;
};

void onDelivery(rd_kafka_t*, const rd_kafka_message_t* message, void*) {
  // Owned by the callback from here on: the waiter may have given up already.
  std::unique_ptr<std::shared_ptr<Delivery>> owner(
      static_cast<std::shared_ptr<Delivery>*>(message->_private));
  if (!owner) return;
  Delivery& delivery = **owner;
  {
    std::lock_guard lock(delivery.mutex);
    delivery.error = message->err;
    delivery.partition = message->partition;
    delivery.offset = message->offset;
    delivery.done = true;
  }
  delivery.done_cv.notify_all();
}

/// Properties only a consumer understands; a producer would log a warning for each.
const std::set<std::string> kConsumerOnly = {
    "group.id", "group.instance.id", "session.timeout.ms", "heartbeat.interval.ms",
    "max.poll.interval.ms", "auto.offset.reset", "enable.auto.commit",
    "enable.auto.offset.store", "auto.commit.interval.ms", "partition.assignment.strategy",
    "isolation.level", "fetch.wait.max.ms", "fetch.min.bytes", "fetch.max.bytes",
    "enable.partition.eof", "check.crcs"};

}  // namespace

EventProducer::EventProducer(const std::map<std::string, std::string>& kafka) {
  std::map<std::string, std::string> defaults{{"message.timeout.ms", "5000"},
                                              {"partitioner", "murmur2_random"},
                                              {"linger.ms", "1"}};
  std::map<std::string, std::string> manifest;
  for (const auto& [key, value] : kafka) {
    if (kConsumerOnly.count(key) == 0) manifest[key] = value;
  }
  const std::map<std::string, std::string> forced{{"enable.idempotence", "true"},
                                                  {"acks", "all"}};
  KafkaConf conf = makeKafkaConf({&defaults, &manifest, &forced});
  if (const auto it = manifest.find("message.timeout.ms"); it != manifest.end()) {
    message_timeout_ms_ = std::stoi(it->second);
  }
  rd_kafka_conf_set_dr_msg_cb(conf.get(), onDelivery);
  char error[512];
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf.get(), error, sizeof(error));
  if (rk == nullptr) throw KafkaConfigError(std::string("cannot create the producer: ") + error);
  conf.release();  // rd_kafka_new took it
  handle_.reset(rk);
  poller_ = std::thread([this] {
    while (!stop_.load()) rd_kafka_poll(handle_.get(), 100);
  });
}

EventProducer::~EventProducer() {
  rd_kafka_flush(handle_.get(), message_timeout_ms_ + 1000);
  stop_.store(true);
  if (poller_.joinable()) poller_.join();
}

sdk::Result<RecordPositionOut> EventProducer::produce(const std::string& topic,
                                                      const std::string& key,
                                                      const std::string& value) {
  auto delivery = std::make_shared<Delivery>();
  auto* opaque = new std::shared_ptr<Delivery>(delivery);
  const rd_kafka_resp_err_t err = rd_kafka_producev(
      handle_.get(), RD_KAFKA_V_TOPIC(topic.c_str()),
      RD_KAFKA_V_KEY(key.data(), key.size()),
      RD_KAFKA_V_VALUE(const_cast<char*>(value.data()), value.size()),
      RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_OPAQUE(opaque), RD_KAFKA_V_END);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    delete opaque;
    return sdk::Status(sdk::StatusCode::kTransient,
                       std::string("cannot enqueue the event: ") + rd_kafka_err2str(err));
  }
  // The delivery report always comes within message.timeout.ms; the margin only guards
  // against a stuck client. Giving up here is reported as unknown, never as success.
  std::unique_lock lock(delivery->mutex);
  const bool done = delivery->done_cv.wait_for(
      lock, std::chrono::milliseconds(message_timeout_ms_ + 5000), [&] { return delivery->done; });
  if (!done) {
    return sdk::Status(sdk::StatusCode::kTransient,
                       "no delivery report from Kafka in time; the event may or may not be stored");
  }
  if (delivery->error != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return sdk::Status(sdk::StatusCode::kTransient,
                       std::string("Kafka did not store the event: ") +
                           rd_kafka_err2str(delivery->error));
  }
  return RecordPositionOut{topic, delivery->partition, delivery->offset};
}

bool EventProducer::reachable(std::chrono::milliseconds timeout) {
  const rd_kafka_metadata_t* metadata = nullptr;
  const rd_kafka_resp_err_t err = rd_kafka_metadata(handle_.get(), 0, nullptr, &metadata,
                                                    static_cast<int>(timeout.count()));
  if (metadata != nullptr) rd_kafka_metadata_destroy(metadata);
  return err == RD_KAFKA_RESP_ERR_NO_ERROR;
}

std::optional<std::int64_t> EventProducer::logEnd(const std::string& topic, std::int32_t partition,
                                                  std::chrono::milliseconds timeout) {
  std::int64_t low = -1;
  std::int64_t high = -1;
  if (rd_kafka_query_watermark_offsets(handle_.get(), topic.c_str(), partition, &low, &high,
                                       static_cast<int>(timeout.count())) !=
      RD_KAFKA_RESP_ERR_NO_ERROR) {
    return std::nullopt;
  }
  return high;
}

}  // namespace ultracore::engine
