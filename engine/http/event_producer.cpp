#include "engine/http/event_producer.h"

#include <unistd.h>

#include <condition_variable>
#include <memory>
#include <mutex>
#include <random>
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

/// Registers a delivery for `record` and enqueues it; the Delivery is shared with onDelivery.
rd_kafka_resp_err_t enqueue(rd_kafka_t* rk, const std::string& topic, const std::string& key,
                            const std::string& value, const std::shared_ptr<Delivery>& delivery) {
  auto* opaque = new std::shared_ptr<Delivery>(delivery);
  const rd_kafka_resp_err_t err = rd_kafka_producev(
      rk, RD_KAFKA_V_TOPIC(topic.c_str()), RD_KAFKA_V_KEY(key.data(), key.size()),
      RD_KAFKA_V_VALUE(const_cast<char*>(value.data()), value.size()),
      RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_OPAQUE(opaque), RD_KAFKA_V_END);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) delete opaque;
  return err;
}

/// Waits for a delivery report; false when none came within `timeout`.
bool awaitDelivery(Delivery& delivery, std::chrono::milliseconds timeout) {
  std::unique_lock lock(delivery.mutex);
  return delivery.done_cv.wait_for(lock, timeout, [&] { return delivery.done; });
}

/// "ultracore-api-<host>-<pid>-<random>": unique per process, so two API processes never
/// fence each other's transactions.
std::string newTransactionalId() {
  char host[64] = {};
  ::gethostname(host, sizeof(host) - 1);
  std::random_device random;
  return "ultracore-api-" + std::string(host) + "-" + std::to_string(::getpid()) + "-" +
         std::to_string(random() & 0xFFFFFF);
}

sdk::Status transient(const std::string& what, rd_kafka_error_t* error) {
  const std::string message = what + ": " + rd_kafka_error_string(error);
  rd_kafka_error_destroy(error);
  return sdk::Status(sdk::StatusCode::kTransient, message);
}

}  // namespace

EventProducer::EventProducer(const std::map<std::string, std::string>& kafka) {
  std::map<std::string, std::string> defaults{{"message.timeout.ms", "5000"},
                                              {"partitioner", "murmur2_random"},
                                              {"linger.ms", "1"}};
  std::map<std::string, std::string> manifest;
  for (const auto& [key, value] : kafka) {
    if (kConsumerOnly.count(key) == 0) manifest[key] = value;
  }
  // librdkafka's producer default is true: a command for a topic that is missing must fail
  // (the topic is created by `ultracore-ctl topics ensure`), not make a broker create it.
  const std::map<std::string, std::string> forced{{"enable.idempotence", "true"},
                                                  {"acks", "all"},
                                                  {"allow.auto.create.topics", "false"}};
  using Layer = std::map<std::string, std::string>;
  for (const Layer* layer : std::initializer_list<const Layer*>{&defaults, &manifest, &forced}) {
    for (const auto& [key, value] : *layer) settings_[key] = value;
  }
  transactional_id_ = newTransactionalId();
  KafkaConf conf = makeKafkaConf({&settings_});
  if (const auto it = manifest.find("message.timeout.ms"); it != manifest.end()) {
    message_timeout_ms_ = std::stoi(it->second);
  }
  rd_kafka_conf_set_dr_msg_cb(conf.get(), onDelivery);
  char error[512];
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf.get(), error, sizeof(error));
  if (rk == nullptr) throw KafkaConfigError(std::string("cannot create the producer: ") + error);
  conf.release();  // rd_kafka_new took it
  handle_.reset(rk);
  nameKafkaClient(rk, "api");
  poller_ = std::thread([this] {
    while (!stop_.load()) rd_kafka_poll(handle_.get(), 100);
  });
}

EventProducer::~EventProducer() {
  rd_kafka_flush(handle_.get(), message_timeout_ms_ + 1000);
  stop_.store(true);
  if (poller_.joinable()) poller_.join();
}

sdk::Status EventProducer::ensureTransactional() {
  if (txn_handle_) return sdk::Status::ok();
  const std::map<std::string, std::string> transactional{
      {"transactional.id", transactional_id_},
      // The coordinator aborts a transaction this process left open after this long.
      {"transaction.timeout.ms", std::to_string(std::max(60000, message_timeout_ms_ * 4))}};
  KafkaConf conf = makeKafkaConf({&settings_, &transactional});
  rd_kafka_conf_set_dr_msg_cb(conf.get(), onDelivery);
  char error[512];
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf.get(), error, sizeof(error));
  if (rk == nullptr) {
    return sdk::Status(sdk::StatusCode::kTransient,
                       std::string("cannot create the transactional producer: ") + error);
  }
  conf.release();
  KafkaHandle handle(rk);
  nameKafkaClient(rk, "api (transactions)");
  if (rd_kafka_error_t* failure = rd_kafka_init_transactions(rk, message_timeout_ms_)) {
    return transient("Kafka refused to start transactions", failure);
  }
  txn_handle_ = std::move(handle);
  return sdk::Status::ok();
}

sdk::Result<std::vector<RecordPositionOut>> EventProducer::produceAtomically(
    const std::vector<OutgoingRecord>& records) {
  if (records.size() == 1) {
    auto stored = produce(records[0].topic, records[0].key, records[0].value);
    if (!stored) return stored.status();
    return std::vector<RecordPositionOut>{stored.value()};
  }
  std::lock_guard lock(txn_mutex_);
  auto result = produceInTransaction(records);
  if (!result && txn_handle_) {
    // Whatever failed, the transaction must not stay open: abort it, and if even that fails
    // start afresh (a new producer with the same transactional.id fences the old one and the
    // coordinator aborts what it left open).
    if (rd_kafka_error_t* failure =
            rd_kafka_abort_transaction(txn_handle_.get(), message_timeout_ms_)) {
      spdlog::warn("api: aborting a Kafka transaction failed ({}); recreating the producer",
                   rd_kafka_error_string(failure));
      rd_kafka_error_destroy(failure);
      txn_handle_.reset();
    }
  }
  return result;
}

sdk::Result<std::vector<RecordPositionOut>> EventProducer::produceInTransaction(
    const std::vector<OutgoingRecord>& records) {
  if (sdk::Status ready = ensureTransactional(); !ready) return ready;
  rd_kafka_t* rk = txn_handle_.get();
  if (rd_kafka_error_t* failure = rd_kafka_begin_transaction(rk)) {
    if (rd_kafka_error_is_fatal(failure)) txn_handle_.reset();
    return transient("cannot begin a Kafka transaction", failure);
  }
  std::vector<std::shared_ptr<Delivery>> deliveries;
  for (const auto& record : records) {
    deliveries.push_back(std::make_shared<Delivery>());
    const rd_kafka_resp_err_t err =
        enqueue(rk, record.topic, record.key, record.value, deliveries.back());
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      return sdk::Status(sdk::StatusCode::kTransient,
                         std::string("cannot enqueue the event: ") + rd_kafka_err2str(err));
    }
  }
  // commit_transaction flushes: every delivery report is served (polled) inside it.
  if (rd_kafka_error_t* failure = rd_kafka_commit_transaction(rk, message_timeout_ms_ + 5000)) {
    if (rd_kafka_error_is_fatal(failure)) txn_handle_.reset();
    return transient("Kafka did not commit the events' transaction", failure);
  }
  std::vector<RecordPositionOut> positions;
  for (std::size_t i = 0; i < records.size(); ++i) {
    Delivery& delivery = *deliveries[i];
    if (!awaitDelivery(delivery, std::chrono::milliseconds(message_timeout_ms_ + 5000)) ||
        delivery.error != RD_KAFKA_RESP_ERR_NO_ERROR) {
      // Committed, so stored: only the position is unknown. Never reached in practice: a
      // commit succeeds only after every record was acknowledged.
      return sdk::Status(sdk::StatusCode::kTransient,
                         "the transaction committed but a delivery report is missing");
    }
    positions.push_back({records[i].topic, delivery.partition, delivery.offset});
  }
  return positions;
}

sdk::Result<RecordPositionOut> EventProducer::produce(const std::string& topic,
                                                      const std::string& key,
                                                      const std::string& value) {
  auto delivery = std::make_shared<Delivery>();
  const rd_kafka_resp_err_t err = enqueue(handle_.get(), topic, key, value, delivery);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return sdk::Status(sdk::StatusCode::kTransient,
                       std::string("cannot enqueue the event: ") + rd_kafka_err2str(err));
  }
  // The delivery report always comes within message.timeout.ms; the margin only guards
  // against a stuck client. Giving up here is reported as unknown, never as success.
  if (!awaitDelivery(*delivery, std::chrono::milliseconds(message_timeout_ms_ + 5000))) {
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
