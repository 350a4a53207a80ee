// Group commit of the API's Kafka transactions (EventProducer::produceGated), against the dev
// broker: calls that arrive while every transactional producer is busy share one transaction,
// each call's gate runs once all the group's records are acknowledged, and one refused gate
// aborts the whole group (nothing of it is ever visible to a read_committed consumer).
//
// Built twice: on the dev broker (group_commit_integration_test), and on a real Apache Kafka
// cluster inside kafka_integration_test (ULTRACORE_GROUP_COMMIT_ON_REAL_KAFKA), where aborted
// records are hidden from read_committed consumers (the dev broker has no control records).
//
// The test makes the producers busy on purpose: the first calls' gates block until released,
// each holding one producer's open transaction, while the next calls gather in the forming
// group (transactionStats().calls_waiting says how many).

#include "engine/http/event_producer.h"

#include <set>
#include <thread>

#include <gtest/gtest.h>

#include "kafka_test_support.h"
#include "support/latch.h"

namespace ultracore::testing {
namespace {

using namespace std::chrono_literals;
using engine::EventProducer;
using engine::OutgoingRecord;
using engine::RecordPositionOut;

constexpr char kTopic[] = "group.commit.events";

struct Call {
  std::vector<OutgoingRecord> records;
  bool refuse = false;
  bool ok = false;
  bool refused = false;
  std::string error;
  std::vector<RecordPositionOut> positions;
};

#ifdef ULTRACORE_GROUP_COMMIT_ON_REAL_KAFKA
struct Broker {
  Broker() { cluster.createTopic(kTopic, 3); }
  const std::string& bootstrap() const { return cluster.bootstrap(); }
  static constexpr bool kHidesAborted = true;
  KafkaCluster cluster;
};
#define GROUP_COMMIT_TEST(name) TEST_F(GroupCommitTest, name##OnRealKafka)
#else
struct Broker {
  const std::string& bootstrap() const { return broker.bootstrap(); }
  static constexpr bool kHidesAborted = false;  // no read_committed in librdkafka's mock
  DevBroker broker{DevBroker::Options{1, 3, {kTopic}}};
};
#define GROUP_COMMIT_TEST(name) TEST_F(GroupCommitTest, name)
#endif

class GroupCommitTest : public ::testing::Test {
 protected:
  GroupCommitTest() : producer_({{"bootstrap.servers", broker_.bootstrap()}}) {}

  /// Runs `call` on a thread; `latch` (if any) blocks its gate.
  std::thread start(Call& call, Latch* latch) {
    return std::thread([this, &call, latch] {
      const auto result = producer_.produceGated(
          call.records,
          [&call, latch](const std::vector<RecordPositionOut>&) {
            if (latch) latch->enter();
            return !call.refuse;
          },
          call.refused);
      call.ok = result.isOk();
      if (call.ok) call.positions = result.value();
      if (!call.ok) call.error = result.status().message();
    });
  }

  /// Occupies every transactional producer with a call (holders_) whose gate waits on latch_.
  void occupyProducers() {
    for (std::size_t i = 0; i < holders_.size(); ++i) {
      holders_[i].records = {{kTopic, "holder-" + std::to_string(i), "holder " + std::to_string(i)}};
      threads_.push_back(start(holders_[i], &latch_));
      // One at a time: each is in its gate (its own transaction, sealed) before the next starts.
      ASSERT_TRUE(latch_.waitEntered(static_cast<int>(i) + 1));
    }
  }

  bool waitForWaiting(std::size_t n) {
    const auto deadline = std::chrono::steady_clock::now() + 30s;
    while (producer_.transactionStats().calls_waiting < n) {
      if (std::chrono::steady_clock::now() > deadline) return false;
      std::this_thread::sleep_for(5ms);
    }
    return true;
  }

  /// Releases the holders and waits for every call.
  void releaseAndJoin() {
    latch_.release();
    for (auto& thread : threads_) thread.join();
    threads_.clear();
  }

  static constexpr int kProducers = 4;  // EventProducer's kTxnProducers
  Broker broker_;
  EventProducer producer_;
  Latch latch_;
  std::vector<Call> holders_{kProducers};
  std::vector<std::thread> threads_;
};

#ifndef ULTRACORE_GROUP_COMMIT_ON_REAL_KAFKA
TEST_F(GroupCommitTest, CallsThatWaitForAProducerShareOneTransaction) {
  constexpr int kWaiting = 46;
  std::vector<Call> waiting(kWaiting);
  occupyProducers();
  for (int i = 0; i < kWaiting; ++i) {
    waiting[static_cast<std::size_t>(i)].records = {
        {kTopic, "w-" + std::to_string(i), "waiting " + std::to_string(i) + " a"},
        {kTopic, "w-" + std::to_string(i), "waiting " + std::to_string(i) + " b"}};
    threads_.push_back(start(waiting[static_cast<std::size_t>(i)], nullptr));
  }
  ASSERT_TRUE(waitForWaiting(kWaiting)) << producer_.transactionStats().calls_waiting << " waiting";
  releaseAndJoin();

  std::set<std::pair<int, std::int64_t>> positions;
  for (const auto* calls : {&holders_, &waiting}) {
    for (const Call& call : *calls) {
      ASSERT_TRUE(call.ok) << call.error;
      EXPECT_EQ(call.positions.size(), call.records.size());
      for (const auto& p : call.positions) positions.insert({p.partition, p.offset});
    }
  }
  EXPECT_EQ(positions.size(), static_cast<std::size_t>(kProducers + 2 * kWaiting)) << "positions are distinct";
  const auto stats = producer_.transactionStats();
  std::printf("[ figures  ] %d calls in %llu transactions\n", kProducers + kWaiting,
              static_cast<unsigned long long>(stats.transactions_committed));
  EXPECT_EQ(stats.calls_committed, static_cast<std::uint64_t>(kProducers + kWaiting));
  EXPECT_EQ(stats.transactions_committed, static_cast<std::uint64_t>(kProducers + 1));
  EXPECT_EQ(readTopic(broker_.bootstrap(), kTopic, 3).size(), static_cast<std::size_t>(kProducers + 2 * kWaiting));
}
#endif

GROUP_COMMIT_TEST(ARefusedGateAbortsItsWholeGroupAndOnlyItIsRefused) {
  constexpr int kWaiting = 10;
  std::vector<Call> waiting(kWaiting);
  occupyProducers();
  for (int i = 0; i < kWaiting; ++i) {
    Call& call = waiting[static_cast<std::size_t>(i)];
    call.records = {{kTopic, "r-" + std::to_string(i), "aborted " + std::to_string(i)}};
    call.refuse = i == 3;
    threads_.push_back(start(call, nullptr));
  }
  ASSERT_TRUE(waitForWaiting(kWaiting));
  releaseAndJoin();

  for (const Call& call : holders_) EXPECT_TRUE(call.ok) << call.error;
  for (int i = 0; i < kWaiting; ++i) {
    const Call& call = waiting[static_cast<std::size_t>(i)];
    EXPECT_FALSE(call.ok) << i;
    EXPECT_EQ(call.refused, i == 3) << i << ": " << call.error;
    if (i != 3) {
      EXPECT_NE(call.error.find("another command"), std::string::npos) << call.error;
    }
  }
  if (Broker::kHidesAborted) {
    const auto values = readTopic(broker_.bootstrap(), kTopic, 3);
    EXPECT_EQ(values.size(), static_cast<std::size_t>(kProducers)) << "an aborted group is never visible";
    for (const auto& value : values) EXPECT_EQ(value.rfind("holder ", 0), 0u) << value;
  }
  // The producer is still usable after the abort.
  Call after;
  after.records = {{kTopic, "after", "after the abort"}};
  start(after, nullptr).join();
  EXPECT_TRUE(after.ok) << after.error;
}

}  // namespace
}  // namespace ultracore::testing
