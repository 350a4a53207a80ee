#pragma once
/// @file
/// Test kit, part 3: run a projection over events against a throwaway PostgreSQL schema, the
/// way the engine would (no Kafka): schema created, setupSchema() in its own transaction, then
/// one transaction per batch with events already applied (same event_id) filtered out first.
/// Then query the tables or take a snapshot of them.
///
/// The projection comes from the built plugin library (ProjectionSource::fromPlugin, what the
/// engine loads) or from code (ProjectionSource::of<T>(), for test-only projections).
/// Not thread-safe: one ProjectionRun per thread. A ProjectionRun owns its connection, its
/// schema (dropped with CASCADE on destruction) and its projection instance.
///
/// Needs libpqxx (see pg_writer.h for why) and, for plugin libraries, dlopen (libc).

#include <dlfcn.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <span>
#include <stdexcept>
#include <string>
#include <unordered_set>
#include <vector>

#include <pqxx/pqxx>

#include "ultracore/sdk/event.h"
#include "ultracore/sdk/logger.h"
#include "ultracore/sdk/plugin.h"
#include "ultracore/sdk/projection.h"
#include "ultracore/sdk/status.h"
#include "ultracore/sdk/testing/pg_writer.h"
#include "ultracore/sdk/version.h"

namespace ultracore::sdk::testing {

/// The database for projection tests: ULTRACORE_TEST_PG, else ULTRACORE_PG; nullopt if
/// neither is set. The kit only creates and drops schemas of its own in that database.
inline std::optional<std::string> testDatabaseUrl() {
  for (const char* name : {"ULTRACORE_TEST_PG", "ULTRACORE_PG"}) {
    if (const char* value = std::getenv(name); value != nullptr && *value != '\0') return value;
  }
  return std::nullopt;
}

constexpr const char* kNoTestDatabaseMessage =
    "no PostgreSQL for projection tests: set ULTRACORE_TEST_PG (or ULTRACORE_PG) to a "
    "connection URL, e.g. postgresql://postgres@127.0.0.1:5432/postgres";

/// Collects what the projection logs; thread-safe, as the SDK requires of a Logger.
class CollectingLogger final : public Logger {
 public:
  void log(LogLevel level, std::string_view message) noexcept override {
    try {
      std::lock_guard lock(mutex_);
      static constexpr const char* kNames[] = {"debug", "info", "warn", "error"};
      lines_.push_back(std::string(kNames[static_cast<int>(level) & 3]) + ": " +
                       std::string(message));
    } catch (...) {
    }
  }
  std::vector<std::string> lines() const {
    std::lock_guard lock(mutex_);
    return lines_;
  }

 private:
  mutable std::mutex mutex_;
  std::vector<std::string> lines_;
};

/// Where projection instances come from. Copyable; a plugin library, once loaded, stays
/// loaded until the process exits (as in the engine, nothing is unloaded while in use).
class ProjectionSource {
 public:
  using Factory = std::function<std::shared_ptr<Projection>(const ProjectionContext&)>;

  /// Projection type T, constructed as T(const ProjectionContext&), compiled into the test.
  template <typename T>
  static ProjectionSource of(std::string default_schema = "test") {
    return ProjectionSource(
        [](const ProjectionContext& context) -> std::shared_ptr<Projection> {
          return std::make_shared<T>(context);
        },
        std::move(default_schema), "in-code projection");
  }

  /// The projection `projection` offered by the plugin library at `library_path`, checked
  /// like the engine's loader does (entry point, ABI version, build fingerprint). Throws
  /// std::runtime_error naming the path and the problem.
  static ProjectionSource fromPlugin(const std::string& library_path,
                                     const std::string& projection) {
    void* handle = ::dlopen(library_path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (handle == nullptr) {
      throw std::runtime_error(library_path + ": cannot load: " + ::dlerror());
    }
    auto entry = reinterpret_cast<PluginEntryFunction>(::dlsym(handle, kPluginEntrySymbol));
    if (entry == nullptr) {
      throw std::runtime_error(library_path + ": no symbol '" + kPluginEntrySymbol + "'");
    }
    const PluginDescriptor* descriptor = entry();
    if (descriptor == nullptr) {
      throw std::runtime_error(library_path + ": " + kPluginEntrySymbol + " returned null");
    }
    if (descriptor->abi_version != kAbiVersion) {
      throw std::runtime_error(library_path + ": plugin ABI version " +
                               std::to_string(descriptor->abi_version) + ", test kit expects " +
                               std::to_string(kAbiVersion));
    }
    if (descriptor->build_fingerprint == nullptr ||
        std::strcmp(descriptor->build_fingerprint, kBuildFingerprint) != 0) {
      throw std::runtime_error(library_path + ": build fingerprint '" +
                               (descriptor->build_fingerprint ? descriptor->build_fingerprint : "") +
                               "' differs from the test's '" + kBuildFingerprint + "'");
    }
    std::string offered;
    for (std::size_t i = 0; i < descriptor->projection_count; ++i) {
      const ProjectionFactory* factory = &descriptor->projections[i];
      if (factory->name == nullptr) continue;
      if (projection != factory->name) {
        offered += std::string(offered.empty() ? "" : ", ") + factory->name;
        continue;
      }
      const std::string label = library_path + " projection '" + projection + "'";
      return ProjectionSource(
          [factory, label](const ProjectionContext& context) -> std::shared_ptr<Projection> {
            std::string error;
            Projection* created = factory->create(&context, &error);
            if (created == nullptr) throw std::runtime_error(label + ": create failed: " + error);
            return std::shared_ptr<Projection>(created, factory->destroy);
          },
          factory->default_schema ? factory->default_schema : "", label);
    }
    throw std::runtime_error(library_path + ": no projection '" + projection +
                             "' (offers: " + offered + ")");
  }

  std::shared_ptr<Projection> create(const ProjectionContext& context) const {
    auto projection = factory_(context);
    if (!projection) throw std::runtime_error(label_ + ": factory returned null");
    return projection;
  }
  const std::string& defaultSchema() const { return default_schema_; }
  const std::string& label() const { return label_; }

 private:
  ProjectionSource(Factory factory, std::string default_schema, std::string label)
      : factory_(std::move(factory)),
        default_schema_(std::move(default_schema)),
        label_(std::move(label)) {}

  Factory factory_;
  std::string default_schema_;
  std::string label_;
};

/// One table's content as text, rows sorted: what the determinism check compares.
struct TableSnapshot {
  std::vector<std::string> columns;  ///< "name type", in column order
  std::vector<std::string> rows;     ///< each row as PostgreSQL's row text, sorted
  bool operator==(const TableSnapshot&) const = default;
};
using SchemaSnapshot = std::map<std::string, TableSnapshot>;  ///< table name -> content

/// A projection instance building into a fresh schema of its own.
class ProjectionRun {
 public:
  struct Options {
    std::string projection_name = "test";            ///< ProjectionContext::projection_name
    nlohmann::json config = nlohmann::json::object();  ///< ProjectionContext::config
    std::size_t batch_size = 500;                    ///< default events per transaction
  };

  /// Creates schema `ut_<default schema>_<unique>` and runs setupSchema(). Throws
  /// std::runtime_error when the projection cannot be created or its DDL fails.
  ProjectionRun(const std::string& url, ProjectionSource source, Options options)
      : source_(std::move(source)), options_(std::move(options)), connection_(url) {
    schema_ = uniqueSchemaName(source_.defaultSchema());
    pqxx::nontransaction(connection_).exec0("CREATE SCHEMA " + detail::quoteIdentifier(schema_));
    restart();
  }
  ProjectionRun(const std::string& url, ProjectionSource source)
      : ProjectionRun(url, std::move(source), Options{}) {}

  ~ProjectionRun() {
    projection_.reset();
    try {
      pqxx::nontransaction(connection_)
          .exec0("DROP SCHEMA IF EXISTS " + detail::quoteIdentifier(schema_) + " CASCADE");
    } catch (...) {  // a test that broke the connection still ends cleanly
    }
  }
  ProjectionRun(const ProjectionRun&) = delete;
  ProjectionRun& operator=(const ProjectionRun&) = delete;

  /// What an engine restart does: a new projection instance and setupSchema() again on the
  /// existing tables (DDL must be idempotent; in-memory state must not matter).
  void restart() {
    projection_.reset();
    context_ = ProjectionContext{options_.projection_name, schema_, options_.config, &logger_};
    projection_ = source_.create(context_);
    pqxx::work txn(connection_, "ultracore-test-schema-setup");
    PgTestWriter writer(txn, schema_);
    if (Status status = projection_->setupSchema(writer); !status) {
      throw std::runtime_error(source_.label() + ": setupSchema failed in schema '" + schema_ +
                               "': " + status.message());
    }
    txn.commit();
  }

  /// Applies `events` in log order, `batch_size` per transaction (0: Options::batch_size).
  /// Like the engine, skips events whose event_id this run already applied (across batches
  /// and within a batch). Stops at the first failed batch and returns its Status, naming
  /// the batch's first event; that batch is rolled back.
  Status apply(std::span<const Event> events, std::size_t batch_size = 0) {
    if (batch_size == 0) batch_size = options_.batch_size;
    for (std::size_t begin = 0; begin < events.size(); begin += batch_size) {
      const auto batch = events.subspan(begin, std::min(batch_size, events.size() - begin));
      if (Status status = applyBatch(batch); !status) return status;
    }
    return Status::ok();
  }
  Status apply(const std::vector<Event>& events, std::size_t batch_size = 0) {
    return apply(std::span<const Event>(events), batch_size);
  }

  /// Runs `sql` (with `{schema}` expanded) in its own transaction; throws on error.
  Rows query(std::string_view sql, const Params& params = {}) {
    pqxx::work txn(connection_, "ultracore-test-query");
    PgTestWriter writer(txn, schema_);
    auto rows = writer.query(sql, params);
    if (!rows) throw std::runtime_error("query failed: " + rows.status().message());
    txn.commit();
    return rows.value();
  }

  /// The first cell of the first row; "" for NULL or no row.
  std::string value(std::string_view sql, const Params& params = {}) {
    const Rows rows = query(sql, params);
    if (rows.empty() || rows.rows[0].empty() || !rows.rows[0][0]) return "";
    return *rows.rows[0][0];
  }

  /// Every base table of the schema: column names and types, and all rows, sorted.
  SchemaSnapshot snapshot() {
    SchemaSnapshot out;
    pqxx::work txn(connection_, "ultracore-test-snapshot");
    const auto tables = txn.exec_params(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = $1 "
        "AND table_type = 'BASE TABLE' ORDER BY table_name",
        schema_);
    for (const auto& table : tables) {
      const std::string name = table[0].as<std::string>();
      TableSnapshot& snap = out[name];
      for (const auto& column : txn.exec_params(
               "SELECT column_name || ' ' || data_type FROM information_schema.columns "
               "WHERE table_schema = $1 AND table_name = $2 ORDER BY ordinal_position",
               schema_, name)) {
        snap.columns.push_back(column[0].as<std::string>());
      }
      for (const auto& row : txn.exec("SELECT t::text FROM " + detail::quoteIdentifier(schema_) +
                                       "." + detail::quoteIdentifier(name) +
                                       " AS t ORDER BY 1")) {
        snap.rows.push_back(row[0].as<std::string>());
      }
    }
    txn.commit();
    return out;
  }

  const std::string& schema() const { return schema_; }
  std::size_t eventsApplied() const { return applied_.size(); }
  std::size_t duplicatesSkipped() const { return duplicates_; }
  std::size_t batchesCommitted() const { return batches_; }
  std::vector<std::string> logs() const { return logger_.lines(); }

 private:
  static std::string uniqueSchemaName(const std::string& base) {
    static std::atomic<unsigned> counter{0};
    std::string clean;
    for (char c : base.substr(0, 24)) {
      const auto u = static_cast<unsigned char>(c);
      clean.push_back(std::isalnum(u) ? static_cast<char>(std::tolower(u)) : '_');
    }
    std::random_device random;
    return "ut_" + clean + "_" + std::to_string(::getpid()) + "_" + std::to_string(counter++) +
           "_" + std::to_string(random() % 100000);
  }

  Status applyBatch(std::span<const Event> batch) {
    // The engine inserts the batch's event_ids into processed_events ON CONFLICT DO NOTHING
    // and passes on only the fresh ones, first occurrence first: the same filter here.
    std::vector<Event> fresh;
    std::unordered_set<std::string> in_batch;
    for (const Event& event : batch) {
      if (applied_.count(event.eventId()) != 0 || !in_batch.insert(event.eventId()).second) {
        ++pending_duplicates_;
        continue;
      }
      fresh.push_back(event);
    }
    try {
      pqxx::work txn(connection_, "ultracore-test-batch");
      if (!fresh.empty()) {
        PgTestWriter writer(txn, schema_);
        Status status = projection_->apply(fresh, writer);
        if (!status) {
          pending_duplicates_ = 0;
          return {status.code(), "batch starting at " + describe(batch.front()) + ": " +
                                     status.message()};
        }
      }
      txn.commit();
    } catch (...) {
      pending_duplicates_ = 0;
      return detail::statusFromCurrentException();
    }
    applied_.insert(in_batch.begin(), in_batch.end());
    duplicates_ += pending_duplicates_;
    pending_duplicates_ = 0;
    ++batches_;
    return Status::ok();
  }

  static std::string describe(const Event& event) {
    return event.topic() + "/" + std::to_string(event.partition()) + "@" +
           std::to_string(event.offset()) + " (event_id " + event.eventId() + ", " +
           event.eventType() + ")";
  }

  ProjectionSource source_;
  Options options_;
  pqxx::connection connection_;
  std::string schema_;
  CollectingLogger logger_;
  ProjectionContext context_;
  std::shared_ptr<Projection> projection_;
  std::unordered_set<std::string> applied_;
  std::size_t duplicates_ = 0;
  std::size_t pending_duplicates_ = 0;
  std::size_t batches_ = 0;
};

}  // namespace ultracore::sdk::testing
