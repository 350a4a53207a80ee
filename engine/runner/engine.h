#pragma once
/// @file
/// Engine: the manifest made to run. Control plane only (start-up and shutdown, on the main
/// thread); each projection's data plane lives in its ProjectionRunner.

#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

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

class Engine {
 public:
  explicit Engine(Manifest manifest);
  ~Engine();

  /// Loads every plugin and checks each projection against what its plugin offers.
  /// Throws PluginError or ManifestError (with the manifest's file:line:column).
  void loadPlugins();

  /// Applies the engine's migrations, creates each projection, sets up its schema and starts
  /// its runner. Throws StartupError, PluginError.
  void start();

  /// Stops every runner (each finishes or aborts its batch and leaves its group) and waits.
  void stop();

  /// Applies the engine's migrations (start() does it too; the API role needs it alone).
  /// Throws StartupError.
  void applyMigrations();

  /// The schema each manifest projection writes into, by projection name (after loadPlugins).
  std::map<std::string, std::string> projectionSchemas() const;

  const Manifest& manifest() const { return manifest_; }
  const PluginRegistry& plugins() const { return plugins_; }
  const std::vector<std::unique_ptr<ProjectionRunner>>& runners() const { return runners_; }

 private:
  /// The schema a projection writes into: the manifest's, else the plugin's default.
  std::string schemaFor(const ProjectionSpec& spec) const;
  void setupSchema(const ProjectionSpec& spec, const std::string& schema, sdk::Projection& projection);

  Manifest manifest_;
  PluginRegistry plugins_;
  std::vector<std::unique_ptr<PluginLogger>> loggers_;
  std::vector<std::unique_ptr<ProjectionRunner>> runners_;
};

}  // namespace ultracore::engine
