// ultracore-engine: reads the manifest, loads the plugins and materializes every projection.

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <string>

#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include "engine/http/admin_server.h"
#include "engine/http/api_server.h"
#include "engine/http/catalog.h"
#include "engine/manifest/manifest.h"
#include "engine/plugin/plugin_loader.h"
#include "engine/runner/engine.h"

namespace {

/// Blocks the stop and reload signals in every thread; main waits for them with sigwait.
sigset_t blockStopSignals() {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGHUP);  // manifest reload
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  return signals;
}

/// SIGHUP: re-reads the manifest and applies its projections; a bad manifest changes nothing.
void reload(ultracore::engine::Engine& engine, const std::string& config, const std::string& role) {
  if (role == "api") {
    spdlog::warn("reload: this engine (--role api) runs no projections; nothing to reload");
    return;
  }
  spdlog::info("reload: reading {}", config);
  try {
    auto manifest = ultracore::engine::loadManifest(config);
    if (manifest.api_listen != engine.manifest().api_listen ||
        manifest.admin_listen != engine.manifest().admin_listen ||
        manifest.api_token != engine.manifest().api_token ||
        [&] {  // api.tokens: the same tokens for the same tenants, in order
          const auto& a = manifest.api_tokens;
          const auto& b = engine.manifest().api_tokens;
          return !std::equal(a.begin(), a.end(), b.begin(), b.end(), [](const auto& x, const auto& y) {
            return x.token == y.token && x.tenants == y.tenants &&
                   x.all_tenants == y.all_tenants && x.user == y.user;
          });
        }() ||
        manifest.admin_token != engine.manifest().admin_token) {
      spdlog::warn("reload: api/admin settings changed; they take effect at the next restart");
    }
    spdlog::info("reload: {}", engine.reload(std::move(manifest)));
  } catch (const ultracore::engine::ManifestError& e) {
    spdlog::error("reload refused, the running projections are kept: manifest error: {}", e.what());
  } catch (const ultracore::engine::PluginError& e) {
    spdlog::error("reload refused, the running projections are kept: plugin error: {}", e.what());
  } catch (const std::exception& e) {
    spdlog::error("reload refused, the running projections are kept: {}", e.what());
  }
}

}  // namespace

int main(int argc, char** argv) {
  // Before anything else: a SIGTERM during start-up must stop the engine cleanly, not kill it.
  const sigset_t signals = blockStopSignals();
  CLI::App app{"UltraCore engine: materializes Kafka topics into PostgreSQL read models"};
  std::string config = "config/projections.yaml";
  bool check = false;
  std::string log_level = "info";
  std::string role = "all";
  app.add_option("-c,--config", config, "the manifest (projections.yaml)")->capture_default_str();
  app.add_flag("--check", check, "validate the manifest and load the plugins, then exit");
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error"}))
      ->capture_default_str();
  app.add_option("--role", role,
                 "all: projections and the HTTP API; api or projections: only that part")
      ->check(CLI::IsMember({"all", "api", "projections"}))
      ->capture_default_str();
  std::string instance_id;
  app.add_option("--instance-id", instance_id,
                 "this engine process's id, unique among the processes sharing a manifest, kept "
                 "across restarts: runners join their groups as static members (Kafka's "
                 "group.instance.id), so a restarted engine gets its partitions back at once")
      ->envname("ULTRACORE_INSTANCE_ID");
  CLI11_PARSE(app, argc, argv);
  spdlog::set_level(spdlog::level::from_str(log_level));
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");

  try {
    ultracore::engine::Engine engine(ultracore::engine::loadManifest(config));
    if (!instance_id.empty()) engine.setInstanceId(instance_id);
    engine.loadPlugins();
    if (check) {
      std::vector<std::string> notes;
      const auto errors = engine.checkProjections(notes);
      for (const auto& note : notes) std::fprintf(stderr, "ultracore-engine: note: %s\n", note.c_str());
      for (const auto& warning : ultracore::engine::EventCatalog::build(engine.manifest(), engine.plugins())
                                     .undeclaredHandledTypes(engine.manifest())) {
        std::fprintf(stderr, "ultracore-engine: warning: %s\n", warning.c_str());
      }
      for (const auto& error : errors) {
        std::fprintf(stderr, "ultracore-engine: check: %s\n", error.c_str());
      }
      if (!errors.empty()) return 2;
      std::printf("%s: ok (%zu plugins, %zu projections)\n", config.c_str(),
                  engine.manifest().plugins.size(), engine.manifest().projections.size());
      return 0;
    }
    std::unique_ptr<ultracore::engine::ApiServer> api;
    std::unique_ptr<ultracore::engine::AdminServer> admin;
    if (role == "api") {
      engine.applyMigrations();
    } else {
      engine.start();
      admin = std::make_unique<ultracore::engine::AdminServer>(engine.manifest(), engine);
      admin->start();
    }
    if (role != "projections") {
      api = std::make_unique<ultracore::engine::ApiServer>(engine.manifest(), engine.plugins(),
                                                           engine.projectionSchemas());
      api->start();
    }
    spdlog::info("engine running {} projection(s); SIGTERM or Ctrl-C stops it, SIGHUP reloads {}",
                 engine.runners().size(), config);
    int received = 0;
    for (;;) {
      sigwait(&signals, &received);
      if (received != SIGHUP) break;
      reload(engine, config, role);
    }
    spdlog::info("received {}, stopping", strsignal(received));
    if (api) api->stop();
    if (admin) admin->stop();  // before the runners it reads
    engine.stop();
    spdlog::info("stopped");
    return 0;
  } catch (const ultracore::engine::ManifestError& e) {
    std::fprintf(stderr, "ultracore-engine: manifest error: %s\n", e.what());
  } catch (const ultracore::engine::AdminStartupError& e) {
    std::fprintf(stderr, "ultracore-engine: admin error: %s\n", e.what());
  } catch (const ultracore::engine::ApiStartupError& e) {
    std::fprintf(stderr, "ultracore-engine: api error: %s\n", e.what());
  } catch (const ultracore::engine::PluginError& e) {
    std::fprintf(stderr, "ultracore-engine: plugin error: %s\n", e.what());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ultracore-engine: %s\n", e.what());
  }
  return 2;
}
