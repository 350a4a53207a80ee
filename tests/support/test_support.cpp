#include "test_support.h"

#include <fcntl.h>
#include <httplib.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <librdkafka/rdkafka.h>

#include <pqxx/pqxx>

#include "engine/kafka/topic_admin.h"
#include <random>
#include <sstream>
#include <stdexcept>
#include <thread>

extern char** environ;

namespace ultracore::testing {
namespace {

using Clock = std::chrono::steady_clock;
namespace fs = std::filesystem;

std::string readFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

std::string trim(std::string s) {
  auto first = s.find_first_not_of(" \t\r\n");
  auto last = s.find_last_not_of(" \t\r\n");
  return first == std::string::npos ? "" : s.substr(first, last - first + 1);
}

std::string randomSuffix() {
  static std::atomic<unsigned> counter{0};
  std::random_device rd;
  std::ostringstream out;
  out << ::getpid() << "_" << counter++ << "_" << std::hex << (rd() & 0xFFFFFFU);
  return out.str();
}

}  // namespace

fs::path sourceDir() { return ULTRACORE_SOURCE_DIR; }
fs::path binaryDir() { return ULTRACORE_BINARY_DIR; }
fs::path binPath(const std::string& name) { return binaryDir() / "bin" / name; }

// ---------------------------------------------------------------------------------- TempDir

TempDir::TempDir() {
  std::string pattern = (fs::temp_directory_path() / "ultracore-test-XXXXXX").string();
  if (!::mkdtemp(pattern.data()))
    throw std::runtime_error("mkdtemp(" + pattern + "): " + std::strerror(errno));
  path_ = pattern;
}

TempDir::~TempDir() {
  std::error_code ignored;
  fs::remove_all(path_, ignored);
}

// ------------------------------------------------------------------------------- Subprocess

Subprocess::Subprocess(std::vector<std::string> argv, std::map<std::string, std::string> extra_env,
                       std::optional<fs::path> log_file) {
  if (argv.empty()) throw std::invalid_argument("Subprocess: empty argv");
  log_file_ = log_file
                  ? *log_file
                  : fs::temp_directory_path() / ("ultracore-subprocess-" + randomSuffix() + ".log");

  // Everything the child needs is built before fork: only async-signal-safe calls after it.
  std::vector<std::string> env;
  for (char** e = environ; *e; ++e) {
    std::string entry = *e;
    if (extra_env.count(entry.substr(0, entry.find('='))) == 0) env.push_back(entry);
  }
  for (const auto& [key, value] : extra_env) env.push_back(key + "=" + value);
  std::vector<char*> argv_c, env_c;
  for (auto& a : argv) argv_c.push_back(a.data());
  argv_c.push_back(nullptr);
  for (auto& e : env) env_c.push_back(e.data());
  env_c.push_back(nullptr);
  std::string log = log_file_.string();

  pid_ = ::fork();
  if (pid_ < 0) throw std::runtime_error(std::string("fork: ") + std::strerror(errno));
  if (pid_ == 0) {
    ::setpgid(0, 0);
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    struct sigaction dfl {};
    dfl.sa_handler = SIG_DFL;
    for (int sig : {SIGPIPE, SIGTERM, SIGINT}) ::sigaction(sig, &dfl, nullptr);
    int in = ::open("/dev/null", O_RDONLY);
    int out = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (in >= 0) ::dup2(in, 0);
    if (out >= 0) {
      ::dup2(out, 1);
      ::dup2(out, 2);
    }
    ::execvpe(argv_c[0], argv_c.data(), env_c.data());
    const char msg[] = "Subprocess: exec failed\n";
    [[maybe_unused]] auto ignored = ::write(2, msg, sizeof(msg) - 1);
    ::_exit(127);
  }
  ::setpgid(pid_, pid_);  // also from the parent, so a signal right after start finds the group
}

Subprocess::~Subprocess() {
  if (pid_ > 0 && !status_) kill();
}

bool Subprocess::running() {
  if (status_) return false;
  int status = 0;
  pid_t r = ::waitpid(pid_, &status, WNOHANG);
  if (r == pid_) {
    status_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    return false;
  }
  return r == 0;
}

void Subprocess::signal(int sig) {
  if (running()) ::kill(pid_, sig);
}

std::optional<int> Subprocess::wait(std::chrono::milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  while (running()) {
    if (Clock::now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return status_;
}

void Subprocess::kill() {
  if (status_ || pid_ <= 0) return;
  ::killpg(pid_, SIGKILL);
  ::kill(pid_, SIGKILL);
  int status = 0;
  while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
  }
  status_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

std::string Subprocess::log() const { return readFile(log_file_); }

// -------------------------------------------------------------------------------- DevBroker

DevBroker::DevBroker(Options options) : options_(std::move(options)) { start(); }

DevBroker::~DevBroker() {
  if (!process_) return;
  process_->signal(SIGTERM);
  if (!process_->wait(std::chrono::seconds(15))) process_->kill();
}

void DevBroker::start() {
  if (process_ && process_->running())
    throw std::logic_error("DevBroker::start: the broker is already running");
  fs::path binary = binPath("ultracore-devbroker");
  if (!fs::exists(binary))
    throw std::runtime_error(binary.string() +
                             " does not exist: build the ultracore-devbroker target first");
  const fs::path dir = data_dir_.path();
  const fs::path bootstrap_file = dir / "bootstrap";
  const fs::path control_file = dir / "control";
  fs::remove(bootstrap_file);
  fs::remove(control_file);

  std::vector<std::string> argv = {binary.string(),
                                   "--brokers",
                                   std::to_string(options_.brokers),
                                   "--partitions",
                                   std::to_string(options_.partitions),
                                   "--data-dir",
                                   dir.string(),
                                   "--bootstrap-file",
                                   bootstrap_file.string(),
                                   "--control-file",
                                   control_file.string()};
  for (const auto& topic : options_.topics) {
    argv.push_back("--topic");
    argv.push_back(topic);
  }
  process_ = std::make_unique<Subprocess>(argv, std::map<std::string, std::string>{},
                                          dir / "devbroker.log");

  auto deadline = Clock::now() + std::chrono::seconds(20);
  while (!fs::exists(bootstrap_file)) {
    if (!process_->running()) {
      auto status = process_->wait(std::chrono::milliseconds(0));
      throw std::runtime_error("ultracore-devbroker exited (status " +
                               std::to_string(status.value_or(-1)) +
                               ") before writing its bootstrap file; its log:\n" + process_->log());
    }
    if (Clock::now() >= deadline) {
      process_->kill();
      throw std::runtime_error(
          "ultracore-devbroker wrote no bootstrap file within 20 s; its log:\n" + process_->log());
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  bootstrap_ = trim(readFile(bootstrap_file));
  control_url_ = trim(readFile(control_file));
  if (bootstrap_.empty() || control_url_.empty())
    throw std::runtime_error("ultracore-devbroker wrote an empty bootstrap or control file");
}

void DevBroker::stop() {
  if (!process_) return;
  process_->signal(SIGTERM);
  auto status = process_->wait(std::chrono::seconds(45));
  if (!status) {
    process_->kill();
    throw std::runtime_error("ultracore-devbroker did not stop within 45 s of SIGTERM; its log:\n" +
                             process_->log());
  }
  if (*status != 0)
    throw std::runtime_error("ultracore-devbroker exited with status " + std::to_string(*status) +
                             " on SIGTERM; its log:\n" + process_->log());
  process_.reset();
}

std::string DevBroker::control(const std::string& path, const std::string& body) {
  httplib::Client client(control_url_);
  client.set_connection_timeout(5);
  client.set_read_timeout(30);
  auto res = client.Post(path.c_str(), body, "application/json");
  if (!res)
    throw std::runtime_error("control channel " + control_url_ + path +
                             " unreachable: " + httplib::to_string(res.error()));
  if (res->status < 200 || res->status >= 300)
    throw std::runtime_error("control channel POST " + path + " answered " +
                             std::to_string(res->status) + ": " + res->body);
  return res->body;
}

// ----------------------------------------------------------------------------- KafkaCluster

KafkaCluster::KafkaCluster(Options options) : options_(options) {
  const fs::path cluster_dir = dir_.path() / "cluster";
  run({"up", cluster_dir.string(), "--brokers", std::to_string(options_.brokers)},
      std::chrono::seconds(180));
  bootstrap_ = trim(readFile(cluster_dir / "bootstrap"));
  if (bootstrap_.empty())
    throw std::runtime_error("tools/kafka/cluster wrote no bootstrap file in " +
                             cluster_dir.string());
}

KafkaCluster::~KafkaCluster() {
  try {
    run({"down", (dir_.path() / "cluster").string()}, std::chrono::seconds(90));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "warning: stopping the Kafka cluster: %s\n", e.what());
  }
}

void KafkaCluster::run(const std::vector<std::string>& args, std::chrono::seconds timeout) {
  std::vector<std::string> argv{(sourceDir() / "tools" / "kafka" / "cluster").string()};
  argv.insert(argv.end(), args.begin(), args.end());
  const fs::path log = dir_.path() / "cluster-command.log";
  fs::remove(log);
  Subprocess process(argv, {}, log);
  auto status = process.wait(timeout);
  if (!status) {
    process.kill();
    throw std::runtime_error("tools/kafka/cluster " + args.front() + " took longer than " +
                             std::to_string(timeout.count()) + " s; its output:\n" +
                             process.log());
  }
  if (*status != 0)
    throw std::runtime_error("tools/kafka/cluster " + args.front() + " failed (status " +
                             std::to_string(*status) + "; tools/install-deps installs Java and " +
                             "the Kafka jars); its output:\n" + process.log());
}

void KafkaCluster::stopNode(int id, bool kill) {
  std::vector<std::string> args{"stop-node", (dir_.path() / "cluster").string(),
                                std::to_string(id)};
  if (kill) args.push_back("--kill");
  run(args, std::chrono::seconds(60));
}

void KafkaCluster::startNode(int id) {
  run({"start-node", (dir_.path() / "cluster").string(), std::to_string(id)},
      std::chrono::seconds(120));
}

void KafkaCluster::signalNode(int id, int signal) {
  const fs::path pid_file = dir_.path() / "cluster" / ("node-" + std::to_string(id)) / "pid";
  const std::string pid = trim(readFile(pid_file));
  if (pid.empty() || ::kill(static_cast<pid_t>(std::stol(pid)), signal) != 0) {
    throw std::runtime_error("cannot signal Kafka node " + std::to_string(id) + " (pid file " +
                             pid_file.string() + ")");
  }
}

namespace {

struct RdKafkaDeleter {
  void operator()(rd_kafka_t* rk) const { rd_kafka_destroy(rk); }
};
using RdKafka = std::unique_ptr<rd_kafka_t, RdKafkaDeleter>;

RdKafka adminHandle(const std::string& bootstrap) {
  char error[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  if (rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap.c_str(), error, sizeof(error)) !=
      RD_KAFKA_CONF_OK) {
    rd_kafka_conf_destroy(conf);
    throw std::runtime_error(error);
  }
  rd_kafka_conf_set(conf, "log_level", "3", error, sizeof(error));
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, error, sizeof(error));
  if (rk == nullptr) {
    rd_kafka_conf_destroy(conf);
    throw std::runtime_error(std::string("rd_kafka_new: ") + error);
  }
  return RdKafka(rk);
}

}  // namespace

void KafkaCluster::createTopic(const std::string& name, int partitions, int replication_factor,
                               const std::map<std::string, std::string>& config) {
  RdKafka rk = adminHandle(bootstrap_);
  const auto errors = ultracore::engine::createTopics(
      rk.get(), {{name, partitions, replication_factor, config}}, std::chrono::seconds(30));
  if (!errors.empty()) {
    throw std::runtime_error("creating topic " + name + ": " + errors.begin()->second.message);
  }
  if (!ultracore::engine::waitForLeaders(rk.get(), name, partitions, std::chrono::seconds(60))) {
    throw std::runtime_error("topic " + name + " has partitions without a leader 60 s after its creation");
  }
}

std::int64_t logEndSum(const std::string& bootstrap, const std::string& topic, int partitions) {
  RdKafka rk = adminHandle(bootstrap);
  std::int64_t total = 0;
  for (int p = 0; p < partitions; ++p) {
    std::int64_t low = -1, high = -1;
    const auto err = rd_kafka_query_watermark_offsets(rk.get(), topic.c_str(), p, &low, &high, 10000);
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) throw std::runtime_error(rd_kafka_err2str(err));
    total += high;
  }
  return total;
}

int KafkaCluster::leaderOf(const std::string& topic, int partition) {
  RdKafka rk = adminHandle(bootstrap_);
  const std::vector<int> leaders = ultracore::engine::partitionLeaders(rk.get(), topic, std::chrono::seconds(10));
  return partition >= 0 && static_cast<std::size_t>(partition) < leaders.size()
             ? leaders[static_cast<std::size_t>(partition)]
             : -1;
}

// ------------------------------------------------------------------------------- PostgreSQL

std::string postgresAdminUrl() {
  if (const char* env = std::getenv("ULTRACORE_PG"); env && *env) return env;
  fs::path file = sourceDir() / ".dev" / "env";
  std::ifstream in(file);
  std::string line;
  while (std::getline(in, line)) {
    line = trim(line);
    if (line.rfind("export ", 0) == 0) line = trim(line.substr(7));
    if (line.rfind("ULTRACORE_PG=", 0) != 0) continue;
    std::string value = trim(line.substr(13));
    if (value.size() >= 2 && (value.front() == '"' || value.front() == '\'') &&
        value.back() == value.front())
      value = value.substr(1, value.size() - 2);
    if (!value.empty()) return value;
  }
  throw std::runtime_error("no PostgreSQL for integration tests: ULTRACORE_PG is not set and " +
                           file.string() +
                           " has no ULTRACORE_PG line; run tools/dev up (or export ULTRACORE_PG)");
}

namespace {

/// The same server URL with another database: the path of postgresql://auth@host:port/db?query.
std::string withDatabase(const std::string& url, const std::string& database) {
  auto scheme = url.find("://");
  if (scheme == std::string::npos)
    throw std::runtime_error("PostgreSQL URL '" + url + "' is not a postgresql:// URL");
  auto query = url.find('?', scheme + 3);
  std::string base = url.substr(0, query);
  std::string rest = query == std::string::npos ? "" : url.substr(query);
  auto slash = base.find('/', scheme + 3);
  if (slash != std::string::npos) base.resize(slash);
  return base + "/" + database + rest;
}

}  // namespace

TestDatabase::TestDatabase() : name_("ultracore_test_" + randomSuffix()) {
  std::string admin = postgresAdminUrl();
  try {
    pqxx::connection conn(admin);
    pqxx::nontransaction tx(conn);
    tx.exec("CREATE DATABASE " + tx.quote_name(name_));
  } catch (const std::exception& e) {
    throw std::runtime_error("cannot create test database " + name_ + " on " + admin + ": " +
                             e.what());
  }
  url_ = withDatabase(admin, name_);
}

TestDatabase::~TestDatabase() {
  try {
    pqxx::connection conn(postgresAdminUrl());
    pqxx::nontransaction tx(conn);
    tx.exec("DROP DATABASE IF EXISTS " + tx.quote_name(name_) + " WITH (FORCE)");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "warning: cannot drop test database %s: %s\n", name_.c_str(), e.what());
  }
}

}  // namespace ultracore::testing
