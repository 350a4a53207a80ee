// The operator console's cluster views on real Apache Kafka, which answers the group admin
// requests the dev broker lacks: the engine's consumer group is listed by Kafka as Stable with
// its member, assignment and committed offsets beside the offsets stored in PostgreSQL; a
// foreign group (offsets committed by a client that never joined) is listed with its lag; the
// topics view reports leader and ISR; the message browser starts at a time.

#include <csignal>

#include <gtest/gtest.h>
#include <httplib.h>
#include <librdkafka/rdkafka.h>

#include "kafka_test_support.h"

namespace ultracore::testing {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

/// Commits `offset` for every partition of `topic` in `group` without joining it.
void commitForeignGroup(const std::string& bootstrap, const std::string& group, const std::string& topic,
                        int partitions, std::int64_t offset) {
  char error[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  for (const auto& [key, value] : {std::pair{"bootstrap.servers", bootstrap}, std::pair{"group.id", group},
                                   std::pair{"enable.auto.commit", std::string("false")}}) {
    ASSERT_EQ(rd_kafka_conf_set(conf, key, value.c_str(), error, sizeof(error)), RD_KAFKA_CONF_OK) << error;
  }
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, error, sizeof(error));
  ASSERT_NE(rk, nullptr) << error;
  rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(partitions);
  for (int p = 0; p < partitions; ++p) rd_kafka_topic_partition_list_add(list, topic.c_str(), p)->offset = offset;
  EXPECT_EQ(rd_kafka_commit(rk, list, 0), RD_KAFKA_RESP_ERR_NO_ERROR);
  rd_kafka_topic_partition_list_destroy(list);
  rd_kafka_destroy(rk);
}

TEST(RealKafkaConsole, GroupsTopicsAndTimeSearchAsKafkaReportsThem) {
  const std::string topic = "console.events";
  KafkaCluster kafka;
  kafka.createTopic(topic, 2);
  TestDatabase db;
  TempDir dir;
  auto manifest = writeKafkaManifest(dir, kafka.bootstrap(), db.url(), "  session.timeout.ms: 6000\n",
                                     "  - name: ledger\n" + kLedger + "    topics: [" + topic + "]\n", "console.yaml");
  auto engine = startEngine(manifest, dir.path() / "engine.log");
  ASSERT_TRUE(waitForEngineRunning(*engine)) << engine->log();
  const auto before = std::chrono::duration_cast<std::chrono::milliseconds>(
                          std::chrono::system_clock::now().time_since_epoch()).count();
  std::vector<Record> records;
  for (int i = 0; i < 10; ++i) {
    records.push_back({topic, "K", envelope("e" + std::to_string(i), "Entry", "K", {{"amount", i}}), i % 2});
  }
  produce(kafka.bootstrap(), records);
  ASSERT_TRUE(waitUntil([&] { return storedSum(db.url(), "ledger") == "10"; }, 120s)) << engine->log();
  commitForeignGroup(kafka.bootstrap(), "console-test-foreign", topic, 2, 2);

  httplib::Client admin("127.0.0.1", adminPort(*engine));
  admin.set_read_timeout(30s);
  json groups;
  ASSERT_TRUE(waitUntil([&] {
    auto res = admin.Get("/api/v1/groups");
    if (!res || res->status != 200) return false;
    groups = json::parse(res->body);
    for (const auto& g : groups["groups"]) {
      if (g["group_id"] != "ultracore.projection.ledger" || g["state"] != "Stable") continue;
      for (const auto& p : g["partitions"]) {
        if (p["committed"] != p["stored"] || p["stored"] != 5) return false;
      }
      return g["partitions"].size() == 2;
    }
    return false;
  }, 60s)) << groups.dump(2) << engine->log();
  EXPECT_FALSE(groups.contains("error")) << groups.dump(2);
  for (const auto& g : groups["groups"]) {
    if (g["group_id"] == "ultracore.projection.ledger") {
      EXPECT_EQ(g["ultracore"], true);
      EXPECT_EQ(g["projection"], "ledger");
      ASSERT_EQ(g["members"].size(), 1u) << g.dump(2);
      EXPECT_EQ(g["members"][0]["assignment"].size(), 2u) << g.dump(2);
      EXPECT_EQ(g["lag"], 0);
    } else if (g["group_id"] == "console-test-foreign") {
      EXPECT_EQ(g["ultracore"], false);
      EXPECT_TRUE(g["members"].empty());
      ASSERT_EQ(g["partitions"].size(), 2u) << g.dump(2);
      EXPECT_EQ(g["partitions"][0]["committed"], 2);
      EXPECT_EQ(g["lag"], 6) << g.dump(2);  // 5 + 5 in the log, 2 + 2 committed
    }
  }
  EXPECT_TRUE(std::any_of(groups["groups"].begin(), groups["groups"].end(),
                          [](const json& g) { return g["group_id"] == "console-test-foreign"; }))
      << groups.dump(2);

  auto topics = admin.Get("/api/v1/topics");
  ASSERT_TRUE(topics && topics->status == 200);
  const json t = json::parse(topics->body)["topics"][0];
  EXPECT_EQ(t["topic"], topic);
  EXPECT_EQ(t["messages"], 10);
  EXPECT_EQ(t["partitions"][1]["leader"], 1);
  EXPECT_EQ(t["partitions"][1]["isr"], json::array({1}));

  // From a time before the burst: all ten, from partition 0 then 1.
  auto found = admin.Get(("/api/v1/messages?topic=" + topic + "&from=time&time=" + std::to_string(before)).c_str());
  ASSERT_TRUE(found && found->status == 200) << (found ? found->body : "no answer");
  const json page = json::parse(found->body);
  EXPECT_EQ(page["records"].size(), 10u) << page.dump(2);
  EXPECT_EQ(page["done"], true);

  engine->signal(SIGTERM);
  EXPECT_EQ(engine->wait(60s), 0) << engine->log();
}

}  // namespace
}  // namespace ultracore::testing
