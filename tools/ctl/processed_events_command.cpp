#include "tools/ctl/processed_events_command.h"

#include <cstdio>
#include <memory>
#include <optional>

#include <pqxx/nontransaction>
#include <pqxx/result>
#include <pqxx/transaction>

#include "engine/manifest/manifest.h"
#include "engine/postgres/dedupe_store.h"
#include "engine/postgres/sql_array.h"
#include "tools/ctl/table.h"

namespace ultracore::ctl {
namespace {

struct Options {
  std::optional<std::string> projection;
  bool dry_run = false;
};

/// The manifest's projections (name -> dedupe.retention in seconds, 0 = forever).
std::map<std::string, std::int64_t> retentions(const CtlContext& context) {
  std::map<std::string, std::int64_t> out;
  for (const auto& spec : engine::loadManifest(context.config).projections) {
    out[spec.name] = spec.dedupe_retention;
  }
  return out;
}

/// Every storage key of `name` that holds processed_events rows: the name (generation 1) and
/// `name@gN` of later generations (migrations/0004). Found through ultracore_offsets, which
/// has a row per key and partition, not through processed_events itself.
std::vector<std::string> keysOf(pqxx::transaction_base& txn, const std::string& name) {
  std::vector<std::string> keys;
  for (const auto& row : txn.exec_params(
           "SELECT DISTINCT projection FROM ultracore_offsets WHERE projection = $1 OR "
           "(left(projection, length($1) + 2) = $1 || '@g' AND "
           "substr(projection, length($1) + 3) ~ '^[0-9]+$') ORDER BY 1",
           name)) {
    keys.push_back(row[0].as<std::string>());
  }
  if (keys.empty()) keys.push_back(name);
  return keys;
}

void stats(const CtlContext& context, const Options& options) {
  const auto windows = retentions(context);
  auto connection = context.connect();
  pqxx::nontransaction txn(*connection);
  const auto total = txn.exec1(
      "SELECT coalesce(sum(pg_total_relation_size(relid)), 0)::bigint, "
      "coalesce(sum(c.reltuples) FILTER (WHERE c.reltuples > 0), 0)::bigint FROM ("
      "SELECT relid FROM pg_partition_tree('processed_events') WHERE isleaf UNION ALL "
      "SELECT 'processed_events'::regclass WHERE (SELECT relkind FROM pg_class WHERE oid = "
      "'processed_events'::regclass) = 'r') t JOIN pg_class c ON c.oid = t.relid");
  const auto table_bytes = total[0].as<std::int64_t>();
  const auto table_rows = std::max<std::int64_t>(1, total[1].as<std::int64_t>());
  Table table({"PROJECTION", "KEY", "RETENTION", "ROWS", "BYTES(~)", "OLDEST", "NEWEST",
               "PAST_WINDOW"});
  for (const auto& [name, retention] : windows) {
    if (options.projection && *options.projection != name) continue;
    for (const auto& key : keysOf(txn, name)) {
      const auto row = txn.exec_params1(
          "SELECT count(*), to_char(min(processed_at), 'YYYY-MM-DD HH24:MI:SS'), "
          "to_char(max(processed_at), 'YYYY-MM-DD HH24:MI:SS'), "
          "count(*) FILTER (WHERE $2 > 0 AND processed_at < now() - make_interval(secs => $2)) "
          "FROM processed_events WHERE projection = $1",
          key, retention);
      const auto rows = row[0].as<std::int64_t>();
      // Bytes: the table's (heap and indexes) in proportion to the rows: the projections share
      // one table, so a per-projection size is an estimate.
      const auto bytes = static_cast<std::int64_t>(static_cast<double>(table_bytes) *
                                                   static_cast<double>(rows) /
                                                   static_cast<double>(table_rows));
      table.add({name, key, engine::formatRetention(retention), std::to_string(rows),
                 std::to_string(bytes), row[1].is_null() ? "" : row[1].c_str(),
                 row[2].is_null() ? "" : row[2].c_str(),
                 retention > 0 ? std::to_string(row[3].as<std::int64_t>()) : "-"});
    }
  }
  table.print();
  std::printf("processed_events: %lld bytes (heap and indexes), about %lld rows in all\n",
              static_cast<long long>(table_bytes), static_cast<long long>(total[1].as<std::int64_t>()));
}

void prune(const CtlContext& context, const Options& options) {
  const auto windows = retentions(context);
  if (options.projection && windows.count(*options.projection) == 0) {
    throw CtlError("no projection '" + *options.projection + "' in " + context.config, 2);
  }
  auto connection = context.connect();
  std::int64_t all = 0;
  for (const auto& [name, retention] : windows) {
    if (options.projection && *options.projection != name) continue;
    if (retention <= 0) {
      std::printf("%s: dedupe retention forever: nothing to prune\n", name.c_str());
      continue;
    }
    std::vector<std::string> keys;
    {
      pqxx::nontransaction txn(*connection);
      keys = keysOf(txn, name);
    }
    std::int64_t pruned = 0;
    if (options.dry_run) {
      pqxx::nontransaction txn(*connection);
      pruned = txn.exec_params1("SELECT count(*) FROM processed_events WHERE projection = "
                                "ANY($1::text[]) AND processed_at < now() - make_interval(secs "
                                "=> $2)",
                                engine::toArrayLiteral(keys), retention)[0]
                   .as<std::int64_t>();
    } else {
      // The engine's own steps: short transactions of at most 5,000 rows, oldest first.
      std::string cursor;
      while (true) {
        pqxx::work txn(*connection, "ultracore-ctl-prune");
        const auto step = engine::pruneProcessedEvents(txn, keys, retention, 5000, cursor);
        txn.commit();
        pruned += step;
        if (step < 5000) break;
      }
    }
    all += pruned;
    std::printf("%s: %lld row(s) older than %s %s\n", name.c_str(), static_cast<long long>(pruned),
                engine::formatRetention(retention).c_str(),
                options.dry_run ? "would be pruned (dry run)" : "pruned");
  }
  std::printf("%lld row(s) %s\n", static_cast<long long>(all),
              options.dry_run ? "would be pruned" : "pruned");
}

}  // namespace

void registerProcessedEventsCommands(CLI::App& app, const CtlContext& context) {
  auto options = std::make_shared<Options>();
  CLI::App* group = app.add_subcommand(
      "processed-events", "the idempotency record (processed_events): size and retention");
  group->require_subcommand(1);
  CLI::App* stats_cmd = group->add_subcommand(
      "stats", "rows, bytes, oldest and newest row per projection, and rows past its "
               "dedupe.retention");
  stats_cmd->add_option("--projection", options->projection, "only this projection");
  stats_cmd->callback([&context, options] { stats(context, *options); });
  CLI::App* prune_cmd = group->add_subcommand(
      "prune", "remove now the rows older than each projection's dedupe.retention (the engine "
               "also does it in the background)");
  prune_cmd->add_option("--projection", options->projection, "only this projection");
  prune_cmd->add_flag("--dry-run", options->dry_run, "count what would be removed; remove nothing");
  prune_cmd->callback([&context, options] { prune(context, *options); });
}

}  // namespace ultracore::ctl
