// Idempotency across an API crash (issue 15): the API process dies between a command's
// delivery report and storing its Idempotency-Key (fault hook ULTRACORE_FAULT=
// crash_after_publish). The client's retry publishes the command again; its events carry the
// first attempt's event_ids, so every projection applies them once. The ledger projection is
// not idempotent by nature: an event applied twice would show twice in its row.

#include <csignal>

#include <httplib.h>
#include <gtest/gtest.h>

#include "engine_harness.h"
#include "kafka/kafka_test_support.h"

namespace ultracore::testing {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

TEST(IdempotencyCrash, ARetryAfterACrashBeforeTheKeyIsStoredIsAppliedOnceByEveryProjection) {
  const std::string topic = "ledger.events";
  DevBroker broker(DevBroker::Options{1, 3, {topic}});
  TestDatabase db;
  TempDir dir;
  const int port = freePort();
  // Two projections of the same topic: each must skip the duplicate.
  auto manifest = writeManifest(
      dir, broker.bootstrap(), db.url(),
      "  - { name: ledger, plugin: ledger, topics: [" + topic + "], batch: { max_wait_ms: 10 } }\n"
      "  - { name: audit, plugin: ledger, projection: ledger, schema: audit,\n"
      "      topics: [" + topic + "], batch: { max_wait_ms: 10 } }\n");
  setApiPort(manifest, port);
  httplib::Client client("127.0.0.1", port);
  client.set_read_timeout(60, 0);
  const auto ready = [&](Subprocess& engine) {
    const bool answered = waitUntil([&] {
      if (!engine.running()) return true;  // exited: no use waiting
      auto res = client.Get("/readyz");
      return res && res->status == 200;
    }, 60s);
    if (answered && engine.running()) return true;
    ADD_FAILURE() << engine.log();
    return false;
  };
  const json body{{"topic", topic}, {"amounts", {1, 20, 300}}};  // three events, one transaction
  const httplib::Headers key{{"Idempotency-Key", "crash-key-1"}};

  {
    Subprocess crashing({binPath("ultracore-engine").string(), "--config", manifest.string()},
                        {{"ULTRACORE_FAULT", "crash_after_publish"}}, dir.path() / "crashing.log");
    ASSERT_TRUE(ready(crashing));
    auto res = client.Post("/api/v1/ledger/L1/entries", key, body.dump(), "application/json");
    EXPECT_FALSE(res) << "the API answered " << res->status << " before it was killed";
    EXPECT_EQ(crashing.wait(30s), 128 + SIGKILL) << crashing.log();
    EXPECT_NE(crashing.log().find("fault injection (ULTRACORE_FAULT=crash_after_publish)"),
              std::string::npos) << crashing.log();
  }
  std::int64_t published = 0;
  for (int p = 0; p < 3; ++p) published += watermarks(broker.bootstrap(), topic, p).second;
  ASSERT_EQ(published, 3) << "the crashed attempt's events are not all in the log";

  auto engine = startEngine(manifest, dir.path() / "engine.log");
  ASSERT_TRUE(ready(*engine));
  // The client retries as told while the restarted engine's projections rejoin their groups
  // (503 consistency_timeout, Retry-After: a command waits for what its route reads).
  int status = 0;
  std::string reply;
  ASSERT_TRUE(waitUntil([&] {
    auto retry = client.Post("/api/v1/ledger/L1/entries", key, body.dump(), "application/json");
    status = retry ? retry->status : -1;
    reply = retry ? retry->body : "";
    return status != 503 && status != -1;
  }, 90s)) << status << " " << reply << engine->log();
  ASSERT_EQ(status, 202) << reply;
  const json answer = json::parse(reply);
  ASSERT_EQ(answer.at("events").size(), 3u) << reply;
  // The retry was published again: the log holds both attempts.
  published = 0;
  for (int p = 0; p < 3; ++p) published += watermarks(broker.bootstrap(), topic, p).second;
  ASSERT_EQ(published, 6);
  ASSERT_TRUE(waitUntil([&] { return storedSum(db.url()) == "12"; }, 60s))  // 6 records x 2
      << engine->log();

  // Both attempts carry the same three event_ids: the log read back, grouped by id.
  std::map<std::string, int> copies;
  for (const auto& value : readTopic(broker.bootstrap(), topic, 3)) {
    ++copies[json::parse(value).at("event_id").get<std::string>()];
  }
  ASSERT_EQ(copies.size(), 3u);
  std::string ids;
  for (const auto& event : answer.at("events")) {
    const std::string id = event.at("event_id");
    EXPECT_EQ(copies[id], 2) << id;
    ids += (ids.empty() ? "" : ",") + id;
  }
  for (const std::string schema : {"ledger", "audit"}) {
    EXPECT_EQ(queryValue(db.url(), "SELECT total || '/' || events FROM " + schema + ".ledger"), "321/3")
        << schema;
    EXPECT_EQ(queryValue(db.url(), "SELECT count(*) FROM processed_events WHERE projection = '" +
                                       schema + "'"),
              "3") << schema;
  }
  EXPECT_EQ(queryValue(db.url(), "SELECT count(*) FROM ultracore_dead_letters"), "0");

  // The key is stored now: a third attempt replays the answer and publishes nothing.
  auto replay = client.Post("/api/v1/ledger/L1/entries", key, body.dump(), "application/json");
  ASSERT_TRUE(replay);
  EXPECT_EQ(replay->get_header_value("Idempotent-Replayed"), "true");
  EXPECT_EQ(json::parse(replay->body), answer);
  published = 0;
  for (int p = 0; p < 3; ++p) published += watermarks(broker.bootstrap(), topic, p).second;
  EXPECT_EQ(published, 6);
  engine->signal(SIGTERM);
  EXPECT_EQ(engine->wait(30s), 0) << engine->log();
}

}  // namespace
}  // namespace ultracore::testing
