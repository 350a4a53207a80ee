#include "tools/ctl/rebuild_command.h"

#include <memory>
#include <optional>

#include "tools/ctl/generation_commands.h"
#include "tools/ctl/time_travel.h"

namespace ultracore::ctl {
namespace {

struct Options {
  LiveRebuildOptions live;
  std::optional<std::string> until;
  std::optional<std::string> into;
  bool replace = false;
};

void rebuild(const CtlContext& context, const Options& options) {
  if (!options.until && !options.into) {
    if (options.replace) throw CtlError("rebuild: --replace goes with --until and --into", 2);
    return liveRebuild(context, options.live);
  }
  if (!options.until || !options.into) {
    throw CtlError(std::string("rebuild: --until and --into go together (time travel builds the "
                               "read model as of --until into the schema --into); missing ") +
                       (options.until ? "--into SCHEMA" : "--until TIME|OFFSETS"),
                   2);
  }
  if (options.live.no_wait || options.live.cancel) {
    throw CtlError("rebuild: --no-wait and --cancel are for the live rebuild, not with --until", 2);
  }
  runTimeTravel(context, {options.live.projection, *options.until, *options.into, options.replace});
}

}  // namespace

void registerRebuildCommands(CLI::App& app, const CtlContext& context) {
  auto options = std::make_shared<Options>();
  auto* cmd = app.add_subcommand(
      "rebuild",
      "rebuild a projection from the log beside the live one and switch to it without downtime "
      "(through the engine's admin endpoint); with --until and --into: time travel, the read "
      "model as it was then, built into its own schema for audit queries (never live)");
  cmd->add_option("projection", options->live.projection, "the manifest's projection name")
      ->required();
  cmd->add_option("--admin-url", options->live.admin_url,
                  "the engine's admin endpoint (default: admin.listen)");
  cmd->add_flag("--no-wait", options->live.no_wait, "start it and return; follow with `status`");
  cmd->add_flag("--cancel", options->live.cancel,
                "stop a rebuild in progress and drop what it built");
  cmd->add_flag("--plain", options->live.plain, "progress as plain lines, even on a terminal");
  cmd->add_option("--until", options->until,
                  "time travel to this moment: a time (ISO 8601 with a zone, e.g. "
                  "2026-11-27T08:00:00Z or 2026-11-27T09:00:00.250+01:00, or epoch "
                  "milliseconds): records whose Kafka timestamp is <= it; or next offsets "
                  "TOPIC:PARTITION=N[,...] as ultracore_offsets stores them: records with offset "
                  "< N (partitions not listed contribute nothing)");
  cmd->add_option("--into", options->into,
                  "time travel: the schema to build into: must not exist and must not be any "
                  "projection's live schema; it gets an ultracore_time_travel table describing "
                  "the build");
  cmd->add_flag("--replace", options->replace,
                "time travel: drop --into first (only a schema an earlier time-travel build made)");
  cmd->callback([&context, options] { rebuild(context, *options); });
}

}  // namespace ultracore::ctl
