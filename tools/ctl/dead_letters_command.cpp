#include "tools/ctl/dead_letters_command.h"

#include <chrono>
#include <cstdio>
#include <memory>
#include <optional>
#include <thread>

#include <pqxx/binarystring>
#include <pqxx/result>
#include <pqxx/transaction>

#include "tools/ctl/table.h"

namespace ultracore::ctl {
namespace {

struct Options {
  std::optional<std::string> projection;
  std::optional<std::string> status;
  std::optional<std::string> aggregate;
  std::int64_t id = 0;
  std::string reason;
  double timeout_s = 30;
  bool no_wait = false;
};

std::string text(const pqxx::field& field) { return field.is_null() ? "" : field.c_str(); }

/// Bytes as text when they are printable UTF-8-ish, else \x hex.
std::string printable(const pqxx::field& field) {
  if (field.is_null()) return "(null)";
  const std::string bytes = pqxx::binarystring(field).str();
  bool ok = true;
  for (unsigned char c : bytes) ok = ok && (c >= 0x20 || c == '\n' || c == '\t' || c == '\r');
  if (ok) return bytes;
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out = "\\x";
  for (unsigned char c : bytes) {
    out.push_back(kDigits[c >> 4]);
    out.push_back(kDigits[c & 0xf]);
  }
  return out;
}

void list(const CtlContext& context, const Options& options) {
  auto connection = context.connect();
  pqxx::read_transaction txn(*connection);
  const auto rows = txn.exec_params(
      "SELECT id, projection, policy, status, topic, partition, \"offset\", "
      "coalesce(aggregate_id, convert_from(record_key, 'UTF8'), ''), coalesce(event_type, ''), "
      "error_code, error, to_char(created_at, 'YYYY-MM-DD HH24:MI:SS') "
      "FROM ultracore_dead_letters WHERE ($1::text IS NULL OR projection IN ($1, ultracore_live_key($1))) "
      "AND ($2::text IS NULL OR status = $2) AND ($3::text IS NULL OR aggregate_id = $3 "
      "OR (aggregate_id IS NULL AND record_key = convert_to($3, 'UTF8'))) ORDER BY id",
      options.projection ? options.projection->c_str() : nullptr,
      options.status ? options.status->c_str() : nullptr,
      options.aggregate ? options.aggregate->c_str() : nullptr);
  Table table({"ID", "PROJECTION", "POLICY", "STATUS", "TOPIC", "PARTITION", "OFFSET",
               "AGGREGATE", "EVENT_TYPE", "ERROR_CODE", "ERROR", "CREATED_AT"});
  for (const auto& row : rows) {
    std::vector<std::string> cells;
    for (const auto& field : row) cells.push_back(text(field));
    table.add(std::move(cells));
  }
  table.print();
  std::printf("%zu dead letter(s)\n", table.size());
}

void show(const CtlContext& context, const Options& options) {
  auto connection = context.connect();
  pqxx::read_transaction txn(*connection);
  const auto rows = txn.exec_params(
      "SELECT id, projection, policy, status, topic, partition, \"offset\", record_key, "
      "record_value, headers::text, timestamp_ms, event_id, aggregate_id, event_type, "
      "error_code, error, attempts, created_at, retry_requested_at, last_retry_at, "
      "last_retry_error, resolved_at, resolution, "
      "(SELECT aggregate_id FROM ultracore_parked_aggregates p WHERE p.dead_letter_id = d.id), "
      "(SELECT count(*) FROM ultracore_parked_events e WHERE e.projection = d.projection AND "
      " e.aggregate_id = (SELECT aggregate_id FROM ultracore_parked_aggregates p "
      "                   WHERE p.dead_letter_id = d.id)) "
      "FROM ultracore_dead_letters d WHERE id = $1",
      options.id);
  if (rows.empty()) throw CtlError("no dead letter " + std::to_string(options.id));
  const auto& r = rows[0];
  std::vector<std::pair<std::string, std::string>> fields = {
      {"id", text(r[0])},
      {"projection", text(r[1])},
      {"policy", text(r[2])},
      {"status", text(r[3])},
      {"position", text(r[4]) + "[" + text(r[5]) + "]@" + text(r[6])},
      {"key", printable(r[7])},
      {"value", printable(r[8])},
      {"headers", text(r[9])},
      {"timestamp_ms", text(r[10])},
      {"event_id", text(r[11])},
      {"aggregate_id", text(r[12])},
      {"event_type", text(r[13])},
      {"error_code", text(r[14])},
      {"error", text(r[15])},
      {"attempts", text(r[16])},
      {"created_at", text(r[17])},
  };
  if (!r[18].is_null()) fields.emplace_back("retry_requested_at", text(r[18]));
  if (!r[19].is_null()) fields.emplace_back("last_retry_at", text(r[19]));
  if (!r[20].is_null()) fields.emplace_back("last_retry_error", text(r[20]));
  if (!r[21].is_null()) fields.emplace_back("resolved_at", text(r[21]));
  if (!r[22].is_null()) fields.emplace_back("resolution", text(r[22]));
  if (!r[23].is_null()) {
    fields.emplace_back("parks", "aggregate '" + text(r[23]) + "' (" + text(r[24]) +
                                     " event(s) held back)");
  }
  printFields(fields);
}

struct DeadLetterState {
  std::string status;
  std::string projection;
  std::string last_retry_error;
  std::string resolution;
  std::optional<std::string> parked_aggregate;  ///< aggregate this one still blocks
  std::string parked_count;
};

DeadLetterState readState(pqxx::connection& connection, std::int64_t id) {
  pqxx::read_transaction txn(connection);
  const auto rows = txn.exec_params(
      "SELECT d.status, d.projection, coalesce(d.last_retry_error, ''), coalesce(d.resolution, ''), "
      "p.aggregate_id, (SELECT count(*) FROM ultracore_parked_events e "
      " WHERE e.projection = p.projection AND e.aggregate_id = p.aggregate_id) "
      "FROM ultracore_dead_letters d LEFT JOIN ultracore_parked_aggregates p "
      "ON p.dead_letter_id = d.id WHERE d.id = $1",
      id);
  if (rows.empty()) throw CtlError("no dead letter " + std::to_string(id));
  DeadLetterState state{text(rows[0][0]), text(rows[0][1]), text(rows[0][2]), text(rows[0][3]),
                        std::nullopt, text(rows[0][5])};
  if (!rows[0][4].is_null()) state.parked_aggregate = text(rows[0][4]);
  return state;
}

/// Polls until `done` holds or the timeout passes; returns the last state read.
template <typename Done>
std::pair<bool, DeadLetterState> waitFor(pqxx::connection& connection, std::int64_t id,
                                         double timeout_s, Done done) {
  const auto deadline = std::chrono::steady_clock::now() +
                        std::chrono::milliseconds(static_cast<long long>(timeout_s * 1000));
  for (;;) {
    DeadLetterState state = readState(connection, id);
    if (done(state)) return {true, state};
    if (std::chrono::steady_clock::now() >= deadline) return {false, state};
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
}

void retry(const CtlContext& context, const Options& options) {
  auto connection = context.connect();
  std::string projection;
  {
    pqxx::work txn(*connection);
    const auto rows = txn.exec_params(
        "UPDATE ultracore_dead_letters SET status = 'retry_requested', "
        "retry_requested_at = now() WHERE id = $1 AND status IN ('open', 'retry_requested') "
        "RETURNING projection",
        options.id);
    txn.commit();
    if (rows.empty()) {
      const DeadLetterState state = readState(*connection, options.id);
      throw CtlError("dead letter " + std::to_string(options.id) + " is " + state.status +
                     "; only an open dead letter can be retried");
    }
    projection = text(rows[0][0]);
  }
  if (options.no_wait) {
    std::printf("dead letter %lld: retry requested; the engine running projection '%s' applies it\n",
                static_cast<long long>(options.id), projection.c_str());
    return;
  }
  const auto [done, state] = waitFor(*connection, options.id, options.timeout_s,
                                     [](const DeadLetterState& s) { return s.status != "retry_requested"; });
  if (!done) {
    throw CtlError("dead letter " + std::to_string(options.id) + ": no outcome within " +
                   std::to_string(static_cast<int>(options.timeout_s)) +
                   " s; the request stays pending. Is an engine running projection '" +
                   projection + "' (and owning that partition)?");
  }
  if (state.status != "retried") {
    throw CtlError("dead letter " + std::to_string(options.id) + ": retry failed, it is " +
                   state.status + " again: " + state.last_retry_error);
  }
  std::printf("dead letter %lld: retried, applied once through projection '%s'\n",
              static_cast<long long>(options.id), projection.c_str());
  if (state.parked_aggregate) {
    std::printf("aggregate '%s' is still parked: a released event failed (see dead-letters list "
                "--aggregate %s)\n",
                state.parked_aggregate->c_str(), state.parked_aggregate->c_str());
  }
}

void discard(const CtlContext& context, const Options& options) {
  if (options.reason.empty()) throw CtlError("--reason must not be empty", 2);
  auto connection = context.connect();
  {
    pqxx::work txn(*connection);
    const auto rows = txn.exec_params(
        "UPDATE ultracore_dead_letters SET status = 'discarded', resolved_at = now(), "
        "resolution = $2 WHERE id = $1 AND status = 'open' RETURNING projection",
        options.id, options.reason);
    txn.commit();
    if (rows.empty()) {
      const DeadLetterState state = readState(*connection, options.id);
      throw CtlError("dead letter " + std::to_string(options.id) + " is " + state.status +
                     "; only an open dead letter can be discarded");
    }
  }
  DeadLetterState state = readState(*connection, options.id);
  std::printf("dead letter %lld: discarded (reason: %s)\n", static_cast<long long>(options.id),
              options.reason.c_str());
  if (!state.parked_aggregate) return;
  const std::string aggregate = *state.parked_aggregate;
  if (options.no_wait) {
    std::printf("aggregate '%s': %s parked event(s) will be released by the engine\n",
                aggregate.c_str(), state.parked_count.c_str());
    return;
  }
  const auto [done, after] = waitFor(*connection, options.id, options.timeout_s,
                                     [](const DeadLetterState& s) { return !s.parked_aggregate; });
  if (!done) {
    throw CtlError("aggregate '" + aggregate + "' not released within " +
                   std::to_string(static_cast<int>(options.timeout_s)) +
                   " s; the engine releases it when it runs projection '" + after.projection + "'");
  }
  std::printf("aggregate '%s': parked events released in order\n", aggregate.c_str());
}

}  // namespace

void registerDeadLetterCommands(CLI::App& app, const CtlContext& context) {
  auto options = std::make_shared<Options>();
  CLI::App* group = app.add_subcommand("dead-letters", "events a projection could not apply");
  group->require_subcommand(1);

  CLI::App* list_cmd = group->add_subcommand("list", "list dead letters");
  list_cmd->add_option("--projection", options->projection, "only this projection");
  list_cmd->add_option("--status", options->status, "open, retry_requested, retried, discarded")
      ->check(CLI::IsMember({"open", "retry_requested", "retried", "discarded"}));
  list_cmd->add_option("--aggregate", options->aggregate, "only this aggregate id");
  list_cmd->callback([&context, options] { list(context, *options); });

  CLI::App* show_cmd = group->add_subcommand("show", "one dead letter, with its whole record");
  show_cmd->add_option("id", options->id, "dead letter id")->required();
  show_cmd->callback([&context, options] { show(context, *options); });

  CLI::App* retry_cmd = group->add_subcommand(
      "retry", "re-apply through the current plugin, exactly once (done by the engine), then "
               "release the aggregate's parked events in order");
  retry_cmd->add_option("id", options->id, "dead letter id")->required();
  retry_cmd->add_option("--timeout", options->timeout_s, "seconds to wait for the outcome")
      ->capture_default_str();
  retry_cmd->add_flag("--no-wait", options->no_wait, "request the retry and return");
  retry_cmd->callback([&context, options] { retry(context, *options); });

  CLI::App* discard_cmd =
      group->add_subcommand("discard", "give up on a dead letter (kept for audit with the reason)");
  discard_cmd->add_option("id", options->id, "dead letter id")->required();
  discard_cmd->add_option("--reason", options->reason, "why (kept for audit)")->required();
  discard_cmd->add_option("--timeout", options->timeout_s,
                          "seconds to wait for parked events to be released")
      ->capture_default_str();
  discard_cmd->add_flag("--no-wait", options->no_wait, "do not wait for the release");
  discard_cmd->callback([&context, options] { discard(context, *options); });
}

}  // namespace ultracore::ctl
