// ultracore-ctl: operator commands against an UltraCore deployment's PostgreSQL and Kafka.
// Each command group lives in its own file pair and registers itself here.

#include <cstdio>

#include <CLI/CLI.hpp>

#include "engine/manifest/manifest.h"
#include "tools/ctl/ctl_context.h"
#include "tools/ctl/dead_letters_command.h"
#include "tools/ctl/generation_commands.h"
#include "tools/ctl/parked_command.h"
#include "tools/ctl/processed_events_command.h"
#include "tools/ctl/produce_command.h"
#include "tools/ctl/check_projection_command.h"
#include "tools/ctl/rebuild_command.h"
#include "tools/ctl/status_command.h"
#include "tools/ctl/tail_command.h"
#include "tools/ctl/topics_command.h"

int main(int argc, char** argv) {
  CLI::App app{"UltraCore operator commands"};
  app.require_subcommand(1);
  ultracore::ctl::CtlContext context;
  app.add_option("-c,--config", context.config, "the manifest (projections.yaml): postgres.url, kafka properties, projections")
      ->capture_default_str();
  app.add_option("--postgres-url", context.postgres_url, "use this PostgreSQL URL instead");
  app.add_option("--bootstrap", context.bootstrap,
                 "use these Kafka bootstrap servers instead of the manifest's bootstrap.servers");
  ultracore::ctl::registerDeadLetterCommands(app, context);
  ultracore::ctl::registerParkedCommands(app, context);
  ultracore::ctl::registerProcessedEventsCommands(app, context);
  ultracore::ctl::registerStatusCommands(app, context);
  ultracore::ctl::registerTailCommands(app, context);
  ultracore::ctl::registerProduceCommands(app, context);
  ultracore::ctl::registerRebuildCommands(app, context);
  ultracore::ctl::registerCheckProjectionCommand(app, context);
  ultracore::ctl::registerGenerationCommands(app, context);
  ultracore::ctl::registerTopicsCommands(app, context);
  try {
    app.parse(argc, argv);
    return 0;
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const ultracore::ctl::CtlError& e) {
    std::fprintf(stderr, "ultracore-ctl: %s\n", e.what());
    return e.exitCode();
  } catch (const ultracore::engine::ManifestError& e) {
    std::fprintf(stderr, "ultracore-ctl: manifest error: %s\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ultracore-ctl: %s\n", e.what());
    return 1;
  }
}
