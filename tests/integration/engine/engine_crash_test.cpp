// DESIGN.md invariant 7: killing the engine at any instant (kill -9) and restarting it yields
// exactly the state of one clean pass over the log. The projection is the ledger, which is not
// idempotent by nature, so a duplicate or a loss shows in its table. Run with `workers: 1` and
// `workers: 2` (two live runners in one consumer group inside the killed engine).

#include <atomic>
#include <csignal>
#include <random>
#include <thread>

#include <gtest/gtest.h>

#include "engine_harness.h"

namespace ultracore::testing {
namespace {

using namespace std::chrono_literals;

constexpr int kAggregates = 200;
constexpr int kEventsPerWave = 300;
constexpr int kKills = 10;

const std::string kProjection =
    "  - name: ledger\n"
    "    plugin: ledger\n"
    "    topics: [ledger.events]\n"
    "    batch: { max_events: 100, max_wait_ms: 10 }\n";

std::vector<Record> wave(int wave_number, std::mt19937& random) {
  std::vector<Record> records;
  for (int i = 0; i < kEventsPerWave; ++i) {
    const std::string aggregate = "L-" + std::to_string(random() % kAggregates);
    const std::string id = "w" + std::to_string(wave_number) + "-" + std::to_string(i);
    records.push_back({"ledger.events", aggregate,
                       envelope(id, "Entry", aggregate, {{"amount", static_cast<int>(random() % 100)}})});
    // A producer retry: the same event again, later in the log.
    if (i % 50 == 0) records.push_back(records.back());
  }
  return records;
}

std::string ledgerChecksum(const std::string& url) {
  return tableChecksum(url, "SELECT aggregate_id, event_ids, total, events FROM ledger.ledger");
}
std::string processedChecksum(const std::string& url) {
  return tableChecksum(url, "SELECT projection, event_id, aggregate_id, event_type, topic, "
                            "partition, \"offset\" FROM processed_events");
}
std::string offsetsChecksum(const std::string& url) {
  return tableChecksum(url, "SELECT projection, topic, partition, next_offset FROM ultracore_offsets");
}

/// Sum of the stored next offsets ("0" before the engine created its tables).
std::string committedSum(const std::string& url) {
  try {
    return queryValue(url, "SELECT coalesce(sum(next_offset), 0) FROM ultracore_offsets "
                           "WHERE next_offset >= 0");
  } catch (const std::exception&) {
    return "0";
  }
}

class EngineCrash : public ::testing::TestWithParam<int> {};

TEST_P(EngineCrash, KillMinus9AtRandomMomentsEqualsOneCleanPass) {
  const std::string workers = "    workers: " + std::to_string(GetParam()) + "\n";
  DevBroker broker(DevBroker::Options{1, 4, {"ledger.events"}});
  TestDatabase crashed;
  TestDatabase clean;
  TempDir dir;
  std::mt19937 random(20261127);

  // Events keep flowing while the engine is killed and restarted.
  // Sized for the dev broker's retention (about 5 MiB per partition): ~600 records/s.
  std::atomic<std::size_t> produced{0};
  std::atomic<int> waves{0};
  std::atomic<bool> stop_producing{false};
  std::thread producer([&] {
    std::mt19937 data_random(7);
    for (int w = 0; !stop_producing || w < 2; ++w) {
      auto records = wave(w, data_random);
      produce(broker.bootstrap(), records);
      produced += records.size();
      ++waves;
      std::this_thread::sleep_for(500ms);
    }
  });
  // Joined on every way out of the test, so an early failure reports instead of aborting.
  struct Joiner {
    std::thread& thread;
    ~Joiner() {
      if (thread.joinable()) thread.join();
    }
  } joiner{producer};
  struct StopProducing {
    std::atomic<bool>& flag;
    ~StopProducing() { flag = true; }
  } stopper{stop_producing};

  auto manifest = writeManifest(dir, broker.bootstrap(), crashed.url(),
                                kProjection + workers + "    group_id: crash-test\n", "crash.yaml");
  std::vector<double> resume_seconds;
  for (int kill = 0; kill < kKills; ++kill) {
    auto engine = startEngine(manifest, dir.path() / ("engine-" + std::to_string(kill) + ".log"));
    const auto started = std::chrono::steady_clock::now();
    const std::string before = committedSum(crashed.url());
    // Wait until this incarnation has committed something (it resumed), then kill it after a
    // random extra delay: inside a batch, between batches, during a commit.
    const bool resumed = waitUntil(
        [&] { return committedSum(crashed.url()) != before; },
        60s);
    resume_seconds.push_back(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
    std::this_thread::sleep_for(std::chrono::milliseconds(random() % 700));
    engine->kill();
    if (!resumed && kill > 0) {
      ADD_FAILURE() << "incarnation " << kill << " committed nothing within 60 s:\n" << engine->log();
    }
  }
  stop_producing = true;
  if (producer.joinable()) producer.join();

  auto finish = [&](const std::string& url, const std::string& name) {
    auto engine = startEngine(writeManifest(dir, broker.bootstrap(), url,
                                            kProjection + workers + "    group_id: " + name + "\n",
                                            name + ".yaml"),
                              dir.path() / (name + ".log"));
    EXPECT_TRUE(waitForEngineRunning(*engine)) << engine->log();
    const bool caught_up = waitUntil(
        [&] { return committedSum(url) == std::to_string(produced.load()); },
        120s);
    engine->signal(SIGTERM);
    EXPECT_EQ(engine->wait(30s), 0) << engine->log();
    return caught_up;
  };
  ASSERT_TRUE(finish(crashed.url(), "crash-final")) << "the crashed database never caught up";
  ASSERT_TRUE(finish(clean.url(), "clean-run")) << "the clean run never caught up";

  const std::string rows = queryValue(clean.url(), "SELECT sum(events) FROM ledger.ledger");
  EXPECT_EQ(rows, std::to_string(kEventsPerWave * waves.load()));  // duplicates applied once
  EXPECT_EQ(ledgerChecksum(crashed.url()), ledgerChecksum(clean.url()));
  EXPECT_EQ(processedChecksum(crashed.url()), processedChecksum(clean.url()));
  EXPECT_EQ(offsetsChecksum(crashed.url()), offsetsChecksum(clean.url()));

  double worst = 0;
  for (double s : resume_seconds) worst = std::max(worst, s);
  std::printf("restart to first commit after kill -9 (session.timeout.ms=3000): worst %.1f s over %d restarts\n",
              worst, kKills);
}

INSTANTIATE_TEST_SUITE_P(Workers, EngineCrash, ::testing::Values(1, 2),
                         [](const ::testing::TestParamInfo<int>& info) {
                           return "Workers" + std::to_string(info.param);
                         });

}  // namespace
}  // namespace ultracore::testing
