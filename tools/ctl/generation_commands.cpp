#include "tools/ctl/generation_commands.h"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <iostream>
#include <memory>
#include <thread>

#include <nlohmann/json.hpp>
#include <pqxx/result>
#include <pqxx/transaction>

#include "engine/postgres/generation_store.h"
#include "tools/ctl/admin_client.h"

namespace ultracore::ctl {
namespace {

using nlohmann::json;

struct ActionOptions {
  std::string projection;
  std::string admin_url;
  bool yes = false;
  bool offline = false;
};

/// Asks "type the projection's name" on a terminal; without one, --yes is required.
void confirm(const std::string& projection, const std::string& what, bool yes) {
  if (yes) return;
  if (isatty(STDIN_FILENO) == 0) {
    throw CtlError(what + ": confirm with --yes (standard input is not a terminal)", 2);
  }
  std::fprintf(stderr, "%s\nType the projection's name (%s) to go on: ", what.c_str(),
               projection.c_str());
  std::string answer;
  std::getline(std::cin, answer);
  if (answer != projection) throw CtlError("not confirmed; nothing changed", 2);
}

std::string duration(double seconds) {
  const long total = static_cast<long>(seconds + 0.5);
  char text[32];
  std::snprintf(text, sizeof(text), "%ld:%02ld:%02ld", total / 3600, total / 60 % 60, total % 60);
  return text;
}

/// One progress report: a redrawn bar on a terminal, a plain line otherwise.
void showProgress(const json& rebuild, bool bar) {
  const auto done = rebuild.value("events_done", std::int64_t{0});
  const auto total = rebuild.value("events_total", std::int64_t{0});
  const double rate = rebuild.value("events_per_second", 0.0);
  const double ratio = total > 0 ? std::min(1.0, static_cast<double>(done) / total) : 0.0;
  const std::string eta =
      rebuild["eta_seconds"].is_number() ? duration(rebuild["eta_seconds"].get<double>()) : "-";
  const std::string phase = rebuild.value("phase", "");
  if (bar) {
    constexpr int kWidth = 30;
    const int filled = static_cast<int>(ratio * kWidth);
    std::fprintf(stderr, "\r[%s%s] %5.1f%%  %lld/%lld events  %.0f ev/s  ETA %s  %-9s",
                 std::string(filled, '#').c_str(), std::string(kWidth - filled, '.').c_str(),
                 ratio * 100, static_cast<long long>(done), static_cast<long long>(total), rate,
                 eta.c_str(), phase.c_str());
  } else {
    std::fprintf(stderr, "%s: %lld/%lld events (%.1f%%), %.0f events/s, ETA %s\n", phase.c_str(),
                 static_cast<long long>(done), static_cast<long long>(total), ratio * 100, rate,
                 eta.c_str());
  }
  std::fflush(stderr);
}

void printGenerations(const json& g) {
  std::printf("%s: generation %d is live in schema '%s'", g["projection"].get<std::string>().c_str(),
              g["live_generation"].get<int>(), g["schema"].get<std::string>().c_str());
  if (g["previous_generation"].is_number()) {
    std::printf("; generation %d kept as '%s' (rollback or drop)", g["previous_generation"].get<int>(),
                g["previous_schema"].get<std::string>().c_str());
  }
  std::printf("\n");
}

void rollback(const CtlContext& context, const ActionOptions& options) {
  const auto manifest = engine::loadManifest(context.config);
  const AdminClient admin(manifest, options.admin_url);
  admin.request("POST", "/api/v1/projections/" + options.projection + "/rollback",
                "rollback " + options.projection);
  printGenerations(admin.request("GET", "/api/v1/projections/" + options.projection + "/generations",
                                 "rollback " + options.projection));
}

void drop(const CtlContext& context, const ActionOptions& options) {
  const auto manifest = engine::loadManifest(context.config);
  const AdminClient admin(manifest, options.admin_url);
  const json before = admin.request(
      "GET", "/api/v1/projections/" + options.projection + "/generations", "drop " + options.projection);
  if (!before["previous_generation"].is_number()) {
    throw CtlError("drop " + options.projection + ": no previous generation is kept", 1);
  }
  confirm(options.projection,
          "This drops generation " + std::to_string(before["previous_generation"].get<int>()) +
              " of '" + options.projection + "' (schema '" +
              before["previous_schema"].get<std::string>() + "'): rollback will no longer be possible.",
          options.yes);
  const json dropped = admin.request("POST", "/api/v1/projections/" + options.projection + "/drop",
                                     "drop " + options.projection);
  std::printf("%s: dropped generation %d (schema '%s')\n", options.projection.c_str(),
              dropped["dropped_generation"].get<int>(), dropped["schema"].get<std::string>().c_str());
}

/// The engine is stopped: empty the live generation's schema and stored state in PostgreSQL;
/// the engine recreates the tables when it starts and replays the log.
void resetOffline(const CtlContext& context, const std::string& projection) {
  auto connection = context.connect();
  pqxx::work txn(*connection, "ultracore-ctl-reset");
  const auto schema = txn.exec_params(
      "SELECT schema_name FROM ultracore_projection_schemas WHERE projection = $1", projection);
  if (schema.empty()) {
    throw CtlError("reset " + projection + ": the database knows no projection of that name", 2);
  }
  const auto key = txn.exec_params1("SELECT ultracore_live_key($1)", projection)[0].as<std::string>();
  txn.exec_params("SELECT 1 FROM ultracore_generations WHERE projection = $1 FOR UPDATE", projection);
  engine::purgeGeneration(txn, schema[0][0].as<std::string>(), key);
  txn.commit();
  std::printf("%s: reset offline (schema '%s' dropped, offsets and processed events of '%s' "
              "deleted); the engine rebuilds it from the beginning of the log when it starts\n",
              projection.c_str(), schema[0][0].as<std::string>().c_str(), key.c_str());
}

void reset(const CtlContext& context, const ActionOptions& options) {
  confirm(options.projection,
          "This empties the read model of '" + options.projection +
              "' and replays the whole log into it in place: queries see it empty, then filling. "
              "(`ultracore-ctl rebuild` does it without downtime.)",
          options.yes);
  if (options.offline) return resetOffline(context, options.projection);
  const auto manifest = engine::loadManifest(context.config);
  AdminClient(manifest, options.admin_url)
      .request("POST", "/api/v1/projections/" + options.projection + "/reset",
               "reset " + options.projection);
  std::printf("%s: reset; replaying from the beginning of the log\n", options.projection.c_str());
}

}  // namespace

void liveRebuild(const CtlContext& context, const LiveRebuildOptions& options) {
  const auto manifest = engine::loadManifest(context.config);
  const AdminClient admin(manifest, options.admin_url);
  const std::string base = "/api/v1/projections/" + options.projection;
  if (options.cancel) {
    const json cancelled = admin.request("POST", base + "/rebuild/cancel", "rebuild --cancel");
    std::printf("%s: rebuild of generation %d cancelled and dropped\n", options.projection.c_str(),
                cancelled["generation"].get<int>());
    return;
  }
  const json started = admin.request("POST", base + "/rebuild", "rebuild " + options.projection);
  const int generation = started["generation"].get<int>();
  std::printf("%s: building generation %d in schema '%s' beside the live one\n",
              options.projection.c_str(), generation, started["schema"].get<std::string>().c_str());
  std::fflush(stdout);
  if (options.no_wait) return;
  const bool bar = !options.plain && isatty(STDERR_FILENO) != 0;
  auto last_line = std::chrono::steady_clock::now() - std::chrono::hours(1);
  for (;;) {
    std::this_thread::sleep_for(std::chrono::milliseconds(bar ? 250 : 500));
    const json g = admin.request("GET", base + "/rebuild", "rebuild " + options.projection);
    const json& rebuild = g["rebuild"];
    if (rebuild.is_null() || rebuild["generation"] != generation) {
      throw CtlError("rebuild " + options.projection + ": the engine no longer reports it");
    }
    const std::string phase = rebuild["phase"].get<std::string>();
    const auto now = std::chrono::steady_clock::now();
    const bool finished = phase == "done" || phase == "failed" || phase == "cancelled";
    if (bar || finished || now - last_line >= std::chrono::seconds(5)) {
      showProgress(rebuild, bar);
      last_line = now;
    }
    if (!finished) continue;
    if (bar) std::fprintf(stderr, "\n");
    if (phase != "done") {
      throw CtlError("rebuild " + options.projection + " " + phase + ": " +
                     rebuild.value("detail", std::string()));
    }
    printGenerations(g);
    return;
  }
}

void registerGenerationCommands(CLI::App& app, const CtlContext& context) {
  auto options = std::make_shared<ActionOptions>();
  auto* rollback_cmd = app.add_subcommand(
      "rollback", "make the previous generation live again (after rebuild; admin endpoint)");
  auto* drop_cmd = app.add_subcommand(
      "drop", "drop the previous generation kept for rollback (admin endpoint)");
  auto* reset_cmd = app.add_subcommand(
      "reset", "in-place replay: empty the read model and consume from the start (downtime)");
  for (auto* cmd : {rollback_cmd, drop_cmd, reset_cmd}) {
    cmd->add_option("projection", options->projection, "the projection")->required();
    cmd->add_option("--admin-url", options->admin_url,
                    "the engine's admin endpoint (default: admin.listen)");
  }
  for (auto* cmd : {drop_cmd, reset_cmd}) {
    cmd->add_flag("-y,--yes", options->yes, "do not ask for confirmation");
  }
  reset_cmd->add_flag("--offline", options->offline,
                      "the engine is stopped: reset in PostgreSQL directly; it replays on start");
  rollback_cmd->callback([&context, options] { rollback(context, *options); });
  drop_cmd->callback([&context, options] { drop(context, *options); });
  reset_cmd->callback([&context, options] { reset(context, *options); });
}

}  // namespace ultracore::ctl
