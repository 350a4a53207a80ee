#include "engine/runner/projection_runner.h"

#include <algorithm>
#include <cctype>
#include <set>
#include <stdexcept>

#include <nlohmann/json.hpp>
#include <pqxx/connection>
#include <pqxx/result>
#include <pqxx/transaction>
#include <spdlog/spdlog.h>

#include "engine/postgres/dedupe_store.h"
#include "engine/postgres/pg_errors.h"
#include "engine/postgres/pg_writer.h"
#include "engine/postgres/sql_array.h"
#include "engine/runner/envelope.h"

namespace ultracore::engine {
namespace {

constexpr auto kIdlePoll = std::chrono::milliseconds(100);
/// Consumer prefetch defaults (see createConsumer and docs/PERFORMANCE.md).
constexpr int kQueuedMaxKbytes = 8192;  // 8 MiB
constexpr int kFetchMaxBytes = 2097152;  // 2 MiB
/// How often a runner looks for operator requests (dead-letters retry, discard releases).
constexpr auto kRequestCheckInterval = std::chrono::milliseconds(500);
/// How often a runner whose topic is missing asks Kafka again (all-topics metadata).
constexpr auto kMissingTopicCheckInterval = std::chrono::milliseconds(1000);
constexpr int kMetadataTimeoutMs = 5000;
/// How many times in a row a batch may fail with the same transient fault that the batch
/// itself may cause (mayRecurWithTheSameWork) before it is split as for poison.
constexpr int kSameFaultBeforeSplit = 3;

/// "topic[3]@17 event_id=..." for messages about one record.
std::string describe(const KafkaRecord& record, const std::optional<sdk::Event>& event) {
  std::string out = record.topic + "[" + std::to_string(record.partition) + "]@" +
                    std::to_string(record.offset);
  if (event) out += " event_id=" + event->eventId();
  return out;
}

}  // namespace

const char* toString(RunnerState state) {
  switch (state) {
    case RunnerState::kStarting: return "starting";
    case RunnerState::kRunning: return "running";
    case RunnerState::kWaiting: return "waiting";
    case RunnerState::kStopped: return "stopped";
    case RunnerState::kFailed: return "failed";
    case RunnerState::kPaused: return "paused";
  }
  return "unknown";
}

Histogram::Histogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)),
      counts_(std::make_unique<std::atomic<std::uint64_t>[]>(bounds_.size() + 1)) {}

void Histogram::observe(double value) {
  const auto bucket = static_cast<std::size_t>(
      std::lower_bound(bounds_.begin(), bounds_.end(), value) - bounds_.begin());
  counts_[bucket].fetch_add(1, std::memory_order_relaxed);
  sum_.fetch_add(value, std::memory_order_relaxed);
}

std::vector<std::uint64_t> Histogram::counts() const {
  std::vector<std::uint64_t> out(bounds_.size() + 1);
  for (std::size_t i = 0; i < out.size(); ++i) out[i] = counts_[i].load(std::memory_order_relaxed);
  return out;
}

ProjectionRunner::ProjectionRunner(RunnerSettings settings,
                                   std::shared_ptr<sdk::Projection> projection)
    : settings_(std::move(settings)),
      label_(settings_.spec.workers > 1
                 ? settings_.spec.name + "#" + std::to_string(settings_.worker)
                 : settings_.spec.name),
      projection_(std::move(projection)),
      offsets_(settings_.key.empty() ? settings_.spec.name : settings_.key),
      failures_(offsets_.projection()) {}

std::string ProjectionRunner::stateName() const {
  const RunnerState state = state_.load();
  if (settings_.building && state == RunnerState::kRunning) return "rebuilding";
  return toString(state);
}

bool ProjectionRunner::generationHolds(pqxx::transaction_base& txn) {
  if (settings_.generation == 0) return true;
  const auto held = txn.exec_params(
      "SELECT $3 OR switch_until IS NULL OR switch_until < now() FROM ultracore_generations "
      "WHERE projection = $1 AND "
      "(CASE WHEN $3 THEN building_generation ELSE live_generation END) = $2 FOR SHARE",
      settings_.projection.empty() ? settings_.spec.name : settings_.projection,
      settings_.generation, settings_.building);
  if (!held.empty()) {
    if (held[0][0].as<bool>()) return true;
    // An engine is switching to a new generation (migrations/0005): the live one is frozen in
    // every engine until it is done. Wait; then this generation is either live still or not.
    throw TransientError("a switch to a new generation is in progress");
  }
  if (!superseded_.exchange(true)) {
    spdlog::warn("[{}] generation {} is no longer {}: stopping without writing", label(),
                 settings_.generation, settings_.building ? "being built" : "live");
  }
  stop_ = true;
  return false;
}

ProjectionRunner::~ProjectionRunner() {
  requestStop();
  join();
}

void ProjectionRunner::start() { thread_ = std::thread([this] { run(); }); }
void ProjectionRunner::requestStop() { stop_ = true; }
void ProjectionRunner::join() {
  if (thread_.joinable()) thread_.join();
}

std::string ProjectionRunner::detail() const {
  std::lock_guard lock(detail_mutex_);
  return detail_;
}

void ProjectionRunner::setState(RunnerState state, const std::string& detail) {
  // An operator pause outlives transient faults: "running again" means "paused again".
  if (state == RunnerState::kRunning && paused_) state = RunnerState::kPaused;
  const RunnerState previous = state_.exchange(state);
  {
    std::lock_guard lock(detail_mutex_);
    if (previous == state && detail_ == detail) return;
    detail_ = detail;
  }
  if (state == RunnerState::kWaiting) {
    spdlog::warn("[{}] waiting: {}", label(), detail);
  } else if (state == RunnerState::kFailed) {
    spdlog::error("[{}] stopped on error: {}", label(), detail);
  } else {
    spdlog::info("[{}] {}{}{}", label(), toString(state), detail.empty() ? "" : ": ", detail);
  }
  if (!connection_) return;
  try {  // Best effort: the status table is for operators, never a reason to fail.
    pqxx::work txn(*connection_, "ultracore-status");
    txn.exec_params0(
        "INSERT INTO ultracore_projection_status (projection, state, detail) VALUES ($1, $2, $3) "
        "ON CONFLICT (projection) DO UPDATE SET state = EXCLUDED.state, detail = EXCLUDED.detail, "
        "updated_at = now()",
        name(), stateName(), detail);
    txn.commit();
  } catch (const std::exception& e) {
    spdlog::debug("[{}] could not record status: {}", label(), e.what());
  }
}

void ProjectionRunner::fail(const std::string& detail) {
  setState(RunnerState::kFailed, detail);
  stop_ = true;
}

bool ProjectionRunner::backoff(int attempt) {
  const auto delay = std::min(std::chrono::milliseconds(100) * (1 << std::min(attempt, 6)),
                              std::chrono::milliseconds(5000));
  const auto until = std::chrono::steady_clock::now() + delay;
  while (std::chrono::steady_clock::now() < until) {
    if (stop_) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return !stop_;
}

void ProjectionRunner::connectPostgres() {
  for (int attempt = 0; !stop_; ++attempt) {
    try {
      connection_ = std::make_unique<pqxx::connection>(settings_.postgres_url);
      // Every transaction of this connection rebuilds from Kafka: batches, dead letters and
      // operator requests (whose own rows are written durably by ultracore-ctl). A server
      // crash rolls the latest ones back whole, offsets included, and the runner redoes them.
      if (!settings_.spec.batch.synchronous_commit) {
        connection_->set_variable("synchronous_commit", "off");
      }
      return;
    } catch (...) {
      setState(RunnerState::kWaiting, statusFromCurrentException().message());
      connection_.reset();
      if (!backoff(attempt)) return;
    }
  }
}

namespace {
bool isMemberIdChar(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '.' || c == '_' || c == '-';
}
}  // namespace

std::string staticMemberId(const std::string& instance_id, const std::string& key, int worker) {
  std::string id = instance_id + "." + key + ".w" + std::to_string(worker);
  for (char& c : id) {
    if (!isMemberIdChar(c)) c = '-';
  }
  return id;
}

void validateInstanceId(const std::string& instance_id) {
  if (instance_id.empty() || instance_id.size() > 100 ||
      !std::all_of(instance_id.begin(), instance_id.end(), isMemberIdChar)) {
    throw std::invalid_argument("instance id '" + instance_id +
                                "' must be 1 to 100 characters of A-Z, a-z, 0-9, '.', '_' and '-'");
  }
}

void ProjectionRunner::rebalanceTrampoline(rd_kafka_t*, rd_kafka_resp_err_t err,
                                           rd_kafka_topic_partition_list_t* partitions,
                                           void* opaque) {
  static_cast<ProjectionRunner*>(opaque)->onRebalance(err, partitions);
}

void ProjectionRunner::createConsumer() {
  // Bounded prefetch. librdkafka's defaults (64 MiB queued, 50 MiB fetches) let a consumer
  // that is assigned a backlog pull hundreds of MiB into memory before the first batch
  // commits. The bound is in bytes only: with queued.min.messages at 10000 instead of
  // librdkafka's 100000, runners sat on an empty queue for a third of a 1M-event catch-up
  // (docs/PERFORMANCE.md). Fetches are 2 MiB: Apache Kafka fills a fetch up to its limit (the
  // dev broker did not), and with 8 MiB the engine's peak RSS on Kafka reached 228-318 MiB
  // against 119-125 MiB at 2 MiB, with no throughput cost measured (docs/PERFORMANCE.md, "Real
  // Apache Kafka beside the dev broker"). A manifest `kafka:` entry (global or per projection)
  // overrides these.
  const std::map<std::string, std::string> defaults = {
      {"queued.max.messages.kbytes", std::to_string(kQueuedMaxKbytes)},
      {"fetch.max.bytes", std::to_string(kFetchMaxBytes)},
  };
  std::map<std::string, std::string> enforced = {
      {"group.id", settings_.spec.group_id},
      {"enable.auto.commit", "false"},
      {"enable.auto.offset.store", "false"},
      // A stored offset that is no longer in the log must stop the projection, never skip.
      {"auto.offset.reset", "error"},
      // Topics are managed (ultracore-ctl topics ensure): subscribing never creates one.
      {"allow.auto.create.topics", "false"},
  };
  if (!settings_.instance_id.empty()) {
    enforced["group.instance.id"] = staticMemberId(
        settings_.instance_id, settings_.key.empty() ? settings_.spec.name : settings_.key,
        settings_.worker);
  }
  KafkaConf conf = makeKafkaConf({&defaults, &settings_.kafka, &settings_.spec.kafka, &enforced});
  rd_kafka_conf_set_rebalance_cb(conf.get(), &ProjectionRunner::rebalanceTrampoline);
  // Without an error callback librdkafka only logs "broker down": the status must say it.
  rd_kafka_conf_set_error_cb(conf.get(), &ProjectionRunner::errorTrampoline);
  rd_kafka_conf_set_opaque(conf.get(), this);
  char error[512];
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf.get(), error, sizeof(error));
  if (rk == nullptr) throw KafkaConfigError(std::string("cannot create consumer: ") + error);
  conf.release();  // owned by rk now
  consumer_.reset(rk);
  nameKafkaClient(rk, label());
  rd_kafka_poll_set_consumer(rk);

  rd_kafka_topic_partition_list_t* topics =
      rd_kafka_topic_partition_list_new(static_cast<int>(settings_.spec.topics.size()));
  for (const auto& topic : settings_.spec.topics) {
    rd_kafka_topic_partition_list_add(topics, topic.c_str(), RD_KAFKA_PARTITION_UA);
  }
  const rd_kafka_resp_err_t err = rd_kafka_subscribe(rk, topics);
  rd_kafka_topic_partition_list_destroy(topics);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    throw KafkaConfigError(std::string("cannot subscribe: ") + rd_kafka_err2str(err));
  }
}

void ProjectionRunner::run() {
  spdlog::info("[{}] starting: topics {}, group '{}', schema '{}', on_error {}", label(),
               fmt::join(settings_.spec.topics, ","), settings_.spec.group_id, settings_.schema,
               toString(settings_.spec.on_error));
  try {
    connectPostgres();
    if (!stop_) {
      createConsumer();
      setState(RunnerState::kRunning, "");
      checkTopics();
      pollLoop();
    }
  } catch (const std::exception& e) {
    fail(e.what());
  }
  if (consumer_) {
    if (state_ != RunnerState::kFailed) flushPending();
    rd_kafka_consumer_close(consumer_.get());  // revokes: the callback flushes nothing more
    if (!assigned_once_ && usesCooperativeAssignor()) {
      // librdkafka 2.0.2 asserts in rd_kafka_destroy when a cooperative-sticky consumer is
      // destroyed between its JoinGroup and its first assignment (librdkafka #4312, fixed in
      // 2.3.0), which would abort the whole engine. The closed handle is left to the process's
      // exit instead: a few idle threads, only for a runner stopped during its first join.
      spdlog::warn("[{}] stopped before its first assignment: leaving its closed consumer to "
                   "the process exit (librdkafka 2.0.2 cooperative-sticky bug #4312)",
                   label());
      static_cast<void>(consumer_.release());
    } else {
      consumer_.reset();
    }
  }
  if (state_ != RunnerState::kFailed) setState(RunnerState::kStopped, "");
  connection_.reset();
}

void ProjectionRunner::advanceOverGaps() {
  if (expected_.empty() || !connection_) return;
  rd_kafka_topic_partition_list_t* assignment = nullptr;
  if (rd_kafka_assignment(consumer_.get(), &assignment) != RD_KAFKA_RESP_ERR_NO_ERROR) return;
  const std::unique_ptr<rd_kafka_topic_partition_list_t, void (*)(rd_kafka_topic_partition_list_t*)>
      owner(assignment, &rd_kafka_topic_partition_list_destroy);
  // The position is the offset after the last record or control record this consumer served
  // to us: past a transaction's marker (or an aborted transaction) it is beyond every record.
  if (assignment->cnt == 0 || rd_kafka_position(consumer_.get(), assignment) != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return;
  }
  std::vector<OffsetAdvance> advances;
  for (int i = 0; i < assignment->cnt; ++i) {
    const auto& elem = assignment->elems[i];
    const auto it = expected_.find({elem.topic, elem.partition});
    if (it != expected_.end() && elem.offset >= 0 && elem.offset > it->second) {
      advances.push_back({it->first, it->second, elem.offset});
    }
  }
  if (advances.empty()) return;
  try {
    // Offsets only: the same compare-and-set and generation fence as a batch, no event.
    pqxx::work txn(*connection_, "ultracore-gap");
    if (!generationHolds(txn) || !offsets_.compareAndAdvance(txn, advances)) return;
    txn.commit();
    for (const auto& advance : advances) expected_[advance.partition] = advance.next;
    commitToKafka(advances);
  } catch (const std::exception& e) {
    // Nothing depends on it: the next batch moves the offsets anyway.
    spdlog::debug("[{}] moving the stored offsets past a gap failed: {}", label(), e.what());
  }
}

bool ProjectionRunner::usesCooperativeAssignor() const {
  char value[256] = {};
  size_t size = sizeof(value);
  if (rd_kafka_conf_get(rd_kafka_conf(consumer_.get()), "partition.assignment.strategy", value,
                        &size) != RD_KAFKA_CONF_OK) {
    return false;
  }
  return std::string(value).find("cooperative-sticky") != std::string::npos;
}

void ProjectionRunner::pollLoop() {
  const auto max_wait = std::chrono::milliseconds(settings_.spec.batch.max_wait_ms);
  const auto max_events = static_cast<std::size_t>(settings_.spec.batch.max_events);
  const bool flush_when_idle = settings_.spec.batch.flush_when_idle;
  // What consumer_poll serves from (the partitions' fetch queues forward into it).
  const std::unique_ptr<rd_kafka_queue_t, void (*)(rd_kafka_queue_t*)> queue(
      rd_kafka_queue_get_consumer(consumer_.get()), &rd_kafka_queue_destroy);
  while (!stop_) {
    if (pause_requested_ != paused_) applyPause();
    if (std::chrono::steady_clock::now() >= next_progress_) publishProgress();
    if ((!missing_topics_.empty() && std::chrono::steady_clock::now() >= next_topic_check_) ||
        topic_check_requested_) {
      topic_check_requested_ = false;
      checkTopics();
    }
    if (pending_.empty() && std::chrono::steady_clock::now() >= next_request_check_) {
      serviceFailureRequests();
      next_request_check_ = std::chrono::steady_clock::now() + kRequestCheckInterval;
    }
    auto timeout = kIdlePoll;
    if (!pending_.empty()) {
      const auto waited = std::chrono::steady_clock::now() - batch_started_;
      timeout = std::clamp(std::chrono::duration_cast<std::chrono::milliseconds>(max_wait - waited),
                           std::chrono::milliseconds(0), kIdlePoll);
      // Nothing more queued means no backlog: waiting out max_wait_ms would only add latency.
      if (flush_when_idle) timeout = std::chrono::milliseconds(0);
    }
    rd_kafka_message_t* message =
        rd_kafka_consumer_poll(consumer_.get(), static_cast<int>(timeout.count()));
    if (resync_due_) {
      // A batch was discarded (in a revoke callback this poll served, or before a seek that
      // failed): nothing is taken until the partitions are back at their stored offsets.
      if (message != nullptr) rd_kafka_message_destroy(message);
      pending_.clear();
      seekToStored();
      continue;
    }
    // An empty poll is not an empty queue: a poll without wait also ends after serving one
    // op that is not a record (the result of the previous batch's async Kafka commit, a
    // partition EOF); flushing on those would cut batches short under a backlog.
    if (message == nullptr && flush_when_idle && !pending_.empty() &&
        rd_kafka_queue_length(queue.get()) == 0) {
      flushPending();
      continue;
    }
    if (message == nullptr && pending_.empty() && rd_kafka_queue_length(queue.get()) == 0) {
      advanceOverGaps();
    }
    if (message != nullptr) {
      if (message->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        handleConsumerError(*message);
      } else if (expected_.count({rd_kafka_topic_name(message->rkt), message->partition}) != 0) {
        // Records flow again: whatever we waited for (an unreachable broker) is over.
        resumeRunning();
        if (pending_.empty()) batch_started_ = std::chrono::steady_clock::now();
        pending_.push_back(KafkaRecord::copyOf(*message));
      }
      rd_kafka_message_destroy(message);
    }
    if (pending_.empty()) continue;
    if (pending_.size() >= max_events ||
        std::chrono::steady_clock::now() - batch_started_ >= max_wait) {
      flushPending();
    }
  }
}

void ProjectionRunner::handleConsumerError(const rd_kafka_message_t& message) {
  if (message.err == RD_KAFKA_RESP_ERR__PARTITION_EOF) return;
  if (message.err == RD_KAFKA_RESP_ERR__AUTO_OFFSET_RESET && message.rkt != nullptr) {
    const TopicPartition tp{rd_kafka_topic_name(message.rkt), message.partition};
    std::int64_t low = -1;
    std::int64_t high = -1;
    rd_kafka_query_watermark_offsets(consumer_.get(), tp.topic.c_str(), tp.partition, &low, &high,
                                     5000);
    const auto stored = expected_.count(tp) != 0 ? expected_.at(tp) : -1;
    fail("stored offset " + std::to_string(stored) + " of " + toString(tp) +
         " is no longer in the log (log start " + std::to_string(low) + ", log end " +
         std::to_string(high) +
         "); refusing to skip events. Rebuild or reset the projection to go on.");
    return;
  }
  if (message.err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART ||
      message.err == RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC) {
    // librdkafka's "Subscribed topic not available": a topic missing (or deleted) while we
    // run. Say which, and keep checking until it is there.
    checkTopics();
    if (missing_topics_.empty() && message.rkt != nullptr) {
      // Metadata did not answer (or disagrees): trust the error for now, re-check soon.
      missing_topics_.push_back(rd_kafka_topic_name(message.rkt));
      setState(RunnerState::kWaiting, missingTopicsMessage());
      next_topic_check_ = std::chrono::steady_clock::now() + kMissingTopicCheckInterval;
    }
    return;
  }
  const std::string reason = rd_kafka_message_errstr(&message);
  if (message.err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN ||
      message.err == RD_KAFKA_RESP_ERR__TRANSPORT) {
    setState(RunnerState::kWaiting, "Kafka unreachable: " + reason);
    return;
  }
  if (message.err == RD_KAFKA_RESP_ERR_INVALID_SESSION_TIMEOUT ||
      message.err == RD_KAFKA_RESP_ERR_INCONSISTENT_GROUP_PROTOCOL ||
      message.err == RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED ||
      message.err == RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED ||
      message.err == RD_KAFKA_RESP_ERR_GROUP_MAX_SIZE_REACHED) {
    // The broker keeps refusing the group until someone changes a setting: the runner would
    // otherwise look `running` while it consumes nothing. librdkafka retries the join.
    setState(RunnerState::kWaiting, "cannot join consumer group '" + settings_.spec.group_id +
                                        "': " + reason + " (" +
                                        rd_kafka_err2name(message.err) + ")");
    return;
  }
  spdlog::warn("[{}] consumer: {} ({})", label(), reason, rd_kafka_err2name(message.err));
}

void ProjectionRunner::checkTopics() {
  next_topic_check_ = std::chrono::steady_clock::now() + kMissingTopicCheckInterval;
  const rd_kafka_metadata_t* metadata = nullptr;
  if (rd_kafka_metadata(consumer_.get(), 1, nullptr, &metadata, kMetadataTimeoutMs) !=
      RD_KAFKA_RESP_ERR_NO_ERROR) {
    return;
  }
  std::set<std::string> present;
  for (int i = 0; i < metadata->topic_cnt; ++i) {
    if (metadata->topics[i].err != RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART) {
      present.insert(metadata->topics[i].topic);
    }
  }
  rd_kafka_metadata_destroy(metadata);
  std::vector<std::string> missing;
  for (const auto& topic : settings_.spec.topics) {
    if (present.count(topic) == 0) missing.push_back(topic);
  }
  std::sort(missing.begin(), missing.end());
  const bool had_missing = !missing_topics_.empty();
  missing_topics_ = std::move(missing);
  if (!missing_topics_.empty()) {
    setState(RunnerState::kWaiting, missingTopicsMessage());
  } else if (had_missing && state_ == RunnerState::kWaiting) {
    spdlog::info("[{}] every topic exists now", label());
    setState(RunnerState::kRunning, "");
  }
}

void ProjectionRunner::resumeRunning() {
  if (state_ != RunnerState::kWaiting) return;
  if (missing_topics_.empty()) {
    setState(RunnerState::kRunning, "");
  } else {
    setState(RunnerState::kWaiting, missingTopicsMessage());
  }
}

std::string ProjectionRunner::missingTopicsMessage() const {
  std::string names;
  for (const auto& topic : missing_topics_) {
    if (!names.empty()) names += ", ";
    names += "'" + topic + "'";
  }
  if (missing_topics_.size() == 1) {
    return "topic " + names + " does not exist; create it (ultracore-ctl topics ensure)";
  }
  return "topics " + names + " do not exist; create them (ultracore-ctl topics ensure)";
}

void ProjectionRunner::errorTrampoline(rd_kafka_t*, int err, const char* reason, void* opaque) {
  static_cast<ProjectionRunner*>(opaque)->onKafkaError(err, reason);
}

void ProjectionRunner::onKafkaError(int err, const char* reason) {
  const auto code = static_cast<rd_kafka_resp_err_t>(err);
  if (code == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN || code == RD_KAFKA_RESP_ERR__TRANSPORT ||
      code == RD_KAFKA_RESP_ERR__RESOLVE) {
    // Transient: librdkafka reconnects by itself; the assignment (or the next record) ends it.
    setState(RunnerState::kWaiting, std::string("Kafka unreachable: ") + reason);
    return;
  }
  if (code == RD_KAFKA_RESP_ERR__FATAL) {
    char fatal[512];
    rd_kafka_fatal_error(consumer_.get(), fatal, sizeof(fatal));
    fail(std::string("Kafka consumer fatal error: ") + fatal);
    return;
  }
  if (code == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART || code == RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC) {
    // An assigned partition's topic is gone (deleted while we run): the poll loop asks the
    // cluster which topics are missing and reports them, outside this callback.
    if (!topic_check_requested_) {
      spdlog::warn("[{}] Kafka: {} ({}); checking which topics exist", label(), reason,
                   rd_kafka_err2name(code));
    }
    topic_check_requested_ = true;
    return;
  }
  spdlog::warn("[{}] Kafka: {} ({})", label(), reason, rd_kafka_err2name(code));
}

void ProjectionRunner::onRebalance(rd_kafka_resp_err_t err,
                                   rd_kafka_topic_partition_list_t* partitions) {
  const bool cooperative = std::string(rd_kafka_rebalance_protocol(consumer_.get())) == "COOPERATIVE";
  if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
    assigned_once_ = true;
    assignFromStore(partitions);
    if (cooperative) {
      rd_kafka_error_t* error = rd_kafka_incremental_assign(consumer_.get(), partitions);
      if (error != nullptr) rd_kafka_error_destroy(error);
    } else {
      rd_kafka_assign(consumer_.get(), partitions);
    }
    if (paused_) pauseAssignment(partitions);
    return;
  }
  // Revoked (or an error): the in-flight batch commits before we let go, or is discarded when
  // its compare-and-set fails because the partitions already belong to another member.
  revoking_ = true;
  if (state_ != RunnerState::kFailed) flushPending();
  revoking_ = false;
  pending_.clear();
  for (int i = 0; i < partitions->cnt; ++i) {
    expected_.erase({partitions->elems[i].topic, partitions->elems[i].partition});
  }
  if (err == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS) {
    spdlog::info("[{}] revoked {} partition(s)", label(), partitions->cnt);
  } else {
    spdlog::warn("[{}] rebalance error: {}", label(), rd_kafka_err2str(err));
  }
  if (cooperative) {
    rd_kafka_error_t* error = rd_kafka_incremental_unassign(consumer_.get(), partitions);
    if (error != nullptr) rd_kafka_error_destroy(error);
  } else {
    rd_kafka_assign(consumer_.get(), nullptr);
  }
}

void ProjectionRunner::assignFromStore(rd_kafka_topic_partition_list_t* partitions) {
  std::vector<TopicPartition> wanted;
  for (int i = 0; i < partitions->cnt; ++i) {
    wanted.push_back({partitions->elems[i].topic, partitions->elems[i].partition});
  }
  std::map<TopicPartition, std::int64_t> stored;
  for (int attempt = 0;; ++attempt) {
    try {
      if (!connection_) connectPostgres();
      if (!connection_) return;  // stopping
      stored = offsets_.loadOrInit(*connection_, wanted);
      break;
    } catch (...) {
      setState(RunnerState::kWaiting, statusFromCurrentException().message());
      connection_.reset();
      if (!backoff(attempt)) return;
    }
  }
  for (int i = 0; i < partitions->cnt; ++i) {
    const TopicPartition tp{partitions->elems[i].topic, partitions->elems[i].partition};
    const std::int64_t next = stored.at(tp);
    partitions->elems[i].offset = next == OffsetStore::kFromBeginning ? RD_KAFKA_OFFSET_BEGINNING : next;
    expected_[tp] = next;
  }
  spdlog::info("[{}] assigned {} partition(s), resuming from the offsets stored in PostgreSQL",
               label(), partitions->cnt);
  resumeRunning();
}

ProjectionRunner::Outcome ProjectionRunner::resync() {
  pending_.clear();
  // Records of the discarded batch were consumed: librdkafka's positions are past them while
  // the stored offsets are not. Until every partition this runner keeps is back at its stored
  // offset, no record is taken (pollLoop), or the next batch would commit over the gap.
  resync_due_ = true;
  // Inside the revoke callback, partitions being taken away must not be sought; pollLoop seeks
  // the ones that stay as soon as the callback is over, before it takes any record.
  if (revoking_) return Outcome::kResync;
  seekToStored();
  return stop_ ? Outcome::kStopped : Outcome::kResync;
}

void ProjectionRunner::seekToStored() {
  rd_kafka_topic_partition_list_t* assignment = nullptr;
  if (rd_kafka_assignment(consumer_.get(), &assignment) != RD_KAFKA_RESP_ERR_NO_ERROR) {
    spdlog::warn("[{}] resync: cannot read the assignment; trying again", label());
    backoff(transient_streak_++);
    return;
  }
  std::string failure;
  if (assignment->cnt > 0) {
    assignFromStore(assignment);
    if (stop_) {
      rd_kafka_topic_partition_list_destroy(assignment);
      return;
    }
    rd_kafka_error_t* error = rd_kafka_seek_partitions(consumer_.get(), assignment, 10000);
    if (error != nullptr) {
      failure = rd_kafka_error_string(error);
      rd_kafka_error_destroy(error);
    }
    for (int i = 0; i < assignment->cnt && failure.empty(); ++i) {
      if (assignment->elems[i].err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        failure = toString(TopicPartition{assignment->elems[i].topic, assignment->elems[i].partition}) +
                  ": " + rd_kafka_err2str(assignment->elems[i].err);
      }
    }
  }
  rd_kafka_topic_partition_list_destroy(assignment);
  if (failure.empty()) {
    resync_due_ = false;
    return;
  }
  // Still due: records of a partition that did not move back would skip the discarded ones.
  setState(RunnerState::kWaiting, "seek to the stored offsets failed: " + failure);
  backoff(transient_streak_++);
}

// ---- batches ----------------------------------------------------------------------------

ProjectionRunner::Outcome ProjectionRunner::flushPending() {
  if (pending_.empty()) return Outcome::kOk;
  std::vector<Item> items;
  items.reserve(pending_.size());
  for (auto& record : pending_) items.push_back(makeItem(std::move(record)));
  counters_.event_types.add(items, [](const Item& item) { return item.event ? &*item.event : nullptr; });
  pending_.clear();
  return processRange(items, 0, items.size());
}

ProjectionRunner::Item ProjectionRunner::makeItem(KafkaRecord record) {
  Item item{std::move(record), std::nullopt, sdk::Status::ok()};
  auto envelope = parseEnvelope(item.record.value ? *item.record.value : std::string_view());
  if (envelope) {
    item.event.emplace(std::move(envelope.value()),
                       sdk::RecordPosition{item.record.topic, item.record.partition,
                                           item.record.offset, item.record.timestamp_ms});
  } else {
    item.parse_status = envelope.status();
  }
  return item;
}

std::optional<std::string> ProjectionRunner::parkKey(const Item& item) {
  if (item.event) return item.event->aggregateId();
  if (item.record.key && !item.record.key->empty()) return *item.record.key;
  return std::nullopt;
}

std::vector<OffsetAdvance> ProjectionRunner::advancesFor(std::span<const Item> items) const {
  std::map<TopicPartition, std::int64_t> next;
  for (const auto& item : items) {
    auto& value = next[{item.record.topic, item.record.partition}];
    value = std::max(value, item.record.offset + 1);
  }
  std::vector<OffsetAdvance> advances;
  for (const auto& [tp, offset] : next) advances.push_back({tp, expected_.at(tp), offset});
  return advances;
}

ProjectionRunner::Outcome ProjectionRunner::processRange(std::vector<Item>& items,
                                                         std::size_t begin, std::size_t end) {
  if (begin >= end) return Outcome::kOk;
  // Records whose envelope did not parse are poison before any plugin sees them.
  for (std::size_t i = begin; i < end; ++i) {
    if (items[i].parse_status) continue;
    if (auto outcome = processRange(items, begin, i); outcome != Outcome::kOk) return outcome;
    if (auto outcome = handlePoison(items[i], items[i].parse_status, 1); outcome != Outcome::kOk) {
      return outcome;
    }
    return processRange(items, i + 1, end);
  }
  for (int attempts = 1;; ++attempts) {
    bool cas_lost = false;
    const sdk::Status status =
        commitEvents(std::span<Item>(items.data() + begin, end - begin), cas_lost);
    if (cas_lost) {
      ++counters_.cas_conflicts;
      spdlog::warn("[{}] offsets in PostgreSQL moved under this batch (another member owns the "
                   "partition now): discarded it and re-read the stored offsets", label());
      return resync();
    }
    if (status) {
      transient_streak_ = 0;
      same_fault_.clear();
      same_fault_count_ = 0;
      resumeRunning();
      return Outcome::kOk;
    }
    bool split_for_fault = false;
    if (status.code() == sdk::StatusCode::kTransient) {
      const std::string sqlstate = sqlStateOf(status);
      same_fault_count_ = !sqlstate.empty() && sqlstate == same_fault_ ? same_fault_count_ + 1 : 1;
      same_fault_ = sqlstate;
      // A statement_timeout or out of memory that keeps coming back may be this batch's own
      // doing, every time: retried at the same size it would loop forever. Split it as for
      // poison; a single event that still fails follows on_error with that reason.
      split_for_fault = mayRecurWithTheSameWork(sqlstate) &&
                        (splitting_for_fault_ > 0 || same_fault_count_ >= kSameFaultBeforeSplit);
      if (!split_for_fault) {
        // Otherwise never poison: retried (from the stored offsets) as long as the fault lasts.
        setState(RunnerState::kWaiting, status.message());
        connection_.reset();
        if (!backoff(transient_streak_++)) return Outcome::kStopped;
        return resync();
      }
      if (splitting_for_fault_ == 0) {
        spdlog::warn("[{}] {} events failed {} times in a row with SQLSTATE {}: splitting the batch",
                     label(), end - begin, same_fault_count_, sqlstate);
      }
    }
    // Poison somewhere in the range: split it so every good event still commits once.
    if (end - begin > 1) {
      const std::size_t middle = begin + (end - begin) / 2;
      if (split_for_fault) ++splitting_for_fault_;
      const Outcome first = processRange(items, begin, middle);
      const Outcome second = first == Outcome::kOk ? processRange(items, middle, end) : first;
      if (split_for_fault) --splitting_for_fault_;
      return second;
    }
    if (attempts <= settings_.spec.retries) {
      spdlog::warn("[{}] {} failed (attempt {} of {}): {}", label(),
                   describe(items[begin].record, items[begin].event), attempts,
                   settings_.spec.retries + 1, status.message());
      if (!backoff(attempts - 1)) return Outcome::kStopped;
      continue;
    }
    return handlePoison(items[begin], status, attempts);
  }
}

sdk::Status ProjectionRunner::commitEvents(std::span<Item> items, bool& cas_lost) {
  try {
    if (!connection_) connectPostgres();
    if (!connection_) return {sdk::StatusCode::kTransient, "stopping"};
    const auto commit_started = std::chrono::steady_clock::now();
    pqxx::work txn(*connection_, "ultracore-batch");
    const auto advances = advancesFor(items);
    std::size_t parked_now = 0;
    // First, so a zombie blocks on the row lock and then fails here, before any work.
    if (!generationHolds(txn) || !offsets_.compareAndAdvance(txn, advances)) {
      cas_lost = true;
      return sdk::Status::ok();
    }
    // Policy park: events of a parked aggregate wait behind its dead letter, in order, and
    // the offsets still move past them in this transaction.
    std::vector<const Item*> live;
    live.reserve(items.size());
    if (settings_.spec.on_error == ErrorPolicy::kPark) {
      std::vector<std::string> batch_aggregates;
      for (const auto& item : items) batch_aggregates.push_back(item.event->aggregateId());
      const auto parked = failures_.parkedAmong(txn, batch_aggregates);
      for (const auto& item : items) {
        const auto it = parked.find(item.event->aggregateId());
        if (it == parked.end()) {
          live.push_back(&item);
          continue;
        }
        failures_.storeParked(txn, it->first, it->second, item.record, &*item.event);
        ++parked_now;
      }
    } else {
      for (const auto& item : items) live.push_back(&item);
    }
    std::vector<DedupeItem> claims;
    claims.reserve(live.size());
    for (const Item* item : live) {
      claims.push_back({&*item->event, item->record.topic, item->record.partition,
                        item->record.offset});
    }
    const DedupeClaim claim = claimEvents(txn, key(), claims);
    if (!claim.conflict) return claim.conflict;  // an event_id reused: poison, on_error decides
    std::vector<sdk::Event> events;
    events.reserve(live.size());
    for (std::size_t i = 0; i < live.size(); ++i) {
      if (claim.fresh[i]) events.push_back(*live[i]->event);
    }
    const std::size_t duplicates = live.size() - events.size();
    if (!events.empty()) {
      PgWriter writer(txn, settings_.schema);
      if (sdk::Status status = projection_->apply(events, writer); !status) return status;
    }
    txn.commit();
    for (const auto& advance : advances) expected_[advance.partition] = advance.next;
    counters_.events_applied += events.size();
    counters_.events_duplicate += duplicates;
    counters_.events_parked += parked_now;
    if (parked_now > 0) {
      spdlog::info("[{}] parked {} event(s) behind parked aggregates", label(), parked_now);
    }
    ++counters_.batches_committed;
    counters_.batch_size.observe(static_cast<double>(items.size()));
    counters_.commit_seconds.observe(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - commit_started).count());
    if (duplicates > 0) {
      spdlog::info("[{}] skipped {} event(s) already applied (same event_id)", label(), duplicates);
    }
    commitToKafka(advances);
    return sdk::Status::ok();
  } catch (...) {
    return statusFromCurrentException();
  }
}

ProjectionRunner::Outcome ProjectionRunner::handlePoison(Item& item, const sdk::Status& error,
                                                         int attempts) {
  ++counters_.events_failed;
  const std::string where = describe(item.record, item.event);
  const ErrorPolicy policy = settings_.spec.on_error;
  spdlog::error("[{}] {} {}: {} (on_error: {})", label(), where, statusCodeName(error.code()),
                error.message(), toString(policy));
  if (policy == ErrorPolicy::kFail) {
    fail("stopped at " + where + ": " + error.message());
    return Outcome::kStopped;
  }
  {
    bool cas_lost = false;
    const sdk::Status status = commitPoison(item, error, attempts, cas_lost);
    if (cas_lost) return resync();
    if (status) {
      transient_streak_ = 0;
      return Outcome::kOk;
    }
    if (status.code() != sdk::StatusCode::kTransient) {
      fail("could not record failed event " + where + ": " + status.message());
      return Outcome::kStopped;
    }
    setState(RunnerState::kWaiting, status.message());
    connection_.reset();
    if (!backoff(transient_streak_++)) return Outcome::kStopped;
    return resync();
  }
}

sdk::Status ProjectionRunner::commitPoison(const Item& item, const sdk::Status& error,
                                           int attempts, bool& cas_lost) {
  try {
    if (!connection_) connectPostgres();
    if (!connection_) return {sdk::StatusCode::kTransient, "stopping"};
    pqxx::work txn(*connection_, "ultracore-poison");
    const auto advances = advancesFor(std::span<const Item>(&item, 1));
    if (!generationHolds(txn) || !offsets_.compareAndAdvance(txn, advances)) {
      cas_lost = true;
      return sdk::Status::ok();
    }
    const sdk::Event* event = item.event ? &*item.event : nullptr;
    const ErrorPolicy policy = settings_.spec.on_error;
    if (policy == ErrorPolicy::kSkip) {
      failures_.recordSkipped(txn, item.record, event, error);
    } else if (policy == ErrorPolicy::kPark) {
      const auto aggregate = parkKey(item);
      const auto parked = aggregate ? failures_.parkedAmong(txn, {*aggregate})
                                    : std::map<std::string, std::int64_t>{};
      if (!parked.empty()) {
        // Already parked (a record that did not parse, keyed by a parked aggregate): it waits
        // behind the block in order and fails again, visibly, when released.
        failures_.storeParked(txn, *aggregate, parked.begin()->second, item.record, event);
        ++counters_.events_parked;
      } else {
        const auto id =
            failures_.recordDeadLetter(txn, toString(policy), item.record, event, error, attempts);
        if (aggregate) {
          failures_.parkAggregate(txn, *aggregate, id, item.record);
          spdlog::warn("[{}] parked aggregate '{}' behind dead letter {}", label(), *aggregate, id);
        }
      }
    } else {
      failures_.recordDeadLetter(txn, toString(policy), item.record, event, error, attempts);
    }
    txn.commit();
    for (const auto& advance : advances) expected_[advance.partition] = advance.next;
    commitToKafka(advances);
    return sdk::Status::ok();
  } catch (...) {
    return statusFromCurrentException();
  }
}

// ---- operator requests: dead-letters retry, release after discard -------------------------

namespace {

/// Thrown inside a retry/release transaction when a fault is transient: the whole
/// transaction rolls back and the request stays pending for the next round.
class TransientFault : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace

void ProjectionRunner::serviceFailureRequests() {
  if (settings_.spec.on_error != ErrorPolicy::kDeadLetter &&
      settings_.spec.on_error != ErrorPolicy::kPark) {
    return;
  }
  if (expected_.empty() || !connection_) return;
  std::vector<FailureRequest> requests;
  try {
    pqxx::read_transaction txn(*connection_, "ultracore-failure-requests");
    requests = failures_.pendingRequests(txn);
  } catch (...) {
    const sdk::Status status = statusFromCurrentException();
    spdlog::warn("[{}] cannot read operator requests: {}", label(), status.message());
    if (status.code() == sdk::StatusCode::kTransient) connection_.reset();
    return;
  }
  for (const auto& request : requests) {
    if (stop_) return;
    // Only the member that owns the partition touches it: its batches are the ones that
    // would divert or apply that aggregate's events.
    if (expected_.count({request.topic, request.partition}) == 0) continue;
    try {
      if (request.kind == FailureRequest::Kind::kRetry) {
        retryDeadLetter(request.dead_letter_id);
      } else {
        releaseResolved(request.aggregate_id);
      }
    } catch (const TransientFault& e) {
      setState(RunnerState::kWaiting, e.what());
      connection_.reset();
      return;
    } catch (...) {
      const sdk::Status status = statusFromCurrentException();
      spdlog::error("[{}] operator request on dead letter {} failed: {}", label(),
                    request.dead_letter_id, status.message());
      if (status.code() == sdk::StatusCode::kTransient) {
        setState(RunnerState::kWaiting, status.message());
        connection_.reset();
        return;
      }
    }
  }
}

sdk::Status ProjectionRunner::applyStored(pqxx::dbtransaction& txn, Item& item) {
  if (!item.parse_status) return item.parse_status;
  const sdk::Event& event = *item.event;
  // A plain savepoint: a failed apply rolls back its processed_events row and its writes only.
  txn.exec0("SAVEPOINT ultracore_apply_stored");
  const DedupeClaim claim = claimEvents(
      txn, key(), {{&event, item.record.topic, item.record.partition, item.record.offset}});
  if (!claim.conflict) {  // an event_id reused by another event: it fails again, visibly
    txn.exec0("ROLLBACK TO SAVEPOINT ultracore_apply_stored");
    return claim.conflict;
  }
  if (!claim.fresh[0]) {  // applied before (same event_id): exactly once means not again
    txn.exec0("RELEASE SAVEPOINT ultracore_apply_stored");
    ++counters_.events_duplicate;
    return sdk::Status::ok();
  }
  PgWriter writer(txn, settings_.schema);
  const sdk::Status status = projection_->apply(std::span<const sdk::Event>(&event, 1), writer);
  if (!status) {
    if (status.code() == sdk::StatusCode::kTransient) throw TransientFault(status.message());
    txn.exec0("ROLLBACK TO SAVEPOINT ultracore_apply_stored");
    return status;
  }
  txn.exec0("RELEASE SAVEPOINT ultracore_apply_stored");
  ++counters_.events_applied;
  return sdk::Status::ok();
}

void ProjectionRunner::retryDeadLetter(std::int64_t id) {
  pqxx::work txn(*connection_, "ultracore-retry");
  if (!generationHolds(txn)) return;
  auto stored = failures_.lockRetryRequested(txn, id);
  if (!stored) return;
  const auto parked_aggregate = failures_.lockParkedBehind(txn, id);
  Item item = makeItem(std::move(stored->record));
  const sdk::Status status = applyStored(txn, item);
  const std::string where = describe(item.record, item.event);
  if (status) {
    failures_.markRetried(txn, id);
    if (parked_aggregate) releaseParked(txn, *parked_aggregate);
    txn.commit();
    ++counters_.events_retried;
    spdlog::info("[{}] dead letter {} ({}) retried and applied", label(), id, where);
  } else {
    failures_.markRetryFailed(txn, id, status);
    txn.commit();
    spdlog::warn("[{}] retry of dead letter {} ({}) failed again: {}", label(), id, where,
                 status.message());
  }
}

void ProjectionRunner::releaseResolved(const std::string& aggregate_id) {
  pqxx::work txn(*connection_, "ultracore-release");
  if (!generationHolds(txn)) return;
  if (!failures_.lockReleasable(txn, aggregate_id)) return;
  releaseParked(txn, aggregate_id);
  txn.commit();
}

void ProjectionRunner::releaseParked(pqxx::dbtransaction& txn, const std::string& aggregate_id) {
  std::size_t released = 0;
  for (auto& stored : failures_.parkedEvents(txn, aggregate_id)) {
    Item item = makeItem(std::move(stored.record));
    const sdk::Status status = applyStored(txn, item);
    failures_.removeParkedEvent(txn, stored.id);
    if (!status) {
      const sdk::Event* event = item.event ? &*item.event : nullptr;
      const auto blocking = failures_.recordDeadLetter(txn, toString(ErrorPolicy::kPark),
                                                       item.record, event, status, 1);
      failures_.reblock(txn, aggregate_id, blocking, item.record);
      spdlog::warn("[{}] released {} parked event(s) of '{}'; {} failed: {}; the aggregate stays "
                   "parked behind dead letter {}",
                   label(), released, aggregate_id, describe(item.record, item.event),
                   status.message(), blocking);
      return;
    }
    ++released;
  }
  failures_.unpark(txn, aggregate_id);
  spdlog::info("[{}] released aggregate '{}': {} parked event(s) applied in order", label(),
               aggregate_id, released);
}

// ---- operator pause and progress for the admin endpoint ----------------------------------

std::vector<PartitionProgress> ProjectionRunner::partitions() const {
  std::lock_guard lock(progress_mutex_);
  return progress_;
}

void ProjectionRunner::publishProgress() {
  std::vector<PartitionProgress> progress;
  progress.reserve(expected_.size());
  for (const auto& [tp, next] : expected_) {
    std::int64_t low = -1;
    std::int64_t high = -1;
    // Local and cheap: the watermarks librdkafka saw with the last fetch response.
    if (rd_kafka_get_watermark_offsets(consumer_.get(), tp.topic.c_str(), tp.partition, &low,
                                       &high) != RD_KAFKA_RESP_ERR_NO_ERROR) {
      low = high = -1;
    }
    progress.push_back({tp, next, high, low});
  }
  {
    std::lock_guard lock(progress_mutex_);
    progress_ = std::move(progress);
  }
  next_progress_ = std::chrono::steady_clock::now() + std::chrono::milliseconds(200);
}

void ProjectionRunner::pauseAssignment(rd_kafka_topic_partition_list_t* partitions) {
  if (partitions == nullptr || partitions->cnt == 0) return;
  const rd_kafka_resp_err_t err = rd_kafka_pause_partitions(consumer_.get(), partitions);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    spdlog::warn("[{}] pause: {}", label(), rd_kafka_err2str(err));
  }
}

void ProjectionRunner::applyPause() {
  const bool pause = pause_requested_;
  rd_kafka_topic_partition_list_t* assignment = nullptr;
  if (rd_kafka_assignment(consumer_.get(), &assignment) != RD_KAFKA_RESP_ERR_NO_ERROR) return;
  paused_ = pause;
  if (pause) {
    pauseAssignment(assignment);
    // Records already fetched are discarded by librdkafka; what is pending still commits.
    setState(RunnerState::kPaused, "paused by the operator");
  } else {
    if (assignment->cnt > 0) {
      const rd_kafka_resp_err_t err = rd_kafka_resume_partitions(consumer_.get(), assignment);
      if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        spdlog::warn("[{}] resume: {}", label(), rd_kafka_err2str(err));
      }
    }
    if (missing_topics_.empty()) {
      setState(RunnerState::kRunning, "");
    } else {
      setState(RunnerState::kWaiting, missingTopicsMessage());
    }
  }
  rd_kafka_topic_partition_list_destroy(assignment);
}

void ProjectionRunner::commitToKafka(const std::vector<OffsetAdvance>& advances) {
  // Only so that standard lag tools see progress; PostgreSQL stays the authority.
  rd_kafka_topic_partition_list_t* list =
      rd_kafka_topic_partition_list_new(static_cast<int>(advances.size()));
  for (const auto& advance : advances) {
    rd_kafka_topic_partition_list_add(list, advance.partition.topic.c_str(),
                                      advance.partition.partition)
        ->offset = advance.next;
  }
  rd_kafka_commit(consumer_.get(), list, /*async=*/1);
  rd_kafka_topic_partition_list_destroy(list);
}

}  // namespace ultracore::engine
