// Zombie API processes are fenced (issue 14), on a real Apache Kafka cluster: an API process
// that stops (SIGSTOP) while it holds an aggregate's lock, with its command's event already
// sent to Kafka inside an open transaction, loses the lock to another process and, once it
// resumes, publishes nothing: its transaction never commits.

#include <csignal>
#include <fstream>
#include <thread>

#include <httplib.h>
#include <gtest/gtest.h>

#include "kafka_test_support.h"

namespace ultracore::testing {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

constexpr const char* kAccounts = "ultracore.accounts.events";

/// The process state letter of /proc/<pid>/stat ('T': stopped).
char processState(int pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const auto paren = text.rfind(')');
  return paren == std::string::npos || paren + 2 >= text.size() ? '?' : text[paren + 2];
}

std::pair<int, json> post(int port, const std::string& path, const json& body) {
  httplib::Client client("127.0.0.1", port);
  client.set_read_timeout(120, 0);
  auto res = client.Post(path.c_str(), body.dump(), "application/json");
  if (!res) return {-1, json(nullptr)};
  return {res->status, json::parse(res->body, nullptr, false)};
}

TEST(RealKafkaConsistentCommands, AStoppedApiProcessThatResumesAfterAnotherTookOverPublishesNothing) {
  KafkaCluster kafka;
  kafka.createTopic("ultracore.customers.events", 4);
  kafka.createTopic(kAccounts, 4);
  TestDatabase db;
  TempDir dir;
  // A transaction its producer left open is aborted by the coordinator after 5 s (and its
  // periodic check), so the partition's read_committed readers are not held up for a minute.
  const std::string kafka_yaml =
      "  session.timeout.ms: 6000\n  transaction.timeout.ms: 5000\n";
  const std::string projections =
      "  - { name: customers, plugin: customers, topics: [ultracore.customers.events],"
      " batch: { max_events: 500, max_wait_ms: 5 } }\n"
      "  - { name: accounts, plugin: accounts, topics: [ultracore.accounts.events],"
      " batch: { max_events: 500, max_wait_ms: 5 } }\n";
  const int port = freePort();
  auto manifest = writeKafkaManifest(dir, kafka.bootstrap(), db.url(), kafka_yaml, projections,
                                     "engine.yaml");
  setApiPort(manifest, port);
  const int zombie_port = freePort();
  auto zombie_manifest = writeKafkaManifest(dir, kafka.bootstrap(), db.url(), kafka_yaml,
                                            projections, "zombie.yaml");
  setApiPort(zombie_manifest, zombie_port);
  auto engine = startEngine(manifest, dir.path() / "engine.log");
  // The zombie-to-be stops itself once its command's event is in Kafka, uncommitted, just
  // before it would commit the aggregate's lock transaction.
  auto zombie = std::make_unique<Subprocess>(
      std::vector<std::string>{binPath("ultracore-engine").string(), "--config",
                               zombie_manifest.string(), "--role", "api"},
      std::map<std::string, std::string>{{"ULTRACORE_TEST_PAUSE_BEFORE_FENCE", "1"}},
      dir.path() / "zombie.log");
  for (int p : {port, zombie_port}) {
    ASSERT_TRUE(waitForApiReady(p)) << engine->log() << zombie->log();
  }

  const auto [customer_status, customer] =
      post(port, "/api/v1/customers",
           {{"first_name", "Ada"}, {"last_name", "Lovelace"}, {"email", "ada@example.com"}});
  ASSERT_EQ(customer_status, 201) << customer.dump();
  const auto [account_status, account] =
      post(port, "/api/v1/accounts",
           {{"customer_id", customer["customer_id"]}, {"account_type", "checking"},
            {"currency", "EUR"}});
  ASSERT_EQ(account_status, 201) << account.dump();
  const std::string id = account["account_id"];
  const std::string path = "/api/v1/accounts/" + id + "/withdrawals";
  ASSERT_EQ(post(port, "/api/v1/accounts/" + id + "/deposits", {{"amount", "100"}}).first, 202);

  std::pair<int, json> zombie_answer;
  std::thread zombie_client([&] { zombie_answer = post(zombie_port, path, {{"amount", "30"}}); });
  ASSERT_TRUE(waitUntil([&] { return processState(zombie->pid()) == 'T'; }, 60s))
      << zombie->log();

  // Another process takes the account over once PostgreSQL ended the zombie's session; until
  // then it answers 503 aggregate_busy, which a client retries.
  std::pair<int, json> taken;
  int busy = 0;
  ASSERT_TRUE(waitUntil([&] {
    taken = post(port, path, {{"amount", "80"}});
    if (taken.first == 503) ++busy;
    return taken.first != 503;
  }, 120s)) << engine->log();
  ASSERT_EQ(taken.first, 202) << taken.second.dump();
  EXPECT_EQ(taken.second.value("aggregate_version", 0), 3);

  zombie->signal(SIGCONT);
  zombie_client.join();
  EXPECT_EQ(zombie_answer.first, 503) << zombie_answer.second.dump() << zombie->log();

  // The new owner's withdrawal is applied (once the coordinator aborted the zombie's
  // transaction, the partition's readers pass it): balance 20, never 100 - 30 - 80.
  httplib::Client client("127.0.0.1", port);
  client.set_read_timeout(60, 0);
  ASSERT_TRUE(waitUntil([&] {
    auto res = client.Get(("/api/v1/accounts/" + id + "?consistent_with=" +
                           taken.second.value("consistency_token", ""))
                              .c_str());
    return res && res->status == 200 &&
           json::parse(res->body).value("balance", "") == "20";
  }, 120s)) << engine->log();
  // The log as read_committed readers see it: the zombie's withdrawal is not there.
  std::vector<std::string> seen;
  for (const auto& value : readTopic(kafka.bootstrap(), kAccounts, 4)) {
    const json event = json::parse(value);
    if (event.value("aggregate_id", "") != id) continue;
    seen.push_back(event.value("event_type", "") + "/" +
                   std::to_string(event.value("aggregate_version", 0)) + "/" +
                   event["event_data"].value("amount", ""));
  }
  EXPECT_EQ(seen, (std::vector<std::string>{"AccountOpened/1/", "FundsDeposited/2/100",
                                            "FundsWithdrawn/3/80"}));
  // And the resumed process serves the account again, from the state the log says.
  const auto [after_status, after] = post(zombie_port, "/api/v1/accounts/" + id + "/deposits",
                                          {{"amount", "1"}});
  EXPECT_EQ(after_status, 202) << after.dump() << zombie->log();
  std::cout << "503 aggregate_busy answers while the zombie held the lock: " << busy << "\n";
  for (auto* process : {engine.get(), zombie.get()}) {
    process->signal(SIGTERM);
    EXPECT_EQ(process->wait(60s), 0) << process->log();
  }
}

}  // namespace
}  // namespace ultracore::testing
