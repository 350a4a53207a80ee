#pragma once
/// @file
/// Helpers for integration tests: real processes, real PostgreSQL, real dev broker.
/// Nothing here fakes Kafka or PostgreSQL.

#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace ultracore::testing {

/// Paths baked in at build time.
std::filesystem::path sourceDir();  ///< repository root
std::filesystem::path binaryDir();  ///< CMake build root (has bin/ and plugins/)
std::filesystem::path binPath(const std::string& name);  ///< binaryDir()/bin/<name>

/// A fresh temporary directory, removed (recursively) on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

/// A child process (fork/exec, own process group). stdout+stderr go to a log file.
/// The destructor SIGKILLs it if it still runs.
class Subprocess {
 public:
  Subprocess(std::vector<std::string> argv, std::map<std::string, std::string> extra_env = {},
             std::optional<std::filesystem::path> log_file = std::nullopt);
  ~Subprocess();
  Subprocess(const Subprocess&) = delete;
  Subprocess& operator=(const Subprocess&) = delete;

  int pid() const { return pid_; }
  bool running();
  void signal(int sig);
  /// Waits for exit; returns the exit status (128+signal if killed), or nullopt on time-out.
  std::optional<int> wait(std::chrono::milliseconds timeout);
  /// SIGKILL and reap.
  void kill();
  const std::filesystem::path& logFile() const { return log_file_; }
  std::string log() const;  ///< what the process printed so far

 private:
  int pid_ = -1;
  std::optional<int> status_;
  std::filesystem::path log_file_;
};

/// An ultracore-devbroker process with its own --data-dir and --bootstrap-file.
class DevBroker {
 public:
  struct Options {
    int brokers = 1;
    int partitions = 6;
    std::vector<std::string> topics;  ///< "name" or "name:partitions"
  };
  explicit DevBroker(Options options);
  DevBroker() : DevBroker(Options{}) {}
  ~DevBroker();

  const std::string& bootstrap() const { return bootstrap_; }
  const std::string& controlUrl() const { return control_url_; }  ///< http://127.0.0.1:PORT
  const std::filesystem::path& dataDir() const { return data_dir_.path(); }
  /// SIGTERM and wait; then start again on the same data dir (new port: bootstrap changes).
  void stop();
  void start();
  /// POST to the control channel, e.g. control("/brokers/1/down"); throws on non-2xx.
  std::string control(const std::string& path, const std::string& body = "");

 private:
  Options options_;
  TempDir data_dir_;
  std::unique_ptr<Subprocess> process_;
  std::string bootstrap_;
  std::string control_url_;
};

/// An Apache Kafka cluster (KRaft, `brokers` combined broker+controller nodes on loopback) started
/// by tools/kafka/cluster in its own temporary directory; stopped on destruction. Topics are not
/// auto-created: create them with createTopic(). The jars come from tools/kafka/install
/// (tools/install-deps runs it); a missing Java or jar fails the test with the command to run.
class KafkaCluster {
 public:
  struct Options {
    int brokers = 1;
  };
  explicit KafkaCluster(Options options);
  KafkaCluster() : KafkaCluster(Options{}) {}
  ~KafkaCluster();
  KafkaCluster(const KafkaCluster&) = delete;
  KafkaCluster& operator=(const KafkaCluster&) = delete;

  const std::string& bootstrap() const { return bootstrap_; }
  int brokers() const { return options_.brokers; }
  const std::filesystem::path& dir() const { return dir_.path(); }
  /// Stops node `id` (1-based): SIGTERM and wait, or SIGKILL with `kill`.
  void stopNode(int id, bool kill = false);
  /// Starts node `id` again on its ports and data; returns once it answers.
  void startNode(int id);
  /// Sends `signal` to node `id`'s JVM (SIGSTOP freezes it: connections stay open, nothing
  /// answers; SIGCONT resumes it). Throws when the node is not running.
  void signalNode(int id, int signal);
  /// Creates a topic through the admin API and waits until every partition has a leader.
  /// replication_factor -1: the broker's default (3 on a 3-node cluster, else 1).
  void createTopic(const std::string& name, int partitions, int replication_factor = -1,
                   const std::map<std::string, std::string>& config = {});
  /// The node id leading `topic`/`partition` now (-1 when it has none).
  int leaderOf(const std::string& topic, int partition);

 private:
  void run(const std::vector<std::string>& args, std::chrono::seconds timeout);

  Options options_;
  TempDir dir_;
  std::string bootstrap_;
};

/// Sum of the high watermarks of `topic`'s partitions 0..partitions-1, asked of the broker at
/// `bootstrap` (10 s per partition at most); throws when it does not answer.
std::int64_t logEndSum(const std::string& bootstrap, const std::string& topic, int partitions);

/// The PostgreSQL server of the dev stack: ULTRACORE_PG from the environment, else read from
/// <source>/.dev/env. Fails the test (throws) with a clear message when neither is there.
std::string postgresAdminUrl();

/// A fresh database created on that server for one test, dropped (WITH (FORCE)) on
/// destruction.
class TestDatabase {
 public:
  TestDatabase();
  ~TestDatabase();
  const std::string& url() const { return url_; }
  const std::string& name() const { return name_; }

 private:
  std::string name_;
  std::string url_;
};

}  // namespace ultracore::testing
