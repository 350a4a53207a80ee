#pragma once
/// @file
/// What every benchmark needs: child processes (engine, broker scripts) with rusage, a scratch
/// database, the engine's manifest, topic end offsets, the catch-up wait, and output.
/// Single-threaded use unless a function says otherwise.

#include <sys/resource.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace ultracore::bench {

using Clock = std::chrono::steady_clock;
double secondsSince(Clock::time_point start);

/// build/bin (the directory of this executable); plugins live in build/plugins.
std::filesystem::path binDir();

/// user+sys CPU so far of process `pid` (utime+stime from /proc/<pid>/stat), 0 if unreadable.
double cpuSecondsOf(int pid);

/// A fresh directory under $TMPDIR, removed with its contents on destruction.
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

/// A child process (own process group), stdout+stderr to `log`. The destructor SIGKILLs and
/// reaps it if it still runs.
class Process {
 public:
  Process(const std::vector<std::string>& argv, const std::filesystem::path& log);
  ~Process();
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  int pid() const { return pid_; }
  bool running();
  /// Peak resident set so far (VmHWM from /proc/<pid>/status), 0 if unreadable.
  std::int64_t peakRssBytes() const;
  /// user+sys CPU so far (utime+stime from /proc/<pid>/stat), 0 if unreadable: for a phase of
  /// a process that keeps running, where rusage (after the stop) only has the whole life.
  double cpuSecondsSoFar() const;
  /// Waits for the process to exit by itself (SIGKILL after `timeout`); returns the exit code
  /// (128+signal).
  int wait(std::chrono::seconds timeout);
  /// SIGTERM, then wait (SIGKILL after `timeout`); returns the exit code (128+signal).
  int stop(std::chrono::seconds timeout = std::chrono::seconds(30));
  /// rusage of the reaped child (valid after stop()).
  const rusage& usage() const { return usage_; }
  std::string log() const;

 private:
  int pid_ = -1;
  bool reaped_ = false;
  int status_ = 0;
  rusage usage_{};
  std::filesystem::path log_;
};

/// A database created for one run on the server of $ULTRACORE_PG, dropped (FORCE) at the end.
class BenchDatabase {
 public:
  BenchDatabase();
  ~BenchDatabase();
  BenchDatabase(const BenchDatabase&) = delete;
  BenchDatabase& operator=(const BenchDatabase&) = delete;
  const std::string& url() const { return url_; }

 private:
  std::string admin_url_;
  std::string name_;
  std::string url_;
};

/// A TCP port on 127.0.0.1 that was free a moment ago (bound to port 0, then released), for a
/// listener the bench must talk to.
int freePort();

struct ManifestOptions {
  std::string bootstrap;
  std::string postgres_url;
  std::string api_listen = "127.0.0.1:0";
  std::string admin_listen = "127.0.0.1:0";  ///< no admin token: the bench may call it
  int max_events = 500;  ///< the shipped manifest's batch
  int max_wait_ms = 20;
  int workers = 2;  ///< each projection's `workers:` (2 as in config/projections.yaml)
  /// librdkafka properties of the kafka section; each replaces the default of the same key.
  std::vector<std::pair<std::string, std::string>> kafka;
  bool synchronous_commit = false;  ///< `batch.synchronous_commit` (false as shipped)
  bool real_kafka = false;          ///< Apache Kafka rather than the dev broker (the defaults)
};
/// The kafka section's defaults: session.timeout.ms 6000 and heartbeat.interval.ms 1000 as in
/// config/projections.yaml; fetch.wait.max.ms 100 as shipped on real Kafka, 10 on the dev
/// broker (which answers a fetch only when that wait ends).
std::vector<std::pair<std::string, std::string>> defaultKafkaProperties(bool real_kafka);
/// "key=value" arguments (`--kafka`) as pairs; throws on one without '='.
std::vector<std::pair<std::string, std::string>> parseKafkaProperties(
    const std::vector<std::string>& key_values);
/// The value of `key` in the manifest's kafka section: the override, else the default, else "".
std::string kafkaProperty(const std::vector<std::pair<std::string, std::string>>& overrides,
                          bool real_kafka, const std::string& key);
/// The two domain projections (customers, accounts) as in config/projections.yaml.
std::filesystem::path writeManifest(const TempDir& dir, const ManifestOptions& options);

/// ultracore-engine --config <manifest> [extra args], logging to <dir>/<log_name>.
std::unique_ptr<Process> startEngine(const TempDir& dir, const std::filesystem::path& manifest,
                                     const std::string& log_name,
                                     const std::vector<std::string>& extra_args);

using TopicPartition = std::pair<std::string, int>;
struct Watermarks {
  std::int64_t low = 0;
  std::int64_t high = 0;
};
/// Low/high watermarks of every partition of `topics` (partition counts given).
std::map<TopicPartition, Watermarks> watermarks(
    const std::string& bootstrap, const std::vector<std::pair<std::string, int>>& topics);

/// The outcome of waiting for projections to reach the topics' end offsets.
struct CatchUp {
  double first_progress_s = 0;  ///< engine start -> first committed batch
  double caught_up_s = 0;       ///< engine start -> every offset at its end
  std::int64_t peak_rss_bytes = 0;
};
/// Polls ultracore_offsets every 50 ms until every (projection, topic, partition) reached
/// `ends`; throws if the engine exits or `timeout` passes. `baseline` is the sum of stored
/// offsets that does not count as progress (a rebuild starts from a reset, i.e. 0).
CatchUp waitCaughtUp(const std::string& postgres_url, Process& engine, Clock::time_point started,
                     const std::vector<std::pair<std::string, std::vector<std::string>>>& projections,
                     const std::map<TopicPartition, Watermarks>& ends,
                     std::chrono::seconds timeout);

/// p in [0, 100] of `values` (sorted in place); 0 for none.
double percentile(std::vector<double>& values, double p);

/// A two-column table ("what", "value", "note") on stdout.
struct TableRow {
  std::string what;
  std::string value;
  std::string note;
};
void printTable(const std::string& title, const std::vector<TableRow>& rows);
std::string fmtNumber(double value, int decimals = 0);  ///< 1234567.8 -> "1,234,568"

void writeJson(const std::string& path, const nlohmann::json& json);

/// `git rev-parse HEAD` of the source tree, "" if unknown.
std::string gitCommit();

}  // namespace ultracore::bench
