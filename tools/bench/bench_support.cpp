#include "tools/bench/bench_support.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <random>
#include <sstream>
#include <stdexcept>
#include <thread>

#include <librdkafka/rdkafka.h>
#include <pqxx/pqxx>

namespace ultracore::bench {

double secondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

std::filesystem::path binDir() { return std::filesystem::read_symlink("/proc/self/exe").parent_path(); }

TempDir::TempDir() {
  std::string pattern = (std::filesystem::temp_directory_path() / "ultracore-bench-XXXXXX").string();
  if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
  path_ = pattern;
}

TempDir::~TempDir() {
  if (std::getenv("ULTRACORE_BENCH_KEEP") != nullptr) {  // the engine and broker logs, to read
    std::cerr << "kept " << path_.string() << " (ULTRACORE_BENCH_KEEP)\n";
    return;
  }
  std::error_code ignored;
  std::filesystem::remove_all(path_, ignored);
}

Process::Process(const std::vector<std::string>& argv, const std::filesystem::path& log)
    : log_(log) {
  std::vector<char*> args;
  for (const auto& arg : argv) args.push_back(const_cast<char*>(arg.c_str()));
  args.push_back(nullptr);
  pid_ = ::fork();
  if (pid_ < 0) throw std::runtime_error("fork failed");
  if (pid_ == 0) {
    ::setpgid(0, 0);
    const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) {
      ::dup2(fd, 1);
      ::dup2(fd, 2);
      ::close(fd);
    }
    ::execv(args[0], args.data());
    std::perror("execv");
    ::_exit(127);
  }
}

Process::~Process() {
  if (pid_ > 0 && !reaped_) {
    ::kill(pid_, SIGKILL);
    ::wait4(pid_, &status_, 0, &usage_);
  }
}

bool Process::running() {
  if (reaped_) return false;
  const pid_t done = ::wait4(pid_, &status_, WNOHANG, &usage_);
  if (done == pid_) reaped_ = true;
  return !reaped_;
}

std::int64_t Process::peakRssBytes() const {
  std::ifstream in("/proc/" + std::to_string(pid_) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmHWM:", 0) == 0) return std::stoll(line.substr(6)) * 1024;
  }
  return 0;
}

double cpuSecondsOf(int pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat;
  std::getline(in, stat);
  // The command name (field 2) may hold spaces: count fields from its closing parenthesis.
  const auto close = stat.rfind(')');
  if (close == std::string::npos) return 0;
  std::istringstream fields(stat.substr(close + 1));
  std::string field;
  double ticks = 0;
  for (int i = 3; i <= 15 && fields >> field; ++i) {
    if (i >= 14) ticks += std::stod(field);  // utime, stime
  }
  return ticks / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

double Process::cpuSecondsSoFar() const { return cpuSecondsOf(pid_); }

int Process::wait(std::chrono::seconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (running() && Clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  if (!reaped_) {
    ::kill(pid_, SIGKILL);
    ::wait4(pid_, &status_, 0, &usage_);
    reaped_ = true;
  }
  if (WIFEXITED(status_)) return WEXITSTATUS(status_);
  return 128 + (WIFSIGNALED(status_) ? WTERMSIG(status_) : 0);
}

int Process::stop(std::chrono::seconds timeout) {
  if (!reaped_) ::kill(pid_, SIGTERM);
  return wait(timeout);
}

std::string Process::log() const {
  std::ifstream in(log_);
  std::stringstream out;
  out << in.rdbuf();
  return out.str();
}

BenchDatabase::BenchDatabase() {
  const char* url = std::getenv("ULTRACORE_PG");
  if (url == nullptr || *url == '\0') {
    throw std::runtime_error("set ULTRACORE_PG to a PostgreSQL server URL (a database is created "
                             "on it for the run and dropped after)");
  }
  admin_url_ = url;
  std::random_device random;
  name_ = "ultracore_bench_" + std::to_string(::getpid()) + "_" + std::to_string(random() % 100000);
  {
    pqxx::connection connection(admin_url_);
    pqxx::nontransaction txn(connection);
    txn.exec("CREATE DATABASE " + name_);
  }
  // Same server and credentials, other database: replace the path of the URL.
  const auto scheme = admin_url_.find("://");
  const auto slash = admin_url_.find('/', scheme == std::string::npos ? 0 : scheme + 3);
  const auto query = admin_url_.find('?');
  url_ = (slash == std::string::npos ? admin_url_ : admin_url_.substr(0, slash)) + "/" + name_ +
         (query == std::string::npos ? "" : admin_url_.substr(query));
}

BenchDatabase::~BenchDatabase() {
  try {
    pqxx::connection connection(admin_url_);
    pqxx::nontransaction txn(connection);
    txn.exec("DROP DATABASE IF EXISTS " + name_ + " WITH (FORCE)");
  } catch (const std::exception& e) {
    std::cerr << "warning: could not drop database " << name_ << ": " << e.what() << "\n";
  }
}

int freePort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) throw std::runtime_error("socket failed");
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) {
    ::close(fd);
    throw std::runtime_error("bind to port 0 failed");
  }
  socklen_t length = sizeof(address);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
  ::close(fd);
  return ntohs(address.sin_port);
}

std::vector<std::pair<std::string, std::string>> defaultKafkaProperties(bool real_kafka) {
  return {{"session.timeout.ms", "6000"},
          {"heartbeat.interval.ms", "1000"},
          {"fetch.wait.max.ms", real_kafka ? "100" : "10"}};
}

std::vector<std::pair<std::string, std::string>> parseKafkaProperties(
    const std::vector<std::string>& key_values) {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& property : key_values) {
    const auto eq = property.find('=');
    if (eq == std::string::npos) throw std::runtime_error("--kafka wants key=value: " + property);
    out.emplace_back(property.substr(0, eq), property.substr(eq + 1));
  }
  return out;
}

std::string kafkaProperty(const std::vector<std::pair<std::string, std::string>>& overrides,
                          bool real_kafka, const std::string& key) {
  std::string value;
  for (const auto& [k, v] : defaultKafkaProperties(real_kafka)) {
    if (k == key) value = v;
  }
  for (const auto& [k, v] : overrides) {
    if (k == key) value = v;
  }
  return value;
}

std::filesystem::path writeManifest(const TempDir& dir, const ManifestOptions& options) {
  const auto plugins = binDir().parent_path() / "plugins";
  const auto path = dir.path() / "projections.yaml";
  std::ofstream out(path);
  out << "kafka:\n"
      << "  bootstrap.servers: " << options.bootstrap << "\n";
  // One line per key (the last override wins): a YAML map must not repeat a key.
  std::vector<std::string> keys;
  for (const auto& [key, value] : defaultKafkaProperties(options.real_kafka)) keys.push_back(key);
  for (const auto& [key, value] : options.kafka) {
    if (std::find(keys.begin(), keys.end(), key) == keys.end()) keys.push_back(key);
  }
  for (const auto& key : keys) {
    out << "  " << key << ": " << kafkaProperty(options.kafka, options.real_kafka, key) << "\n";
  }
  out << "postgres:\n  url: " << options.postgres_url << "\n"
      << "api: { listen: " << options.api_listen << " }\n"
      << "admin: { listen: " << options.admin_listen << " }\n"
      << "plugins:\n"
      << "  - { name: customers, library: "
      << (plugins / "customers/libultracore_customers.so").string() << " }\n"
      << "  - { name: accounts, library: " << (plugins / "accounts/libultracore_accounts.so").string()
      << " }\n"
      << "projections:\n";
  for (const char* name : {"customers", "accounts"}) {
    out << "  - { name: " << name << ", plugin: " << name << ", topics: [ultracore." << name
        << ".events], batch: { max_events: " << options.max_events
        << ", max_wait_ms: " << options.max_wait_ms
        << ", synchronous_commit: " << (options.synchronous_commit ? "true" : "false")
        << " }, workers: " << options.workers
        << ", on_error: dead_letter }\n";
  }
  return path;
}

std::unique_ptr<Process> startEngine(const TempDir& dir, const std::filesystem::path& manifest,
                                     const std::string& log_name,
                                     const std::vector<std::string>& extra_args) {
  std::vector<std::string> argv{(binDir() / "ultracore-engine").string(), "--config",
                                manifest.string()};
  argv.insert(argv.end(), extra_args.begin(), extra_args.end());
  return std::make_unique<Process>(argv, dir.path() / log_name);
}

std::map<TopicPartition, Watermarks> watermarks(
    const std::string& bootstrap, const std::vector<std::pair<std::string, int>>& topics) {
  char error[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap.c_str(), error, sizeof(error));
  rd_kafka_t* client = rd_kafka_new(RD_KAFKA_PRODUCER, conf, error, sizeof(error));
  if (client == nullptr) throw std::runtime_error(error);
  std::map<TopicPartition, Watermarks> out;
  for (const auto& [topic, partitions] : topics) {
    for (int p = 0; p < partitions; ++p) {
      Watermarks marks;
      const auto err = rd_kafka_query_watermark_offsets(client, topic.c_str(), p, &marks.low,
                                                        &marks.high, 10000);
      if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        rd_kafka_destroy(client);
        throw std::runtime_error("watermarks of " + topic + "[" + std::to_string(p) +
                                 "]: " + rd_kafka_err2str(err));
      }
      out[{topic, p}] = marks;
    }
  }
  rd_kafka_destroy(client);
  return out;
}

CatchUp waitCaughtUp(const std::string& postgres_url, Process& engine, Clock::time_point started,
                     const std::vector<std::pair<std::string, std::vector<std::string>>>& projections,
                     const std::map<TopicPartition, Watermarks>& ends,
                     std::chrono::seconds timeout) {
  CatchUp result;
  pqxx::connection connection(postgres_url);
  bool progressed = false;
  while (true) {
    result.peak_rss_bytes = std::max(result.peak_rss_bytes, engine.peakRssBytes());
    if (!engine.running()) throw std::runtime_error("the engine exited:\n" + engine.log());
    if (secondsSince(started) > static_cast<double>(timeout.count())) {
      throw std::runtime_error("projections did not catch up within " +
                               std::to_string(timeout.count()) + " s");
    }
    std::map<std::pair<std::string, TopicPartition>, std::int64_t> stored;
    try {
      pqxx::nontransaction txn(connection);
      for (const auto& row :
           txn.exec("SELECT projection, topic, partition, next_offset FROM ultracore_offsets")) {
        stored[{row[0].as<std::string>(), {row[1].as<std::string>(), row[2].as<int>()}}] =
            row[3].as<std::int64_t>();
      }
    } catch (const pqxx::sql_error&) {  // the engine has not created its tables yet
    }
    bool done = true;
    std::int64_t consumed = 0;
    for (const auto& [projection, topics] : projections) {
      for (const auto& [tp, marks] : ends) {
        if (std::find(topics.begin(), topics.end(), tp.first) == topics.end()) continue;
        const auto it = stored.find({projection, tp});
        const std::int64_t next = it == stored.end() ? -2 : it->second;
        if (next > 0) consumed += next;
        if (std::max<std::int64_t>(next, marks.low) < marks.high) done = false;
      }
    }
    if (!progressed && consumed > 0) {
      progressed = true;
      result.first_progress_s = secondsSince(started);
    }
    if (done) {
      result.caught_up_s = secondsSince(started);
      return result;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

double percentile(std::vector<double>& values, double p) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  const double rank = p / 100.0 * static_cast<double>(values.size() - 1);
  const auto low = static_cast<std::size_t>(rank);
  const auto high = std::min(low + 1, values.size() - 1);
  return values[low] + (values[high] - values[low]) * (rank - static_cast<double>(low));
}

std::string fmtNumber(double value, int decimals) {
  char buffer[64];
  std::snprintf(buffer, sizeof(buffer), "%.*f", decimals, value);
  const std::string text = buffer;
  const std::size_t int_begin = text[0] == '-' ? 1 : 0;
  const std::size_t int_end = std::min(text.find('.'), text.size());
  // Built by appending (not insert(), which trips g++ 12's -Wrestrict false positive).
  std::string out = text.substr(0, int_begin);
  for (std::size_t i = int_begin; i < int_end; ++i) {
    if (i > int_begin && (int_end - i) % 3 == 0) out.push_back(',');
    out.push_back(text[i]);
  }
  out.append(text, int_end, std::string::npos);
  return out;
}

void printTable(const std::string& title, const std::vector<TableRow>& rows) {
  std::size_t what = 4, value = 5;
  for (const auto& row : rows) {
    what = std::max(what, row.what.size());
    value = std::max(value, row.value.size());
  }
  std::cout << "\n" << title << "\n";
  auto line = [&](const std::string& a, const std::string& b, const std::string& c) {
    std::cout << "| " << a << std::string(what - a.size(), ' ') << " | "
              << std::string(value - b.size(), ' ') << b << " | " << c << "\n";
  };
  line("what", "value", "note");
  std::cout << "|" << std::string(what + 2, '-') << "|" << std::string(value + 2, '-') << "|---\n";
  for (const auto& row : rows) line(row.what, row.value, row.note);
  std::cout.flush();
}

void writeJson(const std::string& path, const nlohmann::json& json) {
  if (path.empty()) return;
  std::ofstream out(path);
  out << json.dump(2) << "\n";
  if (!out) throw std::runtime_error("cannot write " + path);
}

std::string gitCommit() {
  const std::string command =
      std::string("git -C '") + ULTRACORE_SOURCE_DIR + "' rev-parse HEAD 2>/dev/null";
  FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) return "";
  char buffer[128] = {};
  const bool ok = std::fgets(buffer, sizeof(buffer), pipe) != nullptr;
  ::pclose(pipe);
  std::string out = ok ? buffer : "";
  while (!out.empty() && std::isspace(static_cast<unsigned char>(out.back()))) out.pop_back();
  return out;
}

}  // namespace ultracore::bench
