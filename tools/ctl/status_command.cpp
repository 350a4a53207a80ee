#include "tools/ctl/status_command.h"

#include <httplib.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <memory>
#include <optional>
#include <thread>

#include <librdkafka/rdkafka.h>
#include <nlohmann/json.hpp>
#include <pqxx/result>
#include <pqxx/transaction>

#include "engine/kafka/kafka_config.h"
#include "engine/manifest/manifest.h"
#include "tools/ctl/admin_client.h"
#include "tools/ctl/table.h"

namespace ultracore::ctl {
namespace {

using nlohmann::json;

struct Options {
  std::string projection;
  bool json_output = false;
  std::string admin_url;  ///< http://host:port; empty: from admin.listen
  double timeout_s = 10;
};

/// GET/POST on the admin endpoint; empty when it does not answer at all.
httplib::Result adminCall(const engine::Manifest& manifest, const Options& options,
                          const std::string& method, const std::string& path) {
  return AdminClient(manifest, options.admin_url).call(method, path);
}

struct Row {
  std::string projection, topic;
  int partition = 0;
  std::int64_t stored = 0;
  std::optional<std::int64_t> log_end, lag;
};

void status(const CtlContext& context, const Options& options) {
  const auto manifest = engine::loadManifest(context.config);
  auto connection = context.connect();
  std::vector<Row> rows;
  std::map<std::string, std::pair<std::string, std::string>> states;  // projection -> state, detail
  {
    pqxx::read_transaction txn(*connection);
    // The live generation's offsets under the projection's name, a rebuild's under its key
    // (`name@gN`, state "rebuilding"); a previous generation kept for rollback is not running.
    for (const auto& r : txn.exec_params(
             "WITH keys AS ("
             " SELECT projection AS name, ultracore_generation_key(projection, live_generation) AS key,"
             "  projection AS shown FROM ultracore_generations"
             " UNION ALL SELECT projection, ultracore_generation_key(projection, building_generation),"
             "  ultracore_generation_key(projection, building_generation) FROM ultracore_generations"
             "  WHERE building_generation IS NOT NULL) "
             "SELECT COALESCE(k.shown, o.projection) AS shown, o.topic, o.partition, o.next_offset "
             "FROM ultracore_offsets o LEFT JOIN keys k ON k.key = o.projection "
             "WHERE (k.key IS NOT NULL OR o.projection NOT LIKE '%@g%') "
             "AND ($1 = '' OR k.name = $1 OR o.projection = $1) "
             "AND NOT (k.key IS NULL AND o.projection IN (SELECT projection FROM ultracore_generations "
             "  WHERE live_generation > 1)) "
             "ORDER BY 1, o.topic, o.partition",
             options.projection)) {
      rows.push_back({r[0].as<std::string>(), r[1].as<std::string>(), r[2].as<int>(),
                      r[3].as<std::int64_t>(), std::nullopt, std::nullopt});
    }
    for (const auto& r : txn.exec_params(
             "SELECT projection, state, detail FROM ultracore_projection_status "
             "WHERE $1 = '' OR projection = $1 OR projection LIKE $1 || '@g%'",
             options.projection)) {
      states[r[0].as<std::string>()] = {r[1].as<std::string>(), r[2].as<std::string>()};
    }
  }
  // Projections the manifest names but that never ran show up too.
  std::vector<std::string> names;
  for (const auto& spec : manifest.projections) {
    if (options.projection.empty() || spec.name == options.projection) names.push_back(spec.name);
  }
  for (const auto& row : rows) {
    if (std::find(names.begin(), names.end(), row.projection) == names.end()) names.push_back(row.projection);
  }
  for (const auto& [name, state] : states) {
    if (std::find(names.begin(), names.end(), name) == names.end()) names.push_back(name);
  }
  if (!options.projection.empty() && names.empty()) {
    throw CtlError("no projection '" + options.projection + "' in the manifest or the database", 2);
  }

  // Log end offsets: a short-lived handle that only asks for watermarks.
  std::string kafka_error;
  if (!rows.empty()) {
    try {
      const std::map<std::string, std::string> enforced = {{"client.id", "ultracore-ctl"},
                                                           {"allow.auto.create.topics", "false"}};
      engine::KafkaConf conf = engine::makeKafkaConf({&manifest.kafka, &enforced});
      rd_kafka_conf_set_log_cb(conf.get(), [](const rd_kafka_t*, int, const char*, const char*) {});
      char error[512];
      rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf.get(), error, sizeof(error));
      if (rk == nullptr) throw std::runtime_error(error);
      conf.release();
      engine::KafkaHandle kafka(rk);
      const int timeout_ms = static_cast<int>(options.timeout_s * 1000);
      for (auto& row : rows) {
        std::int64_t low = -1, high = -1;
        const rd_kafka_resp_err_t err = rd_kafka_query_watermark_offsets(
            kafka.get(), row.topic.c_str(), row.partition, &low, &high, timeout_ms);
        if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
          kafka_error = rd_kafka_err2str(err);
          continue;
        }
        row.log_end = high;
        row.lag = std::max<std::int64_t>(0, high - (row.stored >= 0 ? row.stored : low));
      }
    } catch (const std::exception& e) {
      kafka_error = e.what();
    }
  }

  // events/s (and live state) from the running engine, when its admin endpoint answers.
  std::map<std::string, json> live;
  try {
    auto res = adminCall(manifest, options, "GET", "/api/v1/projections");
    if (res && res->status == 200) {
      const json body = json::parse(res->body);
      for (const auto& p : body["projections"]) live[p["name"].get<std::string>()] = p;
    } else if (!options.admin_url.empty()) {
      std::fprintf(stderr, "admin endpoint: %s\n",
                   res ? ("HTTP " + std::to_string(res->status)).c_str() : httplib::to_string(res.error()).c_str());
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "admin endpoint: %s\n", e.what());
  }

  json out = json::array();
  for (const auto& name : names) {
    json partitions = json::array();
    std::int64_t total = 0;
    bool total_known = true;
    for (const auto& row : rows) {
      if (row.projection != name) continue;
      partitions.push_back({{"topic", row.topic},
                            {"partition", row.partition},
                            {"stored_offset", row.stored},
                            {"log_end", row.log_end ? json(*row.log_end) : json(nullptr)},
                            {"lag", row.lag ? json(*row.lag) : json(nullptr)}});
      if (row.lag) total += *row.lag;
      else total_known = false;
    }
    const auto state = states.find(name);
    json entry{{"name", name},
               {"state", state == states.end() ? "unknown" : state->second.first},
               {"last_error", state == states.end() ? "" : state->second.second},
               {"lag", total_known ? json(total) : json(nullptr)},
               {"events_per_second", nullptr},
               {"partitions", partitions}};
    if (const auto it = live.find(name); it != live.end()) {
      entry["events_per_second"] = (*it).second["events_per_second"];
      entry["state"] = (*it).second["state"];  // fresher than the table
    }
    out.push_back(entry);
  }
  if (options.json_output) {
    json doc{{"projections", out}};
    if (!kafka_error.empty()) doc["kafka_error"] = kafka_error;
    std::printf("%s\n", doc.dump(2).c_str());
    return;
  }
  Table table({"PROJECTION", "STATE", "TOPIC", "PARTITION", "STORED", "LOG_END", "LAG", "EVENTS/S",
               "LAST_ERROR"});
  const auto show = [](const json& v) { return v.is_null() ? std::string("?") : v.dump(); };
  for (const auto& p : out) {
    char rate[32] = "-";
    if (p["events_per_second"].is_number()) {
      std::snprintf(rate, sizeof(rate), "%.1f", p["events_per_second"].get<double>());
    }
    if (p["partitions"].empty()) {
      table.add({p["name"], p["state"], "-", "-", "-", "-", "-", rate, p["last_error"]});
    }
    for (const auto& q : p["partitions"]) {
      table.add({p["name"], p["state"], q["topic"], show(q["partition"]), show(q["stored_offset"]),
                 show(q["log_end"]), show(q["lag"]), rate, p["last_error"]});
    }
  }
  table.print();
  if (!kafka_error.empty()) std::printf("log end unknown: Kafka: %s\n", kafka_error.c_str());
}

void pauseOrResume(const CtlContext& context, const Options& options, const std::string& action) {
  const auto manifest = engine::loadManifest(context.config);
  AdminClient(manifest, options.admin_url)
      .request("POST", "/api/v1/projections/" + options.projection + "/" + action,
               action + " " + options.projection);
  // Wait (bounded) until the runner reports the new state.
  const std::string wanted = action == "pause" ? "paused" : "running";
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(options.timeout_s);
  std::string state;
  while (std::chrono::steady_clock::now() < deadline) {
    if (auto r = adminCall(manifest, options, "GET", "/api/v1/projections"); r && r->status == 200) {
      const json body = json::parse(r->body);
      for (const auto& p : body["projections"]) {
        if (p["name"] == options.projection) state = p["state"].get<std::string>();
      }
      if (state == wanted || (action == "resume" && state != "paused")) {
        std::printf("%s: %s\n", options.projection.c_str(), state.c_str());
        return;
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  throw CtlError(options.projection + ": " + action + " requested, but the runner still reports '" + state + "'");
}

}  // namespace

void registerStatusCommands(CLI::App& app, const CtlContext& context) {
  auto options = std::make_shared<Options>();
  auto* status_cmd = app.add_subcommand("status", "offsets, log end, lag and state per projection");
  status_cmd->add_option("projection", options->projection, "only this projection");
  status_cmd->add_flag("--json", options->json_output, "print JSON");
  status_cmd->add_option("--admin-url", options->admin_url,
                         "the engine's admin endpoint (default: admin.listen) for events/s");
  status_cmd->add_option("--timeout", options->timeout_s, "seconds to wait for Kafka")->capture_default_str();
  status_cmd->callback([&context, options] { status(context, *options); });
  for (const std::string action : {"pause", "resume"}) {
    auto* cmd = app.add_subcommand(action, action == "pause"
                                               ? "stop fetching for a projection (admin endpoint)"
                                               : "resume a paused projection (admin endpoint)");
    cmd->add_option("projection", options->projection, "the projection")->required();
    cmd->add_option("--admin-url", options->admin_url, "the engine's admin endpoint (default: admin.listen)");
    cmd->add_option("--timeout", options->timeout_s, "seconds to wait for the new state")->capture_default_str();
    cmd->callback([&context, options, action] { pauseOrResume(context, *options, action); });
  }
}

}  // namespace ultracore::ctl
