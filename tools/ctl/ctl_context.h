#pragma once
/// @file
/// What every ultracore-ctl command shares: the manifest (for postgres.url) and a connection.
/// Commands register themselves on the CLI11 app with a `register...Commands` function of
/// their own file pair (dead_letters_command.h, parked_command.h, ...).

#include <memory>
#include <stdexcept>
#include <string>

#include <map>

#include <pqxx/connection>

namespace ultracore::engine {
struct Manifest;
}

namespace ultracore::ctl {

/// A failure to report as one line; `exit_code` 1 = the operation failed, 2 = bad input.
class CtlError : public std::runtime_error {
 public:
  CtlError(const std::string& message, int exit_code = 1)
      : std::runtime_error(message), exit_code_(exit_code) {}
  int exitCode() const { return exit_code_; }

 private:
  int exit_code_;
};

/// Filled by the global options; read by commands when they run (after parsing).
struct CtlContext {
  std::string config = "config/projections.yaml";
  std::string postgres_url;  ///< --postgres-url overrides the manifest's postgres.url
  std::string bootstrap;     ///< --bootstrap overrides the manifest's kafka bootstrap.servers

  /// The PostgreSQL URL: --postgres-url, else the manifest's. Throws ManifestError/CtlError.
  std::string postgresUrl() const;
  /// A new connection to that database. Throws CtlError naming the (redacted) URL.
  std::unique_ptr<pqxx::connection> connect() const;
  /// The manifest's `kafka:` map with --bootstrap applied. Throws CtlError when no
  /// bootstrap.servers is known.
  std::map<std::string, std::string> kafkaProperties(const engine::Manifest& manifest) const;
};

}  // namespace ultracore::ctl
