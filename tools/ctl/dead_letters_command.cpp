#include "tools/ctl/dead_letters_command.h"

#include <chrono>
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
  std::optional<std::string> status;
  std::optional<std::string> aggregate;
  std::int64_t id = 0;
  std::string reason;
  double timeout_s = 30;
  bool no_wait = false;
};

/// Bytes as text when they are printable UTF-8-ish, else \x hex.
std::string printable(const std::optional<std::string>& bytes) {
  if (!bytes) return "(null)";
  bool ok = true;
  for (unsigned char c : *bytes) ok = ok && (c >= 0x20 || c == '\n' || c == '\t' || c == '\r');
  if (ok) return *bytes;
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out = "\\x";
  for (unsigned char c : *bytes) {
    out.push_back(kDigits[c >> 4]);
    out.push_back(kDigits[c & 0xf]);
  }
  return out;
}

std::string orEmpty(const std::optional<std::string>& value) { return value ? *value : ""; }

/// Runs one library call, its refusal as a CtlError (bad input: exit 2).
template <typename Action>
auto run(Action action) {
  try {
    return action();
  } catch (const engine::DeadLetterError& e) {
    throw CtlError(e.what(), e.kind() == engine::DeadLetterError::Kind::kInvalid ? 2 : 1);
  }
}

void list(const CtlContext& context, const Options& options) {
  auto connection = context.connect();
  pqxx::read_transaction txn(*connection);
  engine::DeadLetterFilter filter;
  filter.projection = options.projection;
  filter.status = options.status;
  filter.aggregate = options.aggregate;
  Table table({"ID", "PROJECTION", "POLICY", "STATUS", "TOPIC", "PARTITION", "OFFSET",
               "AGGREGATE", "EVENT_TYPE", "ERROR_CODE", "ERROR", "CREATED_AT"});
  for (const auto& d : engine::listDeadLetters(txn, filter)) {
    table.add({std::to_string(d.id), d.projection, d.policy, d.status, d.topic,
               std::to_string(d.partition), std::to_string(d.offset), d.aggregate, d.event_type,
               d.error_code, d.error, d.created_at});
  }
  table.print();
  std::printf("%zu dead letter(s)\n", table.size());
}

void show(const CtlContext& context, const Options& options) {
  auto connection = context.connect();
  pqxx::read_transaction txn(*connection);
  const engine::DeadLetterDetail d = run([&] { return engine::deadLetterDetail(txn, options.id); });
  const engine::DeadLetterSummary& s = d.summary;
  std::vector<std::pair<std::string, std::string>> fields = {
      {"id", std::to_string(s.id)},
      {"projection", s.projection},
      {"policy", s.policy},
      {"status", s.status},
      {"position", s.topic + "[" + std::to_string(s.partition) + "]@" + std::to_string(s.offset)},
      {"key", printable(d.key)},
      {"value", printable(d.value)},
      {"headers", d.headers_json},
      {"timestamp_ms", d.timestamp_ms ? std::to_string(*d.timestamp_ms) : ""},
      {"event_id", orEmpty(d.event_id)},
      {"aggregate_id", orEmpty(d.aggregate_id)},
      {"event_type", s.event_type},
      {"error_code", s.error_code},
      {"error", s.error},
      {"attempts", std::to_string(d.attempts)},
      {"created_at", s.created_at},
  };
  if (d.retry_requested_at) fields.emplace_back("retry_requested_at", *d.retry_requested_at);
  if (d.last_retry_at) fields.emplace_back("last_retry_at", *d.last_retry_at);
  if (d.last_retry_error) fields.emplace_back("last_retry_error", *d.last_retry_error);
  if (d.resolved_at) fields.emplace_back("resolved_at", *d.resolved_at);
  if (d.resolution) fields.emplace_back("resolution", *d.resolution);
  if (d.parked_aggregate) {
    fields.emplace_back("parks", "aggregate '" + *d.parked_aggregate + "' (" +
                                     std::to_string(d.parked_events) + " event(s) held back)");
  }
  printFields(fields);
}

std::chrono::milliseconds timeoutOf(const Options& options) {
  return std::chrono::milliseconds(static_cast<long long>(options.timeout_s * 1000));
}

void retry(const CtlContext& context, const Options& options) {
  auto connection = context.connect();
  const std::string projection =
      run([&] { return engine::requestDeadLetterRetry(*connection, options.id); });
  if (options.no_wait) {
    std::printf("dead letter %lld: retry requested; the engine running projection '%s' applies it\n",
                static_cast<long long>(options.id), projection.c_str());
    return;
  }
  const auto [done, state] =
      run([&] {
        return engine::waitForDeadLetter(*connection, options.id, timeoutOf(options),
                                         [](const engine::DeadLetterState& s) { return s.status != "retry_requested"; });
      });
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
  run([&] { return engine::discardDeadLetter(*connection, options.id, options.reason); });
  const engine::DeadLetterState state = run([&] { return engine::readDeadLetterState(*connection, options.id); });
  std::printf("dead letter %lld: discarded (reason: %s)\n", static_cast<long long>(options.id),
              options.reason.c_str());
  if (!state.parked_aggregate) return;
  const std::string aggregate = *state.parked_aggregate;
  if (options.no_wait) {
    std::printf("aggregate '%s': %s parked event(s) will be released by the engine\n",
                aggregate.c_str(), state.parked_count.c_str());
    return;
  }
  const auto [done, after] = run([&] {
    return engine::waitForDeadLetter(*connection, options.id, timeoutOf(options),
                                     [](const engine::DeadLetterState& s) { return !s.parked_aggregate; });
  });
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
