#include "tools/ctl/parked_command.h"

#include <cstdio>
#include <memory>
#include <optional>

#include <pqxx/transaction>

#include "engine/runner/dead_letter_admin.h"
#include "tools/ctl/table.h"

namespace ultracore::ctl {
namespace {

struct Options {
  std::optional<std::string> projection;
  bool events = false;
};

void list(const CtlContext& context, const Options& options) {
  auto connection = context.connect();
  pqxx::read_transaction txn(*connection);
  Table table({"PROJECTION", "AGGREGATE", "DEAD_LETTER", "DL_STATUS", "BLOCKED_AT", "PARKED_EVENTS",
               "PARKED_AT"});
  for (const auto& p : engine::listParkedAggregates(txn, options.projection)) {
    table.add({p.projection, p.aggregate_id, std::to_string(p.dead_letter_id), p.dead_letter_status,
               p.blocked_at, std::to_string(p.parked_events), p.parked_at});
  }
  table.print();
  std::printf("%zu parked aggregate(s)\n", table.size());
  if (!options.events) return;
  Table event_table({"ID", "PROJECTION", "AGGREGATE", "TOPIC", "PARTITION", "OFFSET", "EVENT_ID",
                     "EVENT_TYPE", "BEHIND"});
  for (const auto& e : engine::listParkedEvents(txn, options.projection)) {
    event_table.add({std::to_string(e.id), e.projection, e.aggregate_id, e.topic,
                     std::to_string(e.partition), std::to_string(e.offset), e.event_id, e.event_type,
                     std::to_string(e.dead_letter_id)});
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
