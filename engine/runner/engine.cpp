#include "engine/runner/engine.h"

#include <algorithm>
#include <chrono>
#include <map>
#include <thread>

#include <unistd.h>

#include <pqxx/connection>
#include <pqxx/nontransaction>
#include <pqxx/result>
#include <pqxx/transaction>
#include <spdlog/spdlog.h>

#include "engine/postgres/api_role.h"
#include "engine/postgres/generation_store.h"
#include "engine/postgres/dedupe_store.h"
#include "engine/postgres/migrations.h"
#include "engine/postgres/pg_errors.h"
#include "engine/postgres/pg_writer.h"
#include "engine/postgres/sql_array.h"

namespace ultracore::engine {
namespace {

using nlohmann::json;

constexpr auto kStartupConnectTimeout = std::chrono::seconds(30);

std::string firstLineOf(std::string text) {
  if (const auto nl = text.find('\n'); nl != std::string::npos) text.resize(nl);
  return text;
}

/// The URL without a password, for messages.
std::string redact(const std::string& url) {
  const auto scheme = url.find("://");
  const auto at = url.find('@');
  if (scheme == std::string::npos || at == std::string::npos || at < scheme) return url;
  const auto colon = url.find(':', scheme + 3);
  if (colon == std::string::npos || colon > at) return url;
  return url.substr(0, colon) + ":***" + url.substr(at);
}

std::unique_ptr<pqxx::connection> connectForStartup(const std::string& url) {
  const auto deadline = std::chrono::steady_clock::now() + kStartupConnectTimeout;
  for (;;) {
    try {
      return std::make_unique<pqxx::connection>(url);
    } catch (const std::exception& e) {
      if (std::chrono::steady_clock::now() > deadline) {
        throw StartupError("cannot connect to PostgreSQL at " + redact(url) + ": " + e.what());
      }
      spdlog::warn("PostgreSQL not reachable yet ({}); retrying", e.what());
      std::this_thread::sleep_for(std::chrono::milliseconds(500));
    }
  }
}

std::string generationSchema(const std::string& schema, int generation) {
  return schema + "__g" + std::to_string(generation);
}

std::string isoTime(std::chrono::system_clock::time_point when) {
  const std::time_t seconds = std::chrono::system_clock::to_time_t(when);
  std::tm utc{};
  gmtime_r(&seconds, &utc);
  char text[32];
  std::strftime(text, sizeof(text), "%Y-%m-%dT%H:%M:%SZ", &utc);
  return text;
}

/// The runtime-relevant parts of a projection's manifest entry (not where it was written).
bool sameRuntime(const ProjectionSpec& a, const ProjectionSpec& b) {
  return a.name == b.name && a.plugin == b.plugin && a.projection == b.projection &&
         a.topics == b.topics && a.batch == b.batch && a.on_error == b.on_error &&
         a.retries == b.retries && a.workers == b.workers && a.schema == b.schema &&
         a.group_id == b.group_id && a.kafka == b.kafka && a.config == b.config;
}

/// live/previous/building of a projection's ultracore_generations row (0: none).
struct GenerationsRow {
  int live = 1;
  int previous = 0;
  int building = 0;
  bool operator==(const GenerationsRow&) const = default;
};

constexpr char kSelectGenerations[] =
    "SELECT live_generation, COALESCE(previous_generation, 0), COALESCE(building_generation, 0) "
    "FROM ultracore_generations WHERE projection = $1";

GenerationsRow toGenerations(const pqxx::row& row) {
  return {row[0].as<int>(), row[1].as<int>(), row[2].as<int>()};
}

std::string describe(const GenerationsRow& row) {
  return "live " + std::to_string(row.live) + ", kept " +
         (row.previous == 0 ? std::string("none") : std::to_string(row.previous)) + ", building " +
         (row.building == 0 ? std::string("none") : std::to_string(row.building));
}

/// Locks the projection's generations row (waits for every batch in flight, which hold it
/// shared, and keeps new ones out until commit) and returns what it says now.
GenerationsRow lockGenerations(pqxx::dbtransaction& txn, const std::string& projection) {
  return toGenerations(
      txn.exec_params1(std::string(kSelectGenerations) + " FOR UPDATE", projection));
}

/// Swaps which schema is named `schema`: the live one moves to its generation's name and
/// `incoming` takes its place.
void swapSchemas(pqxx::dbtransaction& txn, const std::string& schema, int outgoing,
                 const std::string& incoming) {
  txn.exec0("ALTER SCHEMA " + txn.quote_name(schema) + " RENAME TO " +
            txn.quote_name(generationSchema(schema, outgoing)));
  txn.exec0("ALTER SCHEMA " + txn.quote_name(incoming) + " RENAME TO " + txn.quote_name(schema));
}

constexpr auto kControlTick = std::chrono::milliseconds(250);
constexpr auto kFinalSyncTimeout = std::chrono::seconds(120);
/// The final sync gives up when the gap has not shrunk for this long (a builder that has
/// nothing more to read, or is stuck): the live generation is not kept stopped for nothing.
constexpr auto kFinalSyncStall = std::chrono::seconds(10);
/// After a postponed switch the next attempt waits this long, doubling up to the maximum, so
/// the live projection runs most of the time while the rebuild cannot switch.
constexpr auto kSwitchRetryMin = std::chrono::seconds(5);
constexpr auto kSwitchRetryMax = std::chrono::seconds(300);

}  // namespace

std::string generationKey(const std::string& projection, int generation) {
  return generation <= 1 ? projection : projection + "@g" + std::to_string(generation);
}

Engine::Engine(Manifest manifest) : manifest_(std::move(manifest)), kafka_(manifest_.kafka) {}

void Engine::setInstanceId(std::string instance_id) {
  validateInstanceId(instance_id);
  instance_id_ = std::move(instance_id);
}

Engine::~Engine() { stop(); }

void Engine::loadPlugins() {
  for (const auto& plugin : manifest_.plugins) {
    const auto& loaded = plugins_.load(plugin.name, plugin.library);
    spdlog::info("loaded plugin '{}' from {} (SDK {}, projections: {})", plugin.name,
                 plugin.library.string(), loaded.descriptor().sdk_version,
                 fmt::join(loaded.projectionNames(), ", "));
  }
  validate(manifest_);
}

void Engine::validate(const Manifest& manifest) const {
  std::map<std::string, std::string> schemas;  // schema -> projection
  for (const auto& spec : manifest.projections) {
    const LoadedPlugin* plugin = plugins_.find(spec.plugin);
    if (plugin == nullptr) {
      throw ManifestError(spec.plugin_where, "plugin '" + spec.plugin + "' is not loaded");
    }
    if (plugin->findProjection(spec.projection) == nullptr) {
      throw ManifestError(spec.projection_where,
                          "projection '" + spec.name + "': plugin '" + spec.plugin +
                              "' offers no projection '" + spec.projection + "' (it offers: " +
                              fmt::format("{}", fmt::join(plugin->projectionNames(), ", ")) + ")");
    }
    const std::string schema = schemaFor(spec);
    if (const auto [it, inserted] = schemas.emplace(schema, spec.name); !inserted) {
      throw ManifestError(spec.where, "projection '" + spec.name + "' writes into schema '" +
                                          schema + "', as projection '" + it->second +
                                          "' does; set `schema:` on one of them");
    }
  }
}

std::string Engine::schemaFor(const ProjectionSpec& spec) const {
  if (!spec.schema.empty()) return spec.schema;
  const auto* factory = plugins_.find(spec.plugin)->findProjection(spec.projection);
  if (factory->default_schema != nullptr && *factory->default_schema != '\0') {
    return factory->default_schema;
  }
  return spec.name;
}

void Engine::setupSchema(pqxx::dbtransaction& txn, const ProjectionSpec& spec,
                         const std::string& schema, sdk::Projection& projection) {
  try {
    // Two engines starting together set up one schema at a time.
    txn.exec_params("SELECT pg_advisory_xact_lock(hashtext('ultracore.schema.' || $1))", schema);
    txn.exec0("CREATE SCHEMA IF NOT EXISTS " + txn.quote_name(schema));
    PgWriter writer(txn, schema);
    if (sdk::Status status = projection.setupSchema(writer); !status) {
      throw StartupError("projection '" + spec.name + "': schema setup in '" + schema +
                         "' failed: " + placeConfigErrors(status.message(), spec));
    }
    // The API reads every generation's tables: a rename at the switch keeps these grants.
    if (!manifest_.postgres_api_role.empty()) {
      grantSchemaToApiRole(txn, schema, manifest_.postgres_api_role);
    }
    if (schema == schemaFor(spec)) {
      txn.exec_params0(
          "INSERT INTO ultracore_projection_schemas (projection, schema_name, schema_version) "
          "VALUES ($1, $2, $3) ON CONFLICT (projection) DO UPDATE SET schema_name = "
          "EXCLUDED.schema_name, schema_version = EXCLUDED.schema_version, updated_at = now()",
          spec.name, schema, projection.schemaVersion());
    }
  } catch (const StartupError&) {
    throw;
  } catch (...) {
    throw StartupError("projection '" + spec.name + "': schema setup in '" + schema +
                       "' failed: " + statusFromCurrentException().message());
  }
}

std::vector<std::string> Engine::checkProjections(std::vector<std::string>& notes) {
  std::vector<std::string> errors;
  std::vector<std::pair<const ProjectionSpec*, std::shared_ptr<sdk::Projection>>> created;
  PluginLogger logger("check");
  for (const auto& spec : manifest_.projections) {
    sdk::ProjectionContext context{spec.name, schemaFor(spec), spec.config, &logger};
    try {
      created.emplace_back(&spec,
                           plugins_.find(spec.plugin)->createProjection(spec.projection, context));
    } catch (const PluginError& e) {
      errors.push_back("projection '" + spec.name + "': " + placeConfigErrors(e.what(), spec));
    }
  }
  if (created.empty()) return errors;
  std::unique_ptr<pqxx::connection> connection;
  try {
    // A short wait: --check also runs where no database is up (then this part is skipped).
    std::string url = manifest_.postgres_url;
    url += url.find('?') == std::string::npos ? "?connect_timeout=5" : "&connect_timeout=5";
    if (url.rfind("postgres", 0) != 0) url = manifest_.postgres_url + " connect_timeout=5";
    connection = std::make_unique<pqxx::connection>(url);
  } catch (const std::exception& e) {
    notes.push_back("projections not checked against PostgreSQL (not reachable: " +
                    firstLineOf(e.what()) + ")");
    return errors;
  }
  int n = 0;
  for (const auto& [spec, projection] : created) {
    const std::string scratch = "ultracore_check_" + std::to_string(::getpid()) + "_" +
                                std::to_string(++n);
    try {
      pqxx::work txn(*connection, "ultracore-check");
      txn.exec0("CREATE SCHEMA " + txn.quote_name(scratch));
      PgWriter writer(txn, scratch);
      if (sdk::Status status = projection->setupSchema(writer); !status) {
        errors.push_back("projection '" + spec->name + "': schema setup (in a scratch schema) " +
                         "failed: " + placeConfigErrors(status.message(), *spec));
      }
      txn.abort();
    } catch (const std::exception& e) {
      errors.push_back("projection '" + spec->name + "': schema setup (in a scratch schema) " +
                       "failed: " + firstLineOf(e.what()));
    }
  }
  return errors;
}

void Engine::applyMigrations() {
  auto connection = connectForStartup(manifest_.postgres_url);
  try {
    for (const auto& name : applyEngineMigrations(*connection)) {
      spdlog::info("applied engine migration {}", name);
    }
  } catch (const std::exception& e) {
    throw StartupError(std::string("engine migrations failed: ") + e.what());
  }
  if (manifest_.postgres_api_role.empty()) return;
  try {
    prepareApiRole(*connection, manifest_.postgres_api_role,
                   /*engine_sets_role=*/manifest_.postgres_api_url.empty());
  } catch (const std::exception& e) {
    throw StartupError(std::string("postgres.api_role: ") + e.what());
  }
}

std::map<std::string, std::string> Engine::projectionSchemas() const {
  std::map<std::string, std::string> schemas;
  for (const auto& spec : manifest_.projections) schemas[spec.name] = schemaFor(spec);
  return schemas;
}

pqxx::connection& Engine::controlConnection() {
  if (!control_connection_ || !control_connection_->is_open()) {
    control_connection_ = connectForStartup(manifest_.postgres_url);
  }
  return *control_connection_;
}

std::shared_ptr<ProjectionRunner> Engine::makeRunner(const ProjectionSpec& spec,
                                                     const std::string& schema, int generation,
                                                     bool building, pqxx::dbtransaction* setup,
                                                     int worker) {
  const std::string key = generationKey(spec.name, generation);
  loggers_.push_back(std::make_unique<PluginLogger>(spec.plugin + "/" + key));
  sdk::ProjectionContext context{spec.name, schema, spec.config, loggers_.back().get()};
  std::shared_ptr<sdk::Projection> projection;
  try {
    projection = plugins_.find(spec.plugin)->createProjection(spec.projection, context);
  } catch (const PluginError& e) {
    throw PluginError(e.code(), placeConfigErrors(e.what(), spec));
  }
  if (setup != nullptr) setupSchema(*setup, spec, schema, *projection);
  RunnerSettings settings;
  settings.spec = spec;
  settings.schema = schema;
  settings.kafka = kafka_;
  settings.postgres_url = manifest_.postgres_url;
  settings.key = key;
  settings.generation = generation;
  settings.building = building;
  settings.projection = spec.name;
  settings.worker = worker;
  settings.instance_id = instance_id_;
  if (building) {  // its own name in logs and status, its own group: the builders share the log
    settings.spec.name = key;
    settings.spec.group_id = spec.group_id + ".g" + std::to_string(generation);
  }
  return std::make_shared<ProjectionRunner>(std::move(settings), std::move(projection));
}

void Engine::loadGenerations(pqxx::connection& connection, Slot& slot) {
  pqxx::work txn(connection, "ultracore-generations");
  txn.exec_params0(
      "INSERT INTO ultracore_generations (projection) VALUES ($1) ON CONFLICT DO NOTHING",
      slot.spec.name);
  const GenerationsRow row = toGenerations(txn.exec_params1(kSelectGenerations, slot.spec.name));
  txn.commit();
  slot.live = row.live;
  slot.previous = row.previous;
  slot.building = row.building;
}

void Engine::followGenerations(Slot& slot) {
  GenerationsRow row;
  {
    pqxx::read_transaction txn(controlConnection(), "ultracore-generations-check");
    row = toGenerations(txn.exec_params1(kSelectGenerations, slot.spec.name));
  }
  const GenerationsRow known{slot.live, slot.previous, slot.building};
  if (row == known) return;
  // Another engine switched, rolled back, dropped, rebuilt or cancelled. This one had nothing
  // to commit, so its runners never met the fence: they follow now.
  spdlog::info("[{}] generations changed elsewhere (was {}; now {}): following", slot.spec.name,
               describe(known), describe(row));
  if (row.building != slot.building) stopBuilders(slot);
  slot.previous = row.previous;
  slot.building = row.building;
  if (row.live != slot.live) {
    const bool paused = stopLive(slot);
    slot.live = row.live;
    startWorkers(slot, paused);
  }
  publish();
  throw ControlError(409, "generations_changed",
                     "the generations of '" + slot.spec.name +
                         "' were changed by another engine (now " + describe(row) +
                         "); this engine follows them now: check (ultracore-ctl status) and retry");
}

void Engine::lockCurrent(pqxx::dbtransaction& txn, const Slot& slot) {
  const GenerationsRow row = lockGenerations(txn, slot.spec.name);
  const GenerationsRow known{slot.live, slot.previous, slot.building};
  if (row == known) return;
  throw ControlError(409, "generations_changed",
                     "the generations of '" + slot.spec.name + "' changed under this action (" +
                         describe(known) + " became " + describe(row) +
                         "); nothing was done: retry");
}

void Engine::startSlot(pqxx::connection& connection, Slot& slot) {
  std::shared_ptr<ProjectionRunner> first;
  {
    pqxx::work txn(connection, "ultracore-schema-setup");
    first = makeRunner(slot.spec, slot.schema, slot.live, false, &txn);
    txn.commit();
  }
  startWorkers(slot, false, std::move(first));
  if (slot.building != 0) {
    pqxx::work txn(connection, "ultracore-schema-setup");
    makeBuilders(slot, slot.building, &txn);
    txn.commit();
    for (const auto& builder : slot.builders) builder->start();
    spdlog::info("[{}] resuming the rebuild of generation {}", slot.spec.name, slot.building);
    RebuildStatus status;
    status.generation = slot.building;
    status.phase = "building";
    status.detail = "resumed after an engine restart";
    status.started = std::chrono::system_clock::now();
    setRebuildStatus(slot.spec.name, status);
  }
}

void Engine::stopSlot(Slot& slot) {
  for (const auto& builder : slot.builders) builder->requestStop();
  stopLive(slot);
  stopBuilders(slot);
}

void Engine::makeBuilders(Slot& slot, int generation, pqxx::dbtransaction* setup) {
  slot.builders.clear();
  const std::string schema = generationSchema(slot.schema, generation);
  for (int worker = 0; worker < slot.spec.workers; ++worker) {
    slot.builders.push_back(
        makeRunner(slot.spec, schema, generation, true, worker == 0 ? setup : nullptr, worker));
  }
}

void Engine::stopBuilders(Slot& slot) {
  for (const auto& builder : slot.builders) builder->requestStop();
  for (const auto& builder : slot.builders) builder->join();
  slot.builders.clear();
}

const ProjectionRunner* Engine::brokenBuilder(const Slot& slot) {
  for (const auto& builder : slot.builders) {
    const RunnerState state = builder->state();
    if (state == RunnerState::kFailed || state == RunnerState::kStopped) return builder.get();
  }
  return nullptr;
}

bool Engine::stopLive(Slot& slot) {
  // All of them first: a worker that stays up would be handed the partitions of the others.
  bool paused = false;
  for (const auto& runner : slot.runners) {
    paused = paused || runner->pauseRequested();
    runner->requestStop();
  }
  for (const auto& runner : slot.runners) runner->join();
  return paused;
}

void Engine::startWorkers(Slot& slot, bool paused, std::shared_ptr<ProjectionRunner> first) {
  slot.runners.clear();
  for (int worker = 0; worker < slot.spec.workers; ++worker) {
    std::shared_ptr<ProjectionRunner> runner =
        worker == 0 && first ? std::move(first)
                             : makeRunner(slot.spec, slot.schema, slot.live, false, nullptr, worker);
    runner->requestPause(paused);
    slot.runners.push_back(std::move(runner));
  }
  for (const auto& runner : slot.runners) runner->start();
}

void Engine::startLive(Slot& slot, bool paused, std::shared_ptr<ProjectionRunner> first) {
  startWorkers(slot, paused, std::move(first));
  publish();
}

void Engine::start() {
  applyMigrations();
  {
    std::lock_guard lock(control_mutex_);
    auto& connection = controlConnection();
    for (const auto& spec : manifest_.projections) {
      auto slot = std::make_unique<Slot>();
      slot->spec = spec;
      slot->schema = schemaFor(spec);
      loadGenerations(connection, *slot);
      startSlot(connection, *slot);
      slots_.push_back(std::move(slot));
    }
    started_ = true;
    publish();
  }
  control_thread_ = std::thread([this] { controlLoop(); });
}

void Engine::stop() {
  {
    std::lock_guard lock(wake_mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (control_thread_.joinable()) control_thread_.join();
  std::lock_guard lock(control_mutex_);
  for (auto& slot : slots_) {
    for (const auto& runner : slot->runners) runner->requestStop();
    for (const auto& builder : slot->builders) builder->requestStop();
  }
  for (auto& slot : slots_) stopSlot(*slot);
}

std::vector<std::shared_ptr<ProjectionRunner>> Engine::runners() const {
  std::lock_guard lock(status_mutex_);
  return published_;
}

void Engine::publish() {
  std::vector<std::shared_ptr<ProjectionRunner>> runners;
  std::map<std::string, json> generations;
  for (const auto& slot : slots_) {
    runners.insert(runners.end(), slot->runners.begin(), slot->runners.end());
    const auto optional = [](int generation) { return generation == 0 ? json() : json(generation); };
    generations[slot->spec.name] = {
        {"projection", slot->spec.name},
        {"schema", slot->schema},
        {"live_generation", slot->live},
        {"live_key", generationKey(slot->spec.name, slot->live)},
        {"previous_generation", optional(slot->previous)},
        {"previous_schema",
         slot->previous == 0 ? json() : json(generationSchema(slot->schema, slot->previous))},
        {"building_generation", optional(slot->building)},
        {"building_schema",
         slot->building == 0 ? json() : json(generationSchema(slot->schema, slot->building))}};
  }
  for (const auto& slot : slots_) {
    runners.insert(runners.end(), slot->builders.begin(), slot->builders.end());
  }
  std::lock_guard lock(status_mutex_);
  published_ = std::move(runners);
  generations_ = std::move(generations);
}

void Engine::setRebuildStatus(const std::string& projection, const RebuildStatus& status) {
  std::lock_guard lock(status_mutex_);
  rebuilds_[projection] = status;
}

json Engine::generationsJson(const std::string& projection) const {
  std::lock_guard lock(status_mutex_);
  const auto describe = [this](const std::string& name, json generations) {
    const auto it = rebuilds_.find(name);
    if (it == rebuilds_.end()) {
      generations["rebuild"] = nullptr;
      return generations;
    }
    const RebuildStatus& r = it->second;
    json rebuild = {{"generation", r.generation}, {"phase", r.phase},     {"detail", r.detail},
                    {"events_done", r.done},      {"events_total", r.total},
                    {"events_per_second", r.rate}, {"started_at", isoTime(r.started)}};
    const std::int64_t left = std::max<std::int64_t>(r.total - r.done, 0);
    rebuild["eta_seconds"] =
        r.phase == "building" && r.rate > 0 ? json(static_cast<double>(left) / r.rate) : json();
    rebuild["finished_at"] =
        r.finished.time_since_epoch().count() == 0 ? json() : json(isoTime(r.finished));
    generations["rebuild"] = rebuild;
    return generations;
  };
  if (!projection.empty()) {
    const auto it = generations_.find(projection);
    if (it == generations_.end()) {
      throw ControlError(404, "unknown_projection", "this engine runs no projection '" + projection + "'");
    }
    return describe(projection, it->second);
  }
  json all = json::array();
  for (const auto& [name, generations] : generations_) all.push_back(describe(name, generations));
  return all;
}

Engine::Slot& Engine::slotFor(const std::string& projection) {
  if (!started_) throw ControlError(409, "not_running", "this engine runs no projections");
  for (auto& slot : slots_) {
    if (slot->spec.name != projection) continue;
    if (slot->runners.empty()) {
      throw ControlError(409, "not_running", "projection '" + projection +
                                                 "' did not start after the last reload; see the log");
    }
    return *slot;
  }
  throw ControlError(404, "unknown_projection", "this engine runs no projection '" + projection + "'");
}

// ---- operator actions ------------------------------------------------------------------------

void Engine::refuseWhileRebuilding(const Slot& slot) {
  if (slot.building == 0) return;
  throw ControlError(409, "rebuild_in_progress",
                     "projection '" + slot.spec.name + "' is rebuilding generation " +
                         std::to_string(slot.building) +
                         "; wait for it or cancel it (ultracore-ctl rebuild " + slot.spec.name +
                         " --cancel)");
}

json Engine::rebuild(const std::string& projection) {
  std::lock_guard lock(control_mutex_);
  Slot& slot = slotFor(projection);
  followGenerations(slot);
  if (slot.building != 0) {
    throw ControlError(409, "rebuild_in_progress",
                       "projection '" + projection + "' is already rebuilding generation " +
                           std::to_string(slot.building));
  }
  if (slot.previous != 0) {
    throw ControlError(409, "previous_generation_kept",
                       "generation " + std::to_string(slot.previous) + " of '" + projection +
                           "' is still kept for rollback: drop it first (ultracore-ctl drop " +
                           projection + "), or roll back to it");
  }
  const int generation = slot.live + 1;
  const std::string schema = generationSchema(slot.schema, generation);
  auto& connection = controlConnection();
  {
    pqxx::work txn(connection, "ultracore-rebuild");
    lockCurrent(txn, slot);
    purgeGeneration(txn, schema, generationKey(projection, generation));  // leftovers, if any
    txn.exec_params0(
        "UPDATE ultracore_generations SET building_generation = $2, rebuild_started_at = now(), "
        "updated_at = now() WHERE projection = $1",
        projection, generation);
    try {
      makeBuilders(slot, generation, &txn);
      txn.commit();
    } catch (...) {
      slot.builders.clear();  // never started: nothing to stop
      throw;
    }
  }
  slot.building = generation;
  slot.last_done = -1;
  for (const auto& builder : slot.builders) builder->start();
  RebuildStatus status;
  status.generation = generation;
  status.phase = "building";
  status.started = std::chrono::system_clock::now();
  setRebuildStatus(projection, status);
  publish();
  spdlog::info("[{}] rebuilding: generation {} into schema '{}' from the beginning of the log; "
               "generation {} stays live until it has caught up",
               projection, generation, schema, slot.live);
  return {{"projection", projection}, {"generation", generation}, {"schema", schema},
          {"phase", "building"}};
}

json Engine::cancelRebuild(const std::string& projection) {
  std::lock_guard lock(control_mutex_);
  Slot& slot = slotFor(projection);
  followGenerations(slot);
  if (slot.building == 0) {
    throw ControlError(409, "no_rebuild", "projection '" + projection + "' is not rebuilding");
  }
  const int generation = slot.building;
  stopBuilders(slot);
  {
    pqxx::work txn(controlConnection(), "ultracore-rebuild-cancel");
    lockCurrent(txn, slot);
    purgeGeneration(txn, generationSchema(slot.schema, generation),
                    generationKey(projection, generation));
    txn.exec_params0(
        "UPDATE ultracore_generations SET building_generation = NULL, updated_at = now() "
        "WHERE projection = $1",
        projection);
    txn.commit();
  }
  slot.building = 0;
  {
    std::lock_guard status_lock(status_mutex_);
    rebuilds_[projection].phase = "cancelled";
    rebuilds_[projection].finished = std::chrono::system_clock::now();
  }
  publish();
  spdlog::info("[{}] rebuild of generation {} cancelled and dropped", projection, generation);
  return {{"projection", projection}, {"generation", generation}, {"phase", "cancelled"}};
}

json Engine::rollback(const std::string& projection) {
  std::lock_guard lock(control_mutex_);
  Slot& slot = slotFor(projection);
  followGenerations(slot);
  refuseWhileRebuilding(slot);
  if (slot.previous == 0) {
    throw ControlError(409, "no_previous_generation",
                       "projection '" + projection + "' keeps no previous generation to roll back to");
  }
  const bool paused = stopLive(slot);
  const int from = slot.live;
  const int to = slot.previous;
  try {
    pqxx::work txn(controlConnection(), "ultracore-rollback");
    lockCurrent(txn, slot);
    swapSchemas(txn, slot.schema, from, generationSchema(slot.schema, to));
    txn.exec_params0(
        "UPDATE ultracore_generations SET live_generation = $2, previous_generation = $3, "
        "switched_at = clock_timestamp(), updated_at = now() WHERE projection = $1",
        projection, to, from);
    txn.commit();
    slot.live = to;
    slot.previous = from;
  } catch (...) {
    startLive(slot, paused);
    throw;
  }
  startLive(slot, paused);
  spdlog::info("[{}] rolled back: generation {} is live again in schema '{}' (catching up from "
               "where it stopped); generation {} kept as '{}'",
               projection, to, slot.schema, from, generationSchema(slot.schema, from));
  return {{"projection", projection}, {"live_generation", to}, {"previous_generation", from}};
}

json Engine::drop(const std::string& projection) {
  std::lock_guard lock(control_mutex_);
  Slot& slot = slotFor(projection);
  followGenerations(slot);
  if (slot.previous == 0) {
    throw ControlError(409, "no_previous_generation",
                       "projection '" + projection + "' keeps no previous generation to drop");
  }
  const int generation = slot.previous;
  const std::string schema = generationSchema(slot.schema, generation);
  {
    pqxx::work txn(controlConnection(), "ultracore-drop");
    lockCurrent(txn, slot);
    purgeGeneration(txn, schema, generationKey(projection, generation));
    txn.exec_params0(
        "UPDATE ultracore_generations SET previous_generation = NULL, updated_at = now() "
        "WHERE projection = $1",
        projection);
    txn.commit();
  }
  slot.previous = 0;
  publish();
  spdlog::info("[{}] dropped generation {} (schema '{}')", projection, generation, schema);
  return {{"projection", projection}, {"dropped_generation", generation}, {"schema", schema}};
}

json Engine::reset(const std::string& projection) {
  std::lock_guard lock(control_mutex_);
  Slot& slot = slotFor(projection);
  followGenerations(slot);
  refuseWhileRebuilding(slot);
  const bool paused = stopLive(slot);
  std::shared_ptr<ProjectionRunner> runner;
  try {
    pqxx::work txn(controlConnection(), "ultracore-reset");
    lockCurrent(txn, slot);
    purgeGeneration(txn, slot.schema, generationKey(projection, slot.live));
    runner = makeRunner(slot.spec, slot.schema, slot.live, false, &txn);
    txn.commit();
  } catch (...) {
    startLive(slot, paused);
    throw;
  }
  startLive(slot, paused, runner);
  spdlog::info("[{}] reset: tables of generation {} emptied; replaying from the beginning of the log",
               projection, slot.live);
  return {{"projection", projection}, {"live_generation", slot.live}, {"reset", true}};
}

// ---- the control thread ----------------------------------------------------------------------

void Engine::controlLoop() {
  std::unique_lock wake(wake_mutex_);
  while (!wake_.wait_for(wake, kControlTick, [this] { return stopping_; })) {
    wake.unlock();
    {
      std::lock_guard lock(control_mutex_);
      for (auto& slot : slots_) {
        try {
          const bool superseded = std::any_of(
              slot->runners.begin(), slot->runners.end(), [](const auto& runner) {
                return runner->superseded() && runner->state() == RunnerState::kStopped;
              });
          if (superseded) {
            // Another engine switched generations: follow it, with every worker (those that
            // had nothing to commit have not noticed yet).
            stopLive(*slot);
            loadGenerations(controlConnection(), *slot);
            spdlog::info("[{}] generation {} is live now (switched elsewhere): restarting",
                         slot->spec.name, slot->live);
            startLive(*slot, false);
          }
          if (slot->building != 0 && !slot->runners.empty() && !slot->builders.empty()) {
            advanceRebuild(*slot);
          }
          if (slot->spec.dedupe_retention > 0) pruneDedupe(*slot);
        } catch (const std::exception& e) {
          spdlog::warn("[{}] control: {}", slot->spec.name, e.what());
          control_connection_.reset();
        }
      }
    }
    wake.lock();
  }
}

void Engine::pruneDedupe(Slot& slot) {
  // A step deletes at most this many rows: a short transaction, whatever the backlog of rows
  // past the window; a full step is followed by the next one on the next tick.
  constexpr std::int64_t kPruneStep = 5000;
  const auto now = std::chrono::steady_clock::now();
  if (now < slot.next_prune || slot.runners.empty()) return;
  std::vector<std::string> keys{generationKey(slot.spec.name, slot.live)};
  if (slot.previous != 0) keys.push_back(generationKey(slot.spec.name, slot.previous));
  if (slot.building != 0) keys.push_back(generationKey(slot.spec.name, slot.building));
  pqxx::work txn(controlConnection(), "ultracore-dedupe-prune");
  const std::int64_t pruned =
      pruneProcessedEvents(txn, keys, slot.spec.dedupe_retention, kPruneStep, slot.prune_cursor);
  txn.commit();
  if (pruned > 0) {
    slot.runners.front()->countPruned(static_cast<std::uint64_t>(pruned));
    spdlog::info("[{}] dedupe retention {}: pruned {} processed_events row(s) older than the "
                 "window (a re-send older than it is applied again)",
                 slot.spec.name, formatRetention(slot.spec.dedupe_retention), pruned);
  }
  // Quick while there is a backlog; otherwise a quarter of the window, between 1 s and 60 s.
  const auto idle = std::chrono::seconds(
      std::clamp<std::int64_t>(slot.spec.dedupe_retention / 4, 1, 60));
  slot.next_prune = now + (pruned == kPruneStep ? std::chrono::seconds(0) : idle);
}

std::int64_t Engine::rebuildGap(pqxx::transaction_base& txn, const Slot& slot) {
  // Where a builder has consumed nothing yet (stored offset -2), it starts at the log start:
  // a partition emptied by retention has nothing for it to read, whatever the live offset.
  std::map<TopicPartition, std::int64_t> log_start;
  for (const auto& builder : slot.builders) {
    for (const auto& p : builder->partitions()) {
      if (p.stored_offset < 0 && p.cached_low >= 0) log_start[p.partition] = p.cached_low;
    }
  }
  // Only the topics the rebuild reads: live rows of a topic removed from the manifest stay
  // behind in ultracore_offsets, and no builder will ever reach them.
  const auto rows = txn.exec_params(
      "SELECT l.topic, l.partition, l.next_offset, COALESCE(b.next_offset, -2) "
      "FROM ultracore_offsets l LEFT JOIN ultracore_offsets b ON b.projection = $2 "
      "AND b.topic = l.topic AND b.partition = l.partition "
      "WHERE l.projection = $1 AND l.next_offset >= 0 AND l.topic = ANY($3::text[])",
      generationKey(slot.spec.name, slot.live), generationKey(slot.spec.name, slot.building),
      toArrayLiteral(slot.spec.topics));
  std::int64_t gap = 0;
  for (const auto& row : rows) {
    const TopicPartition tp{row[0].as<std::string>(), row[1].as<std::int32_t>()};
    std::int64_t built = row[3].as<std::int64_t>();
    if (built < 0) {
      const auto it = log_start.find(tp);
      built = it == log_start.end() ? 0 : it->second;
    }
    gap += std::max<std::int64_t>(row[2].as<std::int64_t>() - built, 0);
  }
  return gap;
}

void Engine::advanceRebuild(Slot& slot) {
  RebuildStatus status;
  {
    std::lock_guard lock(status_mutex_);
    status = rebuilds_[slot.spec.name];
  }
  if (const ProjectionRunner* broken = brokenBuilder(slot)) {
    if (status.phase != "failed") {
      status.phase = "failed";
      status.detail = broken->detail();
      setRebuildStatus(slot.spec.name, status);
      spdlog::error("[{}] rebuild of generation {} stopped: {} (cancel it, fix, rebuild again)",
                    slot.spec.name, slot.building, status.detail);
    }
    // The others would only meet the same event, or finish a generation that cannot switch.
    stopBuilders(slot);
    return;
  }
  // Progress: offsets done against the log end, over every partition either runner has seen.
  std::map<TopicPartition, std::pair<std::int64_t, std::int64_t>> partitions;  // done, end
  bool assigned = false;
  for (const auto& builder : slot.builders) {
    for (const auto& p : builder->partitions()) {
      auto& [done, end] = partitions[p.partition];
      done = std::max(done, std::max<std::int64_t>(p.stored_offset, 0));
      end = std::max(end, std::max(p.cached_high, done));
      assigned = true;
    }
  }
  for (const auto& runner : slot.runners) {
    for (const auto& p : runner->partitions()) {
      auto& [done, end] = partitions[p.partition];
      end = std::max(end, std::max<std::int64_t>(p.cached_high, p.stored_offset));
    }
  }
  std::int64_t done = 0;
  std::int64_t total = 0;
  for (const auto& [tp, figures] : partitions) {
    done += figures.first;
    total += figures.second;
  }
  const auto now = std::chrono::steady_clock::now();
  if (slot.last_done < 0) {
    slot.last_done = done;
    slot.last_done_at = now;
  } else if (now - slot.last_done_at >= std::chrono::seconds(1)) {
    const double seconds = std::chrono::duration<double>(now - slot.last_done_at).count();
    const double rate = static_cast<double>(done - slot.last_done) / seconds;
    status.rate = status.rate == 0 ? rate : 0.6 * status.rate + 0.4 * rate;
    slot.last_done = done;
    slot.last_done_at = now;
  }
  status.done = done;
  status.total = std::max(total, done);
  setRebuildStatus(slot.spec.name, status);

  if (!assigned) return;  // not assigned yet
  if (now < slot.next_switch_attempt) return;  // the last attempt was postponed
  std::int64_t gap = 0;
  {
    pqxx::nontransaction query(controlConnection());
    gap = rebuildGap(query, slot);
  }
  if (gap > 2 * static_cast<std::int64_t>(slot.spec.batch.max_events)) return;
  if (switchGenerations(slot)) {
    slot.switch_retry = std::chrono::seconds(0);
    return;
  }
  slot.switch_retry = std::clamp(slot.switch_retry * 2, std::chrono::seconds(kSwitchRetryMin),
                                 std::chrono::seconds(kSwitchRetryMax));
  slot.next_switch_attempt = std::chrono::steady_clock::now() + slot.switch_retry;
}

bool Engine::switchGenerations(Slot& slot) {
  const std::string& name = slot.spec.name;
  RebuildStatus status;
  {
    std::lock_guard lock(status_mutex_);
    status = rebuilds_[name];
  }
  status.phase = "switching";
  setRebuildStatus(name, status);
  auto& connection = controlConnection();
  // Freeze the live generation in every engine (their batches wait while switch_until lies
  // ahead; migrations/0005), not only here: then the new one can reach exactly its offsets.
  {
    pqxx::work txn(connection, "ultracore-switch-freeze");
    lockCurrent(txn, slot);
    txn.exec_params0(
        "UPDATE ultracore_generations SET switch_until = now() + make_interval(secs => $2) "
        "WHERE projection = $1",
        name, static_cast<double>(kFinalSyncTimeout.count() + 30));
    txn.commit();
  }
  const bool paused = stopLive(slot);
  const auto restartLive = [&](const std::string& why) {
    spdlog::warn("[{}] switch to generation {} postponed: {}", name, slot.building, why);
    try {  // best effort: the freeze also expires by itself
      pqxx::work txn(controlConnection(), "ultracore-switch-thaw");
      txn.exec_params0("UPDATE ultracore_generations SET switch_until = NULL WHERE projection = $1",
                       name);
      txn.commit();
    } catch (const std::exception& e) {
      control_connection_.reset();
      spdlog::warn("[{}] could not end the switch freeze (it expires by itself): {}", name, e.what());
    }
    startWorkers(slot, paused);
    status.phase = "building";
    status.detail = "switch postponed: " + why;
    setRebuildStatus(name, status);
    publish();
    return false;
  };
  const auto deadline = std::chrono::steady_clock::now() + kFinalSyncTimeout;
  std::int64_t smallest = -1;
  auto shrunk_at = std::chrono::steady_clock::now();
  for (;;) {
    std::int64_t gap = 0;
    {
      pqxx::nontransaction query(connection);
      gap = rebuildGap(query, slot);
    }
    if (gap == 0) break;
    const auto now = std::chrono::steady_clock::now();
    if (smallest < 0 || gap < smallest) {
      smallest = gap;
      shrunk_at = now;
    }
    if (const ProjectionRunner* broken = brokenBuilder(slot)) {
      return restartLive("the rebuild stopped: " + broken->detail());
    }
    if (now - shrunk_at > kFinalSyncStall) {
      return restartLive("it stayed " + std::to_string(gap) + " offset(s) behind the live ones for " +
                         std::to_string(kFinalSyncStall.count()) + " s");
    }
    if (now > deadline) {
      return restartLive("it did not reach the live offsets within 120 s");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  stopBuilders(slot);
  const int from = slot.live;
  const int to = slot.building;
  try {
    pqxx::work txn(connection, "ultracore-switch");
    lockCurrent(txn, slot);
    // Under the row lock no batch of either generation commits, in any engine: the gap read
    // here is final. Should the freeze have expired, the switch would go behind: not now.
    if (const std::int64_t gap = rebuildGap(txn, slot); gap != 0) {
      throw std::runtime_error("the live generation moved " + std::to_string(gap) +
                               " offset(s) ahead before the switch");
    }
    swapSchemas(txn, slot.schema, from, generationSchema(slot.schema, to));
    const auto switched = txn.exec_params(
        "UPDATE ultracore_generations SET previous_generation = live_generation, "
        "live_generation = $2, building_generation = NULL, switch_until = NULL, "
        "switched_at = clock_timestamp(), updated_at = now() WHERE projection = $1 "
        "AND live_generation = $3 "
        "AND building_generation = $2",
        name, to, from);
    if (switched.affected_rows() != 1) {
      throw std::runtime_error("generation " + std::to_string(from) + " is no longer live");
    }
    txn.exec_params0("DELETE FROM ultracore_projection_status WHERE projection = $1",
                     generationKey(name, to));
    txn.commit();
  } catch (const std::exception& e) {
    control_connection_.reset();
    const bool switched = restartLive(std::string("the switch transaction failed: ") + e.what());
    try {  // back to building, from the offsets the builders stored
      makeBuilders(slot, to, nullptr);
      for (const auto& builder : slot.builders) builder->start();
    } catch (const std::exception& again) {
      slot.builders.clear();
      status.phase = "failed";
      status.detail = std::string("the rebuild could not restart: ") + again.what();
      setRebuildStatus(name, status);
      spdlog::error("[{}] {} (cancel it, rebuild again)", name, status.detail);
    }
    return switched;
  }
  slot.previous = from;
  slot.live = to;
  slot.building = 0;
  startLive(slot, paused);
  status.phase = "done";
  status.detail = "generation " + std::to_string(to) + " is live; generation " +
                  std::to_string(from) + " kept as '" + generationSchema(slot.schema, from) +
                  "' until drop";
  status.done = status.total = std::max(status.done, status.total);
  status.finished = std::chrono::system_clock::now();
  const double seconds = std::chrono::duration<double>(status.finished - status.started).count();
  if (seconds > 0) status.rate = static_cast<double>(status.done) / seconds;  // the whole run's
  setRebuildStatus(name, status);
  publish();
  spdlog::info("[{}] switched: generation {} is live in schema '{}'; generation {} kept as '{}' "
               "for rollback until drop",
               name, to, slot.schema, from, generationSchema(slot.schema, from));
  return true;
}

// ---- manifest reload -------------------------------------------------------------------------

std::string Engine::reload(Manifest manifest) {
  if (manifest.postgres_url != manifest_.postgres_url ||
      manifest.postgres_api_url != manifest_.postgres_api_url ||
      manifest.postgres_api_role != manifest_.postgres_api_role) {
    throw ControlError(409, "restart_needed",
                       "postgres.url, api_url or api_role changed: the engine must be restarted "
                       "for that");
  }
  for (const auto& plugin : manifest.plugins) {
    if (const LoadedPlugin* loaded = plugins_.find(plugin.name)) {
      if (loaded->path() != plugin.library) {
        throw ManifestError(plugin.where, "plugin '" + plugin.name + "' now names library " +
                                              plugin.library.string() + " instead of " +
                                              loaded->path().string() +
                                              "; a loaded library cannot be replaced by a "
                                              "reload: restart the engine");
      }
    }
  }
  std::lock_guard lock(control_mutex_);
  if (!started_) throw ControlError(409, "not_running", "this engine runs no projections");
  for (const auto& plugin : manifest.plugins) {
    if (plugins_.find(plugin.name) == nullptr) {
      plugins_.load(plugin.name, plugin.library);
      spdlog::info("reload: loaded plugin '{}' from {}", plugin.name, plugin.library.string());
    }
  }
  validate(manifest);
  const bool kafka_changed = manifest.kafka != kafka_;
  std::vector<std::string> added, removed, changed;
  std::size_t unchanged = 0;
  for (const auto& slot : slots_) {
    const ProjectionSpec* next = manifest.findProjection(slot->spec.name);
    const bool same = next != nullptr && !kafka_changed && sameRuntime(slot->spec, *next);
    if (!same && slot->building != 0) {
      throw ControlError(409, "rebuild_in_progress",
                         "projection '" + slot->spec.name +
                             "' is rebuilding; wait for it or cancel it before changing it");
    }
  }
  // A changed or new projection whose schema setup fails (a sql view's `tables:` changed
  // without a new schema_version, SQL PostgreSQL rejects) refuses the reload before anything
  // is stopped: its setup runs once in a transaction that is rolled back.
  for (const auto& spec : manifest.projections) {
    const auto it = std::find_if(slots_.begin(), slots_.end(), [&](const auto& slot) {
      return slot && slot->spec.name == spec.name;
    });
    if (it != slots_.end() && !kafka_changed && sameRuntime((*it)->spec, spec)) continue;
    try {
      PluginLogger logger(spec.plugin + "/" + spec.name + " (reload check)");
      sdk::ProjectionContext context{spec.name, schemaFor(spec), spec.config, &logger};
      std::shared_ptr<sdk::Projection> projection;
      try {
        projection = plugins_.find(spec.plugin)->createProjection(spec.projection, context);
      } catch (const PluginError& e) {
        throw PluginError(e.code(), placeConfigErrors(e.what(), spec));
      }
      pqxx::work txn(controlConnection(), "ultracore-reload-check");
      setupSchema(txn, spec, schemaFor(spec), *projection);
      txn.abort();
    } catch (const std::exception& e) {
      throw ControlError(409, "reload_refused", e.what());
    }
  }
  kafka_ = manifest.kafka;
  std::vector<std::unique_ptr<Slot>> next_slots;
  std::vector<std::string> failed;
  auto& connection = controlConnection();
  // A projection that cannot start (schema setup failed, database gone) is reported and left
  // stopped; the others still get what the manifest says.
  const auto startOrReport = [&](Slot& slot) {
    try {
      loadGenerations(connection, slot);
      startSlot(connection, slot);
      return true;
    } catch (const std::exception& e) {
      spdlog::error("reload: projection '{}' did not start: {}", slot.spec.name, e.what());
      failed.push_back(slot.spec.name + ": " + e.what());
      stopSlot(slot);
      slot.runners.clear();
      return false;
    }
  };
  for (const auto& spec : manifest.projections) {
    auto it = std::find_if(slots_.begin(), slots_.end(),
                           [&](const auto& slot) { return slot && slot->spec.name == spec.name; });
    if (it != slots_.end()) {
      std::unique_ptr<Slot> slot = std::move(*it);
      if (!slot->runners.empty() && !kafka_changed && sameRuntime(slot->spec, spec)) {
        ++unchanged;
      } else {
        stopSlot(*slot);
        slot->spec = spec;
        slot->schema = schemaFor(spec);
        if (startOrReport(*slot)) changed.push_back(spec.name);
      }
      next_slots.push_back(std::move(slot));
      continue;
    }
    auto slot = std::make_unique<Slot>();
    slot->spec = spec;
    slot->schema = schemaFor(spec);
    if (startOrReport(*slot)) added.push_back(spec.name);
    next_slots.push_back(std::move(slot));
  }
  for (auto& slot : slots_) {
    if (!slot) continue;
    stopSlot(*slot);
    removed.push_back(slot->spec.name);
  }
  slots_ = std::move(next_slots);
  publish();
  const auto list = [](const std::vector<std::string>& names) {
    return names.empty() ? std::string() : " (" + fmt::format("{}", fmt::join(names, ", ")) + ")";
  };
  return fmt::format("{} added{}, {} removed{}, {} restarted{}, {} untouched{}", added.size(),
                     list(added), removed.size(), list(removed), changed.size(), list(changed),
                     unchanged,
                     failed.empty() ? std::string()
                                    : fmt::format("; {} failed to start: {}", failed.size(),
                                                  fmt::join(failed, "; ")));
}

}  // namespace ultracore::engine
