#include "tools/ctl/rebuild_command.h"

#include <memory>
#include <optional>

#include "tools/ctl/time_travel.h"

namespace ultracore::ctl {
namespace {

struct Options {
  std::string projection;
  std::optional<std::string> until;
  std::optional<std::string> into;
  bool replace = false;
};

void rebuild(const CtlContext& context, const Options& options) {
  if (!options.until && !options.into) {
    throw CtlError("rebuild without --until is not in this branch", 2);
  }
  if (!options.until || !options.into) {
    throw CtlError(std::string("rebuild: --until and --into go together (time travel builds the "
                               "read model as of --until into the schema --into); missing ") +
                       (options.until ? "--into SCHEMA" : "--until TIME|OFFSETS"),
                   2);
  }
  runTimeTravel(context, {options.projection, *options.until, *options.into, options.replace});
}

}  // namespace

void registerRebuildCommands(CLI::App& app, const CtlContext& context) {
  auto options = std::make_shared<Options>();
  auto* cmd = app.add_subcommand(
      "rebuild",
      "time travel: build a projection's read model as it was at --until into the schema "
      "--into, for audit queries (never live; the engine's state is not touched)");
  cmd->add_option("projection", options->projection, "the manifest's projection name")->required();
  cmd->add_option("--until", options->until,
                  "the moment: a time (ISO 8601 with a zone, e.g. 2026-11-27T08:00:00Z or "
                  "2026-11-27T09:00:00.250+01:00, or epoch milliseconds): records whose Kafka "
                  "timestamp is <= it; or next offsets TOPIC:PARTITION=N[,...] as "
                  "ultracore_offsets stores them: records with offset < N (partitions not listed "
                  "contribute nothing)");
  cmd->add_option("--into", options->into,
                  "the schema to build into: must not exist and must not be any projection's "
                  "live schema; it gets an ultracore_time_travel table describing the build");
  cmd->add_flag("--replace", options->replace,
                "drop --into first (only a schema an earlier time-travel build made)");
  cmd->callback([&context, options] { rebuild(context, *options); });
}

}  // namespace ultracore::ctl
