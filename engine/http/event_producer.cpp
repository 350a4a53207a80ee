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

/// Transactional producers per process: how many Kafka transactions are open at once. Calls
/// beyond these share transactions (group commit), so few are needed; each costs an
/// init_transactions at start and a transactional.id on the broker.
constexpr std::size_t kTxnProducers = 4;
/// Records in one group's transaction at most; a call that would exceed it starts a new group.
constexpr std::size_t kMaxGroupRecords = 1000;
/// A topic's partition count is asked again after this long (partitions can be added).
constexpr auto kPartitionCountTtl = std::chrono::seconds(30);

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
  // Its ListOffsets (logEnd, logEnds) must answer the high watermark, not the last stable
  // offset: a record another command committed can lie past the LSO while an earlier
  // transaction is still open, and a command must wait for it all the same. (librdkafka logs
  // that a producer "ignores" isolation.level, but its ListOffsets requests do carry it: with
  // it, real Kafka stopped answering committed deposits' tokens with token_past_log_end.)
  const std::map<std::string, std::string> offsets{{"isolation.level", "read_uncommitted"}};
  KafkaConf conf = makeKafkaConf({&settings_, &offsets});
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
  // The first transaction of a producer waits for init_transactions (a second on the dev
  // broker): start the pool now, in the background, instead of in the first commands.
  warmer_ = std::thread([this] {
    std::vector<std::thread> starters;
    for (std::size_t i = 0; i < kTxnProducers; ++i) {
      starters.emplace_back([this] {
        auto producer = acquireTxn();
        if (!producer) return;
        // And learn every topic's leaders, or its first produce waits for them.
        const rd_kafka_metadata_t* metadata = nullptr;
        if (rd_kafka_metadata(producer.value()->handle.get(), 1, nullptr, &metadata,
                              message_timeout_ms_) == RD_KAFKA_RESP_ERR_NO_ERROR) {
          rd_kafka_metadata_destroy(metadata);
        }
        releaseTxn(std::move(producer.value()), true);
      });
    }
    for (auto& starter : starters) starter.join();
  });
}

EventProducer::~EventProducer() {
  if (warmer_.joinable()) warmer_.join();
  rd_kafka_flush(handle_.get(), message_timeout_ms_ + 1000);
  stop_.store(true);
  if (poller_.joinable()) poller_.join();
}

sdk::Result<std::unique_ptr<EventProducer::TxnProducer>> EventProducer::acquireTxn() {
  std::string id;
  {
    std::unique_lock lock(txn_mutex_);
    txn_freed_.wait(lock, [&] { return !idle_txn_.empty() || txn_count_ < kTxnProducers; });
    if (!idle_txn_.empty()) {
      auto producer = std::move(idle_txn_.back());
      idle_txn_.pop_back();
      return producer;
    }
    ++txn_count_;
    id = transactional_id_ + "-" + std::to_string(txn_serial_++);
  }
  const auto fail = [&](sdk::Status status) -> sdk::Result<std::unique_ptr<TxnProducer>> {
    std::lock_guard lock(txn_mutex_);
    --txn_count_;
    txn_freed_.notify_one();
    return status;
  };
  std::map<std::string, std::string> transactional{{"transactional.id", id}};
  // The coordinator aborts a transaction this process left open (a paused or dead process)
  // after this long; until then read_committed consumers of its partitions wait behind it.
  if (settings_.count("transaction.timeout.ms") == 0) {
    transactional["transaction.timeout.ms"] = std::to_string(std::max(60000, message_timeout_ms_ * 4));
  }
  KafkaConf conf = makeKafkaConf({&settings_, &transactional});
  rd_kafka_conf_set_dr_msg_cb(conf.get(), onDelivery);
  char error[512];
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf.get(), error, sizeof(error));
  if (rk == nullptr) {
    return fail(sdk::Status(sdk::StatusCode::kTransient,
                            std::string("cannot create a transactional producer: ") + error));
  }
  conf.release();
  auto producer = std::make_unique<TxnProducer>();
  producer->handle.reset(rk);
  nameKafkaClient(rk, "api (transactions)");
  if (rd_kafka_error_t* failure = rd_kafka_init_transactions(rk, message_timeout_ms_)) {
    return fail(transient("Kafka refused to start transactions", failure));
  }
  return producer;
}

void EventProducer::releaseTxn(std::unique_ptr<TxnProducer> producer, bool healthy) {
  std::lock_guard lock(txn_mutex_);
  if (healthy) {
    idle_txn_.push_back(std::move(producer));
  } else {
    --txn_count_;
    producer.reset();
  }
  txn_freed_.notify_one();
}

sdk::Result<std::vector<RecordPositionOut>> EventProducer::produceAtomically(
    const std::vector<OutgoingRecord>& records) {
  if (records.size() == 1) {
    auto stored = produce(records[0].topic, records[0].key, records[0].value);
    if (!stored) return stored.status();
    return std::vector<RecordPositionOut>{stored.value()};
  }
  bool refused = false;
  return produceGated(records, [](const std::vector<RecordPositionOut>&) { return true; }, refused);
}

/// Calls sharing one transaction. Until the leader seals it, `members` and `records` grow under
/// the producer's forming_mutex_ (and nobody reads them); after, everything is under `mutex`.
struct EventProducer::Group {
  struct Member {
    const std::vector<OutgoingRecord>* records = nullptr;
    const std::function<bool(const std::vector<RecordPositionOut>&)>* gate = nullptr;
    std::vector<RecordPositionOut> positions;
    bool gate_ok = false;
    bool gate_refused = false;
    sdk::Status status;  ///< the member's outcome, when it failed
  };
  std::size_t records = 0;  ///< over all members
  std::vector<Member> members;
  std::mutex mutex;
  std::condition_variable cv;
  bool produced = false;         ///< every record acknowledged: the members may gate
  std::size_t gates_pending = 0;
  bool done = false;             ///< outcomes published
};

std::shared_ptr<EventProducer::Group> EventProducer::joinGroup(
    const std::vector<OutgoingRecord>& records,
    const std::function<bool(const std::vector<RecordPositionOut>&)>& gate, std::size_t& index,
    bool& leader) {
  std::lock_guard lock(forming_mutex_);
  leader = !forming_ || forming_->records + records.size() > kMaxGroupRecords;
  if (leader) forming_ = std::make_shared<Group>();
  std::shared_ptr<Group> group = forming_;
  index = group->members.size();
  group->members.push_back({});
  group->members.back().records = &records;
  group->members.back().gate = &gate;
  group->records += records.size();
  return group;
}

sdk::Result<std::vector<RecordPositionOut>> EventProducer::produceGated(
    const std::vector<OutgoingRecord>& records,
    const std::function<bool(const std::vector<RecordPositionOut>&)>& gate, bool& gate_refused) {
  gate_refused = false;
  std::size_t index = 0;
  bool leader = false;
  const std::shared_ptr<Group> group = joinGroup(records, gate, index, leader);
  // The leader (the group's first member) produces, gates inline, and commits or aborts.
  if (leader) leadGroup(*group);
  std::unique_lock lock(group->mutex);
  group->cv.wait(lock, [&] { return group->produced || group->done; });
  if (!group->done) {
    // Every record of the group is acknowledged: answer this call's gate, on this thread (it
    // commits this call's PostgreSQL transaction).
    Group::Member& me = group->members[index];
    const std::vector<RecordPositionOut> positions = me.positions;
    lock.unlock();
    const bool ok = gate(positions);
    lock.lock();
    group->members[index].gate_ok = ok;
    if (--group->gates_pending == 0) group->cv.notify_all();
    group->cv.wait(lock, [&] { return group->done; });
  }
  Group::Member& me = group->members[index];
  gate_refused = me.gate_refused;
  sdk::Result<std::vector<RecordPositionOut>> result =
      me.status.isOk() ? sdk::Result<std::vector<RecordPositionOut>>(me.positions)
                     : sdk::Result<std::vector<RecordPositionOut>>(me.status);
  return result;
}

void EventProducer::leadGroup(Group& group) {
  auto producer = acquireTxn();
  {
    // Sealed: later calls start the next group.
    std::lock_guard lock(forming_mutex_);
    if (forming_.get() == &group) forming_.reset();
  }
  sdk::Status status;
  bool healthy = true;
  if (!producer) {
    status = producer.status();
  } else {
    rd_kafka_t* rk = producer.value()->handle.get();
    status = runTransaction(rk, group, healthy);
    if (!status.isOk() && healthy) {
      // Whatever failed, the transaction must not stay open: abort it, and if even that fails
      // drop the producer (its transactional.id is never used again; the coordinator aborts
      // what it left open after transaction.timeout.ms).
      if (rd_kafka_error_t* failure = rd_kafka_abort_transaction(rk, message_timeout_ms_)) {
        spdlog::warn("api: aborting a Kafka transaction failed ({}); dropping the producer",
                     rd_kafka_error_string(failure));
        rd_kafka_error_destroy(failure);
        healthy = false;
      }
    }
    releaseTxn(std::move(producer.value()), healthy);
  }
  std::lock_guard lock(group.mutex);
  if (!status.isOk()) {
    for (auto& member : group.members) {
      if (member.status.isOk()) member.status = status;
    }
  }
  group.done = true;
  group.cv.notify_all();
}

sdk::Status EventProducer::runTransaction(rd_kafka_t* rk, Group& group, bool& healthy) {
  const auto failed = [&](const std::string& what, rd_kafka_error_t* failure) {
    // Fenced or fatal: this producer can do nothing more. Otherwise the caller aborts.
    if (rd_kafka_error_is_fatal(failure)) healthy = false;
    return transient(what, failure);
  };
  if (rd_kafka_error_t* failure = rd_kafka_begin_transaction(rk)) {
    healthy = false;  // a producer that cannot begin is in a state we cannot use
    return transient("cannot begin a Kafka transaction", failure);
  }
  // The group is sealed: its members and their records no longer change.
  std::vector<std::vector<std::shared_ptr<Delivery>>> deliveries(group.members.size());
  for (std::size_t m = 0; m < group.members.size(); ++m) {
    for (const auto& record : *group.members[m].records) {
      deliveries[m].push_back(std::make_shared<Delivery>());
      const rd_kafka_resp_err_t err =
          enqueue(rk, record.topic, record.key, record.value, deliveries[m].back());
      if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        return sdk::Status(sdk::StatusCode::kTransient,
                           std::string("cannot enqueue the event: ") + rd_kafka_err2str(err));
      }
    }
  }
  // Serves the delivery reports of this producer (it has no poller thread of its own).
  rd_kafka_flush(rk, message_timeout_ms_ + 1000);
  std::vector<std::vector<RecordPositionOut>> positions(group.members.size());
  for (std::size_t m = 0; m < group.members.size(); ++m) {
    const auto& records = *group.members[m].records;
    for (std::size_t i = 0; i < records.size(); ++i) {
      Delivery& delivery = *deliveries[m][i];
      if (!awaitDelivery(delivery, std::chrono::milliseconds(message_timeout_ms_ + 5000))) {
        return sdk::Status(sdk::StatusCode::kTransient, "no delivery report from Kafka in time");
      }
      if (delivery.error != RD_KAFKA_RESP_ERR_NO_ERROR) {
        if (delivery.error == RD_KAFKA_RESP_ERR__FENCED ||
            delivery.error == RD_KAFKA_RESP_ERR_PRODUCER_FENCED ||
            delivery.error == RD_KAFKA_RESP_ERR_INVALID_PRODUCER_EPOCH) {
          healthy = false;
        }
        return sdk::Status(sdk::StatusCode::kTransient,
                           std::string("Kafka did not store the event: ") +
                               rd_kafka_err2str(delivery.error));
      }
      positions[m].push_back({records[i].topic, delivery.partition, delivery.offset});
    }
  }
  // Each member gates on its own thread; the transaction waits for all of them.
  std::size_t refused = 0;
  {
    std::unique_lock lock(group.mutex);
    for (std::size_t m = 0; m < group.members.size(); ++m) {
      group.members[m].positions = std::move(positions[m]);
    }
    group.gates_pending = group.members.size();
    group.produced = true;
    group.cv.notify_all();
    // The leader's own gate, here on its thread (member 0); the others run theirs on theirs.
    Group::Member& leader = group.members.front();
    const std::vector<RecordPositionOut> mine = leader.positions;
    lock.unlock();
    const bool ok = (*leader.gate)(mine);
    lock.lock();
    group.members.front().gate_ok = ok;
    --group.gates_pending;
    group.cv.wait(lock, [&] { return group.gates_pending == 0; });
    for (auto& member : group.members) {
      if (member.gate_ok) continue;
      ++refused;
      member.gate_refused = true;
      member.status = sdk::Status(sdk::StatusCode::kTransient, "the command lost its aggregate lock");
    }
  }
  if (refused > 0) {
    return sdk::Status(sdk::StatusCode::kTransient,
                       "aborted: another command in the same Kafka transaction lost its "
                       "aggregate lock; nothing was published, retry");
  }
  if (rd_kafka_error_t* failure = rd_kafka_commit_transaction(rk, message_timeout_ms_ + 5000)) {
    return failed("Kafka did not commit the events' transaction", failure);
  }
  ++transactions_committed_;
  calls_committed_ += group.members.size();
  return sdk::Status();
}

EventProducer::TransactionStats EventProducer::transactionStats() {
  TransactionStats stats;
  stats.transactions_committed = transactions_committed_.load();
  stats.calls_committed = calls_committed_.load();
  std::lock_guard lock(forming_mutex_);
  if (forming_) stats.calls_waiting = forming_->members.size();
  return stats;
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

std::optional<int> EventProducer::partitionCount(const std::string& topic,
                                                 std::chrono::milliseconds timeout) {
  const auto now = std::chrono::steady_clock::now();
  {
    std::lock_guard lock(partitions_mutex_);
    const auto it = partitions_.find(topic);
    if (it != partitions_.end() && now - it->second.second < kPartitionCountTtl) {
      return it->second.first;
    }
  }
  rd_kafka_topic_t* rkt = rd_kafka_topic_new(handle_.get(), topic.c_str(), nullptr);
  if (rkt == nullptr) return std::nullopt;
  const rd_kafka_metadata_t* metadata = nullptr;
  const rd_kafka_resp_err_t err = rd_kafka_metadata(handle_.get(), 0, rkt, &metadata,
                                                    static_cast<int>(timeout.count()));
  rd_kafka_topic_destroy(rkt);
  std::optional<int> count;
  if (err == RD_KAFKA_RESP_ERR_NO_ERROR && metadata != nullptr && metadata->topic_cnt == 1 &&
      metadata->topics[0].err == RD_KAFKA_RESP_ERR_NO_ERROR) {
    count = metadata->topics[0].partition_cnt;
  }
  if (metadata != nullptr) rd_kafka_metadata_destroy(metadata);
  if (count) {
    std::lock_guard lock(partitions_mutex_);
    partitions_[topic] = {*count, now};
  }
  return count;
}

std::optional<LogEnds> EventProducer::logEnds(const std::vector<std::string>& topics,
                                              std::chrono::milliseconds timeout) {
  std::unique_ptr<rd_kafka_topic_partition_list_t, void (*)(rd_kafka_topic_partition_list_t*)>
      list(rd_kafka_topic_partition_list_new(8), &rd_kafka_topic_partition_list_destroy);
  for (const auto& topic : topics) {
    const auto count = partitionCount(topic, timeout);
    if (!count) return std::nullopt;
    for (int p = 0; p < *count; ++p) {
      // Timestamp -1 asks ListOffsets for the latest offset: the high watermark (the handle is
      // read_uncommitted), so records of open transactions are waited for too.
      rd_kafka_topic_partition_list_add(list.get(), topic.c_str(), p)->offset = -1;
    }
  }
  LogEnds ends;
  if (list->cnt == 0) return ends;
  if (rd_kafka_offsets_for_times(handle_.get(), list.get(), static_cast<int>(timeout.count())) !=
      RD_KAFKA_RESP_ERR_NO_ERROR) {
    return std::nullopt;
  }
  for (int i = 0; i < list->cnt; ++i) {
    const auto& elem = list->elems[i];
    if (elem.err != RD_KAFKA_RESP_ERR_NO_ERROR || elem.offset < 0) return std::nullopt;
    ends[{elem.topic, elem.partition}] = elem.offset;
  }
  return ends;
}

}  // namespace ultracore::engine
