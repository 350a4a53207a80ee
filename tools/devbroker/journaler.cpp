#include "journaler.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <set>
#include <thread>

#include "log.h"

namespace ultracore::devbroker {
namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

constexpr milliseconds kRefreshEvery{500};
constexpr size_t kMaxBatch = 10000;

std::string tp(const std::string& topic, int32_t partition) {
  return topic + "[" + std::to_string(partition) + "]";
}

/// Delivery bookkeeping of a replay, reached through the producer's opaque.
struct ReplayState {
  std::vector<int64_t> offsets;  ///< offset the mock gave each journal record
  size_t delivered = 0;
  size_t failed = 0;
  std::string first_error;
};

void onDelivery(rd_kafka_t*, const rd_kafka_message_t* m, void* opaque) {
  auto* state = static_cast<ReplayState*>(opaque);
  auto index = reinterpret_cast<uintptr_t>(m->_private);
  if (m->err) {
    if (state->failed++ == 0) state->first_error = rd_kafka_err2str(m->err);
  } else {
    state->offsets[index] = m->offset;
  }
  ++state->delivered;
}

}  // namespace

Journaler::Journaler(MockCluster& cluster, std::filesystem::path dir)
    : cluster_(cluster), dir_(std::move(dir)), file_(dir_ / "journal.ucj") {
  std::filesystem::create_directories(dir_);
  auto lock_path = dir_ / "devbroker.lock";
  lock_fd_ = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (lock_fd_ < 0)
    throw std::runtime_error("cannot open " + lock_path.string() + ": " + std::strerror(errno));
  if (::flock(lock_fd_, LOCK_EX | LOCK_NB) != 0)
    throw std::runtime_error("data dir " + dir_.string() +
                             " is in use by another ultracore-devbroker");
}

Journaler::~Journaler() {
  for (auto& [name, topic] : topics_) {
    if (!topic.handle) continue;
    for (int32_t p = 0; p < topic.partitions; ++p)
      if (topic.started[static_cast<size_t>(p)]) rd_kafka_consume_stop(topic.handle, p);
    rd_kafka_topic_destroy(topic.handle);
  }
  if (queue_) rd_kafka_queue_destroy(queue_);
  consumer_.reset();
  if (lock_fd_ >= 0) ::close(lock_fd_);
}

std::string Journaler::restore() {
  JournalContents journal = readJournal(file_);
  keep_bytes_ = journal.valid_bytes;
  if (journal.torn_tail)
    logLine("journal " + file_.string() +
            ": dropping a torn final frame (the broker was killed "
            "while writing); records after byte " +
            std::to_string(journal.valid_bytes) + " were never acknowledged as journaled");

  // The last frame of a topic wins (a topic is re-journaled if its partition count changes).
  std::map<uint32_t, JournalTopic> by_id;
  for (const auto& t : journal.topics) by_id[t.id] = t;
  for (const auto& [id, t] : by_id) {
    cluster_.createTopic(t.name, t.partitions);
    TopicState state;
    state.id = id;
    state.partitions = t.partitions;
    state.next.assign(static_cast<size_t>(t.partitions), 0);
    state.started.assign(static_cast<size_t>(t.partitions), false);
    topics_[t.name] = std::move(state);
    next_topic_id_ = std::max(next_topic_id_, id + 1);
  }
  if (journal.records.empty()) {
    return "journal " + file_.string() + ": " + std::to_string(by_id.size()) +
           " topic(s), no records";
  }

  // Offsets the journal expects, and whether they run 0,1,2,... per partition.
  std::map<std::pair<uint32_t, int32_t>, int64_t> counts;
  bool contiguous = true;
  for (const auto& r : journal.records) {
    auto it = by_id.find(r.topic_id);
    if (it == by_id.end() || r.partition < 0 || r.partition >= it->second.partitions)
      throw std::runtime_error("journal " + file_.string() + " has a record for unknown topic " +
                               "id " + std::to_string(r.topic_id) + " partition " +
                               std::to_string(r.partition));
    int64_t& count = counts[{r.topic_id, r.partition}];
    if (r.offset != count) contiguous = false;
    ++count;
  }

  ReplayState state;
  state.offsets.assign(journal.records.size(), -1);
  KafkaHandle producer = makeClient(RD_KAFKA_PRODUCER,
                                    {{"bootstrap.servers", cluster_.bootstrap()},
                                     {"client.id", "ultracore-devbroker-replay"},
                                     {"enable.idempotence", "true"},
                                     {"acks", "all"},
                                     {"linger.ms", "5"},
                                     {"batch.num.messages", "10000"},
                                     {"message.max.bytes", "100000000"},
                                     {"queue.buffering.max.messages", "1000000"},
                                     {"queue.buffering.max.kbytes", "1048576"},
                                     {"message.timeout.ms", "0"},
                                     {"allow.auto.create.topics", "false"},
                                     {"log_level", "4"}},
                                    [&state](rd_kafka_conf_t* conf) {
                                      rd_kafka_conf_set_dr_msg_cb(conf, onDelivery);
                                      rd_kafka_conf_set_opaque(conf, &state);
                                    });

  static const char kEmpty[1] = {0};
  for (size_t i = 0; i < journal.records.size(); ++i) {
    const JournalRecord& r = journal.records[i];
    const std::string& topic = by_id[r.topic_id].name;
    for (;;) {
      rd_kafka_headers_t* headers = nullptr;
      if (!r.headers.empty()) {
        headers = rd_kafka_headers_new(r.headers.size());
        for (const auto& h : r.headers)
          rd_kafka_header_add(headers, h.name.data(), static_cast<ssize_t>(h.name.size()),
                              h.value ? (h.value->empty() ? kEmpty : h.value->data()) : nullptr,
                              h.value ? static_cast<ssize_t>(h.value->size()) : 0);
      }
      // Null and empty differ in Kafka: a null key/value is sent as a null pointer.
      const void* key = r.key ? (r.key->empty() ? kEmpty : r.key->data()) : nullptr;
      size_t key_size = r.key ? r.key->size() : 0;
      void* value =
          r.value ? const_cast<char*>(r.value->empty() ? kEmpty : r.value->data()) : nullptr;
      size_t value_size = r.value ? r.value->size() : 0;
      int64_t timestamp = r.timestamp > 0 ? r.timestamp : 0;  // 0 = "now" to librdkafka
      auto err = rd_kafka_producev(
          producer.get(), RD_KAFKA_V_TOPIC(topic.c_str()), RD_KAFKA_V_PARTITION(r.partition),
          RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_KEY(key, key_size),
          RD_KAFKA_V_VALUE(value, value_size), RD_KAFKA_V_TIMESTAMP(timestamp),
          RD_KAFKA_V_HEADERS(headers),
          RD_KAFKA_V_OPAQUE(reinterpret_cast<void*>(static_cast<uintptr_t>(i))), RD_KAFKA_V_END);
      if (!err) break;
      if (headers) rd_kafka_headers_destroy(headers);
      if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL)
        throw KafkaError("replay of " + tp(topic, r.partition) + " offset " +
                             std::to_string(r.offset) + " failed",
                         err);
      rd_kafka_poll(producer.get(), 50);
    }
    rd_kafka_poll(producer.get(), 0);
  }
  auto deadline = Clock::now() + std::chrono::minutes(10);
  while (rd_kafka_outq_len(producer.get()) > 0 && Clock::now() < deadline)
    rd_kafka_flush(producer.get(), 1000);
  if (state.delivered != journal.records.size() || state.failed > 0)
    throw std::runtime_error("replay failed: " + std::to_string(state.delivered) + " of " +
                             std::to_string(journal.records.size()) + " records delivered, " +
                             std::to_string(state.failed) + " failed (" + state.first_error + ")");
  producer.reset();

  // Same offsets as journaled? Then the broker's log is what it was before.
  size_t moved = 0;
  for (size_t i = 0; i < journal.records.size(); ++i)
    if (state.offsets[i] != journal.records[i].offset) ++moved;
  if (moved > 0 && contiguous)
    throw std::runtime_error("replay put " + std::to_string(moved) +
                             " record(s) at other offsets than the journal has; refusing to "
                             "run with a log that differs from the journal");
  for (auto& [name, topic] : topics_) {
    auto marks = cluster_.watermarks(name, topic.partitions, milliseconds(5000));
    for (const auto& w : marks) {
      if (w.error) throw KafkaError("cannot read watermarks of " + tp(name, w.partition), w.error);
      auto it = counts.find({topic.id, w.partition});
      int64_t expected = it == counts.end() ? 0 : it->second;
      if (w.high != expected)
        throw std::runtime_error("after replay " + tp(name, w.partition) + " ends at offset " +
                                 std::to_string(w.high) + ", the journal has " +
                                 std::to_string(expected) + " record(s)");
      topic.next[static_cast<size_t>(w.partition)] = w.high;
    }
  }
  if (moved > 0) {
    // The journal itself had holes (records the mock's retention dropped before they were
    // journaled): the replayed log is dense, so the journal is rewritten to match it.
    logLine("journal had offset gaps; " + std::to_string(moved) +
            " record(s) now sit at lower offsets; rewriting the journal to match the log");
    for (size_t i = 0; i < journal.records.size(); ++i)
      journal.records[i].offset = state.offsets[i];
    std::vector<JournalTopic> topics;
    for (const auto& [id, t] : by_id) topics.push_back(t);
    rewriteJournal(file_, topics, journal.records);
    keep_bytes_ = std::filesystem::file_size(file_);
  }
  return "journal " + file_.string() + ": replayed " + std::to_string(journal.records.size()) +
         " record(s) into " + std::to_string(by_id.size()) + " topic(s), offsets verified";
}

void Journaler::start() {
  writer_ = std::make_unique<JournalWriter>(file_, keep_bytes_);
  consumer_ = makeClient(RD_KAFKA_CONSUMER, {{"bootstrap.servers", cluster_.bootstrap()},
                                             {"client.id", "ultracore-devbroker-journal"},
                                             {"isolation.level", "read_uncommitted"},
                                             {"enable.partition.eof", "false"},
                                             {"fetch.wait.max.ms", "100"},
                                             {"fetch.error.backoff.ms", "100"},
                                             {"allow.auto.create.topics", "false"},
                                             {"log.connection.close", "false"},
                                             {"log_level", "3"}});
  queue_ = rd_kafka_queue_new(consumer_.get());
  for (auto& [name, topic] : topics_) startPartitions(name, topic);
  refreshMetadata();
  writer_->sync();
}

void Journaler::startPartitions(const std::string& name, TopicState& topic) {
  if (!topic.handle) {
    rd_kafka_topic_conf_t* conf = rd_kafka_topic_conf_new();
    char err[256];
    rd_kafka_topic_conf_set(conf, "auto.offset.reset", "smallest", err, sizeof(err));
    topic.handle = rd_kafka_topic_new(consumer_.get(), name.c_str(), conf);
    if (!topic.handle) throw KafkaError("cannot open topic " + name, rd_kafka_last_error());
  }
  topic.next.resize(static_cast<size_t>(topic.partitions), 0);
  topic.started.resize(static_cast<size_t>(topic.partitions), false);
  for (int32_t p = 0; p < topic.partitions; ++p) {
    auto i = static_cast<size_t>(p);
    if (topic.started[i]) continue;
    if (rd_kafka_consume_start_queue(topic.handle, p, topic.next[i], queue_) != 0)
      throw KafkaError("cannot start journaling " + tp(name, p), rd_kafka_last_error());
    topic.started[i] = true;
  }
}

void Journaler::refreshMetadata() {
  next_refresh_ = Clock::now() + kRefreshEvery;
  std::vector<TopicInfo> now;
  try {
    now = listTopics(consumer_.get(), milliseconds(1000));
  } catch (const KafkaError& e) {
    if (Clock::now() >= next_error_log_) {
      logLine(std::string("journal: ") + e.what() + " (retrying)");
      next_error_log_ = Clock::now() + std::chrono::seconds(10);
    }
    return;
  }
  for (const auto& info : now) {
    auto [it, added] = topics_.try_emplace(info.name);
    TopicState& topic = it->second;
    if (!added && info.partitions <= topic.partitions) continue;
    if (added) topic.id = next_topic_id_++;
    topic.partitions = info.partitions;
    writer_->appendTopic({topic.id, info.name, info.partitions});
    startPartitions(info.name, topic);
  }
}

void Journaler::journalMessage(const rd_kafka_message_t* m) {
  std::string name = rd_kafka_topic_name(m->rkt);
  if (m->err) {
    if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
      logLine("journal: " + tp(name, m->partition) + ": " + rd_kafka_message_errstr(m));
    return;
  }
  auto it = topics_.find(name);
  if (it == topics_.end() || m->partition < 0 || m->partition >= it->second.partitions) return;
  TopicState& topic = it->second;
  int64_t& next = topic.next[static_cast<size_t>(m->partition)];
  if (m->offset < next) return;  // seen already
  if (m->offset > next)
    logLine("journal: " + tp(name, m->partition) + ": offsets " + std::to_string(next) + ".." +
            std::to_string(m->offset - 1) +
            " left the mock's log (retention) before they were journaled");

  JournalRecord r;
  r.topic_id = topic.id;
  r.partition = m->partition;
  r.offset = m->offset;
  rd_kafka_timestamp_type_t type = RD_KAFKA_TIMESTAMP_NOT_AVAILABLE;
  r.timestamp = rd_kafka_message_timestamp(m, &type);
  r.timestamp_type = static_cast<int8_t>(type);
  if (m->key) r.key.emplace(static_cast<const char*>(m->key), m->key_len);
  if (m->payload) r.value.emplace(static_cast<const char*>(m->payload), m->len);
  rd_kafka_headers_t* headers = nullptr;
  if (rd_kafka_message_headers(m, &headers) == RD_KAFKA_RESP_ERR_NO_ERROR && headers) {
    const char* hname = nullptr;
    const void* value = nullptr;
    size_t size = 0;
    for (size_t i = 0;
         rd_kafka_header_get_all(headers, i, &hname, &value, &size) == RD_KAFKA_RESP_ERR_NO_ERROR;
         ++i) {
      JournalHeader h;
      h.name = hname;
      if (value) h.value.emplace(static_cast<const char*>(value), size);
      r.headers.push_back(std::move(h));
    }
  }
  writer_->appendRecord(r);
  next = m->offset + 1;
}

void Journaler::pollOnce(milliseconds wait) {
  if (Clock::now() >= next_refresh_) refreshMetadata();
  rd_kafka_message_t* m = rd_kafka_consume_queue(queue_, static_cast<int>(wait.count()));
  size_t count = 0;
  while (m) {
    journalMessage(m);
    rd_kafka_message_destroy(m);
    if (++count >= kMaxBatch) break;
    m = rd_kafka_consume_queue(queue_, 0);
  }
  writer_->sync();
}

bool Journaler::drain(milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  refreshMetadata();
  std::map<std::string, std::vector<int64_t>> targets;
  for (const auto& [name, topic] : topics_) {
    auto& target = targets[name];
    for (const auto& w : cluster_.watermarks(name, topic.partitions, milliseconds(2000))) {
      if (w.error) {
        logLine("journal: cannot read the high watermark of " + tp(name, w.partition) + ": " +
                rd_kafka_err2str(w.error));
        target.push_back(-1);
      } else {
        target.push_back(w.high);
      }
    }
  }
  for (;;) {
    size_t behind = 0;
    for (const auto& [name, target] : targets) {
      const TopicState& topic = topics_.at(name);
      for (size_t p = 0; p < target.size(); ++p)
        if (target[p] >= 0 && topic.next[p] < target[p]) ++behind;
    }
    if (behind == 0) {
      writer_->sync();
      return true;
    }
    if (Clock::now() >= deadline) {
      writer_->sync();
      logLine("journal: " + std::to_string(behind) +
              " partition(s) not fully journaled when the stop time-out ran out");
      return false;
    }
    pollOnce(milliseconds(100));
  }
}

}  // namespace ultracore::devbroker
