// A PostgreSQL server crash with synchronous_commit = off (the default, batch.synchronous_commit:
// false): an immediate shutdown mid-stream loses the last batches the server had acknowledged
// but not yet written to its WAL, with their offsets, and the engine applies them again. The
// result equals one clean pass over the log (README, "Throughput and durability").
//
// The private server runs with wal_writer_delay = 10 s so that a crash finds acknowledged
// commits still in the WAL buffers: without it the WAL writer would have written them a
// fraction of a second later and the crash would lose nothing to reapply.

#include <atomic>
#include <csignal>
#include <random>
#include <thread>

#include <gtest/gtest.h>

#include "engine_harness.h"
#include "kafka/kafka_test_support.h"
#include "private_postgres.h"

namespace ultracore::testing {
namespace {

using namespace std::chrono_literals;

// Crashes until one has lost an acknowledged batch (and at least kMinCrashes), at most
// kMaxCrashes: whether a crash finds a commit still in the WAL buffers is a matter of timing
// (another session's synchronous commit or a WAL page filling up writes them out).
constexpr int kMinCrashes = 3;
constexpr int kMaxCrashes = 15;

/// A wave of ledger events; every 12th is sent again later in the log (about 8 % duplicates).
std::vector<Record> wave(const std::string& topic, int number, std::mt19937& random,
                         std::size_t& distinct) {
  std::vector<Record> records;
  for (int i = 0; i < 200; ++i) {
    const std::string aggregate = "L-" + std::to_string(random() % 100);
    records.push_back({topic, aggregate,
                       envelope("w" + std::to_string(number) + "-" + std::to_string(i), "Entry",
                                aggregate, {{"amount", static_cast<int>(random() % 100)}})});
    ++distinct;
    if (i % 12 == 0) records.push_back(records.back());
  }
  return records;
}

TEST(PostgresCrash, ImmediateShutdownWithSynchronousCommitOffEqualsOneCleanPass) {
  const std::string topic = "ledger.events";
  PrivatePostgres pg({"wal_writer_delay=10000"});
  DevBroker broker(DevBroker::Options{1, 4, {topic}});
  TestDatabase clean;
  TempDir dir;

  std::atomic<std::size_t> produced{0};
  std::atomic<std::size_t> distinct{0};
  std::atomic<bool> stop{false};
  std::string producer_error;
  std::thread producer([&] {
    std::mt19937 random(15);
    try {
      for (int w = 0; !stop; ++w) {
        std::size_t wave_distinct = 0;
        auto records = wave(topic, w, random, wave_distinct);
        produce(broker.bootstrap(), records);
        produced += records.size();
        distinct += wave_distinct;
        std::this_thread::sleep_for(100ms);
      }
    } catch (const std::exception& e) {
      producer_error = e.what();
    }
  });
  struct Joiner {
    std::thread& thread;
    std::atomic<bool>& stop;
    ~Joiner() {
      stop = true;
      if (thread.joinable()) thread.join();
    }
  } joiner{producer, stop};

  // Small batches: many commits, so a crash finds several in the WAL buffers.
  auto manifest = writeManifest(dir, broker.bootstrap(), pg.url(),
                                "  - { name: ledger, plugin: ledger, topics: [" + topic +
                                    "], on_error: dead_letter,\n"
                                    "      batch: { max_events: 20, max_wait_ms: 5 } }\n");
  auto engine = startEngine(manifest, dir.path() / "engine.log");
  ASSERT_TRUE(waitForEngineRunning(*engine)) << engine->log();

  std::int64_t lost_offsets = 0;
  int crashes_that_lost = 0;
  int crashes = 0;
  for (int crash = 0; crash < kMaxCrashes && (crash < kMinCrashes || crashes_that_lost == 0); ++crash) {
    ++crashes;
    const std::string start = storedSum(pg.url());
    ASSERT_TRUE(waitUntil([&] { return std::stoll(storedSum(pg.url())) > std::stoll(start) + 200; }, 60s))
        << "no progress before crash " << crash << "\n" << engine->log();
    const std::int64_t acknowledged = std::stoll(storedSum(pg.url()));
    pg.crash();
    pg.start();
    // Read directly (storedSum says "0" when it cannot connect: that would pass for a loss).
    const std::int64_t recovered = std::stoll(queryValue(
        pg.url(), "SELECT coalesce(sum(next_offset), 0) FROM ultracore_offsets WHERE next_offset >= 0"));
    if (recovered < acknowledged) {
      lost_offsets += acknowledged - recovered;
      ++crashes_that_lost;
    }
    std::printf("crash %d: stored offsets summed to %lld before, %lld after recovery\n", crash,
                static_cast<long long>(acknowledged), static_cast<long long>(recovered));
  }
  stop = true;
  producer.join();
  ASSERT_EQ(producer_error, "");

  ASSERT_TRUE(waitUntil([&] { return storedSum(pg.url()) == std::to_string(produced.load()); }, 120s))
      << engine->log();
  engine->signal(SIGTERM);
  EXPECT_EQ(engine->wait(60s), 0) << engine->log();

  cleanPass(dir, broker.bootstrap(), clean.url(), topic, produced.load());
  expectSameAsCleanPass(pg.url(), clean.url(), distinct.load());
  EXPECT_EQ(queryValue(pg.url(), "SELECT count(*) FROM ultracore_dead_letters"), "0");
  // Whether a crash finds acknowledged batches still in PostgreSQL's WAL buffers is a matter of
  // timing (the WAL writer writes every full page at once): seen in every run on a loaded
  // machine, in none of 15 crashes on a quiet CI machine. The equality above is what must hold
  // either way; the figures below say whether this run exercised a loss.
  if (crashes_that_lost == 0) {
    std::printf("note: no crash of %d lost an acknowledged batch in this run\n", crashes);
  }
  std::printf("%d crashes, %d lost acknowledged batches (%lld offsets in all, applied again); "
              "%zu records, %zu distinct events\n",
              crashes, crashes_that_lost, static_cast<long long>(lost_offsets), produced.load(),
              distinct.load());
}

}  // namespace
}  // namespace ultracore::testing
