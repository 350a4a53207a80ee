// Issue 6, operations: after a burst, lag goes to 0 in `ultracore-ctl status --json` and in
// /metrics (which a strict text-format parser accepts); pause stops progress while events are
// produced and resume catches up; the status page is served whole, with no external resource.

#include <httplib.h>

#include <csignal>
#include <fstream>
#include <iterator>
#include <thread>

#include <gtest/gtest.h>

#include "engine_harness.h"
#include "prometheus_text.h"

namespace ultracore::testing {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

constexpr char kToken[] = "admin-s3cret";
constexpr int kPartitions = 3;

class OpsTest : public ::testing::Test {
 protected:
  OpsTest() : broker_(DevBroker::Options{1, kPartitions, {"ledger.events"}}) {}

  void SetUp() override {
    manifest_ = writeManifest(dir_, broker_.bootstrap(), db_.url(),
                              "  - { name: ledger, plugin: ledger, topics: [ledger.events],\n"
                              "      batch: { max_events: 200, max_wait_ms: 50 } }\n");
    setAdminToken(manifest_, kToken);  // the harness's manifest, with a token on the admin endpoint

    engine_ = startEngine(manifest_, dir_.path() / "engine.log");
    ASSERT_TRUE(waitForEngineRunning(*engine_)) << engine_->log();
    port_ = adminPort(*engine_);
    ASSERT_NE(port_, 0) << engine_->log();
    client_ = std::make_unique<httplib::Client>("127.0.0.1", port_);
    client_->set_read_timeout(10s);
  }
  void TearDown() override {
    engine_->signal(SIGTERM);
    EXPECT_EQ(engine_->wait(30s), 0) << engine_->log();
  }

  httplib::Headers auth() const { return {{"Authorization", std::string("Bearer ") + kToken}}; }
  std::string get(const std::string& path) {
    auto res = client_->Get(path.c_str(), auth());
    if (!res || res->status != 200) {
      throw std::runtime_error("GET " + path + " failed: " + (res ? std::to_string(res->status) : "no answer"));
    }
    return res->body;
  }
  std::map<std::string, PromFamily> metrics() { return parsePrometheusText(get("/metrics")); }
  json projection() { return json::parse(get("/api/v1/projections"))["projections"][0]; }

  std::vector<Record> burst(int events) {
    std::vector<Record> records;
    for (int i = 0; i < events; ++i) {
      const std::string aggregate = "L-" + std::to_string(i % 40);
      const std::string id = "e" + std::to_string(produced_ + i);
      records.push_back({"ledger.events", aggregate, envelope(id, "Entry", aggregate, {{"amount", 1}})});
    }
    produced_ += events;
    return records;
  }
  std::int64_t storedTotal() {
    const std::string v = queryValue(db_.url(), "SELECT sum(greatest(next_offset, 0)) FROM ultracore_offsets "
                                                "WHERE projection = 'ledger'");
    return v.empty() ? 0 : std::stoll(v);
  }
  /// {exit status, output} of ultracore-ctl with this test's manifest.
  std::pair<int, std::string> ctl(const std::vector<std::string>& args) {
    return runCtl(manifest_, args, dir_.path() / ("ctl-" + std::to_string(++ctl_runs_) + ".log"));
  }
  std::string adminUrl() const { return "http://127.0.0.1:" + std::to_string(port_); }
  /// The sum of a per-partition gauge of projection ledger, over every partition.
  double partitionSum(const std::map<std::string, PromFamily>& families, const std::string& name) {
    double sum = 0;
    for (const auto& s : families.at(name).samples) sum += s.value;
    return sum;
  }

  DevBroker broker_;
  TestDatabase db_;
  TempDir dir_;
  std::filesystem::path manifest_;
  std::unique_ptr<Subprocess> engine_;
  std::unique_ptr<httplib::Client> client_;
  int port_ = 0;
  int produced_ = 0;
  int ctl_runs_ = 0;
};

TEST_F(OpsTest, LagGoesToZeroAfterABurstInStatusAndMetrics) {
  // Before any event the endpoint is there, protected, and its text parses.
  auto anonymous = client_->Get("/metrics");
  ASSERT_TRUE(anonymous);
  EXPECT_EQ(anonymous->status, 401);
  auto wrong = client_->Get("/api/v1/projections", {{"Authorization", "Bearer nope"}});
  ASSERT_TRUE(wrong);
  EXPECT_EQ(wrong->status, 401);
  ASSERT_TRUE(waitUntil([&] { return metrics().at("ultracore_partition_lag_events").samples.size() == kPartitions; }, 60s))
      << get("/metrics") << engine_->log();

  produce(broker_.bootstrap(), burst(3000));
  ASSERT_TRUE(waitUntil([&] { return storedTotal() == 3000; }, 120s)) << engine_->log();

  // /metrics: every partition's lag 0, log ends sum to what was produced.
  ASSERT_TRUE(waitUntil([&] {
    const auto m = metrics();
    return partitionSum(m, "ultracore_partition_lag_events") == 0 &&
           partitionSum(m, "ultracore_partition_log_end_offset") == 3000;
  }, 30s)) << get("/metrics");
  const auto m = metrics();
  EXPECT_EQ(promValue(m, "ultracore_events_applied_total", {{"projection", "ledger"}}), 3000);
  EXPECT_EQ(promValue(m, "ultracore_events_failed_total", {{"projection", "ledger"}}), 0);
  EXPECT_EQ(promValue(m, "ultracore_dead_letters_open", {{"projection", "ledger"}}), 0);
  EXPECT_EQ(promValue(m, "ultracore_projection_state", {{"projection", "ledger"}, {"state", "running"}}), 1);
  EXPECT_EQ(m.at("ultracore_batch_size_events").type, "histogram");
  const double batches = promValue(m, "ultracore_batches_committed_total", {{"projection", "ledger"}});
  EXPECT_GT(batches, 0);
  EXPECT_EQ(promValue(m, "ultracore_batch_size_events_count", {{"projection", "ledger"}}), batches);
  EXPECT_EQ(promValue(m, "ultracore_batch_size_events_sum", {{"projection", "ledger"}}), 3000);
  EXPECT_EQ(promValue(m, "ultracore_batch_commit_seconds_bucket", {{"projection", "ledger"}, {"le", "+Inf"}}),
            batches);

  // The JSON view agrees.
  const json p = projection();
  EXPECT_EQ(p["state"], "running");
  EXPECT_EQ(p["lag"], 0);
  EXPECT_EQ(p["partitions"].size(), static_cast<std::size_t>(kPartitions));

  // ultracore-ctl status --json: from PostgreSQL and Kafka directly.
  auto [status, out] = ctl({"status", "--json", "--admin-url", adminUrl()});
  ASSERT_EQ(status, 0) << out;
  const json doc = json::parse(out);
  ASSERT_EQ(doc["projections"].size(), 1u) << out;
  const json& ledger = doc["projections"][0];
  EXPECT_EQ(ledger["name"], "ledger");
  EXPECT_EQ(ledger["state"], "running");
  EXPECT_EQ(ledger["last_error"], "");
  EXPECT_EQ(ledger["lag"], 0) << out;
  EXPECT_TRUE(ledger["events_per_second"].is_number()) << out;
  std::int64_t log_end = 0;
  for (const auto& partition : ledger["partitions"]) {
    EXPECT_EQ(partition["lag"], 0) << out;
    EXPECT_EQ(partition["log_end"], partition["stored_offset"]) << out;
    log_end += partition["log_end"].get<std::int64_t>();
  }
  EXPECT_EQ(log_end, 3000) << out;
  std::tie(status, out) = ctl({"status"});
  EXPECT_EQ(status, 0) << out;
  EXPECT_NE(out.find("ledger.events"), std::string::npos) << out;
}

TEST_F(OpsTest, PauseStopsProgressAndResumeCatchesUp) {
  produce(broker_.bootstrap(), burst(300));
  ASSERT_TRUE(waitUntil([&] { return storedTotal() == 300; }, 120s)) << engine_->log();

  auto [status, out] = ctl({"pause", "ledger", "--admin-url", adminUrl()});
  ASSERT_EQ(status, 0) << out << engine_->log();
  EXPECT_NE(out.find("paused"), std::string::npos) << out;
  EXPECT_EQ(projection()["state"], "paused");
  EXPECT_TRUE(waitUntil([&] {
    return queryValue(db_.url(), "SELECT state FROM ultracore_projection_status WHERE projection = 'ledger'") == "paused";
  }, 10s));

  produce(broker_.bootstrap(), burst(500));
  std::this_thread::sleep_for(3s);
  EXPECT_EQ(storedTotal(), 300) << "offsets moved while paused";
  std::this_thread::sleep_for(1s);
  EXPECT_EQ(storedTotal(), 300) << "offsets moved while paused";
  EXPECT_EQ(queryValue(db_.url(), "SELECT count(*) FROM processed_events"), "300");
  const auto m = metrics();
  EXPECT_EQ(promValue(m, "ultracore_projection_state", {{"projection", "ledger"}, {"state", "paused"}}), 1);
  EXPECT_EQ(partitionSum(m, "ultracore_partition_lag_events"), 500) << get("/metrics");
  std::tie(status, out) = ctl({"status", "ledger", "--json"});
  ASSERT_EQ(status, 0) << out;
  EXPECT_EQ(json::parse(out)["projections"][0]["lag"], 500) << out;

  // Unknown projection: 404, ctl exit 2.
  std::tie(status, out) = ctl({"pause", "nope", "--admin-url", adminUrl()});
  EXPECT_EQ(status, 2) << out;

  std::tie(status, out) = ctl({"resume", "ledger", "--admin-url", adminUrl()});
  ASSERT_EQ(status, 0) << out;
  ASSERT_TRUE(waitUntil([&] { return storedTotal() == 800; }, 120s)) << engine_->log();
  EXPECT_EQ(queryValue(db_.url(), "SELECT count(*) FROM processed_events"), "800");
  EXPECT_EQ(queryValue(db_.url(), "SELECT sum(total) FROM ledger.ledger"), "800");
  EXPECT_TRUE(waitUntil([&] { return projection()["lag"] == 0; }, 30s)) << get("/api/v1/projections");
  EXPECT_EQ(projection()["state"], "running");
}

TEST_F(OpsTest, StatusPageIsOneSelfContainedDocument) {
  auto res = client_->Get("/");  // the page holds no data: open without the token
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_NE(res->get_header_value("Content-Type").find("text/html"), std::string::npos);
  const std::string& page = res->body;
  EXPECT_NE(page.find("/api/v1/projections"), std::string::npos);
  EXPECT_NE(page.find("<svg"), std::string::npos);
  EXPECT_EQ(page.find("src="), std::string::npos) << "no external script or image";
  EXPECT_EQ(page.find("<link"), std::string::npos) << "no external stylesheet";
  EXPECT_EQ(page.find("http://"), std::string::npos);
  EXPECT_EQ(page.find("https://"), std::string::npos);
}

}  // namespace
}  // namespace ultracore::testing
