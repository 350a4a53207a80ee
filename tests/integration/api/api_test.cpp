// The command/query API (issue 4) over real HTTP: ultracore-engine as a subprocess, the real
// PostgreSQL, a dev broker. Every "nothing was published" claim is checked on the topic's end
// offsets.


#include <csignal>
#include <fstream>

#include <httplib.h>
#include <gtest/gtest.h>
#include <librdkafka/rdkafka.h>

#include "engine_harness.h"

namespace ultracore::testing {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

constexpr const char* kCustomersTopic = "ultracore.customers.events";
constexpr const char* kAccountsTopic = "ultracore.accounts.events";
constexpr const char* kToken = "s3cret-token";
constexpr int kPartitions = 6;

/// A port nobody listens on right now (the kernel's pick), for api.listen.
class ApiTest : public ::testing::Test {
 protected:
  ApiTest() : broker_(DevBroker::Options{1, kPartitions, {kCustomersTopic, kAccountsTopic}}) {}

  void SetUp() override {
    port_ = freePort();
    const auto manifest = dir_.path() / "projections.yaml";
    {
      std::ofstream out(manifest);
      out << "kafka:\n"
          << "  bootstrap.servers: " << broker_.bootstrap() << "\n"
          << "  session.timeout.ms: 3000\n"
          << "  heartbeat.interval.ms: 500\n"
          << "  fetch.wait.max.ms: 10\n"
          << "postgres:\n  url: " << db_.url() << "\n"
          << "api: { listen: 127.0.0.1:" << port_ << ", token: " << kToken
          << ", max_body_bytes: 2048 }\n"
          << "admin: { listen: 127.0.0.1:0 }\n"
          << "plugins:\n"
          << "  - { name: customers, library: "
          << (binaryDir() / "plugins/customers/libultracore_customers.so").string() << " }\n"
          << "  - { name: accounts, library: "
          << (binaryDir() / "plugins/accounts/libultracore_accounts.so").string() << " }\n"
          << "projections:\n"
          << "  - { name: customers, plugin: customers, topics: [" << kCustomersTopic
          << "], batch: { max_events: 500, max_wait_ms: 5 } }\n"
          << "  - { name: accounts, plugin: accounts, topics: [" << kAccountsTopic
          << "], batch: { max_events: 500, max_wait_ms: 5 } }\n";
    }
    engine_ = startEngine(manifest, dir_.path() / "engine.log");
    ASSERT_TRUE(waitForEngineRunning(*engine_)) << engine_->log();
    client_ = std::make_unique<httplib::Client>("127.0.0.1", port_);
    client_->set_read_timeout(30, 0);
    client_->set_default_headers({{"Authorization", std::string("Bearer ") + kToken}});
    ASSERT_TRUE(waitUntil([&] {
      auto res = client_->Get("/readyz");
      return res && res->status == 200;
    }, 60s)) << engine_->log();
    char error[512];
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", broker_.bootstrap().c_str(), error, sizeof(error));
    watcher_ = rd_kafka_new(RD_KAFKA_PRODUCER, conf, error, sizeof(error));
    ASSERT_NE(watcher_, nullptr) << error;
  }

  void TearDown() override {
    if (watcher_ != nullptr) rd_kafka_destroy(watcher_);
    if (engine_) {
      engine_->signal(SIGTERM);
      EXPECT_EQ(engine_->wait(30s), 0) << engine_->log();
    }
  }

  /// Every partition's end offset (high watermark) of both topics.
  std::vector<std::int64_t> endOffsets() {
    std::vector<std::int64_t> ends;
    for (const char* topic : {kCustomersTopic, kAccountsTopic}) {
      for (int p = 0; p < kPartitions; ++p) {
        std::int64_t low = 0, high = 0;
        const auto err = rd_kafka_query_watermark_offsets(watcher_, topic, p, &low, &high, 10000);
        if (err != RD_KAFKA_RESP_ERR_NO_ERROR) throw std::runtime_error(rd_kafka_err2str(err));
        ends.push_back(high);
      }
    }
    return ends;
  }
  std::int64_t recordCount() {
    std::int64_t total = 0;
    for (auto end : endOffsets()) total += end;
    return total;
  }

  struct Answer {
    int status = 0;
    json body;
    httplib::Headers headers;
  };
  static Answer answer(const httplib::Result& res) {
    if (!res) return {-1, json(nullptr), {}};
    return {res->status, json::parse(res->body, nullptr, false), res->headers};
  }
  Answer post(const std::string& path, const json& body, httplib::Headers headers = {}) {
    return answer(client_->Post(path.c_str(), headers, body.dump(), "application/json"));
  }
  Answer postRaw(const std::string& path, const std::string& body) {
    return answer(client_->Post(path.c_str(), body, "application/json"));
  }
  Answer get(const std::string& path, httplib::Headers headers = {}) {
    return answer(client_->Get(path.c_str(), headers));
  }
  /// GET that waits for the command answered with `token`.
  Answer getAfter(const std::string& path, const std::string& token, httplib::Headers headers = {}) {
    return get(path + (path.find('?') == std::string::npos ? "?" : "&") + "consistent_with=" + token,
               headers);
  }
  /// Creates a customer and waits until the read model has it.
  std::string createCustomer(const std::string& tenant = "DEFAULT") {
    auto created = post("/api/v1/customers",
                        {{"first_name", "Ada"}, {"last_name", "Lovelace"}, {"email", "ada@example.com"}},
                        {{"X-Tenant-Id", tenant}});
    EXPECT_EQ(created.status, 201) << created.body.dump();
    const std::string id = created.body.value("customer_id", "");
    EXPECT_EQ(getAfter("/api/v1/customers/" + id, created.body.value("consistency_token", ""),
                       {{"X-Tenant-Id", tenant}}).status, 200);
    return id;
  }

  DevBroker broker_;
  TestDatabase db_;
  TempDir dir_;
  int port_ = 0;
  std::unique_ptr<Subprocess> engine_;
  std::unique_ptr<httplib::Client> client_;
  rd_kafka_t* watcher_ = nullptr;
};

TEST_F(ApiTest, ACustomerIsReadableWithItsConsistencyTokenAtTheFirstTryEveryTime) {
  for (int i = 0; i < 200; ++i) {
    const json body{{"first_name", "First" + std::to_string(i)},
                    {"last_name", "Last" + std::to_string(i)},
                    {"email", "user" + std::to_string(i) + "@example.com"},
                    {"phone", "+1-555-" + std::to_string(i)}};
    auto created = post("/api/v1/customers", body);
    ASSERT_EQ(created.status, 201) << created.body.dump();
    const std::string id = created.body["customer_id"];
    ASSERT_EQ(id.rfind("CUST-", 0), 0u) << id;
    ASSERT_EQ(created.body["position"]["topic"], kCustomersTopic);
    const std::string token = created.body["consistency_token"];
    ASSERT_FALSE(token.empty());
    auto read = getAfter("/api/v1/customers/" + id, token);
    ASSERT_EQ(read.status, 200) << "iteration " << i << ": " << read.body.dump();
    for (const char* field : {"first_name", "last_name", "email", "phone"}) {
      ASSERT_EQ(read.body[field], body[field]) << "iteration " << i << " field " << field;
    }
    ASSERT_EQ(read.body["customer_id"], id);
    ASSERT_EQ(read.body["tenant_id"], "DEFAULT");
  }
  // The envelope as stored: a fresh UUID event_id, server time, the request's tenant and user.
  const std::string event_id = queryValue(
      db_.url(), "SELECT event_id FROM processed_events WHERE projection = 'customers' LIMIT 1");
  EXPECT_EQ(event_id.size(), 36u) << event_id;
  EXPECT_EQ(event_id[14], '4') << event_id;
  EXPECT_EQ(queryValue(db_.url(), "SELECT count(*) FROM customers.customers"), "200");

  // Keyset pagination walks every customer once.
  std::set<std::string> seen;
  std::string after;
  for (int page = 0; page < 10; ++page) {
    auto list = get("/api/v1/customers?limit=90" + (after.empty() ? "" : "&after=" + after));
    ASSERT_EQ(list.status, 200) << list.body.dump();
    for (const auto& item : list.body["items"]) seen.insert(item["customer_id"].get<std::string>());
    if (list.body["next_after"].is_null()) break;
    after = list.body["next_after"];
  }
  EXPECT_EQ(seen.size(), 200u);
}

TEST_F(ApiTest, MoneyIsExactAndAnOverdraftIsRefusedWithoutPublishing) {
  const std::string customer = createCustomer();
  auto opened = post("/api/v1/accounts",
                     {{"customer_id", customer}, {"account_type", "checking"}, {"currency", "EUR"}});
  ASSERT_EQ(opened.status, 201) << opened.body.dump();
  const std::string account = opened.body["account_id"];
  ASSERT_EQ(getAfter("/api/v1/accounts/" + account, opened.body["consistency_token"]).status, 200);
  for (const json& amount : {json("100.10"), json("100.10"), json(100.10)}) {
    auto deposit = post("/api/v1/accounts/" + account + "/deposits", {{"amount", amount}});
    ASSERT_EQ(deposit.status, 202) << deposit.body.dump();
    ASSERT_EQ(getAfter("/api/v1/accounts/" + account, deposit.body["consistency_token"]).status, 200);
  }
  auto withdrawal = post("/api/v1/accounts/" + account + "/withdrawals", {{"amount", "0.30"}});
  ASSERT_EQ(withdrawal.status, 202) << withdrawal.body.dump();
  auto read = getAfter("/api/v1/accounts/" + account, withdrawal.body["consistency_token"]);
  ASSERT_EQ(read.status, 200);
  EXPECT_EQ(read.body["balance"], "300.00");

  const auto before = endOffsets();
  auto overdraft = post("/api/v1/accounts/" + account + "/withdrawals", {{"amount", "1000"}});
  EXPECT_EQ(overdraft.status, 422) << overdraft.body.dump();
  EXPECT_EQ(overdraft.body["error"]["code"], "insufficient_funds");
  EXPECT_EQ(overdraft.body["error"]["field"], "amount");
  EXPECT_EQ(endOffsets(), before);

  auto list = get("/api/v1/customers/" + customer + "/accounts");
  ASSERT_EQ(list.status, 200);
  ASSERT_EQ(list.body["items"].size(), 1u);
  EXPECT_EQ(list.body["items"][0]["balance"], "300.00");

  auto closed = post("/api/v1/accounts/" + account + "/close", json::object());
  ASSERT_EQ(closed.status, 202) << closed.body.dump();
  ASSERT_EQ(getAfter("/api/v1/accounts/" + account, closed.body["consistency_token"]).body["status"],
            "closed");
  const auto after_close = endOffsets();
  auto late = post("/api/v1/accounts/" + account + "/deposits", {{"amount", "1"}});
  EXPECT_EQ(late.status, 409) << late.body.dump();
  EXPECT_EQ(endOffsets(), after_close);
}

TEST_F(ApiTest, EveryRejectedRequestAnswersAJsonErrorAndPublishesNothing) {
  const std::string customer = createCustomer();
  const auto before = endOffsets();
  struct Case {
    std::string name;
    Answer got;
    int status;
    std::string code;
    std::string field;
  };
  std::vector<Case> cases;
  cases.push_back({"malformed JSON", postRaw("/api/v1/customers", "{\"first_name\": "), 400,
                   "malformed_json", ""});
  cases.push_back({"not an object", postRaw("/api/v1/customers", "[1,2]"), 400, "invalid_body", ""});
  cases.push_back({"missing field", post("/api/v1/customers", {{"first_name", "A"}, {"last_name", "B"}}),
                   400, "missing_field", "email"});
  cases.push_back({"wrong type", post("/api/v1/customers", {{"first_name", "A"}, {"last_name", "B"}, {"email", 7}}),
                   400, "invalid_field", "email"});
  cases.push_back({"bad amount", post("/api/v1/accounts/NOPE/deposits", {{"amount", "abc"}}), 400,
                   "invalid_field", "amount"});
  cases.push_back({"zero amount", post("/api/v1/accounts/NOPE/deposits", {{"amount", "0.00"}}), 422,
                   "invalid_amount", "amount"});
  cases.push_back({"body too large",
                   post("/api/v1/customers", {{"first_name", std::string(4096, 'x')},
                                              {"last_name", "B"}, {"email", "e"}}),
                   413, "body_too_large", ""});
  cases.push_back({"unknown route", get("/api/v1/nothing-here"), 404, "not_found", ""});
  cases.push_back({"wrong method", answer(client_->Put("/api/v1/customers", "{}", "application/json")),
                   405, "method_not_allowed", ""});
  cases.push_back({"unknown customer", post("/api/v1/accounts", {{"customer_id", "CUST-NOPE"},
                                                                 {"account_type", "x"}, {"currency", "EUR"}}),
                   404, "customer_not_found", "customer_id"});
  cases.push_back({"unknown account", post("/api/v1/accounts/ACC-NOPE/deposits", {{"amount", "1"}}),
                   404, "account_not_found", ""});
  cases.push_back({"existing id", post("/api/v1/customers", {{"customer_id", customer}, {"first_name", "A"},
                                                              {"last_name", "B"}, {"email", "e"}}),
                   409, "customer_exists", "customer_id"});
  for (const auto& c : cases) {
    EXPECT_EQ(c.got.status, c.status) << c.name << ": " << c.got.body.dump();
    ASSERT_TRUE(c.got.body.is_object()) << c.name;
    EXPECT_EQ(c.got.body["error"]["code"], c.code) << c.name << ": " << c.got.body.dump();
    EXPECT_TRUE(c.got.body["error"]["message"].is_string()) << c.name;
    if (!c.field.empty()) {
      EXPECT_EQ(c.got.body["error"]["field"], c.field) << c.name;
    }
  }
  EXPECT_EQ(endOffsets(), before);
}

TEST_F(ApiTest, AnIdempotencyKeyRetryReturnsTheFirstAnswerAndPublishesOnce) {
  const std::int64_t before = recordCount();
  const json body{{"first_name", "Grace"}, {"last_name", "Hopper"}, {"email", "grace@example.com"}};
  auto first = post("/api/v1/customers", body, {{"Idempotency-Key", "key-1"}});
  ASSERT_EQ(first.status, 201) << first.body.dump();
  auto retry = post("/api/v1/customers", body, {{"Idempotency-Key", "key-1"}});
  EXPECT_EQ(retry.status, 201);
  EXPECT_EQ(retry.body, first.body);
  auto other = post("/api/v1/customers", {{"first_name", "X"}, {"last_name", "Y"}, {"email", "z"}},
                    {{"Idempotency-Key", "key-1"}});
  EXPECT_EQ(other.status, 422) << other.body.dump();
  EXPECT_EQ(other.body["error"]["code"], "idempotency_key_reused");
  EXPECT_EQ(recordCount(), before + 1);
  // Keys are per tenant: another tenant's request with the same key is a new command.
  auto elsewhere = post("/api/v1/customers", body, {{"Idempotency-Key", "key-1"}, {"X-Tenant-Id", "B"}});
  EXPECT_EQ(elsewhere.status, 201);
  EXPECT_NE(elsewhere.body["customer_id"], first.body["customer_id"]);
  EXPECT_EQ(recordCount(), before + 2);
}

TEST_F(ApiTest, ATenantCannotReadAnotherTenantsCustomer) {
  auto created = post("/api/v1/customers",
                      {{"first_name", "B"}, {"last_name", "Only"}, {"email", "b@example.com"}},
                      {{"X-Tenant-Id", "tenant-b"}});
  ASSERT_EQ(created.status, 201);
  const std::string id = created.body["customer_id"];
  const std::string token = created.body["consistency_token"];
  auto own = getAfter("/api/v1/customers/" + id, token, {{"X-Tenant-Id", "tenant-b"}});
  ASSERT_EQ(own.status, 200) << own.body.dump();
  EXPECT_EQ(own.body["tenant_id"], "tenant-b");
  auto foreign = getAfter("/api/v1/customers/" + id, token, {{"X-Tenant-Id", "tenant-a"}});
  EXPECT_EQ(foreign.status, 404) << foreign.body.dump();
  auto list = get("/api/v1/customers", {{"X-Tenant-Id", "tenant-a"}});
  EXPECT_EQ(list.body["items"].size(), 0u);
  EXPECT_EQ(queryValue(db_.url(), "SELECT tenant_id FROM customers.customers WHERE customer_id = '" + id + "'"),
            "tenant-b");
  // A foreign tenant cannot change it either.
  const auto before = endOffsets();
  auto patch = answer(client_->Patch(("/api/v1/customers/" + id).c_str(), {{"X-Tenant-Id", "tenant-a"}},
                                     json{{"email", "x@y"}}.dump(), "application/json"));
  EXPECT_EQ(patch.status, 404);
  EXPECT_EQ(endOffsets(), before);
}

TEST_F(ApiTest, EveryRouteButHealthNeedsTheBearerToken) {
  httplib::Client anonymous("127.0.0.1", port_);
  auto missing = answer(anonymous.Get("/api/v1/customers"));
  EXPECT_EQ(missing.status, 401);
  EXPECT_EQ(missing.body["error"]["code"], "unauthorized");
  auto wrong = answer(anonymous.Get("/api/v1/customers", {{"Authorization", "Bearer s3cret-tokeX"}}));
  EXPECT_EQ(wrong.status, 401);
  const auto before = endOffsets();
  auto command = answer(anonymous.Post("/api/v1/customers",
                                       json{{"first_name", "A"}, {"last_name", "B"}, {"email", "c"}}.dump(),
                                       "application/json"));
  EXPECT_EQ(command.status, 401);
  EXPECT_EQ(endOffsets(), before);
  EXPECT_EQ(answer(anonymous.Get("/healthz")).status, 200);
  EXPECT_EQ(get("/api/v1/customers").status, 200);
}

TEST_F(ApiTest, DocsListEveryRouteAndCommandsCanBeUpdatedAndDeleted) {
  auto openapi = get("/api/v1/openapi.json");
  ASSERT_EQ(openapi.status, 200);
  EXPECT_EQ(openapi.body["openapi"], "3.0.3");
  for (const char* path : {"/api/v1/customers", "/api/v1/customers/{id}", "/api/v1/accounts",
                           "/api/v1/accounts/{id}/deposits", "/api/v1/accounts/{id}/withdrawals",
                           "/api/v1/accounts/{id}/close", "/api/v1/accounts/{id}",
                           "/api/v1/customers/{id}/accounts"}) {
    EXPECT_TRUE(openapi.body["paths"].contains(path)) << path;
  }
  EXPECT_TRUE(openapi.body["components"]["schemas"].contains("Customer"));
  auto docs = client_->Get("/api/v1/docs");
  ASSERT_TRUE(docs);
  EXPECT_EQ(docs->status, 200);
  EXPECT_NE(docs->body.find("/api/v1/accounts/{id}/withdrawals"), std::string::npos);

  const std::string id = createCustomer();
  auto patched = answer(client_->Patch(("/api/v1/customers/" + id).c_str(),
                                       json{{"email", "new@example.com"}}.dump(), "application/json"));
  ASSERT_EQ(patched.status, 202) << patched.body.dump();
  auto read = getAfter("/api/v1/customers/" + id, patched.body["consistency_token"]);
  EXPECT_EQ(read.body["email"], "new@example.com");
  EXPECT_EQ(read.body["first_name"], "Ada");
  auto deleted = answer(client_->Delete(("/api/v1/customers/" + id).c_str()));
  ASSERT_EQ(deleted.status, 202) << deleted.body.dump();
  // The token travels in a header too.
  auto gone = get("/api/v1/customers/" + id,
                  {{"X-Consistent-With", deleted.body["consistency_token"].get<std::string>()}});
  EXPECT_EQ(gone.body["status"], "deleted");
  // A token past the log end is no command's answer: 400 at once (a position the projection
  // never reaches answers 504 after the bounded wait: ApiSecurityTest).
  auto late = getAfter("/api/v1/customers/" + id, std::string(kCustomersTopic) + ":0:999999");
  EXPECT_EQ(late.status, 400) << late.body.dump();
  EXPECT_EQ(late.body["error"]["code"], "token_past_log_end");
}

}  // namespace
}  // namespace ultracore::testing
