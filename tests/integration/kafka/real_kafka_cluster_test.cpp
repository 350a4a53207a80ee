// Group churn and broker failover on real Apache Kafka: three engine processes sharing a
// consumer group under the cooperative-sticky assignor, and the leader broker of busy
// partitions killed with kill -9 in a three-node cluster (replication factor 3,
// min.insync.replicas 2). Both end equal to one clean pass over the log.

#include <algorithm>
#include <atomic>
#include <csignal>
#include <fstream>
#include <iterator>
#include <map>
#include <mutex>
#include <random>
#include <thread>

#include <gtest/gtest.h>
#include <httplib.h>

#include "kafka_test_support.h"

namespace ultracore::testing {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

/// A background writer of ledger events (about 8 % re-sent duplicates) until stopped.
class LedgerWriter {
 public:
  LedgerWriter(std::string bootstrap, std::string topic, int per_wave)
      : bootstrap_(std::move(bootstrap)), topic_(std::move(topic)), per_wave_(per_wave) {
    thread_ = std::thread([this] { run(); });
  }
  ~LedgerWriter() { stop(); }
  void stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  std::size_t produced() const { return produced_; }
  std::size_t distinct() const { return distinct_; }
  const std::string& error() const { return error_; }

 private:
  void run() {
    std::mt19937 random(42);
    try {
      for (int w = 0; !stop_; ++w) {
        std::vector<Record> records;
        std::size_t distinct = 0;
        for (int i = 0; i < per_wave_; ++i) {
          const std::string aggregate = "L-" + std::to_string(random() % 300);
          const std::string id = topic_ + "-" + std::to_string(w) + "-" + std::to_string(i);
          records.push_back({topic_, aggregate, envelope(id, "Entry", aggregate, {{"amount", 1}})});
          ++distinct;
          if (i % 12 == 0) records.push_back(records.back());
        }
        produce(bootstrap_, records);
        produced_ += records.size();
        distinct_ += distinct;
        std::this_thread::sleep_for(200ms);
      }
    } catch (const std::exception& e) {
      error_ = e.what();
    }
  }

  std::string bootstrap_;
  std::string topic_;
  int per_wave_;
  std::atomic<bool> stop_{false};
  std::atomic<std::size_t> produced_{0};
  std::atomic<std::size_t> distinct_{0};
  std::string error_;
  std::thread thread_;
};

/// Samples each partition's stored offset and keeps, per partition, the longest time it stood
/// still while the log had records beyond it.
class CommitGapMeter {
 public:
  CommitGapMeter(std::string url, std::string bootstrap, std::string topic, int partitions)
      : url_(std::move(url)), bootstrap_(std::move(bootstrap)), topic_(std::move(topic)),
        partitions_(partitions) {
    thread_ = std::thread([this] { run(); });
  }
  ~CommitGapMeter() { stop(); }
  void stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  double longestSeconds() const { return longest_; }

 private:
  void run() {
    std::map<int, std::pair<std::string, Clock::time_point>> last;
    while (!stop_) {
      for (int p = 0; p < partitions_; ++p) {
        try {
          const std::string stored = queryValue(
              url_, "SELECT coalesce(max(next_offset), -1) FROM ultracore_offsets WHERE partition = " +
                        std::to_string(p));
          const auto now = Clock::now();
          auto it = last.find(p);
          if (it == last.end() || it->second.first != stored) {
            last[p] = {stored, now};
          } else if (watermarks(bootstrap_, topic_, p).second > std::stoll(stored)) {
            longest_ = std::max(longest_.load(),
                                std::chrono::duration<double>(now - it->second.second).count());
          } else {
            it->second.second = now;  // caught up: standing still is not a pause
          }
        } catch (const std::exception&) {
        }
      }
      std::this_thread::sleep_for(200ms);
    }
  }

  std::string url_, bootstrap_, topic_;
  int partitions_;
  std::atomic<bool> stop_{false};
  std::atomic<double> longest_{0};
  std::thread thread_;
};

// Three engine processes in one group, started, stopped (SIGTERM) and killed (kill -9) at
// random 20 times while events flow, with partition.assignment.strategy cooperative-sticky
// (incremental assign/unassign): the state equals one clean pass.
TEST(RealKafkaCluster, ThreeEnginesChurningUnderCooperativeStickyEqualOneCleanPass) {
  constexpr int kActions = 20;
  constexpr int kPartitions = 6;
  const std::string topic = "churn.events";
  KafkaCluster kafka;
  kafka.createTopic(topic, kPartitions);
  TestDatabase churned;
  TestDatabase clean;
  TempDir dir;
  auto manifest = writeKafkaManifest(
      dir, kafka.bootstrap(), churned.url(),
      "  session.timeout.ms: 6000\n  heartbeat.interval.ms: 1000\n"
      "  partition.assignment.strategy: cooperative-sticky\n",
      "  - name: ledger\n" + kLedger + "    topics: [" + topic + "]\n", "churn.yaml");

  LedgerWriter writer(kafka.bootstrap(), topic, 150);
  CommitGapMeter meter(churned.url(), kafka.bootstrap(), topic, kPartitions);
  std::vector<std::unique_ptr<Subprocess>> engines(3);
  int incarnation = 0;
  auto start = [&](int slot) {
    engines[slot] = startEngine(manifest,
                                dir.path() / ("engine-" + std::to_string(incarnation++) + ".log"),
                                {"--instance-id", "churn-" + std::to_string(slot)});
  };
  for (int slot = 0; slot < 3; ++slot) start(slot);
  std::mt19937 random(20261129);
  std::map<std::string, int> done;
  for (int action = 0; action < kActions; ++action) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1500 + random() % 2500));
    const int slot = static_cast<int>(random() % 3);
    if (!engines[slot] || !engines[slot]->running()) {
      start(slot);
      ++done["start"];
    } else if (random() % 2 == 0) {
      engines[slot]->kill();
      engines[slot].reset();
      ++done["kill -9"];
    } else {
      engines[slot]->signal(SIGTERM);
      const auto status = engines[slot]->wait(60s);
      EXPECT_EQ(status, 0) << "SIGTERM did not stop engine slot " << slot << " cleanly:\n"
                           << engines[slot]->log();
      engines[slot].reset();
      ++done["SIGTERM"];
    }
  }
  // Everything that still runs keeps going until the writer stops and the log is applied.
  for (int slot = 0; slot < 3; ++slot) {
    if (!engines[slot] || !engines[slot]->running()) start(slot);
  }
  writer.stop();
  ASSERT_EQ(writer.error(), "");
  ASSERT_TRUE(waitUntil([&] { return storedSum(churned.url()) == std::to_string(writer.produced()); },
                        240s))
      << engines[0]->log();
  meter.stop();
  for (auto& engine : engines) {
    engine->signal(SIGTERM);
    EXPECT_EQ(engine->wait(60s), 0) << engine->log();
  }

  cleanPass(dir, kafka.bootstrap(), clean.url(), topic, writer.produced());
  expectSameAsCleanPass(churned.url(), clean.url(), writer.distinct());
  std::printf("churn: %d starts, %d kill -9s, %d SIGTERMs over %zu records; longest time a "
              "partition with a backlog went without a commit: %.1f s\n",
              done["start"], done["kill -9"], done["SIGTERM"], writer.produced(),
              meter.longestSeconds());
}

// Leader failover: kill -9 the broker leading busy partitions mid-stream and restart it after
// 10 s. Nothing is lost or doubled; the projection reports `waiting` while a broker is
// unreachable and recovers; API commands during the outage answer 2xx or 503, and every 2xx
// answer's event is in the log exactly once.
TEST(RealKafkaCluster, LeaderFailoverLosesAndDoublesNothing) {
  constexpr int kPartitions = 6;
  const std::string topic = "failover.events";
  const std::string customers = "ultracore.customers.events";
  KafkaCluster kafka(KafkaCluster::Options{3});
  kafka.createTopic(topic, kPartitions);  // replication factor 3, min.insync.replicas 2
  kafka.createTopic(customers, kPartitions);
  kafka.createTopic("ultracore.accounts.events", kPartitions);
  TestDatabase db;
  TestDatabase clean;
  TempDir dir;
  const int port = freePort();
  auto manifest = writeKafkaManifest(
      dir, kafka.bootstrap(), db.url(), "  session.timeout.ms: 6000\n  heartbeat.interval.ms: 1000\n",
      "  - name: ledger\n" + kLedger + "    topics: [" + topic + "]\n" +
          "  - { name: customers, plugin: customers, topics: [" + customers + "] }\n"
          "  - { name: accounts, plugin: accounts, topics: [ultracore.accounts.events] }\n",
      "failover.yaml");
  setApiPort(manifest, port);
  auto engine = startEngine(manifest, dir.path() / "engine.log", {"--instance-id", "failover-1"});
  ASSERT_TRUE(waitForApiReady(port)) << engine->log();
  httplib::Client client("127.0.0.1", port);
  client.set_read_timeout(30, 0);

  LedgerWriter writer(kafka.bootstrap(), topic, 100);
  std::atomic<bool> stop_commands{false};
  std::mutex accepted_mutex;
  std::vector<std::string> accepted;  // event_ids of 2xx answers
  std::map<int, int> statuses;
  std::thread commands([&] {
    for (int i = 0; !stop_commands; ++i) {
      const nlohmann::json body{{"first_name", "F" + std::to_string(i)},
                                {"last_name", "L"},
                                {"email", "f" + std::to_string(i) + "@example.com"}};
      auto res = client.Post("/api/v1/customers", body.dump(), "application/json");
      std::lock_guard lock(accepted_mutex);
      const int status = res ? res->status : -1;
      ++statuses[status];
      if (res && status >= 200 && status < 300) {
        accepted.push_back(nlohmann::json::parse(res->body).at("event_id"));
      }
      std::this_thread::sleep_for(50ms);
    }
  });
  struct Stopper {
    std::atomic<bool>& flag;
    std::thread& thread;
    ~Stopper() {
      flag = true;
      if (thread.joinable()) thread.join();
    }
  } stopper{stop_commands, commands};

  ASSERT_TRUE(waitUntil([&] { return std::stoll(storedSum(db.url(), "ledger")) > 500; }, 120s))
      << engine->log();
  const int leader = kafka.leaderOf(topic, 0);
  ASSERT_GT(leader, 0);
  kafka.stopNode(leader, /*kill=*/true);
  std::this_thread::sleep_for(10s);
  kafka.startNode(leader);
  std::this_thread::sleep_for(5s);
  stop_commands = true;
  commands.join();
  writer.stop();
  ASSERT_EQ(writer.error(), "");

  ASSERT_TRUE(waitUntil([&] {
    return storedSum(db.url(), "ledger") == std::to_string(writer.produced());
  }, 240s)) << engine->log();
  EXPECT_EQ(queryValue(db.url(), "SELECT sum(events) FROM ledger.ledger"),
            std::to_string(writer.distinct()));
  EXPECT_NE(engine->log().find("waiting: Kafka unreachable"), std::string::npos)
      << "the projection never reported the broker outage";
  EXPECT_TRUE(waitUntil([&] {
    return queryValue(db.url(), "SELECT state FROM ultracore_projection_status WHERE projection = 'ledger'") ==
           "running";
  }, 120s));

  // Every 2xx command's event is in the log exactly once.
  std::map<std::string, int> in_log;
  for (const auto& value : readTopic(kafka.bootstrap(), customers, kPartitions)) {
    ++in_log[nlohmann::json::parse(value).at("event_id").get<std::string>()];
  }
  for (const auto& id : accepted) EXPECT_EQ(in_log[id], 1) << id;
  for (const auto& [status, count] : statuses) {
    EXPECT_TRUE((status >= 200 && status < 300) || status == 503)
        << count << " command(s) answered " << status;
  }
  engine->signal(SIGTERM);
  EXPECT_EQ(engine->wait(60s), 0) << engine->log();

  TempDir clean_dir;
  cleanPass(clean_dir, kafka.bootstrap(), clean.url(), topic, writer.produced());
  const std::string only_ledger = " WHERE projection = 'ledger'";
  EXPECT_EQ(ledgerRows(db.url()), ledgerRows(clean.url()));
  EXPECT_EQ(tableChecksum(db.url(), "SELECT event_id, topic, partition, \"offset\" FROM processed_events" + only_ledger),
            tableChecksum(clean.url(), "SELECT event_id, topic, partition, \"offset\" FROM processed_events" + only_ledger));
  std::string summary;
  for (const auto& [status, count] : statuses) summary += " " + std::to_string(status) + "x" + std::to_string(count);
  std::printf("failover: broker %d killed for 10 s; %zu ledger records; commands:%s\n", leader,
              writer.produced(), summary.c_str());
}

}  // namespace
}  // namespace ultracore::testing
