// latency: POST /api/v1/customers at a fixed rate (open loop: each request has a scheduled
// start, so a slow answer cannot hide the queueing behind it), then GET the customer with the
// answer's consistency token. Latencies are measured from the scheduled start. Then the same
// with deposits (commands on one aggregate, serialized per account: issue 14), spread over many
// accounts and concentrated on a few hot ones.

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <mutex>
#include <thread>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include "tools/bench/bench_support.h"
#include "tools/bench/benches.h"
#include "tools/bench/workload.h"

namespace ultracore::bench {
namespace {

using nlohmann::json;

struct Sample {
  double start_s = 0;      ///< scheduled start, seconds into the rate's run
  std::int64_t start_unix_ms = 0;  ///< the same, wall clock (to match the engine's log)
  double command_ms = -1;  ///< scheduled start -> POST answered
  double ryw_ms = -1;      ///< scheduled start -> GET with the token answered 200
  double read_ms = -1;     ///< GET alone
  bool ok = false;
  std::string failure;  ///< why it failed: "POST 503 server_busy", "GET -1 Read", ...
};

/// "<what> <status> <error code>" of a failed request (status -1: no answer).
std::string failureOf(const char* what, const httplib::Result& res) {
  if (!res) return std::string(what) + " -1 " + httplib::to_string(res.error());
  const json body = json::parse(res->body, nullptr, false);
  std::string code;
  if (body.is_object() && body.contains("error") && body["error"].is_object()) {
    code = body["error"].value("code", "");
  }
  return std::string(what) + " " + std::to_string(res->status) + " " + code;
}

/// One request: create a customer, read it back with the token.
Sample oneRoundTrip(httplib::Client& client, Clock::time_point scheduled, std::size_t n) {
  Sample sample;
  const json body{{"first_name", "Grace"},
                  {"last_name", "Hopper"},
                  {"email", "grace." + std::to_string(n) + "@example.com"},
                  {"phone", "+44 20 7946 0000"}};
  auto posted = client.Post("/api/v1/customers", body.dump(), "application/json");
  auto ms = [&](Clock::time_point from) {
    return std::chrono::duration<double, std::milli>(Clock::now() - from).count();
  };
  sample.command_ms = ms(scheduled);
  if (!posted || posted->status != 201) {
    sample.failure = failureOf("POST", posted);
    return sample;
  }
  const json answer = json::parse(posted->body, nullptr, false);
  if (!answer.is_object() || !answer.contains("customer_id")) return sample;
  const std::string id = answer["customer_id"];
  const std::string token = answer["consistency_token"];
  const auto read_started = Clock::now();
  auto got = client.Get("/api/v1/customers/" + id + "?consistent_with=" + token);
  sample.ryw_ms = ms(scheduled);
  sample.read_ms = ms(read_started);
  sample.ok = got && got->status == 200;
  if (!sample.ok) sample.failure = failureOf("GET", got);
  return sample;
}

/// One deposit into `account`, then GET the account with the answer's token.
Sample oneDeposit(httplib::Client& client, Clock::time_point scheduled, const std::string& account) {
  Sample sample;
  auto ms = [&](Clock::time_point from) {
    return std::chrono::duration<double, std::milli>(Clock::now() - from).count();
  };
  auto posted = client.Post("/api/v1/accounts/" + account + "/deposits",
                            json{{"amount", "1.25"}}.dump(), "application/json");
  sample.command_ms = ms(scheduled);
  if (!posted || posted->status != 202) {
    sample.failure = failureOf("POST", posted);
    return sample;
  }
  const json answer = json::parse(posted->body, nullptr, false);
  if (!answer.is_object() || !answer.contains("consistency_token")) return sample;
  const auto read_started = Clock::now();
  auto got = client.Get("/api/v1/accounts/" + account + "?consistent_with=" +
                        answer["consistency_token"].get<std::string>());
  sample.ryw_ms = ms(scheduled);
  sample.read_ms = ms(read_started);
  sample.ok = got && got->status == 200;
  if (!sample.ok) sample.failure = failureOf("GET", got);
  return sample;
}

/// "N x <failure>, ..." over the samples, most frequent first ("" when none failed).
std::string failureSummary(const std::vector<Sample>& samples) {
  std::map<std::string, int> counts;
  for (const auto& s : samples) {
    if (!s.ok) ++counts[s.failure.empty() ? "?" : s.failure];
  }
  std::vector<std::pair<int, std::string>> sorted;
  for (const auto& [what, n] : counts) sorted.emplace_back(n, what);
  std::sort(sorted.rbegin(), sorted.rend());
  std::string text;
  for (const auto& [n, what] : sorted) text += (text.empty() ? "" : ", ") + std::to_string(n) + " x " + what;
  return text;
}

/// Opens `count` accounts for one customer (8 at a time); throws when one cannot be opened.
std::vector<std::string> openAccounts(int port, int count) {
  httplib::Client setup("127.0.0.1", port);
  setup.set_read_timeout(30, 0);
  auto customer = setup.Post("/api/v1/customers",
                             json{{"first_name", "Ada"}, {"last_name", "Lovelace"},
                                  {"email", "ada@example.com"}}.dump(),
                             "application/json");
  if (!customer || customer->status != 201) throw std::runtime_error("cannot create a customer");
  const std::string owner = json::parse(customer->body)["customer_id"];
  std::vector<std::string> accounts(static_cast<std::size_t>(count));
  std::atomic<int> next{0};
  std::atomic<bool> failed{false};
  std::vector<std::thread> threads;
  std::string failure;
  std::mutex failure_mutex;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      httplib::Client client("127.0.0.1", port);
      client.set_keep_alive(true);
      client.set_read_timeout(30, 0);
      for (int i = next++; i < count && !failed; i = next++) {
        auto post = [&] {
          return client.Post("/api/v1/accounts",
                               json{{"customer_id", owner}, {"account_type", "checking"},
                                    {"currency", "EUR"}}.dump(),
                             "application/json");
        };
        auto opened = post();
        for (int attempt = 0; attempt < 50 && (!opened || opened->status == 503); ++attempt) {
          std::this_thread::sleep_for(std::chrono::milliseconds(100));  // Retry-After, shortened
          opened = post();
        }
        if (!opened || opened->status != 201) {
          std::lock_guard lock(failure_mutex);
          failure = opened ? std::to_string(opened->status) + " " + opened->body
                           : httplib::to_string(opened.error());
          failed = true;
          return;
        }
        accounts[static_cast<std::size_t>(i)] = json::parse(opened->body)["account_id"];
      }
    });
  }
  for (auto& thread : threads) thread.join();
  if (failed) throw std::runtime_error("cannot open the bench's accounts: " + failure);
  return accounts;
}

using RoundTrip = std::function<Sample(httplib::Client&, Clock::time_point, std::size_t)>;

struct RateResult {
  int rate = 0;
  std::vector<Sample> samples;
  std::size_t sent = 0, failed = 0;
  double achieved_rate = 0;
  double cmd_p50 = 0, cmd_p95 = 0, cmd_p99 = 0;
  double ryw_p50 = 0, ryw_p95 = 0, ryw_p99 = 0, ryw_max = 0;
  double read_p50 = 0, read_p99 = 0;
  double seconds = 0;                           ///< the rate's run, scheduled start -> last answer
  double engine_cpu_s = 0, broker_cpu_s = -1;   ///< user+sys over `seconds` (-1: unknown)
};

RateResult runRate(int port, int rate, int duration_s, int workers, const RoundTrip& roundTrip) {
  std::mutex mutex;
  std::condition_variable ready;
  std::deque<std::pair<Clock::time_point, std::size_t>> queue;
  bool done = false;
  std::vector<Sample> samples;
  std::vector<std::thread> threads;
  const auto started = Clock::now() + std::chrono::milliseconds(50);  // after the threads start
  for (int w = 0; w < workers; ++w) {
    threads.emplace_back([&] {
      httplib::Client client("127.0.0.1", port);
      client.set_keep_alive(true);
      client.set_tcp_nodelay(true);  // else Nagle + delayed ACK add 40 ms to a POST
      client.set_read_timeout(30, 0);
      while (true) {
        std::pair<Clock::time_point, std::size_t> job;
        {
          std::unique_lock lock(mutex);
          ready.wait(lock, [&] { return done || !queue.empty(); });
          if (queue.empty()) return;
          job = queue.front();
          queue.pop_front();
        }
        Sample sample = roundTrip(client, job.first, job.second);
        sample.start_s = std::chrono::duration<double>(job.first - started).count();
        sample.start_unix_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                                   (std::chrono::system_clock::now() - (Clock::now() - job.first))
                                       .time_since_epoch())
                                   .count();
        std::lock_guard lock(mutex);
        samples.push_back(sample);
      }
    });
  }
  const std::size_t total = static_cast<std::size_t>(rate) * duration_s;
  for (std::size_t i = 0; i < total; ++i) {
    const auto at = started + std::chrono::nanoseconds(static_cast<std::int64_t>(
                                  1e9 * static_cast<double>(i) / rate));
    std::this_thread::sleep_until(at);
    std::lock_guard lock(mutex);
    queue.emplace_back(at, static_cast<std::size_t>(rate) * 1000000 + i);
    ready.notify_one();
  }
  {
    std::lock_guard lock(mutex);
    done = true;
  }
  ready.notify_all();
  for (auto& thread : threads) thread.join();
  const double elapsed = secondsSince(started);

  RateResult result;
  result.rate = rate;
  result.sent = samples.size();
  result.achieved_rate = static_cast<double>(samples.size()) / elapsed;
  result.seconds = elapsed;
  std::vector<double> command, ryw, read;
  for (const auto& s : samples) {
    if (!s.ok) {
      ++result.failed;
      continue;
    }
    command.push_back(s.command_ms);
    ryw.push_back(s.ryw_ms);
    read.push_back(s.read_ms);
  }
  result.cmd_p50 = percentile(command, 50);
  result.cmd_p95 = percentile(command, 95);
  result.cmd_p99 = percentile(command, 99);
  result.ryw_p50 = percentile(ryw, 50);
  result.ryw_p95 = percentile(ryw, 95);
  result.ryw_p99 = percentile(ryw, 99);
  result.ryw_max = ryw.empty() ? 0 : ryw.back();
  result.read_p50 = percentile(read, 50);
  result.read_p99 = percentile(read, 99);
  result.samples = std::move(samples);
  return result;
}

std::string cpuPercent(double cpu_s, double seconds) {
  if (cpu_s < 0 || seconds <= 0) return "?";
  return fmtNumber(cpu_s / seconds * 100, 1) + " %";
}

}  // namespace

int runLatency(const LatencyOptions& options) {
  TempDir dir;
  BenchDatabase database;
  Broker broker(dir, {{kCustomersTopic, options.partitions}, {kAccountsTopic, options.partitions}},
                options.broker);
  const int port = freePort();
  const auto kafka = parseKafkaProperties(options.kafka);
  const auto manifest =
      writeManifest(dir, {broker.bootstrap(), database.url(), "127.0.0.1:" + std::to_string(port),
                          "127.0.0.1:0", 500, options.max_wait_ms, options.projection_workers,
                          kafka, options.synchronous_commit, broker.kind() == "real"});
  auto engine = startEngine(dir, manifest, "engine.log", {});
  {  // Ready and assigned: warm up until a read-your-write succeeds quickly.
    httplib::Client client("127.0.0.1", port);
    client.set_read_timeout(30, 0);
    const auto deadline = Clock::now() + std::chrono::seconds(60);
    int good = 0;
    for (std::size_t n = 0; good < 20; ++n) {
      if (!engine->running()) throw std::runtime_error("the engine exited:\n" + engine->log());
      if (Clock::now() > deadline) throw std::runtime_error("the API never became ready");
      const Sample sample = oneRoundTrip(client, Clock::now(), n);
      if (sample.ok && sample.ryw_ms < 1000) ++good;
      if (!sample.ok) std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
  }
  // CPU of the engine and the broker while nothing happens: what fetch.wait.max.ms costs when
  // every fetch comes back empty.
  std::cerr << "idle for " << options.idle_s << " s (CPU of the engine and the broker)...\n";
  const double idle_engine_before = engine->cpuSecondsSoFar();
  const double idle_broker_before = broker.cpuSecondsSoFar();
  const auto idle_started = Clock::now();
  std::this_thread::sleep_for(std::chrono::seconds(options.idle_s));
  const double idle_s = secondsSince(idle_started);
  const double idle_engine_cpu = engine->cpuSecondsSoFar() - idle_engine_before;
  const double idle_broker_cpu =
      idle_broker_before < 0 ? -1 : broker.cpuSecondsSoFar() - idle_broker_before;
  std::vector<RateResult> results;
  for (int rate : options.rates) {
    std::cerr << "latency at " << rate << " commands/s for " << options.duration_s << " s...\n";
    const double engine_before = engine->cpuSecondsSoFar();
    const double broker_before = broker.cpuSecondsSoFar();
    results.push_back(runRate(port, rate, options.duration_s, options.workers, oneRoundTrip));
    results.back().engine_cpu_s = engine->cpuSecondsSoFar() - engine_before;
    if (broker_before >= 0) results.back().broker_cpu_s = broker.cpuSecondsSoFar() - broker_before;
  }
  // Commands on one aggregate each (issue 14): spread over many accounts, then on a few.
  struct AccountCase {
    std::string name;
    int accounts = 0;
    RateResult result;
  };
  std::vector<AccountCase> account_cases;
  if (options.account_rate > 0) {
    std::cerr << "opening " << options.spread_accounts + options.hot_accounts << " accounts...\n";
    const auto spread = openAccounts(port, options.spread_accounts);
    const auto hot = openAccounts(port, options.hot_accounts);
    for (const auto* accounts : {&spread, &hot}) {
      const std::string name = accounts == &spread ? "spread" : "hot";
      std::cerr << "deposits at " << options.account_rate << "/s on " << accounts->size()
                << " accounts (" << name << ") for " << options.duration_s << " s...\n";
      const double engine_before = engine->cpuSecondsSoFar();
      const double broker_before = broker.cpuSecondsSoFar();
      RateResult result = runRate(
          port, options.account_rate, options.duration_s, options.workers,
          [accounts](httplib::Client& client, Clock::time_point scheduled, std::size_t n) {
            // n counts up: consecutive deposits go to different accounts, round robin.
            return oneDeposit(client, scheduled, (*accounts)[n % accounts->size()]);
          });
      result.engine_cpu_s = engine->cpuSecondsSoFar() - engine_before;
      if (broker_before >= 0) result.broker_cpu_s = broker.cpuSecondsSoFar() - broker_before;
      account_cases.push_back({name, static_cast<int>(accounts->size()), std::move(result)});
    }
  }
  const int code = engine->stop();
  if (code != 0) std::cerr << "warning: engine exited with " << code << "\n";

  std::vector<TableRow> rows;
  json rates = json::array();
  auto ms = [](double v) { return fmtNumber(v, 1); };
  for (const auto& r : results) {
    const std::string at = std::to_string(r.rate) + "/s ";
    rows.push_back({at + "command p50/p95/p99",
                    ms(r.cmd_p50) + " / " + ms(r.cmd_p95) + " / " + ms(r.cmd_p99) + " ms",
                    "POST /api/v1/customers answered (event stored in Kafka)"});
    rows.push_back({at + "read-your-write p50/p95/p99",
                    ms(r.ryw_p50) + " / " + ms(r.ryw_p95) + " / " + ms(r.ryw_p99) + " ms",
                    "POST + GET ?consistent_with=token answered 200; max " + ms(r.ryw_max) +
                        " ms; target p99 < 50 ms at 200/s"});
    rows.push_back({at + "GET alone p50/p99", ms(r.read_p50) + " / " + ms(r.read_p99) + " ms",
                    "waiting for the projection included"});
    rows.push_back({at + "requests", std::to_string(r.sent) + " (" + std::to_string(r.failed) +
                                         " failed)",
                    "achieved " + fmtNumber(r.achieved_rate, 1) + "/s over " +
                        std::to_string(options.duration_s) + " s" +
                        (r.failed > 0 ? "; failed: " + failureSummary(r.samples) : "")});
    rows.push_back({at + "CPU engine / broker",
                    cpuPercent(r.engine_cpu_s, r.seconds) + " / " +
                        cpuPercent(r.broker_cpu_s, r.seconds),
                    "user+sys over the rate's " + fmtNumber(r.seconds, 1) +
                        " s, % of one core (the broker: the dev broker or the Kafka node)"});
    rates.push_back({{"rate", r.rate},
                     {"engine_cpu_s", r.engine_cpu_s},
                     {"broker_cpu_s", r.broker_cpu_s},
                     {"seconds", r.seconds},
                     {"requests", r.sent},
                     {"failed", r.failed},
                     {"achieved_rate", r.achieved_rate},
                     {"command_p50_ms", r.cmd_p50},
                     {"command_p95_ms", r.cmd_p95},
                     {"command_p99_ms", r.cmd_p99},
                     {"ryw_p50_ms", r.ryw_p50},
                     {"ryw_p95_ms", r.ryw_p95},
                     {"ryw_p99_ms", r.ryw_p99},
                     {"ryw_max_ms", r.ryw_max},
                     {"read_p50_ms", r.read_p50},
                     {"read_p99_ms", r.read_p99}});
  }
  json account_json = json::array();
  for (const auto& c : account_cases) {
    const RateResult& r = c.result;
    const std::string at = std::to_string(r.rate) + "/s deposits, " + c.name + " (" +
                           std::to_string(c.accounts) + " accounts) ";
    rows.push_back({at + "command p50/p99", ms(r.cmd_p50) + " / " + ms(r.cmd_p99) + " ms",
                    "POST .../deposits answered: lock, wait for the account's last event, "
                    "validate, publish"});
    rows.push_back({at + "read-your-write p50/p99", ms(r.ryw_p50) + " / " + ms(r.ryw_p99) + " ms",
                    "POST + GET ?consistent_with=token answered 200" +
                        std::string(c.name == "spread" ? "; target p99 < 50 ms" : "")});
    rows.push_back({at + "requests",
                    std::to_string(r.sent) + " (" + std::to_string(r.failed) + " failed)",
                    "achieved " + fmtNumber(r.achieved_rate, 1) + "/s" +
                        (r.failed > 0 ? "; failed: " + failureSummary(r.samples) : "")});
    account_json.push_back({{"case", c.name},
                            {"accounts", c.accounts},
                            {"rate", r.rate},
                            {"requests", r.sent},
                            {"failed", r.failed},
                            {"achieved_rate", r.achieved_rate},
                            {"command_p50_ms", r.cmd_p50},
                            {"command_p99_ms", r.cmd_p99},
                            {"ryw_p50_ms", r.ryw_p50},
                            {"ryw_p99_ms", r.ryw_p99},
                            {"engine_cpu_s", r.engine_cpu_s}});
  }
  rows.push_back({"idle CPU engine / broker",
                  cpuPercent(idle_engine_cpu, idle_s) + " / " + cpuPercent(idle_broker_cpu, idle_s),
                  "user+sys over " + fmtNumber(idle_s, 1) +
                      " s without requests after the warm-up, % of one core"});
  printTable("latency: engine (both roles) on " + broker.description() + ", fetch.wait.max.ms " +
                 kafkaProperty(kafka, broker.kind() == "real", "fetch.wait.max.ms") + ", batch max_wait_ms " +
                 std::to_string(options.max_wait_ms) + ", workers " +
                 std::to_string(options.projection_workers) +
                 (options.synchronous_commit ? ", synchronous_commit" : "") + ", commit " +
                 gitCommit().substr(0, 12),
             rows);
  json out{{"bench", "latency"},
           {"kafka_broker", broker.kind()},
           {"broker", broker.description()},
           {"kafka_overrides", options.kafka},
           {"fetch_wait_max_ms", kafkaProperty(kafka, broker.kind() == "real", "fetch.wait.max.ms")},
           {"projection_workers", options.projection_workers},
           {"synchronous_commit", options.synchronous_commit},
           {"commit", gitCommit()},
           {"duration_s", options.duration_s},
           {"batch_max_wait_ms", options.max_wait_ms},
           {"idle_s", idle_s},
           {"idle_engine_cpu_s", idle_engine_cpu},
           {"idle_broker_cpu_s", idle_broker_cpu},
           {"rates", rates},
           {"accounts", account_json}};
  // The headline figures: the highest rate measured.
  if (!results.empty()) {
    const json& last = rates.back();
    out["rate"] = last["rate"];
    out["ryw_p50_ms"] = last["ryw_p50_ms"];
    out["ryw_p95_ms"] = last["ryw_p95_ms"];
    out["ryw_p99_ms"] = last["ryw_p99_ms"];
    out["command_p99_ms"] = last["command_p99_ms"];
  }
  writeJson(options.json_path, out);
  if (!options.samples_path.empty()) {
    std::ofstream csv(options.samples_path);
    csv << "rate,start_s,start_unix_ms,command_ms,ryw_ms,read_ms,ok\n";
    for (const auto& r : results)
      for (const auto& s : r.samples)
        csv << r.rate << ',' << s.start_s << ',' << s.start_unix_ms << ',' << s.command_ms << ',' << s.ryw_ms << ','
            << s.read_ms << ',' << (s.ok ? 1 : 0) << '\n';
    if (!csv) throw std::runtime_error("cannot write " + options.samples_path);
  }
  std::size_t failed = 0;
  for (const auto& r : results) failed += r.failed;
  for (const auto& c : account_cases) failed += c.result.failed;
  return failed == 0 ? 0 : 1;
}

}  // namespace ultracore::bench
