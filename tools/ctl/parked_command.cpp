#include "tools/ctl/parked_command.h"

#include <cstdio>
#include <memory>
#include <optional>

#include <pqxx/result>
#include <pqxx/transaction>

#include "tools/ctl/table.h"

namespace ultracore::ctl {
namespace {

struct Options {
  std::optional<std::string> projection;
  bool events = false;
};

std::string text(const pqxx::field& field) { return field.is_null() ? "" : field.c_str(); }

void list(const CtlContext& context, const Options& options) {
  auto connection = context.connect();
  pqxx::read_transaction txn(*connection);
  const char* projection = options.projection ? options.projection->c_str() : nullptr;
  const auto rows = txn.exec_params(
      "SELECT p.projection, p.aggregate_id, p.dead_letter_id, d.status, "
      "p.topic || '[' || p.partition || ']@' || d.\"offset\", "
      "(SELECT count(*) FROM ultracore_parked_events e WHERE e.projection = p.projection "
      " AND e.aggregate_id = p.aggregate_id), to_char(p.parked_at, 'YYYY-MM-DD HH24:MI:SS') "
      "FROM ultracore_parked_aggregates p JOIN ultracore_dead_letters d ON d.id = p.dead_letter_id "
      "WHERE $1::text IS NULL OR p.projection IN ($1, ultracore_live_key($1)) ORDER BY p.projection, p.parked_at, p.aggregate_id",
      projection);
  Table table({"PROJECTION", "AGGREGATE", "DEAD_LETTER", "DL_STATUS", "BLOCKED_AT", "PARKED_EVENTS",
               "PARKED_AT"});
  for (const auto& row : rows) {
    std::vector<std::string> cells;
    for (const auto& field : row) cells.push_back(text(field));
    table.add(std::move(cells));
  }
  table.print();
  std::printf("%zu parked aggregate(s)\n", table.size());
  if (!options.events) return;
  const auto events = txn.exec_params(
      "SELECT id, projection, aggregate_id, topic, partition, \"offset\", coalesce(event_id, ''), "
      "coalesce(event_type, ''), dead_letter_id FROM ultracore_parked_events "
      "WHERE $1::text IS NULL OR projection IN ($1, ultracore_live_key($1)) ORDER BY projection, aggregate_id, id",
      projection);
  Table event_table({"ID", "PROJECTION", "AGGREGATE", "TOPIC", "PARTITION", "OFFSET", "EVENT_ID",
                     "EVENT_TYPE", "BEHIND"});
  for (const auto& row : events) {
    std::vector<std::string> cells;
    for (const auto& field : row) cells.push_back(text(field));
    event_table.add(std::move(cells));
  }
  std::printf("\n");
  event_table.print();
  std::printf("%zu parked event(s)\n", event_table.size());
}

}  // namespace

void registerParkedCommands(CLI::App& app, const CtlContext& context) {
  auto options = std::make_shared<Options>();
  CLI::App* group =
      app.add_subcommand("parked", "aggregates held back behind a dead letter (policy park)");
  group->require_subcommand(1);
  CLI::App* list_cmd = group->add_subcommand("list", "list parked aggregates");
  list_cmd->add_option("--projection", options->projection, "only this projection");
  list_cmd->add_flag("--events", options->events, "also list the parked events, in order");
  list_cmd->callback([&context, options] { list(context, *options); });
}

}  // namespace ultracore::ctl
