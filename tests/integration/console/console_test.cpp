// The operator console in a real browser (headless Chromium through tests/support/browser.h):
// an engine runs the customers and accounts projections and the test ledger projection
// (on_error: park) on a dev broker, with an admin token. Each view loads with that data and is
// screenshotted into build/test-artifacts/console-<view>.png; the message browser finds a
// customer's events by aggregate_id typed into its form, its URL opens the same search again,
// and a record's page names the projection that applied it; a dead letter is retried with its
// button (after the confirmation) once its plugin is cured, and its event is then applied
// exactly once (the ledger read model and processed_events say so). The console's endpoints
// refuse what `ultracore-ctl dead-letters` refuses, with the same messages.

#include <httplib.h>

#include <signal.h>

#include <filesystem>

#include <gtest/gtest.h>

#include "browser.h"
#include "engine_harness.h"

namespace ultracore::testing {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using nlohmann::json;

constexpr char kToken[] = "console-s3cret";
constexpr char kCustomersTopic[] = "ultracore.customers.events";
constexpr char kAccountsTopic[] = "ultracore.accounts.events";
constexpr char kLedgerTopic[] = "ledger.events";
constexpr int kCustomers = 60;
constexpr int kAccounts = 20;

class ConsoleTest : public ::testing::Test {
 protected:
  ConsoleTest()
      : broker_(DevBroker::Options{1, 3, {kCustomersTopic, kAccountsTopic, std::string(kLedgerTopic) + ":1"}}) {}

  void SetUp() override {
    manifest_ = writeManifest(dir_, broker_.bootstrap(), db_.url(),
                              "  - { name: customers, plugin: customers, topics: [ultracore.customers.events],\n"
                              "      batch: { max_events: 100, max_wait_ms: 20 } }\n"
                              "  - { name: accounts, plugin: accounts, topics: [ultracore.accounts.events],\n"
                              "      batch: { max_events: 100, max_wait_ms: 20 } }\n"
                              "  - { name: ledger, plugin: ledger, topics: [ledger.events], on_error: park,\n"
                              "      batch: { max_events: 100, max_wait_ms: 20 } }\n");
    setAdminToken(manifest_, kToken);
    engine_ = startEngine(manifest_, dir_.path() / "engine.log");
    ASSERT_TRUE(waitForEngineRunning(*engine_)) << engine_->log();
    port_ = adminPort(*engine_);
    ASSERT_NE(port_, 0) << engine_->log();
    client_ = std::make_unique<httplib::Client>("127.0.0.1", port_);
    client_->set_read_timeout(10s);

    std::vector<Record> records;
    for (int i = 0; i < kCustomers; ++i) {
      const std::string id = "CUST-CONSOLE-" + std::to_string(i);
      records.push_back({kCustomersTopic, id,
                         envelope("c" + std::to_string(i), "CustomerCreated", id,
                                  {{"first_name", "Ada"}, {"last_name", "Console"}, {"email", "ada" + std::to_string(i) + "@example.com"}})});
    }
    records.push_back({kCustomersTopic, "CUST-CONSOLE-7",
                       envelope("c7-update", "CustomerUpdated", "CUST-CONSOLE-7", {{"email", "ada7@navy.example"}})});
    for (int i = 0; i < kAccounts; ++i) {
      const std::string id = "ACC-CONSOLE-" + std::to_string(i);
      records.push_back({kAccountsTopic, id,
                         envelope("a" + std::to_string(i), "AccountOpened", id,
                                  {{"customer_id", "CUST-CONSOLE-" + std::to_string(i)}, {"account_type", "checking"}, {"currency", "EUR"}})});
    }
    for (const auto& [id, type, amount] : {std::tuple{"l1", "Entry", 1}, std::tuple{"l2", "Poison", 2}, std::tuple{"l3", "Entry", 3}}) {
      records.push_back({kLedgerTopic, "L", envelope(id, type, "L", {{"amount", amount}}), 0});
    }
    produce(broker_.bootstrap(), records);
    ASSERT_TRUE(waitUntil([&] {
      return stored("customers") == kCustomers + 1 && stored("accounts") == kAccounts && stored("ledger") == 3;
    }, 120s)) << engine_->log();
  }
  void TearDown() override {
    if (!engine_) return;
    engine_->signal(SIGTERM);
    EXPECT_EQ(engine_->wait(30s), 0) << engine_->log();
  }

  std::string q(const std::string& sql) { return queryValue(db_.url(), sql); }
  std::int64_t stored(const std::string& projection) {
    const std::string v = q("SELECT sum(greatest(next_offset, 0)) FROM ultracore_offsets WHERE projection = '" + projection + "'");
    return v.empty() ? 0 : std::stoll(v);
  }
  httplib::Headers auth() const { return {{"Authorization", std::string("Bearer ") + kToken}}; }
  std::string url(const std::string& fragment) const {
    return "http://127.0.0.1:" + std::to_string(port_) + "/#token=" + kToken + (fragment.empty() ? "" : "&" + fragment);
  }
  /// The page's state for a failure message: URL, visible text, console messages.
  std::string pageState(HeadlessBrowser& browser) {
    std::string out;
    try {
      out = browser.evaluate("location.href + '\\n' + document.body.innerText.slice(0, 3000)").get<std::string>();
    } catch (const std::exception& e) {
      out = e.what();
    }
    for (const auto& line : browser.consoleMessages()) out += "\n" + line;
    return out;
  }
  void screenshot(HeadlessBrowser& browser, const std::string& view) {
    const fs::path png = binaryDir() / "test-artifacts" / ("console-" + view + ".png");
    browser.screenshot(png);
    EXPECT_GT(fs::file_size(png), 10000u) << png;
  }

  DevBroker broker_;
  TestDatabase db_;
  TempDir dir_;
  fs::path manifest_;
  std::unique_ptr<Subprocess> engine_;
  std::unique_ptr<httplib::Client> client_;
  int port_ = 0;
};

TEST_F(ConsoleTest, EveryViewShowsRealDataFindsAnAggregateAndRetriesADeadLetterOnce) {
  HeadlessBrowser browser;

  // Projections: the status page, now the console's first view.
  browser.navigate(url(""));
  ASSERT_TRUE(browser.waitFor("document.querySelector('.card[data-projection=\"ledger\"] b.dead-letters')"
                              " && document.querySelector('.card[data-projection=\"ledger\"] b.dead-letters').textContent === '1'", 30s))
      << pageState(browser);
  EXPECT_EQ(browser.evaluate("[...document.querySelectorAll('#nav a')].map(a => a.dataset.nav).join(',')"),
            "projections,topics,groups,messages,dead-letters,catalog");
  screenshot(browser, "projections");

  // Topics: the manifest's three, with their message counts.
  browser.click("#nav a[data-nav=\"topics\"]");
  ASSERT_TRUE(browser.waitFor("document.querySelector('.topic-row[data-topic=\"ultracore.customers.events\"][data-messages=\"61\"]')"
                              " && document.querySelector('.topic-row[data-topic=\"ledger.events\"][data-messages=\"3\"]')", 30s))
      << pageState(browser);
  EXPECT_EQ(browser.evaluate("document.querySelectorAll('.topic-row').length"), 3);
  browser.click(".topic-row[data-topic=\"ultracore.customers.events\"] summary");
  EXPECT_EQ(browser.evaluate("[...document.querySelectorAll('.topic-row[data-topic=\"ultracore.customers.events\"] table.partitions tr')]"
                             ".slice(1).map(r => r.cells[1].textContent + '/' + r.cells[3].textContent).join(',')"),
            "1/1,1/1,1/1");  // leader and ISR of each partition
  screenshot(browser, "topics");

  // Consumer groups: the dev broker cannot list them (said so); ours show PostgreSQL's offsets.
  browser.click("#nav a[data-nav=\"groups\"]");
  ASSERT_TRUE(browser.waitFor("document.querySelector('.group[data-group=\"ultracore.projection.ledger\"] .group-partition[data-stored=\"3\"]')", 30s))
      << pageState(browser);
  EXPECT_EQ(browser.evaluate("document.querySelectorAll('.group[data-ultracore=\"true\"]').length"), 3);
  screenshot(browser, "groups");

  // Message browser: type the topic and an aggregate id, search; both of its events, in order.
  browser.click("#nav a[data-nav=\"messages\"]");
  ASSERT_TRUE(browser.waitFor("document.querySelector('#msg-form')", 10s)) << pageState(browser);
  browser.type("#msg-form input[name=topic]", kCustomersTopic);
  browser.type("#msg-form input[name=aggregate_id]", "CUST-CONSOLE-7");
  browser.click("#msg-search");
  const std::string found =
      "document.getElementById('msg-progress').dataset.state === 'finished'"
      " && document.querySelectorAll('.record[data-aggregate-id=\"CUST-CONSOLE-7\"]').length === 2";
  ASSERT_TRUE(browser.waitFor(found, 30s)) << pageState(browser);
  EXPECT_EQ(browser.evaluate("[...document.querySelectorAll('.record')].map(r => r.dataset.eventType).join(',')"),
            "CustomerCreated,CustomerUpdated");
  EXPECT_EQ(browser.evaluate("document.getElementById('msg-progress').dataset.scanned"), std::to_string(kCustomers + 1));
  browser.click(".record[data-event-type=\"CustomerUpdated\"] summary");
  EXPECT_TRUE(browser.evaluate("document.querySelector('.record[data-event-type=\"CustomerUpdated\"] pre.envelope').textContent")
                  .get<std::string>()
                  .find("\"email\": \"ada7@navy.example\"") != std::string::npos);
  screenshot(browser, "messages");
  // Its URL is the search: opened afresh, it finds the same two.
  const std::string shared = browser.evaluate("location.href").get<std::string>();
  EXPECT_NE(shared.find("aggregate_id=CUST-CONSOLE-7"), std::string::npos) << shared;
  browser.navigate("about:blank");
  browser.navigate(shared);
  ASSERT_TRUE(browser.waitFor(found, 30s)) << pageState(browser);

  // One record: which projections applied it.
  browser.click(".record[data-event-type=\"CustomerCreated\"] a.details");
  ASSERT_TRUE(browser.waitFor("document.querySelector('.applied-by[data-projection=\"customers\"]')", 30s)) << pageState(browser);
  EXPECT_TRUE(browser.evaluate("!!document.querySelector('a.aggregate-history')").get<bool>());
  screenshot(browser, "record");

  // Dead letters: l2 is open and parks aggregate L (l3 held back).
  const std::string id = q("SELECT id FROM ultracore_dead_letters WHERE event_id = 'l2'");
  ASSERT_FALSE(id.empty());
  browser.click("#nav a[data-nav=\"dead-letters\"]");
  ASSERT_TRUE(browser.waitFor("document.querySelector('.dl-row[data-id=\"" + id + "\"][data-status=\"open\"]')"
                              " && document.querySelector('.parked-row[data-aggregate=\"L\"]')", 30s))
      << pageState(browser);
  screenshot(browser, "dead-letters");

  // Retry with the button, once the plugin is cured: applied exactly once, then l3.
  browser.click(".dl-row[data-id=\"" + id + "\"] a");
  ASSERT_TRUE(browser.waitFor("document.getElementById('dl-retry')", 30s)) << pageState(browser);
  q("INSERT INTO ledger.cured VALUES ('l2') RETURNING event_id");
  browser.setDialogAnswer(false);  // Cancel: nothing happens
  browser.click("#dl-retry");
  ASSERT_EQ(browser.dialogs().size(), 1u);
  EXPECT_EQ(q("SELECT status FROM ultracore_dead_letters WHERE id = " + id), "open");
  browser.setDialogAnswer(true);
  browser.click("#dl-retry");
  ASSERT_EQ(browser.dialogs().size(), 2u);
  EXPECT_NE(browser.dialogs()[1].find("Retry dead letter " + id), std::string::npos) << browser.dialogs()[1];
  ASSERT_TRUE(browser.waitFor("document.getElementById('dl-outcome').dataset.status === 'retried'", 60s))
      << pageState(browser) << engine_->log();
  EXPECT_NE(browser.evaluate("document.getElementById('dl-outcome').textContent").get<std::string>().find("applied once"),
            std::string::npos);
  screenshot(browser, "dead-letter");
  ASSERT_TRUE(waitUntil([&] { return q("SELECT event_ids || ' ' || total FROM ledger.ledger WHERE aggregate_id = 'L'") == "l1,l2,l3 6"; }, 30s))
      << engine_->log();
  EXPECT_EQ(q("SELECT count(*) FROM processed_events WHERE projection = 'ledger' AND event_id = 'l2'"), "1");
  EXPECT_EQ(q("SELECT count(*) FROM ultracore_parked_aggregates"), "0");

  // The endpoints refuse what the ctl refuses, with its messages.
  auto again = client_->Post(("/api/v1/dead-letters/" + id + "/retry").c_str(), auth(), "", "application/json");
  ASSERT_TRUE(again);
  EXPECT_EQ(again->status, 409) << again->body;
  EXPECT_NE(again->body.find("dead letter " + id + " is retried; only an open dead letter can be retried"), std::string::npos);
  auto no_reason = client_->Post(("/api/v1/dead-letters/" + id + "/discard").c_str(), auth(), "{\"reason\": \"\"}", "application/json");
  ASSERT_TRUE(no_reason);
  EXPECT_EQ(no_reason->status, 400) << no_reason->body;
  auto unknown = client_->Get("/api/v1/dead-letters/999999", auth());
  ASSERT_TRUE(unknown);
  EXPECT_EQ(unknown->status, 404) << unknown->body;
  auto anonymous = client_->Get("/api/v1/messages?topic=ledger.events");
  ASSERT_TRUE(anonymous);
  EXPECT_EQ(anonymous->status, 401);
}

}  // namespace
}  // namespace ultracore::testing
