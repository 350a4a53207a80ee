#pragma once
/// @file
/// Shared pieces of the engine's integration tests: a manifest in a temp dir, the engine as a
/// real subprocess, a librdkafka producer, and SQL against the test database.

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "support/test_support.h"

namespace ultracore::testing {

/// One record to produce; partition -1 lets the key choose (murmur2, like every client).
struct Record {
  std::string topic;
  std::string key;
  std::string value;
  int partition = -1;
};

/// The envelope of DESIGN.md as JSON text.
std::string envelope(const std::string& event_id, const std::string& event_type,
                     const std::string& aggregate_id, const nlohmann::json& data,
                     const std::string& tenant = "DEFAULT");

/// Produces every record with an idempotent, acks=all producer and waits for all delivery
/// reports; throws if any failed.
void produce(const std::string& bootstrap, const std::vector<Record>& records);

/// Runs `sql` and returns the first column of the first row ("" for NULL or no row).
std::string queryValue(const std::string& url, const std::string& sql);

/// Polls `condition` every 100 ms until it holds or `timeout` passes. A bounded wait, not a
/// speed assertion: the timeout only stops a broken test from hanging.
bool waitUntil(const std::function<bool()>& condition, std::chrono::milliseconds timeout);

/// A manifest for one test. `projections_yaml` is the text under `projections:`.
std::filesystem::path writeManifest(const TempDir& dir, const std::string& bootstrap,
                                    const std::string& postgres_url,
                                    const std::string& projections_yaml,
                                    const std::string& name = "projections.yaml");

/// Adds `admin.token: <token>` to a manifest written by writeManifest. Throws if it has no
/// admin block.
void setAdminToken(const std::filesystem::path& manifest, const std::string& token);

/// The admin port the engine logged ("admin listening on 127.0.0.1:PORT"); 0 if not yet.
int adminPort(const Subprocess& engine);

/// A TCP port on 127.0.0.1 that was free a moment ago (bound to port 0, then released).
int freePort();

/// ultracore-engine --config <manifest> [extra_args...], logging to `log`.
std::unique_ptr<Subprocess> startEngine(const std::filesystem::path& manifest,
                                        const std::filesystem::path& log,
                                        const std::vector<std::string>& extra_args = {});

/// Waits (bounded) until the engine logged that it runs, so its signal handling is in place.
bool waitForEngineRunning(const Subprocess& engine);

/// Runs `ultracore-ctl --config <manifest> args...` (stdout+stderr to `log`); returns its exit
/// status (-1 if it did not end within `timeout`) and what it printed.
std::pair<int, std::string> runCtl(const std::filesystem::path& manifest,
                                   const std::vector<std::string>& args,
                                   const std::filesystem::path& log,
                                   std::chrono::seconds timeout = std::chrono::seconds(60));

/// md5 of a table's rows in a stable order, to compare two databases.
std::string tableChecksum(const std::string& url, const std::string& select_sql);

}  // namespace ultracore::testing
