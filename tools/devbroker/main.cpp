// ultracore-devbroker: librdkafka's mock Kafka cluster as a standalone process for development
// and tests, with an optional on-disk journal (--data-dir) and an HTTP control channel.
// See README.md next to this file.

#include <pthread.h>
#include <signal.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <cstdio>
#include <ctime>
#include <iostream>
#include <map>
#include <mutex>
#include <thread>

#include "control_server.h"
#include "journal.h"
#include "journaler.h"
#include "log.h"
#include "mock_cluster.h"

namespace ultracore::devbroker {

void logLine(const std::string& message) {
  static std::mutex mutex;
  std::timespec now{};
  std::timespec_get(&now, TIME_UTC);
  std::tm tm{};
  gmtime_r(&now.tv_sec, &tm);
  char stamp[64];
  std::snprintf(stamp, sizeof(stamp), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, now.tv_nsec / 1000000);
  std::lock_guard lock(mutex);
  std::fprintf(stderr, "%s devbroker: %s\n", stamp, message.c_str());
  std::fflush(stderr);
}

namespace {

struct Options {
  int brokers = 1;
  int partitions = 6;
  std::vector<std::string> topics;
  std::string bootstrap_file;
  std::string control_file;
  int control_port = 0;
  std::string data_dir;
};

/// "name[:partitions]" -> (name, partitions).
std::pair<std::string, int> parseTopic(const std::string& spec, int default_partitions) {
  std::string name = spec;
  int partitions = default_partitions;
  if (auto colon = spec.rfind(':'); colon != std::string::npos) {
    name = spec.substr(0, colon);
    std::string count = spec.substr(colon + 1);
    try {
      size_t used = 0;
      partitions = std::stoi(count, &used);
      if (used != count.size()) throw std::invalid_argument(count);
    } catch (const std::exception&) {
      throw std::runtime_error("--topic " + spec + ": partition count '" + count +
                               "' is not a number");
    }
    if (partitions < 1 || partitions > 10000)
      throw std::runtime_error("--topic " + spec + ": partitions must be in [1, 10000]");
  }
  if (!validTopicName(name))
    throw std::runtime_error("--topic " + spec + ": invalid topic name '" + name + "'");
  return {name, partitions};
}

/// Blocks until `cluster` answers a metadata request (its listeners accept connections).
void waitUntilServing(MockCluster& cluster) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(15);
  for (;;) {
    try {
      cluster.topics(std::chrono::milliseconds(2000));
      return;
    } catch (const KafkaError& e) {
      if (std::chrono::steady_clock::now() >= deadline)
        throw std::runtime_error(std::string("the mock cluster does not answer: ") + e.what());
    }
  }
}

int run(const Options& options) {
  // Signals are taken by one thread with sigwait; every other thread keeps them blocked.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  ::signal(SIGPIPE, SIG_IGN);
  std::atomic<bool> stopping{false};
  std::thread signal_thread([&] {
    int sig = 0;
    sigwait(&signals, &sig);
    if (!stopping.exchange(true))  // else the joiner below woke us: start-up failed
      logLine(std::string("received ") + (sig == SIGTERM ? "SIGTERM" : "SIGINT") + ", stopping");
  });
  // The signal thread must end even when start-up fails.
  struct SignalThreadJoiner {
    std::thread& thread;
    std::atomic<bool>& stopping;
    ~SignalThreadJoiner() {
      if (!stopping.exchange(true)) pthread_kill(thread.native_handle(), SIGTERM);
      thread.join();
    }
  } joiner{signal_thread, stopping};

  // Files left by a killed predecessor name a dead port: nobody may read them as ours.
  std::error_code ignored;
  if (!options.bootstrap_file.empty()) std::filesystem::remove(options.bootstrap_file, ignored);
  if (!options.control_file.empty()) std::filesystem::remove(options.control_file, ignored);

  MockCluster cluster(options.brokers);
  logLine("mock cluster with " + std::to_string(options.brokers) + " broker(s) at " +
          cluster.bootstrap());

  std::unique_ptr<Journaler> journaler;
  if (!options.data_dir.empty()) {
    journaler = std::make_unique<Journaler>(cluster, options.data_dir);
    logLine(journaler->restore());
  }
  for (const auto& spec : options.topics) {
    auto [name, partitions] = parseTopic(spec, options.partitions);
    if (cluster.createTopic(name, partitions))
      logLine("created topic " + name + " with " + std::to_string(partitions) + " partition(s)");
  }
  waitUntilServing(cluster);
  if (journaler) journaler->start();

  ControlServer control(cluster, options.partitions, options.data_dir);
  int port = control.start(options.control_port);
  std::string control_url = "http://127.0.0.1:" + std::to_string(port);

  std::cout << "bootstrap: " << cluster.bootstrap() << "\n"
            << "control: " << control_url << std::endl;
  // The control file first: whoever sees the bootstrap file may read both.
  if (!options.control_file.empty()) writeFileAtomically(options.control_file, control_url + "\n");
  if (!options.bootstrap_file.empty())
    writeFileAtomically(options.bootstrap_file, cluster.bootstrap() + "\n");
  logLine("ready; control channel on " + control_url);

  while (!stopping) {
    if (journaler) {
      journaler->pollOnce(std::chrono::milliseconds(200));
    } else {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }

  control.stop();
  // The addresses die with this process; stale files would send clients to a dead port.
  if (!options.bootstrap_file.empty()) std::filesystem::remove(options.bootstrap_file, ignored);
  if (!options.control_file.empty()) std::filesystem::remove(options.control_file, ignored);
  if (journaler) {
    // Faults injected through the control channel must not keep the journal from draining.
    rd_kafka_mock_broker_set_up(cluster.get(), -1);
    rd_kafka_mock_broker_set_rtt(cluster.get(), -1, 0);
    for (int16_t api : {1, 2, 3}) rd_kafka_mock_clear_request_errors(cluster.get(), api);
    if (journaler->drain(std::chrono::seconds(30)))
      logLine("journal complete up to every partition's high watermark");
  }
  logLine("stopped");
  return 0;
}

}  // namespace
}  // namespace ultracore::devbroker

int main(int argc, char** argv) {
  using namespace ultracore::devbroker;
  Options options;
  CLI::App app{
      "ultracore-devbroker: librdkafka's mock Kafka cluster on loopback, for development and "
      "tests.\nPrints 'bootstrap: HOST:PORT[,...]' and 'control: http://127.0.0.1:PORT' on "
      "stdout, then serves until SIGTERM/SIGINT (exit 0)."};
  app.add_option("--brokers", options.brokers, "number of mock brokers (ids 1..N)")
      ->default_val(1)
      ->check(CLI::Range(1, 32));
  app.add_option("--partitions", options.partitions,
                 "partitions of topics created by --topic NAME and POST /topics without a "
                 "count. Topics that clients auto-create get the mock's fixed default of 4 "
                 "partitions: librdkafka 2.0.2 offers no way to change it")
      ->default_val(6)
      ->check(CLI::Range(1, 10000));
  app.add_option("--topic", options.topics,
                 "create topic NAME[:PARTITIONS] at start (repeatable); a topic already in the "
                 "journal keeps its journaled partition count");
  app.add_option("--bootstrap-file", options.bootstrap_file,
                 "write the bootstrap address here (tmp + rename) once the cluster accepts "
                 "connections and the journal is replayed; removed on exit");
  app.add_option("--control-file", options.control_file,
                 "write the control URL here (tmp + rename), before the bootstrap file; removed "
                 "on exit");
  app.add_option("--control-port", options.control_port,
                 "control channel port on 127.0.0.1 (0 = ephemeral)")
      ->default_val(0)
      ->check(CLI::Range(0, 65535));
  app.add_option("--data-dir", options.data_dir,
                 "keep every topic and record in DIR/journal.ucj and restore them on start "
                 "(same partitions, offsets, keys, headers, timestamps). A clean stop "
                 "(SIGTERM/SIGINT) journals everything; kill -9 may lose the last records "
                 "not yet journaled");
  CLI11_PARSE(app, argc, argv);
  try {
    for (const auto& spec : options.topics) parseTopic(spec, options.partitions);
    return run(options);
  } catch (const std::exception& e) {
    logLine(std::string("error: ") + e.what());
    return 1;
  }
}
