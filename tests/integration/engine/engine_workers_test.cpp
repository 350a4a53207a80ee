// `workers: N` (several live runners of one projection in one engine, one consumer group):
// the workers split the partitions, every event is applied exactly once and in order per
// aggregate, /metrics shows one series per projection (strictly parsed, counters summed), the
// JSON view one entry, and pausing the projection pauses every worker.

#include <httplib.h>

#include <csignal>
#include <map>
#include <regex>
#include <thread>

#include <gtest/gtest.h>

#include "engine_harness.h"
#include "prometheus_text.h"

namespace ultracore::testing {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

constexpr int kPartitions = 6;
constexpr int kWorkers = 3;

/// The partition count in the last "[ledger#<worker>] assigned N partition(s)" line; -1: none.
int assignedTo(const std::string& log, int worker) {
  const std::string marker = "[ledger#" + std::to_string(worker) + "] assigned ";
  const auto at = log.rfind(marker);
  if (at == std::string::npos) return -1;
  return std::stoi(log.substr(at + marker.size()));
}

/// `events` events over 60 ledgers, ids "<tag>-<n>"; `expected` accumulates each ledger's
/// event_ids in log order.
std::vector<Record> events(const std::string& tag, int count,
                           std::map<std::string, std::string>& expected) {
  std::vector<Record> records;
  for (int n = 0; n < count; ++n) {
    const std::string aggregate = "W-" + std::to_string(n % 60);
    const std::string id = tag + "-" + std::to_string(n);
    records.push_back({"ledger.events", aggregate, envelope(id, "Entry", aggregate, {{"amount", 1}})});
    auto& ids = expected[aggregate];
    ids += (ids.empty() ? "" : ",") + id;
  }
  return records;
}

std::int64_t stored(const std::string& url) {
  const std::string v = queryValue(
      url, "SELECT coalesce(sum(greatest(next_offset, 0)), 0) FROM ultracore_offsets "
           "WHERE projection = 'ledger'");
  return v.empty() ? 0 : std::stoll(v);
}

TEST(EngineWorkers, ThreeWorkersSplitSixPartitionsExactlyOnceWithOneSeriesAndOnePause) {
  DevBroker broker(DevBroker::Options{1, kPartitions, {"ledger.events"}});
  TestDatabase db;
  TempDir dir;
  const auto manifest = writeManifest(
      dir, broker.bootstrap(), db.url(),
      "  - name: ledger\n    plugin: ledger\n    topics: [ledger.events]\n"
      "    batch: { max_events: 100, max_wait_ms: 20 }\n    workers: 3\n");
  auto engine = startEngine(manifest, dir.path() / "engine.log");
  ASSERT_TRUE(waitForEngineRunning(*engine)) << engine->log();
  std::smatch match;
  const std::string started_log = engine->log();
  ASSERT_TRUE(std::regex_search(started_log, match,
                                std::regex("admin listening on 127\\.0\\.0\\.1:(\\d+)")))
      << started_log;
  httplib::Client admin("127.0.0.1", std::stoi(match[1]));
  admin.set_read_timeout(10s);
  const auto get = [&](const std::string& path) {
    auto res = admin.Get(path.c_str());
    if (!res || res->status != 200) throw std::runtime_error("GET " + path + " failed");
    return res->body;
  };
  const auto projections = [&] { return json::parse(get("/api/v1/projections"))["projections"]; };

  // One consumer group: the three workers end up with two partitions each.
  ASSERT_TRUE(waitUntil([&] {
    const std::string log = engine->log();
    for (int worker = 0; worker < kWorkers; ++worker) {
      if (assignedTo(log, worker) != kPartitions / kWorkers) return false;
    }
    return true;
  }, 90s)) << engine->log();

  std::map<std::string, std::string> expected;
  const auto first = events("a", 3000, expected);
  produce(broker.bootstrap(), first);
  ASSERT_TRUE(waitUntil([&] { return stored(db.url()) == 3000; }, 120s)) << engine->log();

  // Exactly once: one processed_events row per event, and per partition the offsets 0..n-1
  // each once, n being the stored next offset.
  EXPECT_EQ(queryValue(db.url(), "SELECT count(*) FROM processed_events WHERE projection = 'ledger'"),
            "3000");
  EXPECT_EQ(queryValue(db.url(), "SELECT count(DISTINCT event_id) FROM processed_events"), "3000");
  EXPECT_EQ(queryValue(db.url(), "SELECT count(*) FROM ultracore_offsets WHERE projection = 'ledger' "
                                 "AND next_offset > 0"),
            std::to_string(kPartitions));
  EXPECT_EQ(queryValue(db.url(),
                       "SELECT count(*) FROM ultracore_offsets o WHERE o.projection = 'ledger' AND "
                       "(SELECT count(DISTINCT p.\"offset\")::bigint || '/' || count(*) || '/' || "
                       "coalesce(min(p.\"offset\"), -1) || '/' || coalesce(max(p.\"offset\"), -1) "
                       "FROM processed_events p WHERE p.projection = o.projection AND "
                       "p.topic = o.topic AND p.partition = o.partition) <> "
                       "o.next_offset || '/' || o.next_offset || '/0/' || (o.next_offset - 1)"),
            "0")
      << "a partition's processed offsets are not exactly 0..next_offset-1";
  // In order per aggregate: each ledger lists its events in log order.
  for (const auto& [aggregate, ids] : expected) {
    EXPECT_EQ(queryValue(db.url(), "SELECT event_ids FROM ledger.ledger WHERE aggregate_id = '" +
                                       aggregate + "'"),
              ids)
        << aggregate;
  }

  // /metrics: strictly parsed (no duplicate series), one series per projection, summed.
  ASSERT_TRUE(waitUntil([&] {
    return parsePrometheusText(get("/metrics")).at("ultracore_partition_stored_offset").samples.size() ==
           kPartitions;
  }, 30s)) << get("/metrics");
  const auto m = parsePrometheusText(get("/metrics"));
  EXPECT_EQ(promValue(m, "ultracore_events_applied_total", {{"projection", "ledger"}}), 3000);
  EXPECT_EQ(m.at("ultracore_events_applied_total").samples.size(), 1u);
  EXPECT_EQ(promValue(m, "ultracore_batch_size_events_sum", {{"projection", "ledger"}}), 3000);
  const double batches = promValue(m, "ultracore_batches_committed_total", {{"projection", "ledger"}});
  EXPECT_EQ(promValue(m, "ultracore_batch_size_events_count", {{"projection", "ledger"}}), batches);
  EXPECT_EQ(promValue(m, "ultracore_projection_state", {{"projection", "ledger"}, {"state", "running"}}), 1);
  double stored_sum = 0;
  for (const auto& s : m.at("ultracore_partition_stored_offset").samples) stored_sum += s.value;
  EXPECT_EQ(stored_sum, 3000);

  // The JSON view: one entry, every worker's partitions, counters summed.
  json p = projections();
  ASSERT_EQ(p.size(), 1u) << p.dump();
  EXPECT_EQ(p[0]["name"], "ledger");
  EXPECT_EQ(p[0]["workers"], kWorkers);
  EXPECT_EQ(p[0]["events_applied"], 3000);
  EXPECT_EQ(p[0]["partitions"].size(), static_cast<std::size_t>(kPartitions)) << p.dump();

  // Pause reaches every worker: events on all six partitions stay unapplied.
  auto res = admin.Post("/api/v1/projections/ledger/pause", "", "application/json");
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 202) << res->body;
  ASSERT_TRUE(waitUntil([&] { return projections()[0]["state"] == "paused"; }, 10s))
      << projections().dump();
  std::this_thread::sleep_for(1s);  // every worker has seen the request (one poll each)
  const auto second = events("b", 600, expected);
  produce(broker.bootstrap(), second);
  std::this_thread::sleep_for(3s);
  EXPECT_EQ(stored(db.url()), 3000) << "offsets moved while paused";
  EXPECT_EQ(projections()[0]["paused"], true);
  EXPECT_EQ(promValue(parsePrometheusText(get("/metrics")), "ultracore_projection_state",
                      {{"projection", "ledger"}, {"state", "paused"}}),
            1);

  res = admin.Post("/api/v1/projections/ledger/resume", "", "application/json");
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 202) << res->body;
  ASSERT_TRUE(waitUntil([&] { return stored(db.url()) == 3600; }, 120s)) << engine->log();
  EXPECT_EQ(queryValue(db.url(), "SELECT count(*) FROM processed_events"), "3600");
  ASSERT_TRUE(waitUntil([&] {
    return promValue(parsePrometheusText(get("/metrics")), "ultracore_events_applied_total",
                     {{"projection", "ledger"}}) == 3600;
  }, 30s)) << get("/metrics");
  EXPECT_EQ(projections()[0]["state"], "running");
  for (const auto& [aggregate, ids] : expected) {
    EXPECT_EQ(queryValue(db.url(), "SELECT event_ids FROM ledger.ledger WHERE aggregate_id = '" +
                                       aggregate + "'"),
              ids)
        << aggregate;
  }

  engine->signal(SIGTERM);
  EXPECT_EQ(engine->wait(30s), 0) << engine->log();
}

}  // namespace
}  // namespace ultracore::testing
