// The event catalog and the API docs you can try (issue 16), against a running engine with the
// shipped customers and accounts plugins (which declare their event types) and the ledger test
// plugin (which declares none):
//  - GET /api/v1/catalog lists per topic the declared types with schemas, producers and
//    consumers, and counts what the projections consumed, undeclared types included;
//  - a command whose event breaks a declared schema is 422 event_schema_violation naming the
//    field and rule, and publishes nothing (the topic's log end does not move);
//  - ultracore-ctl produce refuses an event that breaks a consumer's schema, nothing produced;
//  - in headless Chromium, the docs page creates a customer (201, the event in Kafka and the
//    read model), reads it back with the consistency token, and shows a rejected command's
//    422; the Catalog view shows the declared types and their seen counts. Screenshots go to
//    build/test-artifacts/docs.png and catalog.png.

#include <httplib.h>
#include <librdkafka/rdkafka.h>

#include <signal.h>

#include <regex>

#include <gtest/gtest.h>

#include "browser.h"
#include "engine_harness.h"

namespace ultracore::testing {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using nlohmann::json;

constexpr char kAdminToken[] = "catalog-admin-s3cret";
constexpr char kApiToken[] = "catalog-api-s3cret";
constexpr char kCustomers[] = "ultracore.customers.events";
constexpr char kAccounts[] = "ultracore.accounts.events";
constexpr int kPartitions = 3;
constexpr int kProduced = 4;  // CustomerCreated produced straight to Kafka

/// The port the engine logged for its API ("API listening on 127.0.0.1:PORT"); 0 if not yet.
int apiPort(const Subprocess& engine) {
  static const std::regex line("API listening on 127\\.0\\.0\\.1:([0-9]+)");
  const std::string log = engine.log();
  std::smatch match;
  return std::regex_search(log, match, line) ? std::stoi(match[1]) : 0;
}

/// A JavaScript string literal for `text`.
std::string js(const std::string& text) { return json(text).dump(); }

class CatalogTest : public ::testing::Test {
 protected:
  CatalogTest() : broker_(DevBroker::Options{1, kPartitions, {kCustomers, kAccounts}}) {}

  void SetUp() override {
    manifest_ = writeManifest(dir_, broker_.bootstrap(), db_.url(),
                              "  - { name: customers, plugin: customers, topics: [ultracore.customers.events],\n"
                              "      batch: { max_events: 100, max_wait_ms: 20 }, on_error: dead_letter }\n"
                              "  - { name: accounts, plugin: accounts, topics: [ultracore.accounts.events],\n"
                              "      batch: { max_events: 100, max_wait_ms: 20 } }\n");
    setAdminToken(manifest_, kAdminToken);
    {  // api.token: the docs page must send it
      std::ifstream in(manifest_);
      std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      const std::string api = "api:\n  listen: 127.0.0.1:0\n";
      const auto at = text.find(api);
      ASSERT_NE(at, std::string::npos) << text;
      text.insert(at + api.size(), std::string("  token: ") + kApiToken + "\n");
      std::ofstream(manifest_) << text;
    }
    engine_ = startEngine(manifest_, dir_.path() / "engine.log");
    ASSERT_TRUE(waitForEngineRunning(*engine_)) << engine_->log();
    ASSERT_TRUE(waitUntil([&] { return adminPort(*engine_) != 0 && apiPort(*engine_) != 0; }, 30s))
        << engine_->log();
    admin_ = std::make_unique<httplib::Client>("127.0.0.1", adminPort(*engine_));
    api_ = std::make_unique<httplib::Client>("127.0.0.1", apiPort(*engine_));
    admin_->set_read_timeout(10s);
    api_->set_read_timeout(20s);
  }
  void TearDown() override {
    if (!engine_) return;
    engine_->signal(SIGTERM);
    EXPECT_EQ(engine_->wait(30s), 0) << engine_->log();
  }

  json catalog() {
    auto res = admin_->Get("/api/v1/catalog", {{"Authorization", std::string("Bearer ") + kAdminToken}});
    if (!res || res->status != 200) throw std::runtime_error("GET /api/v1/catalog failed");
    return json::parse(res->body);
  }
  /// The catalog's entry for `type` on `topic` (null when absent).
  json typeEntry(const std::string& topic, const std::string& type) {
    const json all = catalog();  // held: the loop must not iterate over a temporary
    for (const auto& t : all["topics"]) {
      if (t["topic"] != topic) continue;
      for (const auto& e : t["event_types"]) {
        if (e["event_type"] == type) return e;
      }
    }
    return nullptr;
  }
  std::uint64_t seen(const std::string& topic, const std::string& type) {
    const json entry = typeEntry(topic, type);
    return entry.is_null() ? 0 : entry["seen"].get<std::uint64_t>();
  }

  /// Sum of the high watermarks of `topic`'s partitions.
  std::int64_t logEnd(const std::string& topic) { return logEndSum(broker_.bootstrap(), topic, kPartitions); }

  std::string sql(const std::string& query) { return queryValue(db_.url(), query); }

  /// CustomerCreated x kProduced and one CustomerMerged (a type nobody declares: the customers
  /// projection dead-letters it) straight to Kafka; waits until the engine consumed them.
  void produceSome() {
    std::vector<Record> records;
    for (int i = 0; i < kProduced; ++i) {
      const std::string id = "CUST-CAT-" + std::to_string(i);
      records.push_back({kCustomers, id,
                         envelope("cat-" + std::to_string(i), "CustomerCreated", id,
                                  {{"first_name", "Ada"}, {"last_name", "Cat"}, {"email", "c@example.com"}})});
    }
    records.push_back({kCustomers, "CUST-CAT-0", envelope("cat-merged", "CustomerMerged", "CUST-CAT-0", {{"into", "CUST-CAT-1"}})});
    produce(broker_.bootstrap(), records);
    ASSERT_TRUE(waitUntil([&] {
      return seen(kCustomers, "CustomerCreated") == kProduced && seen(kCustomers, "CustomerMerged") == 1;
    }, 60s)) << catalog().dump(2) << engine_->log();
  }

  DevBroker broker_;
  TestDatabase db_;
  TempDir dir_;
  fs::path manifest_;
  std::unique_ptr<Subprocess> engine_;
  std::unique_ptr<httplib::Client> admin_;
  std::unique_ptr<httplib::Client> api_;
};

TEST_F(CatalogTest, ListsDeclaredTypesCountsWhatIsSeenAndValidatesTheApiAndCtlProduce) {
  // Without the admin token: 401, like every admin endpoint.
  auto denied = admin_->Get("/api/v1/catalog");
  ASSERT_TRUE(denied);
  EXPECT_EQ(denied->status, 401);

  const json created = typeEntry(kCustomers, "CustomerCreated");
  ASSERT_FALSE(created.is_null()) << catalog().dump(2);
  ASSERT_EQ(created["producers"].size(), 1u) << created.dump(2);
  EXPECT_EQ(created["producers"][0]["route"], "POST /api/v1/customers");
  ASSERT_EQ(created["consumers"].size(), 1u) << created.dump(2);
  EXPECT_EQ(created["consumers"][0]["projection"], "customers");
  EXPECT_EQ(created["consumers"][0]["schema"]["required"], json({"first_name", "last_name", "email"}));
  const json deposited = typeEntry(kAccounts, "FundsDeposited");
  ASSERT_FALSE(deposited.is_null());
  EXPECT_EQ(deposited["producers"][0]["route"], "POST /api/v1/accounts/{id}/deposits");
  bool ledger_listed = false;
  const json listed = catalog();
  for (const auto& plugin : listed["plugins"]) {
    if (plugin["plugin"] == "ledger") ledger_listed = plugin["declares"] == false;
  }
  EXPECT_TRUE(ledger_listed) << listed["plugins"].dump();

  produceSome();
  json topic;
  const json after = catalog();
  for (const auto& t : after["topics"]) {
    if (t["topic"] == kCustomers) topic = t;
  }
  EXPECT_EQ(topic["undeclared_seen"], 1) << topic.dump(2);
  EXPECT_EQ(typeEntry(kCustomers, "CustomerMerged")["declared"], false);
  auto metrics = admin_->Get("/metrics", {{"Authorization", std::string("Bearer ") + kAdminToken}});
  ASSERT_TRUE(metrics);
  EXPECT_NE(metrics->body.find("ultracore_events_undeclared_total{topic=\"ultracore.customers.events\"} 1"),
            std::string::npos) << metrics->body;

  // The API: an event breaking the route's schema (first_name longer than 200) is refused and
  // not published.
  const httplib::Headers auth{{"Authorization", std::string("Bearer ") + kApiToken}};
  const std::int64_t before = logEnd(kCustomers);
  auto rejected = api_->Post("/api/v1/customers", auth,
                             json{{"first_name", std::string(201, 'A')}, {"last_name", "B"}, {"email", "e"}}.dump(),
                             "application/json");
  ASSERT_TRUE(rejected);
  EXPECT_EQ(rejected->status, 422) << rejected->body;
  const json error = json::parse(rejected->body)["error"];
  EXPECT_EQ(error["code"], "event_schema_violation");
  EXPECT_EQ(error["field"], "/event_data/first_name");
  EXPECT_EQ(error["rule"], "maxLength");
  EXPECT_EQ(error["declared_by"], "route POST /api/v1/customers (plugin customers)");
  auto accepted = api_->Post("/api/v1/customers", auth,
                             json{{"first_name", "Ann"}, {"last_name", "B"}, {"email", "e"}}.dump(),
                             "application/json");
  ASSERT_TRUE(accepted);
  EXPECT_EQ(accepted->status, 201) << accepted->body;
  EXPECT_EQ(logEnd(kCustomers), before + 1);  // the accepted one only

  // ultracore-ctl produce: an event missing a field the customers projection requires.
  const fs::path bad = dir_.path() / "bad.jsonl";
  std::ofstream(bad) << json{{"event_type", "CustomerCreated"}, {"aggregate_type", "Customer"},
                             {"aggregate_id", "CUST-CTL-BAD"},
                             {"event_data", {{"first_name", "No"}, {"last_name", "Mail"}}}}.dump()
                     << "\n";
  auto [status, out] = runCtl(manifest_, {"produce", kCustomers, bad.string(), "--generate-ids"},
                              dir_.path() / "ctl.log");
  EXPECT_EQ(status, 2) << out;
  EXPECT_NE(out.find(bad.string() + ":1: event CustomerCreated on ultracore.customers.events: "
                     "/event_data/email is required"), std::string::npos) << out;
  EXPECT_NE(out.find("nothing produced"), std::string::npos) << out;
  EXPECT_EQ(logEnd(kCustomers), before + 1);
  std::tie(status, out) = runCtl(manifest_, {"produce", kCustomers, bad.string(), "--generate-ids", "--no-validate"},
                                 dir_.path() / "ctl.log");
  EXPECT_EQ(status, 0) << out;
  EXPECT_EQ(logEnd(kCustomers), before + 2);
}

TEST_F(CatalogTest, DocsPageSendsACommandAndAQueryAndTheCatalogViewShowsSeenCounts) {
  produceSome();
  HeadlessBrowser browser;
  const fs::path artifacts = binaryDir() / "test-artifacts";

  // The docs page: no token needed to load it; the token goes in through the fragment.
  browser.navigate("http://127.0.0.1:" + std::to_string(apiPort(*engine_)) + "/api/v1/docs#token=" + kApiToken);
  const std::string create = "section.route[data-method=\"POST\"][data-path=\"/api/v1/customers\"]";
  const std::string read = "section.route[data-method=\"GET\"][data-path=\"/api/v1/customers/{id}\"]";
  ASSERT_TRUE(browser.waitFor("document.querySelector(" + js(create) + ") !== null", 10s));
  EXPECT_EQ(browser.evaluate("document.getElementById('token').value"), kApiToken);
  // Each command names the event it publishes, from the event catalog.
  EXPECT_EQ(browser.evaluate("document.querySelector(" + js(create + " details.publishes summary") + ").textContent"),
            "Publishes CustomerCreated to ultracore.customers.events (event catalog: event_data must match)");

  // A command the schema refuses: 422 shown, nothing published.
  const std::int64_t before = logEnd(kCustomers);
  browser.type(create + " textarea.body",
               json{{"first_name", std::string(201, 'Z')}, {"last_name", "Long"}, {"email", "z@example.com"}}.dump());
  browser.click(create + " button.send");
  ASSERT_TRUE(browser.waitFor("document.querySelector(" + js(create) + ").dataset.answered === '1'", 20s))
      << json(browser.consoleMessages()).dump();
  EXPECT_EQ(browser.evaluate("document.querySelector(" + js(create + " .status") + ").textContent")
                .get<std::string>().rfind("HTTP 422", 0), 0u);
  EXPECT_NE(browser.evaluate("document.querySelector(" + js(create + " .response") + ").textContent")
                .get<std::string>().find("\"rule\": \"maxLength\""), std::string::npos);

  // Create a customer from the page, as a person would: body, tenant, Idempotency-Key.
  browser.type("#tenant", "DEFAULT");
  browser.type(create + " input[name=\"Idempotency-Key\"]", "docs-page-create-1");
  browser.type(create + " textarea.body",
               json{{"customer_id", "CUST-DOCS-1"}, {"first_name", "Grace"}, {"last_name", "Docs"},
                    {"email", "grace@example.com"}}.dump());
  browser.click(create + " button.send");
  ASSERT_TRUE(browser.waitFor("document.querySelector(" + js(create) + ").dataset.answered === '2'", 20s));
  const std::string status = browser.evaluate("document.querySelector(" + js(create + " .status") + ").textContent");
  EXPECT_EQ(status.rfind("HTTP 201", 0), 0u) << status;
  const json answer = json::parse(browser.evaluate("document.querySelector(" + js(create + " .response") + ").textContent")
                                      .get<std::string>());
  EXPECT_EQ(answer["aggregate_id"], "CUST-DOCS-1");
  ASSERT_TRUE(answer.contains("consistency_token")) << answer.dump();
  EXPECT_EQ(browser.evaluate("document.getElementById('last-token').value"), answer["consistency_token"]);
  EXPECT_EQ(logEnd(kCustomers), before + 1);  // the refused command published nothing
  browser.screenshot(artifacts / "docs.png");

  // Read it back with the last consistency token: the id was filled in from the answer.
  EXPECT_EQ(browser.evaluate("document.querySelector(" + js(read + " input.param[name=id]") + ").value"), "CUST-DOCS-1");
  browser.click(read + " button.use-token");
  browser.click(read + " button.send");
  ASSERT_TRUE(browser.waitFor("document.querySelector(" + js(read) + ").dataset.answered === '1'", 20s));
  EXPECT_EQ(browser.evaluate("document.querySelector(" + js(read + " .status") + ").textContent")
                .get<std::string>().rfind("HTTP 200", 0), 0u);
  const json customer = json::parse(browser.evaluate("document.querySelector(" + js(read + " .response") + ").textContent")
                                        .get<std::string>());
  EXPECT_EQ(customer["first_name"], "Grace");
  // The query waited for the token, so the event is in Kafka and applied to the read model.
  EXPECT_EQ(sql("SELECT email FROM customers.customers WHERE customer_id = 'CUST-DOCS-1'"), "grace@example.com");
  EXPECT_EQ(sql("SELECT count(*) FROM processed_events WHERE projection = 'customers' AND "
                "aggregate_id = 'CUST-DOCS-1' AND topic = 'ultracore.customers.events'"), "1");

  // The Catalog view: the shipped plugins' types with what the engine consumed.
  browser.navigate("http://127.0.0.1:" + std::to_string(adminPort(*engine_)) + "/catalog#token=" + kAdminToken);
  const std::string row = "section.topic[data-topic=\"ultracore.customers.events\"] tr.event-type";
  ASSERT_TRUE(browser.waitFor("(document.querySelector(" + js(row + "[data-type=\"CustomerCreated\"]") +
                                  ") || {dataset: {}}).dataset.seen === '" + std::to_string(kProduced + 1) + "'",
                              20s))
      << json(browser.consoleMessages()).dump() << catalog().dump(2);
  EXPECT_EQ(browser.evaluate("document.querySelector(" + js(row + "[data-type=\"CustomerMerged\"]") + ").dataset.declared"),
            "false");
  EXPECT_EQ(browser.evaluate("document.querySelector(" + js("section.topic[data-topic=\"ultracore.customers.events\"] .undeclared-seen") +
                             ").textContent"), "1");
  for (const char* type : {"CustomerUpdated", "CustomerDeleted"}) {
    EXPECT_EQ(browser.evaluate("document.querySelector(" + js(row + "[data-type=\"" + type + "\"]") + ").dataset.declared"),
              "true") << type;
  }
  const json accounts_types = browser.evaluate(
      "[...document.querySelectorAll('section.topic[data-topic=\"ultracore.accounts.events\"] tr.event-type')]"
      ".map(r => r.dataset.type)");
  EXPECT_EQ(accounts_types, json({"AccountClosed", "AccountOpened", "FundsDeposited", "FundsWithdrawn"}));
  browser.screenshot(artifacts / "catalog.png");
}

}  // namespace
}  // namespace ultracore::testing
