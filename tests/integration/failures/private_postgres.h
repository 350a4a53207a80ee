#pragma once
/// @file
/// A PostgreSQL cluster of one test alone (initdb into a temp dir), so it can be restarted or
/// crashed without disturbing the shared server. As root, every command runs as `postgres`.

#include <filesystem>
#include <string>
#include <vector>

#include "support/test_support.h"

namespace ultracore::testing {

class PrivatePostgres {
 public:
  /// `settings`: extra `-c name=value` server settings, e.g. "wal_writer_delay=10000".
  explicit PrivatePostgres(const std::vector<std::string>& settings = {});
  ~PrivatePostgres();
  PrivatePostgres(const PrivatePostgres&) = delete;
  PrivatePostgres& operator=(const PrivatePostgres&) = delete;

  /// pg_ctl restart -m fast.
  void restart();
  /// A server crash: pg_ctl stop -m immediate (no shutdown checkpoint, WAL buffers not
  /// written: recovery replays the WAL at the next start).
  void crash();
  /// pg_ctl start (after crash()); returns once it accepts connections.
  void start();
  std::string url() const;
  std::string log() const;

 private:
  std::filesystem::path data() const { return root_.path() / "data"; }
  void run(std::vector<std::string> argv);

  TempDir root_;
  std::filesystem::path bin_;
  int port_;
  std::string options_;
  int runs_ = 0;
};

}  // namespace ultracore::testing
