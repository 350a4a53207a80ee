#include "engine/runner/engine.h"

#include <chrono>
#include <map>
#include <thread>

#include <pqxx/connection>
#include <pqxx/result>
#include <pqxx/transaction>
#include <spdlog/spdlog.h>

#include "engine/postgres/migrations.h"
#include "engine/postgres/pg_errors.h"
#include "engine/postgres/pg_writer.h"

namespace ultracore::engine {
namespace {

constexpr auto kStartupConnectTimeout = std::chrono::seconds(30);

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

}  // namespace

Engine::Engine(Manifest manifest) : manifest_(std::move(manifest)) {}

Engine::~Engine() { stop(); }

void Engine::loadPlugins() {
  for (const auto& plugin : manifest_.plugins) {
    const auto& loaded = plugins_.load(plugin.name, plugin.library);
    spdlog::info("loaded plugin '{}' from {} (SDK {}, projections: {})", plugin.name,
                 plugin.library.string(), loaded.descriptor().sdk_version,
                 fmt::join(loaded.projectionNames(), ", "));
  }
  std::map<std::string, std::string> schemas;  // schema -> projection
  for (const auto& spec : manifest_.projections) {
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

void Engine::setupSchema(const ProjectionSpec& spec, const std::string& schema,
                         sdk::Projection& projection) {
  auto connection = connectForStartup(manifest_.postgres_url);
  try {
    pqxx::work txn(*connection, "ultracore-schema-setup");
    // Two engines starting together set up one schema at a time.
    txn.exec_params("SELECT pg_advisory_xact_lock(hashtext('ultracore.schema.' || $1))", schema);
    txn.exec0("CREATE SCHEMA IF NOT EXISTS " + txn.quote_name(schema));
    PgWriter writer(txn, schema);
    if (sdk::Status status = projection.setupSchema(writer); !status) {
      throw StartupError("projection '" + spec.name + "': schema setup in '" + schema +
                         "' failed: " + status.message());
    }
    txn.exec_params0(
        "INSERT INTO ultracore_projection_schemas (projection, schema_name, schema_version) "
        "VALUES ($1, $2, $3) ON CONFLICT (projection) DO UPDATE SET schema_name = "
        "EXCLUDED.schema_name, schema_version = EXCLUDED.schema_version, updated_at = now()",
        spec.name, schema, projection.schemaVersion());
    txn.commit();
  } catch (const StartupError&) {
    throw;
  } catch (...) {
    throw StartupError("projection '" + spec.name + "': schema setup in '" + schema +
                       "' failed: " + statusFromCurrentException().message());
  }
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
}

std::map<std::string, std::string> Engine::projectionSchemas() const {
  std::map<std::string, std::string> schemas;
  for (const auto& spec : manifest_.projections) schemas[spec.name] = schemaFor(spec);
  return schemas;
}

void Engine::start() {
  applyMigrations();
  for (const auto& spec : manifest_.projections) {
    const std::string schema = schemaFor(spec);
    loggers_.push_back(std::make_unique<PluginLogger>(spec.plugin + "/" + spec.name));
    sdk::ProjectionContext context{spec.name, schema, spec.config, loggers_.back().get()};
    auto projection = plugins_.find(spec.plugin)->createProjection(spec.projection, context);
    setupSchema(spec, schema, *projection);
    runners_.push_back(std::make_unique<ProjectionRunner>(
        RunnerSettings{spec, schema, manifest_.kafka, manifest_.postgres_url},
        std::move(projection)));
  }
  for (auto& runner : runners_) runner->start();
}

void Engine::stop() {
  for (auto& runner : runners_) runner->requestStop();
  for (auto& runner : runners_) runner->join();
}

}  // namespace ultracore::engine
