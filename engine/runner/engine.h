#pragma once
/// @file
/// Engine: the manifest made to run. Control plane only; each projection's data plane lives in
/// its ProjectionRunner.
///
/// A projection's live generation runs `workers:` ProjectionRunners (all named after it, one
/// consumer group, one storage key): they are started, stopped and replaced together. A
/// rebuild runs as many, in its own consumer group under the new generation's key.
///
/// Besides start-up and shutdown (main thread), the control plane serves the operator's actions
/// (admin endpoint threads) and a control thread that drives rebuilds. All of them change the
/// running set under one mutex; readers (metrics, status) take a snapshot of the runners.
///
/// Generations (migrations/0004_generations.sql): a rebuild materializes generation N+1 of a
/// projection into `<schema>__g<N+1>` beside the live one, with a runner of its own (own
/// consumer group, own offsets under the generation's key). When it has caught up, the live
/// generation is frozen in every engine (ultracore_generations.switch_until, which the live
/// runners' fence reads; this engine stops its own), the new one reaches exactly the live one's
/// offsets (checked again under the row lock), and one transaction renames
/// the schemas (`<schema>` -> `<schema>__g<N>`, `<schema>__g<N+1>` -> `<schema>`) and records the
/// switch; then a runner for generation N+1 resumes as the live one. Queries name `<schema>`
/// and see either the old tables or the new ones, never none.

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>
#include <pqxx/connection>
#include <pqxx/dbtransaction>

#include "engine/manifest/manifest.h"
#include "engine/plugin/plugin_loader.h"
#include "engine/runner/plugin_logger.h"
#include "engine/runner/projection_runner.h"


namespace ultracore::engine {

/// A start-up failure that is neither the manifest's nor a plugin's (database unreachable,
/// schema setup failed). One line; caught in main.
class StartupError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// An operator action the engine refuses; `status` is the HTTP status the admin endpoint
/// answers with (404 unknown projection, 409 conflicting state), `code` its error code.
class ControlError : public std::runtime_error {
 public:
  ControlError(int status, std::string code, const std::string& message)
      : std::runtime_error(message), status_(status), code_(std::move(code)) {}
  int status() const { return status_; }
  const std::string& code() const { return code_; }

 private:
  int status_;
  std::string code_;
};

/// The storage key of a projection's generation: its name for generation 1, `<name>@g<N>` after.
std::string generationKey(const std::string& projection, int generation);

class Engine {
 public:
  explicit Engine(Manifest manifest);
  ~Engine();

  /// Static group membership for every runner this engine starts (RunnerSettings::instance_id);
  /// call before start(). Throws std::invalid_argument for an id Kafka would not accept.
  void setInstanceId(std::string instance_id);

  /// Loads every plugin and checks each projection against what its plugin offers.
  /// Throws PluginError or ManifestError (with the manifest's file:line:column).
  void loadPlugins();

  /// `--check`, after loadPlugins(): creates each projection (its factory checks `config:`)
  /// and, when PostgreSQL answers, runs its setupSchema() in a scratch schema inside a
  /// transaction that is rolled back (so SQL PostgreSQL rejects is found). Returns one line per
  /// mistake, placed in the manifest where the plugin says (sdk::configErrorAt); `notes` gets
  /// what could not be checked.
  std::vector<std::string> checkProjections(std::vector<std::string>& notes);

  /// Applies the engine's migrations, creates each projection, sets up its schema and starts
  /// its runner (and resumes a rebuild that was in progress). Throws StartupError, PluginError.
  void start();

  /// Stops every runner (each finishes or aborts its batch and leaves its group) and waits.
  void stop();

  /// Applies the engine's migrations (start() does it too; the API role needs it alone).
  /// Throws StartupError.
  void applyMigrations();

  /// The schema each manifest projection writes into, by projection name (after loadPlugins).
  std::map<std::string, std::string> projectionSchemas() const;

  /// The manifest the engine started with (the API and admin endpoints keep using it).
  const Manifest& manifest() const { return manifest_; }
  const PluginRegistry& plugins() const { return plugins_; }
  /// The runners now: every projection's live runners (its `workers:`, all named after the
  /// projection), then the runners of rebuilds in progress. A snapshot: safe from any thread,
  /// valid while held.
  std::vector<std::shared_ptr<ProjectionRunner>> runners() const;

  // ---- operator actions (any thread; each waits for the previous one) ----------------------
  /// Starts building the next generation beside the live one; the switch happens by itself.
  nlohmann::json rebuild(const std::string& projection);
  /// Stops a rebuild in progress and drops what it built.
  nlohmann::json cancelRebuild(const std::string& projection);
  /// Makes the previous generation live again (its runner catches up from where it stopped).
  nlohmann::json rollback(const std::string& projection);
  /// Drops the previous generation kept for rollback: its schema, offsets and records.
  nlohmann::json drop(const std::string& projection);
  /// In-place replay: empties the live generation's tables and offsets and starts again from
  /// the beginning of the log. Readers see the tables empty, then filling.
  nlohmann::json reset(const std::string& projection);
  /// Generations and the rebuild's progress of one projection (or of all when empty), as the
  /// admin endpoint shows them. Never waits on an operator action.
  nlohmann::json generationsJson(const std::string& projection = "") const;

  /// Manifest reload (SIGHUP): starts added projections, stops removed ones, restarts changed
  /// ones; untouched ones keep running. Throws ManifestError/PluginError/ControlError and then
  /// keeps the running set as it was. Returns a one-line summary.
  std::string reload(Manifest manifest);

 private:
  /// What the operator reads about a rebuild (guarded by status_mutex_).
  struct RebuildStatus {
    int generation = 0;
    std::string phase;  ///< building, switching, done, failed, cancelled
    std::string detail;
    std::int64_t done = 0;
    std::int64_t total = 0;
    double rate = 0;  ///< events/s over the last seconds
    std::chrono::system_clock::time_point started;
    std::chrono::system_clock::time_point finished;
  };
  /// One manifest projection and its runners (guarded by control_mutex_).
  struct Slot {
    ProjectionSpec spec;
    std::string schema;  ///< the live schema, which queries name
    int live = 1;
    int previous = 0;  ///< 0: none kept
    int building = 0;  ///< 0: no rebuild in progress
    /// The live generation's workers (spec.workers of them, one consumer group): all started,
    /// stopped and replaced together. Empty: not running.
    std::vector<std::shared_ptr<ProjectionRunner>> runners;
    /// The generation being built: spec.workers runners in the rebuild's own consumer group,
    /// started and stopped together like the live ones. Empty: no rebuild running here.
    std::vector<std::shared_ptr<ProjectionRunner>> builders;
    std::chrono::steady_clock::time_point next_sample;
    std::int64_t last_done = -1;
    std::chrono::steady_clock::time_point last_done_at;
    /// A postponed switch is not tried again before this (the delay doubles each time).
    std::chrono::steady_clock::time_point next_switch_attempt;
    std::chrono::seconds switch_retry{0};
    /// dedupe.retention: when the next prune step of its processed_events rows is due.
    std::chrono::steady_clock::time_point next_prune;
    std::string prune_cursor;  ///< processed_at where the last prune step stopped
  };

  void validate(const Manifest& manifest) const;
  /// The schema a projection writes into: the manifest's, else the plugin's default.
  std::string schemaFor(const ProjectionSpec& spec) const;
  /// Creates the schema and the projection's tables in `txn`.
  void setupSchema(pqxx::dbtransaction& txn, const ProjectionSpec& spec,
                   const std::string& schema, sdk::Projection& projection);
  /// Creates the projection through its plugin and a runner for generation `generation`
  /// writing into `schema` (not started). `building`: a rebuild's runner. `setup`: sets up the
  /// schema first, in that transaction (nullptr: none). `worker`: which of the workers, live
  /// or building (0-based; only its log label differs).
  std::shared_ptr<ProjectionRunner> makeRunner(const ProjectionSpec& spec,
                                               const std::string& schema, int generation,
                                               bool building, pqxx::dbtransaction* setup,
                                               int worker = 0);
  Slot& slotFor(const std::string& projection);
  /// Throws ControlError (409) while the slot has a rebuild in progress.
  static void refuseWhileRebuilding(const Slot& slot);
  /// Reads (creating it when missing) the projection's ultracore_generations row into `slot`.
  void loadGenerations(pqxx::connection& connection, Slot& slot);
  /// Before an operator action: when the projection's generations row no longer says what
  /// `slot` believes (another engine changed it, and this one had nothing to commit that would
  /// have met the fence), the slot follows it (its runners restart on the live generation) and
  /// the action is refused with ControlError 409 generations_changed.
  void followGenerations(Slot& slot);
  /// Locks the generations row FOR UPDATE in `txn` and throws ControlError 409 unless it still
  /// says what `slot` believes: every action acts on the row as it is under the lock.
  static void lockCurrent(pqxx::dbtransaction& txn, const Slot& slot);
  void startSlot(pqxx::connection& connection, Slot& slot);
  void stopSlot(Slot& slot);
  /// (Re)starts the slot's live workers (`first` as worker 0 when given, new runners of the
  /// live generation for the rest), all paused if `paused`, and publishes them.
  void startLive(Slot& slot, bool paused, std::shared_ptr<ProjectionRunner> first = nullptr);
  /// Same without publishing.
  void startWorkers(Slot& slot, bool paused, std::shared_ptr<ProjectionRunner> first = nullptr);
  /// Stops every live worker of the slot and waits for them all. Returns whether any of them
  /// was paused by the operator (the replacements start paused then).
  static bool stopLive(Slot& slot);
  /// Creates spec.workers runners of `generation` into slot.builders, not started yet; the
  /// first sets up the generation's schema in `setup` when given.
  void makeBuilders(Slot& slot, int generation, pqxx::dbtransaction* setup);
  /// Stops the rebuild's runners and waits for them all.
  static void stopBuilders(Slot& slot);
  /// The first builder that failed or stopped by itself; nullptr while all run.
  static const ProjectionRunner* brokenBuilder(const Slot& slot);
  void publish();
  void setRebuildStatus(const std::string& projection, const RebuildStatus& status);

  void controlLoop();
  /// One step of a rebuild in progress: progress, and the switch once caught up.
  void advanceRebuild(Slot& slot);
  /// Stops the live workers, lets the rebuild reach its offsets, switches. False: not now.
  bool switchGenerations(Slot& slot);
  /// Per partition: the live generation's stored offsets minus the rebuild's (never below 0).
  /// Only over the topics the rebuild reads; a builder partition without a stored offset
  /// counts from its log start when known (retention). `txn` may be a nontransaction.
  std::int64_t rebuildGap(pqxx::transaction_base& txn, const Slot& slot);
  pqxx::connection& controlConnection();
  /// dedupe.retention: one small step of pruning the slot's processed_events rows (every
  /// generation it keeps) when due; steps follow each other while they find full batches.
  void pruneDedupe(Slot& slot);

  Manifest manifest_;
  std::map<std::string, std::string> kafka_;  ///< the kafka: map now (a reload may change it)
  std::string instance_id_;                   ///< --instance-id; empty: dynamic membership
  PluginRegistry plugins_;
  std::vector<std::unique_ptr<PluginLogger>> loggers_;

  mutable std::mutex control_mutex_;  ///< operator actions, reload and the control thread
  std::vector<std::unique_ptr<Slot>> slots_;
  std::unique_ptr<pqxx::connection> control_connection_;
  bool started_ = false;

  mutable std::mutex status_mutex_;  ///< guards the two below
  std::vector<std::shared_ptr<ProjectionRunner>> published_;
  std::map<std::string, RebuildStatus> rebuilds_;  ///< by projection: the last or current one
  std::map<std::string, nlohmann::json> generations_;  ///< by projection, as published

  std::thread control_thread_;
  std::mutex wake_mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
};

}  // namespace ultracore::engine
