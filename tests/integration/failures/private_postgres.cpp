#include "private_postgres.h"

#include <pwd.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <iterator>
#include <stdexcept>

#include "engine_harness.h"

namespace ultracore::testing {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

PrivatePostgres::PrivatePostgres(const std::vector<std::string>& settings) : port_(freePort()) {
  for (const char* dir : {"/usr/lib/postgresql/15/bin", "/usr/local/bin", "/usr/bin"}) {
    if (fs::exists(fs::path(dir) / "initdb") && fs::exists(fs::path(dir) / "pg_ctl")) {
      bin_ = dir;
      break;
    }
  }
  if (bin_.empty()) throw std::runtime_error("initdb/pg_ctl not found");
  if (::geteuid() == 0) {
    const passwd* user = ::getpwnam("postgres");
    if (user == nullptr) throw std::runtime_error("running as root but there is no postgres user");
    if (::chown(root_.path().c_str(), user->pw_uid, user->pw_gid) != 0) {
      throw std::runtime_error("chown " + root_.path().string() + " failed");
    }
  }
  options_ = "-p " + std::to_string(port_) + " -c listen_addresses=127.0.0.1 -c unix_socket_directories=" +
             root_.path().string() + " -c fsync=off";
  for (const auto& setting : settings) options_ += " -c " + setting;
  run({(bin_ / "initdb").string(), "-D", data().string(), "-U", "postgres", "--auth=trust", "-E",
       "UTF8", "--locale=C.UTF-8"});
  start();
}

PrivatePostgres::~PrivatePostgres() {
  try {
    run({(bin_ / "pg_ctl").string(), "stop", "-D", data().string(), "-m", "immediate", "-w"});
  } catch (const std::exception& e) {
    std::fprintf(stderr, "warning: %s\n", e.what());
  }
}

void PrivatePostgres::restart() {
  run({(bin_ / "pg_ctl").string(), "restart", "-D", data().string(), "-m", "fast", "-w", "-t", "60"});
}

void PrivatePostgres::crash() {
  run({(bin_ / "pg_ctl").string(), "stop", "-D", data().string(), "-m", "immediate", "-w", "-t", "60"});
}

void PrivatePostgres::start() {
  run({(bin_ / "pg_ctl").string(), "start", "-D", data().string(), "-l",
       (root_.path() / "postgres.log").string(), "-w", "-t", "60", "-o", options_});
}

std::string PrivatePostgres::url() const {
  return "postgresql://postgres@127.0.0.1:" + std::to_string(port_) + "/postgres";
}

std::string PrivatePostgres::log() const {
  std::ifstream in(root_.path() / "postgres.log");
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

void PrivatePostgres::run(std::vector<std::string> argv) {
  if (::geteuid() == 0) argv.insert(argv.begin(), {"runuser", "-u", "postgres", "--"});
  Subprocess process(argv, {}, root_.path() / ("cmd-" + std::to_string(++runs_) + ".log"));
  const auto status = process.wait(120s);
  if (status != 0) {
    throw std::runtime_error(argv[argv.size() > 4 ? 4 : 0] + " failed (" +
                             std::to_string(status.value_or(-1)) + "): " + process.log());
  }
}

}  // namespace ultracore::testing
