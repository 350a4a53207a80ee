#pragma once
/// @file
/// The manifest (config/projections.yaml): what the operator edits. Loaded once at start-up on
/// the main thread; immutable afterwards.

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace ultracore::engine {

/// Where a value was written: 1-based line and column.
struct SourceLocation {
  std::string file;
  int line = 0;
  int column = 0;
};

/// Thrown for anything wrong in a manifest. what() is one line:
/// "<file>:<line>:<column>: <message>".
class ManifestError : public std::runtime_error {
 public:
  ManifestError(SourceLocation where, const std::string& message);
  const SourceLocation& where() const { return where_; }
  const std::string& message() const { return message_; }

 private:
  SourceLocation where_;
  std::string message_;
};

/// The most `workers:` a projection may ask for.
constexpr int kMaxWorkers = 64;

enum class ErrorPolicy { kFail, kSkip, kDeadLetter, kPark };
const char* toString(ErrorPolicy policy);

struct PluginSpec {
  std::string name;
  std::filesystem::path library;  ///< absolute: resolved against the manifest's folder
  SourceLocation where;
};

struct BatchSpec {
  int max_events = 500;
  /// The longest a batch stays open for more records while the consumer keeps delivering.
  int max_wait_ms = 20;
  /// Commit a batch as soon as the consumer has nothing more queued, instead of waiting out
  /// max_wait_ms (under a backlog the queue is never empty, so batches still fill up).
  bool flush_when_idle = true;
  /// Wait for PostgreSQL's WAL flush (`synchronous_commit`) when a batch commits. Off by
  /// default: the read model is rebuilt from Kafka, and a server crash can only roll back the
  /// latest batches together with their offsets, which the engine then applies again.
  bool synchronous_commit = false;

  bool operator==(const BatchSpec&) const = default;
};

/// Where a value inside a projection's `config:` was written, for the places a plugin names
/// with sdk::configErrorAt (placeConfigErrors).
struct ConfigValueLocation {
  SourceLocation where;  ///< the value's node
  /// A string value: where its first character is, and whether it is a block scalar (`|`,
  /// `>`), whose lines sit one under the other at `text.column`.
  SourceLocation text;
  bool block = false;
};

struct ProjectionSpec {
  std::string name;
  std::string plugin;
  std::string projection;  ///< which of the plugin's projections; defaults to `name`
  std::vector<std::string> topics;
  BatchSpec batch;
  ErrorPolicy on_error = ErrorPolicy::kFail;
  int retries = 0;            ///< handler retries before on_error applies
  /// dedupe.retention: processed_events rows older than this many seconds are pruned (a
  /// re-send older than that is applied again); 0 keeps them forever (the default).
  std::int64_t dedupe_retention = 0;
  /// Live runners of this projection in one engine, all in its consumer group: Kafka splits
  /// the partitions among them and each commits on its own PostgreSQL connection (1..64).
  int workers = 1;
  std::string schema;         ///< empty: the plugin's default schema for that projection
  std::string group_id;       ///< defaults to "ultracore.projection.<name>"
  std::map<std::string, std::string> kafka;  ///< per-projection librdkafka overrides
  nlohmann::json config = nlohmann::json::object();  ///< handed to the plugin as-is
  /// Each value inside `config:` by JSON pointer ("" is config itself, "/on/X/0" an item).
  std::map<std::string, ConfigValueLocation> config_where;
  SourceLocation where;             ///< the projection's entry
  SourceLocation plugin_where;      ///< its `plugin:` value
  SourceLocation projection_where;  ///< its `projection:` value, or the entry when absent
};

/// One entry of the top-level `topics:` section: what `ultracore-ctl topics ensure` creates
/// (the engine itself never creates a topic).
struct TopicSpec {
  std::string name;
  int partitions = 1;
  int replication_factor = -1;  ///< -1 (absent): the broker's default.replication.factor
  std::map<std::string, std::string> config;  ///< topic configs (retention.ms, ...), as text
  SourceLocation where;  ///< the topic's key
};

/// One entry of api.tokens: a bearer token and the tenants it may act for.
struct ApiCredential {
  std::string token;
  std::vector<std::string> tenants;  ///< the tenants it serves (empty when all_tenants)
  bool all_tenants = false;          ///< `tenants: '*'`, only with `gateway: true`
  std::string user;                  ///< stamped into events as user_id when set
  SourceLocation where;
};

struct Manifest {
  std::filesystem::path file;
  std::map<std::string, std::string> kafka;  ///< librdkafka properties, passed through
  std::string postgres_url;
  /// postgres.api_url: the API's own connection string (a login that is, or is a member of,
  /// postgres_api_role); empty: the API connects with postgres_url and sets that role.
  std::string postgres_api_url;
  /// postgres.api_role: the role the engine grants what the API may do (read the projections
  /// and offsets, keep Idempotency-Keys); empty: the API runs as the engine's user (warned).
  std::string postgres_api_role = "ultracore_api";
  std::string api_listen = "127.0.0.1:8000";
  std::string admin_listen = "127.0.0.1:9464";
  /// api.token: one token serving every tenant (a trusted gateway's); empty: none.
  std::string api_token;
  std::vector<ApiCredential> api_tokens;  ///< api.tokens: tokens bound to tenants
  std::size_t api_max_body_bytes = 1048576;  ///< api.max_body_bytes: largest request body
  /// api.insecure: serve a non-loopback api.listen without a token (logged as a warning).
  bool api_insecure = false;
  /// api.hosts: the Host names the API answers to (DNS rebinding); empty: the loopback names
  /// when api.listen is loopback, else any.
  std::vector<std::string> api_hosts;
  std::string admin_token;  ///< admin.token; empty: no auth (loopback only); never api.token
  bool admin_insecure = false;           ///< admin.insecure, as api.insecure
  std::vector<std::string> admin_hosts;  ///< admin.hosts, as api.hosts
  std::vector<PluginSpec> plugins;
  std::vector<ProjectionSpec> projections;
  /// The `topics:` section, in document order. When it is present (even empty), every
  /// projection's topic must be declared in it.
  std::vector<TopicSpec> topics;
  bool topics_declared = false;

  /// True when the API needs a bearer token (api.token or api.tokens).
  bool apiNeedsToken() const { return !api_token.empty() || !api_tokens.empty(); }
  const PluginSpec* findPlugin(const std::string& name) const;
  const ProjectionSpec* findProjection(const std::string& name) const;
  const TopicSpec* findTopic(const std::string& name) const;
};

/// True for a listen host only this machine reaches: 127.0.0.0/8, [::1], localhost.
bool isLoopbackHost(const std::string& host);

/// `message` with every sdk::configErrorAt marker ("@config<pointer>#<offset>:") replaced by
/// the file:line:column it names in `spec`'s `config:` (the nearest enclosing value when the
/// pointer is not in the manifest; the projection's entry when it has no `config:`).
std::string placeConfigErrors(const std::string& message, const ProjectionSpec& spec);

/// Looks up an environment variable; std::nullopt when unset.
///
/// Every scalar value of the manifest (never a key) is expanded before it is checked:
/// `${VAR}` is VAR's value and an error naming the value's file:line:column when VAR is unset;
/// `${VAR:-default}` is `default` when VAR is unset or empty (the default is literal text up to
/// the first `}`, not expanded again); `$$` is a literal `$` (so `$${VAR}` stays `${VAR}`);
/// any other `$` is kept as is. Expanded text is not expanded again. An empty EnvLookup means
/// that no variable is set.
using EnvLookup = std::function<std::optional<std::string>(const std::string&)>;

/// Reads and validates a manifest file, expanding from the process environment (getenv).
/// Throws ManifestError. Checks that need the loaded plugins (does the plugin offer that
/// projection?) are the plugin loader's, which reports them at `projection_where`.
Manifest loadManifest(const std::filesystem::path& file);

/// Same, from text; `file` is used for messages and to resolve relative paths.
Manifest parseManifest(const std::string& text, const std::filesystem::path& file,
                       const EnvLookup& env);

}  // namespace ultracore::engine
