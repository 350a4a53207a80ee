// ultracore-ctl tail, produce and rebuild --until (time travel), as real processes against a
// real dev broker and PostgreSQL; where the live read model matters, a real engine runs too.

#include <csignal>
#include <fstream>
#include <iterator>
#include <thread>

#include <gtest/gtest.h>
#include <librdkafka/rdkafka.h>

#include "engine/kafka/kafka_record.h"
#include "engine_harness.h"

namespace ultracore::testing {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

constexpr char kTopic[] = "ultracore.customers.events";
constexpr char kMisc[] = "misc.events";

std::int64_t nowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

/// A customers envelope with an explicit aggregate_version.
std::string customerEvent(const std::string& event_id, const std::string& type,
                          const std::string& customer, int version, const json& data) {
  json document = json::parse(envelope(event_id, type, customer, data));
  document["aggregate_type"] = "Customer";
  document["aggregate_version"] = version;
  return document.dump();
}

json created(const std::string& email) {
  return {{"first_name", "Ada"}, {"last_name", "Lovelace"}, {"email", email}};
}

class CtlTest : public ::testing::Test {
 protected:
  CtlTest() : broker_(DevBroker::Options{1, 2, {std::string(kTopic), std::string(kMisc) + ":1"}}) {}

  void SetUp() override {
    manifest_ = writeManifest(
        dir_, broker_.bootstrap(), db_.url(),
        "  - { name: customers, plugin: customers, topics: [ultracore.customers.events],\n"
        "      on_error: skip, batch: { max_events: 100, max_wait_ms: 20 } }\n"
        "  - { name: customers_strict, plugin: customers, projection: customers,\n"
        "      topics: [ultracore.customers.events], schema: strict_live, on_error: fail }\n");
  }
  void TearDown() override {
    if (engine_) {
      engine_->signal(SIGTERM);
      EXPECT_EQ(engine_->wait(30s), 0) << engine_->log();
    }
  }

  void startEngineAndWait() {
    engine_ = startEngine(manifest_, dir_.path() / "engine.log");
    ASSERT_TRUE(waitForEngineRunning(*engine_)) << engine_->log();
  }

  /// {exit status, stdout+stderr} of ultracore-ctl with this test's manifest.
  std::pair<int, std::string> ctl(std::vector<std::string> args) {
    std::vector<std::string> argv = {binPath("ultracore-ctl").string(), "--config",
                                     manifest_.string()};
    argv.insert(argv.end(), args.begin(), args.end());
    Subprocess process(argv, {}, dir_.path() / ("ctl-" + std::to_string(++ctl_runs_) + ".log"));
    const auto status = process.wait(120s);
    return {status.value_or(-1), process.log()};
  }

  std::string writeFile(const std::string& name, const std::string& text) {
    const auto path = dir_.path() / name;
    std::ofstream(path) << text;
    return path.string();
  }

  std::string sql(const std::string& query) { return queryValue(db_.url(), query); }

  /// Sum of the high watermarks of `topic`'s partitions.
  std::int64_t logEnd(const std::string& topic, int partitions) {
    return logEndSum(broker_.bootstrap(), topic, partitions);
  }

  /// One record with one header (the harness's produce() sends none).
  void produceWithHeader(const std::string& topic, const std::string& key, const std::string& value,
                         const std::string& header, const std::string& header_value) {
    char error[512];
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", broker_.bootstrap().c_str(), error, sizeof(error));
    rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, error, sizeof(error));
    ASSERT_NE(rk, nullptr) << error;
    const auto err = rd_kafka_producev(
        rk, RD_KAFKA_V_TOPIC(topic.c_str()), RD_KAFKA_V_KEY(key.data(), key.size()),
        RD_KAFKA_V_VALUE(const_cast<char*>(value.data()), value.size()),
        RD_KAFKA_V_HEADER(header.c_str(), header_value.data(),
                          static_cast<ssize_t>(header_value.size())),
        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
    EXPECT_EQ(err, RD_KAFKA_RESP_ERR_NO_ERROR) << rd_kafka_err2str(err);
    EXPECT_EQ(rd_kafka_flush(rk, 30000), RD_KAFKA_RESP_ERR_NO_ERROR);
    rd_kafka_destroy(rk);
  }

  DevBroker broker_;
  TestDatabase db_;
  TempDir dir_;
  std::filesystem::path manifest_;
  std::unique_ptr<Subprocess> engine_;
  int ctl_runs_ = 0;
};

// --until at a time between two events: exactly the state after the first one; the live
// schema, processed_events and the engine's offsets are not touched.
TEST_F(CtlTest, RebuildUntilATimeBetweenTwoEventsYieldsTheStateAfterTheFirst) {
  startEngineAndWait();
  produce(broker_.bootstrap(),
          {{kTopic, "CUST-TT-1",
            customerEvent("tt-1", "CustomerCreated", "CUST-TT-1", 1, created("old@example.com"))}});
  // The record's Kafka timestamp was taken when it was produced, before produce() returned.
  std::this_thread::sleep_for(20ms);
  const std::int64_t between = nowMs();
  std::this_thread::sleep_for(20ms);
  produce(
      broker_.bootstrap(),
      {{kTopic, "CUST-TT-1",
        customerEvent("tt-2", "CustomerUpdated", "CUST-TT-1", 2, {{"email", "new@example.com"}})}});
  ASSERT_TRUE(waitUntil(
      [&] {
        return sql("SELECT email FROM customers.customers WHERE customer_id = 'CUST-TT-1'") ==
                   "new@example.com" &&
               sql("SELECT count(*) FROM processed_events") == "4";  // two projections, two events
      },
      60s))
      << engine_->log();
  const std::string processed_before = tableChecksum(db_.url(), "SELECT * FROM processed_events");
  const std::string offsets_before = tableChecksum(
      db_.url(), "SELECT projection, topic, partition, next_offset FROM ultracore_offsets");
  const std::string live_before = tableChecksum(db_.url(), "SELECT * FROM customers.customers");

  auto [status, out] =
      ctl({"rebuild", "customers", "--until", engine::isoTimeMs(between), "--into", "audit_t"});
  ASSERT_EQ(status, 0) << out;
  EXPECT_NE(out.find("applied:     1 event(s)"), std::string::npos) << out;
  EXPECT_EQ(sql("SELECT email FROM audit_t.customers WHERE customer_id = 'CUST-TT-1'"),
            "old@example.com");
  EXPECT_EQ(sql("SELECT version FROM audit_t.customers WHERE customer_id = 'CUST-TT-1'"), "1");
  EXPECT_EQ(sql("SELECT count(*) FROM audit_t.customers"), "1");
  EXPECT_EQ(sql("SELECT status || ' ' || events || ' ' || projection || ' ' || until_kind FROM "
                "audit_t.ultracore_time_travel"),
            "complete 1 customers time");
  EXPECT_EQ(sql("SELECT until FROM audit_t.ultracore_time_travel"), engine::isoTimeMs(between));
  EXPECT_EQ(sql("SELECT (extract(epoch FROM until_time) * 1000)::bigint FROM "
                "audit_t.ultracore_time_travel"),
            std::to_string(between));

  // The same moment as epoch milliseconds; and a moment after both events.
  std::tie(status, out) =
      ctl({"rebuild", "customers", "--until", std::to_string(between), "--into", "audit_ms"});
  ASSERT_EQ(status, 0) << out;
  EXPECT_EQ(sql("SELECT email || ' ' || version FROM audit_ms.customers"), "old@example.com 1");
  std::tie(status, out) =
      ctl({"rebuild", "customers", "--until", engine::isoTimeMs(nowMs()), "--into", "audit_now"});
  ASSERT_EQ(status, 0) << out;
  EXPECT_EQ(sql("SELECT email || ' ' || version FROM audit_now.customers"), "new@example.com 2");

  // Nothing of the engine's moved.
  EXPECT_EQ(tableChecksum(db_.url(), "SELECT * FROM processed_events"), processed_before);
  EXPECT_EQ(
      tableChecksum(db_.url(),
                    "SELECT projection, topic, partition, next_offset FROM ultracore_offsets"),
      offsets_before);
  EXPECT_EQ(tableChecksum(db_.url(), "SELECT * FROM customers.customers"), live_before);
  EXPECT_EQ(sql("SELECT email || ' ' || version FROM customers.customers"), "new@example.com 2");
  EXPECT_EQ(
      sql("SELECT count(*) FROM ultracore_projection_schemas WHERE schema_name LIKE 'audit%'"),
      "0");
}

// --until OFFSETS: next offsets per partition as ultracore_offsets stores them; partitions not
// listed contribute nothing.
TEST_F(CtlTest, RebuildUntilOffsetsAppliesRecordsBelowEachNextOffset) {
  produce(broker_.bootstrap(),
          {{kTopic, "CUST-A",
            customerEvent("a-1", "CustomerCreated", "CUST-A", 1, created("a1@example.com")), 0},
           {kTopic, "CUST-A",
            customerEvent("a-2", "CustomerUpdated", "CUST-A", 2, {{"email", "a2@example.com"}}), 0},
           {kTopic, "CUST-B",
            customerEvent("b-1", "CustomerCreated", "CUST-B", 1, created("b1@example.com")), 1}});
  const std::string p0 = std::string(kTopic) + ":0=";
  const std::string p1 = std::string(kTopic) + ":1=";

  auto [status, out] = ctl({"rebuild", "customers", "--until", p0 + "1", "--into", "at_offsets_1"});
  ASSERT_EQ(status, 0) << out;
  EXPECT_EQ(sql("SELECT string_agg(customer_id || ' ' || email || ' ' || version, ', ' ORDER BY "
                "customer_id) FROM at_offsets_1.customers"),
            "CUST-A a1@example.com 1");
  EXPECT_EQ(
      sql("SELECT (end_offsets->>'ultracore.customers.events:0') || ',' || "
          "(end_offsets->>'ultracore.customers.events:1') FROM at_offsets_1.ultracore_time_travel"),
      "1,0");

  std::tie(status, out) =
      ctl({"rebuild", "customers", "--until", p0 + "2," + p1 + "1", "--into", "at_offsets_2"});
  ASSERT_EQ(status, 0) << out;
  EXPECT_EQ(sql("SELECT string_agg(customer_id || ' ' || email || ' ' || version, ', ' ORDER BY "
                "customer_id) FROM at_offsets_2.customers"),
            "CUST-A a2@example.com 2, CUST-B b1@example.com 1");
  EXPECT_EQ(sql("SELECT events FROM at_offsets_2.ultracore_time_travel"), "3");

  // Only partition 1 listed: partition 0 contributes nothing.
  std::tie(status, out) =
      ctl({"rebuild", "customers", "--until", p1 + "1", "--into", "at_offsets_3"});
  ASSERT_EQ(status, 0) << out;
  EXPECT_EQ(sql("SELECT string_agg(customer_id, ',') FROM at_offsets_3.customers"), "CUST-B");

  // Beyond the log end, a topic the projection does not read, garbage: exit 2.
  std::tie(status, out) = ctl({"rebuild", "customers", "--until", p0 + "3", "--into", "x1"});
  EXPECT_EQ(status, 2) << out;
  EXPECT_NE(out.find("beyond the log end"), std::string::npos) << out;
  std::tie(status, out) =
      ctl({"rebuild", "customers", "--until", "misc.events:0=1", "--into", "x2"});
  EXPECT_EQ(status, 2) << out;
  EXPECT_NE(out.find("does not read topic 'misc.events'"), std::string::npos) << out;
  std::tie(status, out) = ctl({"rebuild", "customers", "--until", "yesterday", "--into", "x3"});
  EXPECT_EQ(status, 2) << out;
  EXPECT_EQ(sql("SELECT count(*) FROM pg_namespace WHERE nspname IN ('x1', 'x2', 'x3')"), "0");
}

TEST_F(CtlTest, RebuildRefusesAnExistingSchemaAndTheLiveSchema) {
  produce(broker_.bootstrap(),
          {{kTopic, "CUST-R",
            customerEvent("r-1", "CustomerCreated", "CUST-R", 1, created("r@example.com"))}});
  const std::string until = std::to_string(nowMs() + 1000);
  auto [status, out] = ctl({"rebuild", "customers", "--until", until, "--into", "audit_r"});
  ASSERT_EQ(status, 0) << out;
  sql("INSERT INTO audit_r.customers (customer_id, tenant_id, first_name, last_name, email, "
      "status, version, created_at, updated_at) "
      "SELECT 'MARKER', tenant_id, first_name, last_name, email, status, version, created_at, "
      "updated_at FROM audit_r.customers RETURNING 1");

  std::tie(status, out) = ctl({"rebuild", "customers", "--until", until, "--into", "audit_r"});
  EXPECT_EQ(status, 2) << out;
  EXPECT_NE(out.find("schema 'audit_r' already exists"), std::string::npos) << out;
  EXPECT_EQ(sql("SELECT count(*) FROM audit_r.customers"), "2") << "refused, yet touched";
  std::tie(status, out) =
      ctl({"rebuild", "customers", "--until", until, "--into", "audit_r", "--replace"});
  EXPECT_EQ(status, 0) << out;
  EXPECT_EQ(sql("SELECT count(*) FROM audit_r.customers"), "1") << "--replace did not rebuild";

  // Live schemas: the plugin's default (customers) and a manifest `schema:` (strict_live),
  // whether they exist yet or not, with or without --replace.
  for (const std::string live : {"customers", "strict_live"}) {
    std::tie(status, out) =
        ctl({"rebuild", "customers", "--until", until, "--into", live, "--replace"});
    EXPECT_EQ(status, 2) << out;
    EXPECT_NE(out.find("is the live schema of projection"), std::string::npos) << out;
  }
  EXPECT_EQ(sql("SELECT count(*) FROM pg_namespace WHERE nspname IN ('customers', 'strict_live')"),
            "0");
  // A schema a time-travel build did not make is never dropped.
  sql("CREATE SCHEMA precious; CREATE TABLE precious.t (x int); SELECT 1");
  std::tie(status, out) =
      ctl({"rebuild", "customers", "--until", until, "--into", "precious", "--replace"});
  EXPECT_EQ(status, 2) << out;
  EXPECT_EQ(sql("SELECT to_regclass('precious.t')::text"), "precious.t");
  std::tie(status, out) = ctl({"rebuild", "customers", "--until", until, "--into", "public"});
  EXPECT_EQ(status, 2) << out;

  // A rebuild's generation schema is not for time travel either.
  std::tie(status, out) = ctl({"rebuild", "customers", "--until", until, "--into", "customers__g7"});
  EXPECT_EQ(status, 2) << out;
  EXPECT_NE(out.find("generation schema"), std::string::npos) << out;

  // --until and --into go together; without both it is the live rebuild, through the engine.
  std::tie(status, out) = ctl({"rebuild", "customers", "--until", until});
  EXPECT_EQ(status, 2) << out;
  EXPECT_NE(out.find("--until and --into go together"), std::string::npos) << out;
  std::tie(status, out) = ctl({"rebuild", "customers", "--into", "audit_x"});
  EXPECT_EQ(status, 2) << out;
  std::tie(status, out) = ctl({"rebuild", "customers"});
  EXPECT_EQ(status, 2) << out;
  EXPECT_NE(out.find("admin.listen has port 0"), std::string::npos) << out;  // no engine here
  std::tie(status, out) = ctl({"rebuild", "nope", "--until", until, "--into", "audit_y"});
  EXPECT_EQ(status, 2) << out;
  EXPECT_NE(out.find("no projection 'nope'"), std::string::npos) << out;
}

// A record that is not an envelope and an event the plugin rejects: skipped alone under
// on_error skip (listed, the rest applied); the build stops there under on_error fail.
TEST_F(CtlTest, RebuildSkipsOrStopsAtPoisonByThePolicy) {
  produce(broker_.bootstrap(),
          {{kTopic, "CUST-P",
            customerEvent("p-1", "CustomerCreated", "CUST-P", 1, created("p1@example.com")), 0},
           {kTopic, "CUST-P", "this is not json", 0},
           {kTopic, "CUST-P",
            customerEvent("p-2", "CustomerTeleported", "CUST-P", 2, json::object()), 0},
           {kTopic, "CUST-P",
            customerEvent("p-1", "CustomerCreated", "CUST-P", 1, created("p1@example.com")), 0},
           {kTopic, "CUST-P",
            customerEvent("p-3", "CustomerUpdated", "CUST-P", 2, {{"email", "p3@example.com"}}), 0},
           // Partition 1: valid envelopes only; the first fails in PostgreSQL (not a date).
           {kTopic, "CUST-Q1",
            customerEvent("q-1", "CustomerCreated", "CUST-Q1", 1,
                          {{"first_name", "Q"},
                           {"last_name", "One"},
                           {"email", "q1@example.com"},
                           {"date_of_birth", "not-a-date"}}),
            1},
           {kTopic, "CUST-Q2",
            customerEvent("q-2", "CustomerCreated", "CUST-Q2", 1, created("q2@example.com")), 1}});
  const std::string until = std::to_string(nowMs() + 1000);
  auto [status, out] = ctl({"rebuild", "customers", "--until", until, "--into", "audit_skip"});
  ASSERT_EQ(status, 0) << out;
  EXPECT_NE(out.find("skipped ultracore.customers.events[0]@1: invalid envelope: not valid JSON"),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("skipped ultracore.customers.events[0]@2 (event_id p-2)"), std::string::npos)
      << out;
  EXPECT_NE(out.find("skipped ultracore.customers.events[1]@0 (event_id q-1)"), std::string::npos)
      << out;
  EXPECT_EQ(sql("SELECT string_agg(customer_id || ' ' || email || ' ' || version, ', ' ORDER BY "
                "customer_id) FROM audit_skip.customers"),
            "CUST-P p3@example.com 2, CUST-Q2 q2@example.com 1");
  EXPECT_EQ(sql("SELECT string_agg(partition || '@' || \"offset\", ',' ORDER BY partition, "
                "\"offset\") FROM audit_skip.ultracore_time_travel_skipped"),
            "0@1,0@2,1@0");
  EXPECT_EQ(sql("SELECT events || ' ' || skipped || ' ' || duplicates FROM "
                "audit_skip.ultracore_time_travel"),
            "3 3 1");

  // A batch of valid envelopes only (partition 1) whose apply fails in PostgreSQL: retried
  // event by event, only the failing one is skipped.
  const std::string p1 = std::string(kTopic) + ":1=2";
  std::tie(status, out) = ctl({"rebuild", "customers", "--until", p1, "--into", "audit_sql"});
  ASSERT_EQ(status, 0) << out;
  EXPECT_NE(out.find("skipped ultracore.customers.events[1]@0 (event_id q-1)"), std::string::npos)
      << out;
  EXPECT_EQ(sql("SELECT string_agg(customer_id, ',') FROM audit_sql.customers"), "CUST-Q2");
  std::tie(status, out) =
      ctl({"rebuild", "customers_strict", "--until", p1, "--into", "audit_sql_fail"});
  EXPECT_EQ(status, 1) << out;
  EXPECT_NE(out.find("stopped at ultracore.customers.events[1]@0 (event_id q-1)"),
            std::string::npos)
      << out;

  // Under fail, the first poison read stops the build. Which partition is read first is not
  // fixed, so this build reads partition 0 only.
  std::tie(status, out) = ctl({"rebuild", "customers_strict", "--until",
                               std::string(kTopic) + ":0=5", "--into", "audit_fail"});
  EXPECT_EQ(status, 1) << out;
  EXPECT_NE(
      out.find("stopped at ultracore.customers.events[0]@1: invalid envelope: not valid JSON"),
      std::string::npos)
      << out;
  EXPECT_EQ(sql("SELECT status FROM audit_fail.ultracore_time_travel"), "failed");
}

TEST_F(CtlTest, ProduceValidatesEverythingFirstAndTheEngineMaterializesIt) {
  startEngineAndWait();
  // Line 3 is invalid (no event_type): nothing at all is produced, and the message names it.
  std::string lines;
  for (int i = 1; i <= 4; ++i) {
    json document = json::parse(customerEvent("pr-" + std::to_string(i), "CustomerCreated",
                                              "CUST-PR-" + std::to_string(i), 1,
                                              created("pr" + std::to_string(i) + "@example.com")));
    if (i == 3) document.erase("event_type");
    lines += document.dump() + "\n";
  }
  const std::string bad = writeFile("bad.jsonl", lines);
  auto [status, out] = ctl({"produce", kTopic, bad});
  EXPECT_EQ(status, 2) << out;
  EXPECT_NE(out.find(bad + ":3: invalid envelope: 'event_type' is missing"), std::string::npos)
      << out;
  EXPECT_EQ(out.find(bad + ":1:"), std::string::npos) << out;
  EXPECT_NE(out.find("nothing produced"), std::string::npos) << out;
  EXPECT_EQ(logEnd(kTopic, 2), 0);

  // The valid file, as JSON lines: key = aggregate_id, the engine applies every event.
  std::string good;
  for (int i = 1; i <= 4; ++i) {
    good +=
        customerEvent("pr-" + std::to_string(i), "CustomerCreated", "CUST-PR-" + std::to_string(i),
                      1, created("pr" + std::to_string(i) + "@example.com")) +
        "\n";
  }
  std::tie(status, out) = ctl({"produce", kTopic, writeFile("good.jsonl", good)});
  ASSERT_EQ(status, 0) << out;
  EXPECT_NE(out.find("produced 4 of 4 event(s) to ultracore.customers.events"), std::string::npos)
      << out;
  EXPECT_EQ(logEnd(kTopic, 2), 4);
  ASSERT_TRUE(
      waitUntil([&] { return sql("SELECT count(*) FROM customers.customers") == "4"; }, 60s))
      << engine_->log();
  EXPECT_EQ(sql("SELECT email FROM customers.customers WHERE customer_id = 'CUST-PR-3'"),
            "pr3@example.com");

  // A JSON array with --generate-ids: missing event_id and occurred_at are filled in.
  json array = json::array();
  for (int i = 5; i <= 6; ++i) {
    json document =
        json::parse(customerEvent("x", "CustomerCreated", "CUST-PR-" + std::to_string(i), 1,
                                  created("pr" + std::to_string(i) + "@example.com")));
    document.erase("event_id");
    document.erase("occurred_at");
    array.push_back(document);
  }
  const std::string array_file = writeFile("array.json", array.dump(2));
  std::tie(status, out) = ctl({"produce", kTopic, array_file});
  EXPECT_EQ(status, 2) << out;
  EXPECT_NE(out.find(array_file + ": array index 0: invalid envelope: 'event_id' is missing"),
            std::string::npos)
      << out;
  std::tie(status, out) = ctl({"produce", kTopic, array_file, "--generate-ids"});
  ASSERT_EQ(status, 0) << out;
  ASSERT_TRUE(
      waitUntil([&] { return sql("SELECT count(*) FROM customers.customers") == "6"; }, 60s))
      << engine_->log();
  EXPECT_EQ(
      sql("SELECT count(DISTINCT event_id) FROM processed_events WHERE projection = 'customers'"),
      "6");
  EXPECT_EQ(
      sql("SELECT count(*) FROM processed_events WHERE projection = 'customers' AND event_id ~ "
          "'^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$'"),
      "2");

  // Unknown topic: exit 2 before anything is sent.
  std::tie(status, out) = ctl({"produce", "no.such.topic",
                               writeFile("one.json", customerEvent("z", "CustomerCreated", "CUST-Z",
                                                                   1, created("z@example.com")))});
  EXPECT_EQ(status, 2) << out;
}

TEST_F(CtlTest, TailPrintsEnvelopesWithOffsetsAndShowsARecordThatIsNotOne) {
  produce(broker_.bootstrap(), {{kMisc, "K-1", envelope("tail-1", "Thing", "K-1", {{"n", 1}})},
                                {kMisc, "K-2", "not an envelope"},
                                {kMisc, "K-3", R"({"event_id":"tail-3","aggregate_id":"K-3"})"},
                                {kMisc, "K-4", envelope("tail-4", "Thing", "K-4", {{"n", 4}})}});
  auto [status, out] = ctl({"tail", kMisc, "--from-beginning", "--max", "3"});
  ASSERT_EQ(status, 0) << out;
  EXPECT_NE(out.find("misc.events partition 0 offset 0 "), std::string::npos) << out;
  EXPECT_NE(out.find("key K-1"), std::string::npos) << out;
  EXPECT_NE(out.find("  \"event_id\": \"tail-1\""), std::string::npos) << out;  // indented JSON
  EXPECT_NE(out.find("misc.events partition 0 offset 1 "), std::string::npos) << out;
  EXPECT_NE(out.find("error: invalid envelope: not valid JSON\nnot an envelope\n"),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("misc.events partition 0 offset 2 "), std::string::npos) << out;
  EXPECT_NE(out.find("error: invalid envelope: 'event_type' is missing"), std::string::npos) << out;
  EXPECT_EQ(out.find("offset 3 "), std::string::npos) << "--max 3 printed more:\n" << out;
  EXPECT_EQ(out.find("tail-4"), std::string::npos) << out;

  std::tie(status, out) =
      ctl({"tail", kMisc, "--from-beginning", "--max", "4", "--raw", "--partition", "0"});
  ASSERT_EQ(status, 0) << out;
  EXPECT_NE(out.find("offset 3 "), std::string::npos) << out;
  EXPECT_NE(out.find(R"({"event_id":"tail-3","aggregate_id":"K-3"})"), std::string::npos) << out;
  // --exit-at-end stops at the log end: all four records, then exit 0.
  std::tie(status, out) = ctl({"tail", kMisc, "--from-beginning", "--exit-at-end"});
  ASSERT_EQ(status, 0) << out;
  EXPECT_NE(out.find("tail-4"), std::string::npos) << out;
  EXPECT_NE(out.find("4 record(s)"), std::string::npos) << out;
  // An empty topic (two empty partitions): --exit-at-end ends at once.
  std::tie(status, out) = ctl({"tail", kTopic, "--from-beginning", "--exit-at-end"});
  EXPECT_EQ(status, 0) << out;
  EXPECT_NE(out.find("0 record(s)"), std::string::npos) << out;
  std::tie(status, out) = ctl({"tail", kMisc, "--partition", "7", "--max", "1"});
  EXPECT_EQ(status, 2) << out;

  // Headers are shown; --bootstrap overrides a manifest whose bootstrap is wrong.
  produceWithHeader(kMisc, "K-5", envelope("tail-5", "Thing", "K-5", {{"n", 5}}), "trace-id",
                    "abc-123");
  std::string text;
  {
    std::ifstream in(manifest_);
    text.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  const auto at = text.find(broker_.bootstrap());
  ASSERT_NE(at, std::string::npos);
  text.replace(at, broker_.bootstrap().size(), "127.0.0.1:1");
  const auto wrong = dir_.path() / "wrong-bootstrap.yaml";
  std::ofstream(wrong) << text;
  Subprocess headers({binPath("ultracore-ctl").string(), "--config", wrong.string(), "--bootstrap",
                      broker_.bootstrap(), "tail", kMisc, "--from-beginning", "--exit-at-end"},
                     {}, dir_.path() / "headers.log");
  ASSERT_EQ(headers.wait(60s), 0) << headers.log();
  EXPECT_NE(headers.log().find("misc.events partition 0 offset 4 "), std::string::npos)
      << headers.log();
  EXPECT_NE(headers.log().find("  header trace-id: abc-123\n"), std::string::npos) << headers.log();

  // Without --max, from the log end: SIGTERM ends it cleanly (exit 0).
  Subprocess tail(
      {binPath("ultracore-ctl").string(), "--config", manifest_.string(), "tail", kMisc}, {},
      dir_.path() / "tail.log");
  ASSERT_TRUE(
      waitUntil([&] { return tail.log().find("tailing misc.events") != std::string::npos; }, 30s))
      << tail.log();
  tail.signal(SIGTERM);
  EXPECT_EQ(tail.wait(30s), 0) << tail.log();
}

}  // namespace
}  // namespace ultracore::testing
