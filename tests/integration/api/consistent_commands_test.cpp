// Consistent commands (issue 14) over real HTTP: one engine (projections + API) and two more
// `--role api` processes on one manifest, the real PostgreSQL, a dev broker. No test here
// sleeps or passes a consistency token between commands: each command must see every earlier
// accepted command by itself.

#include <algorithm>
#include <atomic>
#include <csignal>
#include <fstream>
#include <map>
#include <mutex>
#include <random>
#include <thread>

#include <httplib.h>
#include <gtest/gtest.h>

#include "engine_harness.h"
#include "kafka_test_support.h"

namespace ultracore::testing {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

constexpr const char* kCustomersTopic = "ultracore.customers.events";
constexpr const char* kAccountsTopic = "ultracore.accounts.events";
constexpr int kPartitions = 4;
constexpr int kProcesses = 3;

struct Answer {
  int status = 0;
  json body;
  httplib::Headers headers;
  std::string header(const std::string& name) const {
    const auto it = headers.find(name);
    return it == headers.end() ? "" : it->second;
  }
  std::string code() const {
    return body.is_object() && body.contains("error") ? body["error"].value("code", "") : "";
  }
};

class ConsistentCommandsTest : public ::testing::Test {
 protected:
  ConsistentCommandsTest()
      : broker_(DevBroker::Options{1, kPartitions, {kCustomersTopic, kAccountsTopic}}) {}

  void SetUp() override {
    for (int i = 0; i < kProcesses; ++i) {
      ports_.push_back(freePort());
      const auto manifest = dir_.path() / ("projections" + std::to_string(i) + ".yaml");
      std::ofstream out(manifest);
      out << "kafka:\n"
          << "  bootstrap.servers: " << broker_.bootstrap() << "\n"
          << "  session.timeout.ms: 3000\n"
          << "  heartbeat.interval.ms: 500\n"
          << "  fetch.wait.max.ms: 10\n"
          << "postgres:\n  url: " << db_.url() << "\n"
          << "api: { listen: 127.0.0.1:" << ports_.back() << " }\n"
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
      out.close();
      // The first runs the projections too; the others are API processes only.
      engines_.push_back(startEngine(manifest, dir_.path() / ("engine" + std::to_string(i) + ".log"),
                                     i == 0 ? std::vector<std::string>{}
                                            : std::vector<std::string>{"--role", "api"}));
      ASSERT_TRUE(waitForEngineRunning(*engines_.back())) << engines_.back()->log();
    }
    for (int i = 0; i < kProcesses; ++i) {
      ASSERT_TRUE(waitUntil([&] { return get(i, "/readyz").status == 200; }, 60s))
          << engines_[i]->log();
    }
    // Until both projections own their partitions, a command's wait for them can time out
    // (503 consistency_timeout, which a client would retry): the tests start after that.
    const int admin = adminPort(*engines_[0]);
    ASSERT_TRUE(waitUntil([&] {
      httplib::Client client("127.0.0.1", admin);
      const auto res = client.Get("/api/v1/projections");
      const json answer = res ? json::parse(res->body, nullptr, false) : json();
      const json projections = answer.is_object() ? answer.value("projections", json()) : json();
      if (!projections.is_array() || projections.size() < 2) return false;
      return std::all_of(projections.begin(), projections.end(), [](const json& projection) {
        return projection.value("state", "") == "running" &&
               projection.value("partitions", json::array()).size() >= kPartitions;
      });
    }, 60s)) << engines_[0]->log();
  }

  void TearDown() override {
    for (auto& engine : engines_) {
      engine->signal(SIGTERM);
      EXPECT_EQ(engine->wait(30s), 0) << engine->log();
    }
  }

  /// One request on a fresh connection to process `process`. A 503 `server_busy`, or a
  /// connection closed unanswered (the busy lane's overflow), is sent again after a short
  /// back-off, as a client would: there no handler ran. (Had one run, the log checks below
  /// would find its event.)
  Answer call(int process, const std::string& method, const std::string& path,
              const json& body = nullptr, const httplib::Headers& headers = {}) {
    for (;;) {
      httplib::Client client("127.0.0.1", ports_[process]);
      client.set_read_timeout(30, 0);
      httplib::Result res =
          method == "GET" ? client.Get(path.c_str(), headers)
                          : client.Post(path.c_str(), headers, body.is_null() ? "" : body.dump(),
                                        "application/json");
      Answer answer;
      if (res) answer = {res->status, json::parse(res->body, nullptr, false), res->headers};
      if (!res || (answer.status == 503 && answer.code() == "server_busy")) {
        ++busy_retries_;
        std::this_thread::sleep_for(25ms);  // a client's back-off, not a synchronization
        continue;
      }
      return answer;
    }
  }
  Answer get(int process, const std::string& path) { return call(process, "GET", path); }
  Answer post(int process, const std::string& path, const json& body,
              const httplib::Headers& headers = {}) {
    return call(process, "POST", path, body, headers);
  }

  /// Customer, account and a deposit of `amount`, each through another process, no waits.
  std::string openFundedAccount(int first, const std::string& amount) {
    const Answer customer = post(first % kProcesses, "/api/v1/customers",
                                 {{"first_name", "Ada"}, {"last_name", "Lovelace"},
                                  {"email", "ada@example.com"}});
    EXPECT_EQ(customer.status, 201) << customer.body.dump();
    const Answer account =
        post((first + 1) % kProcesses, "/api/v1/accounts",
             {{"customer_id", customer.body.value("customer_id", "")},
              {"account_type", "checking"}, {"currency", "EUR"}});
    EXPECT_EQ(account.status, 201) << account.body.dump();
    const std::string id = account.body.value("account_id", "");
    const Answer deposit =
        post((first + 2) % kProcesses, "/api/v1/accounts/" + id + "/deposits", {{"amount", amount}});
    EXPECT_EQ(deposit.status, 202) << deposit.body.dump();
    return id;
  }

  DevBroker broker_;
  TestDatabase db_;
  TempDir dir_;
  std::vector<int> ports_;
  std::vector<std::unique_ptr<Subprocess>> engines_;
  std::atomic<int> busy_retries_{0};
};

TEST_F(ConsistentCommandsTest, CreateThenUseSucceedsFiveHundredTimesWithoutTokensOrSleeps) {
  constexpr int kSequences = 500;
  constexpr int kThreads = 5;
  std::atomic<int> next{0};
  std::mutex mutex;
  std::vector<std::string> failures;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = next++; i < kSequences; i = next++) {
        // Each step through another process than the one before.
        const std::string id = openFundedAccount(i, "100.50");
        const Answer withdrawal = post(i % kProcesses, "/api/v1/accounts/" + id + "/withdrawals",
                                       {{"amount", "100.25"}});
        if (id.empty() || withdrawal.status != 202) {
          std::lock_guard lock(mutex);
          failures.push_back("sequence " + std::to_string(i) + ": withdrawal " +
                             std::to_string(withdrawal.status) + " " + withdrawal.body.dump());
        }
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_TRUE(failures.empty()) << failures.size() << " failed, e.g. " << failures.front();
  // Every withdrawal was validated against its deposit: the log has all of them.
  const auto events = readTopic(broker_.bootstrap(), kAccountsTopic, kPartitions);
  std::map<std::string, int> types;
  for (const auto& value : events) ++types[json::parse(value).value("event_type", "")];
  EXPECT_EQ(types["AccountOpened"], kSequences);
  EXPECT_EQ(types["FundsDeposited"], kSequences);
  EXPECT_EQ(types["FundsWithdrawn"], kSequences);
}

TEST_F(ConsistentCommandsTest, FiftyConcurrentWithdrawalsThroughThreeProcessesNeverOverdraw) {
  constexpr int kRepetitions = 20;
  constexpr int kWithdrawals = 50;
  constexpr int kAtOnce = 4;  // repetitions on different accounts run side by side
  std::vector<std::string> accounts(kRepetitions);
  const auto repetition = [&](int rep) {
    const std::string id = openFundedAccount(rep, "300");
    ASSERT_FALSE(id.empty());
    accounts[rep] = id;
    // A different interleaving each time: the requests start in a shuffled order, spread over
    // the three processes differently.
    std::mt19937 random(20261129 + rep);
    std::vector<int> order(kWithdrawals);
    for (int i = 0; i < kWithdrawals; ++i) order[i] = i;
    std::shuffle(order.begin(), order.end(), random);
    std::vector<Answer> answers(kWithdrawals);
    std::vector<std::thread> threads;
    std::atomic<bool> go{false};
    for (int i : order) {
      threads.emplace_back([&, i] {
        while (!go.load()) std::this_thread::yield();
        answers[i] = post((i + rep) % kProcesses, "/api/v1/accounts/" + id + "/withdrawals",
                          {{"amount", "100"}});
      });
    }
    go = true;
    for (auto& thread : threads) thread.join();
    int accepted = 0, refused = 0;
    for (const auto& answer : answers) {
      if (answer.status == 202) ++accepted;
      if (answer.status == 422 && answer.code() == "insufficient_funds") ++refused;
      EXPECT_TRUE(answer.status == 202 || answer.status == 422)
          << "repetition " << rep << ": " << answer.status << " " << answer.body.dump();
    }
    EXPECT_EQ(accepted, 3) << "repetition " << rep;
    EXPECT_EQ(refused, kWithdrawals - 3) << "repetition " << rep;
    // The next command on the account sees all of them: the balance is 0, the version 5.
    const Answer more = post(rep % kProcesses, "/api/v1/accounts/" + id + "/withdrawals",
                             {{"amount", "0.01"}});
    EXPECT_EQ(more.status, 422) << more.body.dump();
    const Answer deposit = post((rep + 1) % kProcesses, "/api/v1/accounts/" + id + "/deposits",
                                {{"amount", "0.01"}}, {{"If-Match", "\"5\""}});
    EXPECT_EQ(deposit.status, 202) << "version after open, deposit, 3 withdrawals: "
                                   << deposit.body.dump();
  };
  for (int first = 0; first < kRepetitions; first += kAtOnce) {
    std::vector<std::thread> group;
    for (int rep = first; rep < std::min(first + kAtOnce, kRepetitions); ++rep) {
      group.emplace_back(repetition, rep);
    }
    for (auto& thread : group) thread.join();
  }

  // The log, per account in log order: the running balance never goes below 0, ends at 0.01,
  // and aggregate_version counts 1, 2, 3... without a gap or a repeat.
  std::map<std::string, std::pair<long long, long long>> running;  // cents, last version
  for (const auto& value : readTopic(broker_.bootstrap(), kAccountsTopic, kPartitions)) {
    const json event = json::parse(value);
    auto& [cents, version] = running[event.value("aggregate_id", "")];
    EXPECT_EQ(event.value("aggregate_version", -1LL), version + 1) << value;
    version = event.value("aggregate_version", -1LL);
    const std::string type = event.value("event_type", "");
    if (type == "AccountOpened") continue;
    const std::string amount = event["event_data"].value("amount", "0");
    const auto dot = amount.find('.');
    const long long whole = std::stoll(amount.substr(0, dot));
    const long long fraction = dot == std::string::npos ? 0 : std::stoll(amount.substr(dot + 1));
    const long long delta = whole * 100 + fraction;  // amounts here have 0 or 2 decimals
    cents += type == "FundsDeposited" ? delta : -delta;
    EXPECT_GE(cents, 0) << "overdrawn by " << value;
  }
  for (const auto& id : accounts) {
    EXPECT_EQ(running[id].first, 1) << id;
    EXPECT_EQ(running[id].second, 6) << id;
  }
  std::cout << "busy-lane 503s sent again: " << busy_retries_.load() << "\n";
}

TEST_F(ConsistentCommandsTest, AMalformedConsistencyTokenIs400OnAQueryAndOnACommand) {
  const Answer query = get(0, "/api/v1/customers/CUST-X?consistent_with=not-a-token");
  EXPECT_EQ(query.status, 400) << query.body.dump();
  EXPECT_EQ(query.code(), "invalid_token") << query.body.dump();
  const Answer command = post(1, "/api/v1/customers?consistent_with=topic:1:-2",
                              {{"first_name", "Ada"}, {"last_name", "Lovelace"},
                               {"email", "ada@example.com"}});
  EXPECT_EQ(command.status, 400) << command.body.dump();
  EXPECT_EQ(command.code(), "invalid_token") << command.body.dump();
}

TEST_F(ConsistentCommandsTest, IfMatchRefusesAMovedAggregateAndGetAnswersItsVersionAsETag) {
  const std::string id = openFundedAccount(0, "10");
  // The deposit's answer names the version it made; GET (once the read model has it) agrees.
  const Answer withdrawal = post(1, "/api/v1/accounts/" + id + "/withdrawals", {{"amount", "1"}},
                                 {{"If-Match", "\"2\""}});
  ASSERT_EQ(withdrawal.status, 202) << withdrawal.body.dump();
  EXPECT_EQ(withdrawal.body.value("aggregate_version", 0), 3);
  EXPECT_EQ(withdrawal.header("ETag"), "\"3\"");
  const Answer stale = post(2, "/api/v1/accounts/" + id + "/withdrawals", {{"amount", "1"}},
                            {{"If-Match", "\"2\""}});
  EXPECT_EQ(stale.status, 412) << stale.body.dump();
  EXPECT_EQ(stale.code(), "version_mismatch");
  EXPECT_EQ(stale.header("ETag"), "\"3\"");
  const Answer bad = post(0, "/api/v1/accounts/" + id + "/withdrawals", {{"amount", "1"}},
                          {{"If-Match", "three"}});
  EXPECT_EQ(bad.status, 400) << bad.body.dump();
  const std::string token = withdrawal.body.value("consistency_token", "");
  const Answer read = get(0, "/api/v1/accounts/" + id + "?consistent_with=" + token);
  ASSERT_EQ(read.status, 200) << read.body.dump();
  EXPECT_EQ(read.body.value("balance", ""), "9");
  EXPECT_EQ(read.header("ETag"), "\"3\"");
  // A command with ?consistent_with= waits for it too (here: already applied) and publishes.
  const Answer after = post(2, "/api/v1/accounts/" + id + "/deposits?consistent_with=" + token,
                            {{"amount", "1"}}, {{"If-Match", "3"}});
  EXPECT_EQ(after.status, 202) << after.body.dump();
  const Answer garbage = post(2, "/api/v1/accounts/" + id + "/deposits?consistent_with=x",
                              {{"amount", "1"}});
  EXPECT_EQ(garbage.status, 400) << garbage.body.dump();
}

}  // namespace
}  // namespace ultracore::testing
