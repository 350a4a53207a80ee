#include "tools/ctl/rebuild_command.h"

#include <algorithm>
#include <sys/statvfs.h>

#include <cstdio>
#include <memory>
#include <optional>

#include <pqxx/nontransaction>
#include <pqxx/result>

#include "tools/ctl/generation_commands.h"
#include "tools/ctl/time_travel.h"

namespace ultracore::ctl {
namespace {

struct Options {
  bool force = false;
  LiveRebuildOptions live;
  std::optional<std::string> until;
  std::optional<std::string> into;
  bool replace = false;
};

std::string mib(std::int64_t bytes) {
  char text[32];
  std::snprintf(text, sizeof text, "%.1f MiB", static_cast<double>(bytes) / 1048576.0);
  return text;
}

/// The disk a live rebuild adds while both generations exist: about the live read model's
/// tables and indexes plus the live key's share of processed_events. Refuses (unless --force)
/// when the free space of the database's disk is known (a server on this host) and smaller.
void checkRebuildSpace(const CtlContext& context, const std::string& projection, bool force) {
  std::int64_t model = 0, processed = 0, free_bytes = -1;
  std::string data_directory;
  try {
    auto connection = context.connect();
    pqxx::nontransaction txn(*connection);
    const auto row = txn.exec_params1(
        "SELECT coalesce((SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'm') AND "
        "n.nspname = (SELECT schema_name FROM ultracore_projection_schemas WHERE projection = $1)), "
        "0)::bigint, "
        "(SELECT count(*) FROM processed_events WHERE projection = ultracore_live_key($1)), "
        "(SELECT coalesce(sum(pg_total_relation_size(t.relid)), 0)::bigint FROM (SELECT relid FROM "
        "pg_partition_tree('processed_events') WHERE isleaf UNION ALL SELECT "
        "'processed_events'::regclass) t), "
        // The table's rows as the planner last counted them; never analyzed (-1): counted.
        "(SELECT CASE WHEN reltuples >= 1 THEN reltuples ELSE (SELECT count(*) FROM "
        "processed_events) END FROM pg_class WHERE oid = 'processed_events'::regclass), "
        "(SELECT setting FROM pg_settings WHERE name = 'data_directory')",
        projection);
    model = row[0].as<std::int64_t>();
    const auto rows = row[1].as<double>();
    // The live key's share of the table (at most all of it: reltuples may lag behind).
    const double share = std::min(1.0, rows / std::max(row[3].as<double>(), 1.0));
    processed = static_cast<std::int64_t>(share * row[2].as<double>());
    if (!row[4].is_null()) data_directory = row[4].as<std::string>();
  } catch (const std::exception& e) {
    // The engine does the rebuild; an estimate that cannot be made does not stop it.
    std::printf("rebuild of %s: no disk estimate (%s)\n", projection.c_str(), e.what());
    std::fflush(stdout);
    return;
  }
  // Only a server on this host: its data directory is then this machine's path.
  struct statvfs disk {};
  if (!data_directory.empty() && statvfs(data_directory.c_str(), &disk) == 0) {
    free_bytes = static_cast<std::int64_t>(disk.f_bavail) * static_cast<std::int64_t>(disk.f_frsize);
  }
  const std::int64_t need = model + processed;
  std::printf("rebuild of %s: the new generation takes about %s on the database's disk while "
              "both exist (read model %s, processed_events %s); free: %s\n",
              projection.c_str(), mib(need).c_str(), mib(model).c_str(), mib(processed).c_str(),
              free_bytes < 0 ? "unknown (not a server on this host, or no access to its "
                               "data_directory)"
                             : mib(free_bytes).c_str());
  if (free_bytes >= 0 && free_bytes < need) {
    if (!force) {
      throw CtlError("rebuild: the database's disk has " + mib(free_bytes) + " free, the new "
                     "generation needs about " + mib(need) + "; free space first, or --force");
    }
    std::printf("--force: starting anyway\n");
  }
  std::fflush(stdout);
}

void rebuild(const CtlContext& context, const Options& options) {
  if (!options.until && !options.into) {
    if (options.replace) throw CtlError("rebuild: --replace goes with --until and --into", 2);
    if (!options.live.cancel) checkRebuildSpace(context, options.live.projection, options.force);
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
  cmd->add_flag("--force", options->force,
                "start even when the database's disk looks too small for the new generation");
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
