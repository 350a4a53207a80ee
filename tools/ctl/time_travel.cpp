#include "tools/ctl/time_travel.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <optional>
#include <regex>
#include <vector>

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>
#include <pqxx/connection>
#include <pqxx/result>
#include <pqxx/transaction>

#include "engine/kafka/kafka_record.h"
#include "engine/manifest/manifest.h"
#include "engine/plugin/plugin_loader.h"
#include "engine/postgres/dedupe_store.h"
#include "engine/postgres/pg_errors.h"
#include "engine/postgres/pg_writer.h"
#include "engine/runner/plugin_logger.h"
#include "tools/ctl/kafka_client.h"
#include "ultracore/sdk/envelope.h"

namespace ultracore::ctl {
namespace {

using nlohmann::json;
using TopicPartition = std::pair<std::string, std::int32_t>;

std::string tpText(const TopicPartition& tp) { return tp.first + ":" + std::to_string(tp.second); }

bool isPlainSchemaName(const std::string& name) {
  static const std::regex kName("^[a-z_][a-z0-9_]{0,62}$");
  return std::regex_match(name, kName);
}

/// One record read for the build, with its envelope when it parsed.
struct Item {
  engine::KafkaRecord record;
  std::optional<sdk::Event> event;
  sdk::Status parse_status;
};

std::string position(const engine::KafkaRecord& record) {
  return record.topic + "[" + std::to_string(record.partition) + "]@" +
         std::to_string(record.offset);
}

class Builder {
 public:
  Builder(pqxx::connection& connection, sdk::Projection& projection, std::string schema,
          engine::ErrorPolicy on_error)
      : connection_(connection),
        projection_(projection),
        schema_(std::move(schema)),
        on_error_(on_error) {
    applied_table_ = connection_.quote_name(schema_) + ".ultracore_time_travel_applied";
  }

  /// Applies `items` (log order per partition). Throws CtlError on a `fail` poison or a
  /// database fault.
  void applyBatch(std::vector<Item>& items) {
    if (items.empty()) return;
    const bool all_parsed =
        std::all_of(items.begin(), items.end(), [](const Item& i) { return i.event.has_value(); });
    if (all_parsed) {
      std::vector<sdk::Event> events;
      std::size_t duplicates = 0;
      sdk::Status status;
      try {
        pqxx::work txn(connection_, "ultracore-time-travel");
        std::vector<engine::DedupeItem> claims;
        for (const auto& item : items) {
          claims.push_back({&*item.event, item.record.topic, item.record.partition,
                            item.record.offset});
        }
        const engine::DedupeClaim claim = engine::claimEvents(txn, "time-travel", claims, applied_table_);
        status = claim.conflict;
        for (std::size_t i = 0; i < items.size(); ++i) {
          if (claim.fresh[i]) events.push_back(*items[i].event);
        }
        duplicates = claim.duplicates;
        if (status && !events.empty()) {
          engine::PgWriter writer(txn, schema_);
          status = projection_.apply(events, writer);
        }
        if (status) txn.commit();
      } catch (...) {
        status = engine::statusFromCurrentException();
      }
      if (status) {
        applied_ += events.size();
        duplicates_ += duplicates;
        return;
      }
      if (status.code() == sdk::StatusCode::kTransient) {
        throw CtlError("PostgreSQL: " + status.message());
      }
    }
    // Isolate the failing event(s): one savepoint per event, in order.
    try {
      pqxx::work txn(connection_, "ultracore-time-travel-isolate");
      engine::PgWriter writer(txn, schema_);
      std::size_t applied = 0, duplicates = 0, skipped = 0;
      for (auto& item : items) {
        if (!item.event) {
          poison(txn, item, item.parse_status);
          ++skipped;
          continue;
        }
        txn.exec0("SAVEPOINT ultracore_time_travel");
        sdk::Status status;
        try {
          const engine::DedupeClaim claim = engine::claimEvents(
              txn, "time-travel",
              {{&*item.event, item.record.topic, item.record.partition, item.record.offset}},
              applied_table_);
          if (claim.conflict && !claim.fresh[0]) {
            txn.exec0("RELEASE SAVEPOINT ultracore_time_travel");
            ++duplicates;
            continue;
          }
          status = claim.conflict;
          if (status) status = projection_.apply(std::span<const sdk::Event>(&*item.event, 1), writer);
        } catch (...) {
          status = engine::statusFromCurrentException();
        }
        if (status.code() == sdk::StatusCode::kTransient) {
          throw CtlError("PostgreSQL: " + status.message());
        }
        if (status) {
          txn.exec0("RELEASE SAVEPOINT ultracore_time_travel");
          ++applied;
        } else {
          txn.exec0("ROLLBACK TO SAVEPOINT ultracore_time_travel");
          poison(txn, item, status);
          ++skipped;
        }
      }
      txn.commit();
      applied_ += applied;
      duplicates_ += duplicates;
      skipped_ += skipped;
    } catch (const CtlError&) {
      throw;
    } catch (...) {
      throw CtlError("PostgreSQL: " + engine::statusFromCurrentException().message());
    }
  }

  std::size_t applied() const { return applied_; }
  std::size_t duplicates() const { return duplicates_; }
  std::size_t skipped() const { return skipped_; }

 private:
  void poison(pqxx::work& txn, const Item& item, const sdk::Status& error) {
    const std::string event_id = item.event ? item.event->eventId() : "";
    const std::string where =
        position(item.record) + (event_id.empty() ? "" : " (event_id " + event_id + ")");
    if (on_error_ == engine::ErrorPolicy::kFail) {
      throw CtlError("stopped at " + where + ": " + error.message() +
                     " (the projection's on_error is fail)");
    }
    std::fprintf(stderr, "skipped %s: %s\n", where.c_str(), error.message().c_str());
    txn.exec_params0("INSERT INTO " + txn.quote_name(schema_) +
                         ".ultracore_time_travel_skipped (topic, partition, \"offset\", event_id, "
                         "reason) VALUES ($1, $2, $3, NULLIF($4, ''), $5)",
                     item.record.topic, item.record.partition, item.record.offset, event_id,
                     error.message());
  }

  pqxx::connection& connection_;
  sdk::Projection& projection_;
  std::string schema_;
  engine::ErrorPolicy on_error_;
  std::string applied_table_;  ///< the duplicate check, in the target schema (not in memory)
  std::size_t applied_ = 0, duplicates_ = 0, skipped_ = 0;
};

/// The schema every manifest projection writes into live (as the engine decides it), plus what
/// the engine recorded in ultracore_projection_schemas.
std::map<std::string, std::string> liveSchemas(const engine::Manifest& manifest,
                                               const engine::PluginRegistry& plugins,
                                               pqxx::connection& connection) {
  std::map<std::string, std::string> schemas;  // schema -> projection
  for (const auto& spec : manifest.projections) {
    std::string schema = spec.schema;
    if (schema.empty()) {
      const auto* plugin = plugins.find(spec.plugin);
      const auto* factory = plugin ? plugin->findProjection(spec.projection) : nullptr;
      schema = factory && factory->default_schema && *factory->default_schema
                   ? factory->default_schema
                   : spec.name;
    }
    schemas.emplace(schema, spec.name);
  }
  pqxx::read_transaction txn(connection);
  if (!txn.exec("SELECT to_regclass('public.ultracore_projection_schemas')")[0][0].is_null()) {
    for (const auto& row :
         txn.exec("SELECT schema_name, projection FROM ultracore_projection_schemas")) {
      schemas.emplace(row[0].as<std::string>(), row[1].as<std::string>());
    }
  }
  return schemas;
}

}  // namespace

std::string TimeTravelUntil::describe() const {
  if (kind == Kind::kTime) return isoTimeMs(time_ms);
  std::string text;
  for (const auto& [tp, offset] : offsets) {
    text += (text.empty() ? "" : ",") + tpText(tp) + "=" + std::to_string(offset);
  }
  return text;
}


void runTimeTravel(const CtlContext& context, const TimeTravelRequest& request) {
  const TimeTravelUntil until = parseUntil(request.until);
  const std::string& schema = request.schema;
  if (!isPlainSchemaName(schema)) {
    throw CtlError(
        "--into '" + schema + "': use a lower-case identifier ([a-z_][a-z0-9_]*, at most 63)", 2);
  }
  if (schema == "public" || schema == "information_schema" || schema.rfind("pg_", 0) == 0) {
    throw CtlError("--into '" + schema + "': a system schema; choose a schema of its own", 2);
  }
  const engine::Manifest manifest = engine::loadManifest(context.config);
  const engine::ProjectionSpec* spec = manifest.findProjection(request.projection);
  if (spec == nullptr) {
    std::string names;
    for (const auto& p : manifest.projections) names += (names.empty() ? "" : ", ") + p.name;
    throw CtlError("no projection '" + request.projection + "' in " + context.config +
                       " (it has: " + names + ")",
                   2);
  }
  if (until.kind == TimeTravelUntil::Kind::kOffsets) {
    for (const auto& [tp, offset] : until.offsets) {
      if (std::find(spec->topics.begin(), spec->topics.end(), tp.first) == spec->topics.end()) {
        throw CtlError(
            "--until: projection '" + spec->name + "' does not read topic '" + tp.first + "'", 2);
      }
    }
  }
  // Plugin log lines and our progress go to stderr; stdout is the summary.
  spdlog::set_default_logger(spdlog::stderr_color_st("ultracore-ctl"));

  // Every plugin of the manifest, as the engine loads them: needed to know the live schemas.
  engine::PluginRegistry plugins;
  for (const auto& plugin : manifest.plugins) plugins.load(plugin.name, plugin.library);
  const engine::LoadedPlugin* plugin = plugins.find(spec->plugin);
  if (plugin == nullptr || plugin->findProjection(spec->projection) == nullptr) {
    throw CtlError("projection '" + spec->name + "': plugin '" + spec->plugin +
                       "' offers no projection '" + spec->projection + "'",
                   2);
  }

  auto connection = context.connect();
  const auto live = liveSchemas(manifest, plugins, *connection);
  if (const auto it = live.find(schema); it != live.end()) {
    throw CtlError("--into '" + schema + "' is the live schema of projection '" + it->second +
                       "'; time travel never writes into a live schema",
                   2);
  }
  // <live schema>__g<N> is where rebuilds build and keep generations (a rebuild drops it).
  for (const auto& [live_schema, projection] : live) {
    const std::string prefix = live_schema + "__g";
    if (schema.rfind(prefix, 0) == 0 && schema.size() > prefix.size() &&
        schema.find_first_not_of("0123456789", prefix.size()) == std::string::npos) {
      throw CtlError("--into '" + schema + "' is a generation schema of projection '" +
                         projection + "' (rebuilds use and drop those); choose another name",
                     2);
    }
  }
  bool exists = false;
  {
    pqxx::read_transaction txn(*connection);
    exists = !txn.exec_params("SELECT 1 FROM pg_namespace WHERE nspname = $1", schema).empty();
    if (exists && !request.replace) {
      throw CtlError("schema '" + schema + "' already exists (--replace drops and rebuilds it)", 2);
    }
    if (exists && txn.exec_params("SELECT to_regclass($1)",
                                  txn.quote_name(schema) + ".ultracore_time_travel")[0][0]
                      .is_null()) {
      throw CtlError("schema '" + schema +
                         "' exists and was not made by a time-travel build (it has no "
                         "ultracore_time_travel table); --replace only drops such schemas",
                     2);
    }
  }

  // The range to read, captured now: later records are never part of this build.
  // As the engine's consumer for this projection: the manifest's map, then the projection's
  // own `kafka:` overrides; --bootstrap still wins.
  auto properties = context.kafkaProperties(manifest);
  for (const auto& [key, value] : spec->kafka) properties[key] = value;
  if (!context.bootstrap.empty()) properties["bootstrap.servers"] = context.bootstrap;
  engine::KafkaHandle consumer = makeAssignConsumer(
      properties, {{"auto.offset.reset", "error"}, {"enable.partition.eof", "true"}});
  std::map<TopicPartition, std::int64_t> ends;  // exclusive end offset per partition
  for (const auto& topic : spec->topics) {
    for (const std::int32_t partition : topicPartitions(consumer.get(), topic)) {
      const auto [low, high] = watermarks(consumer.get(), topic, partition);
      std::int64_t end = high;
      if (until.kind == TimeTravelUntil::Kind::kOffsets) {
        const auto it = until.offsets.find({topic, partition});
        end = it == until.offsets.end() ? 0 : it->second;
        if (end > high) {
          throw CtlError("--until: " + topic + ":" + std::to_string(partition) + "=" +
                             std::to_string(end) + " is beyond the log end (" +
                             std::to_string(high) + ")",
                         2);
        }
      }
      if (end > 0 && low > 0) {
        throw CtlError(topic + "[" + std::to_string(partition) + "] starts at offset " +
                       std::to_string(low) +
                       ": earlier records were deleted (retention), so the read model at that "
                       "moment cannot be rebuilt from the log");
      }
      ends[{topic, partition}] = end;
    }
  }
  for (const auto& [tp, offset] : until.offsets) {
    if (ends.count(tp) == 0) {
      throw CtlError(
          "--until: topic '" + tp.first + "' has no partition " + std::to_string(tp.second), 2);
    }
  }
  json end_offsets = json::object();
  for (const auto& [tp, end] : ends) end_offsets[tpText(tp)] = end;

  // The schema, the projection's tables and the description row.
  engine::PluginLogger logger(spec->plugin + "/" + spec->name + " (time travel)");
  sdk::ProjectionContext projection_context{spec->name, schema, spec->config, &logger};
  auto projection = plugin->createProjection(spec->projection, projection_context);
  const std::string q = connection->quote_name(schema);
  try {
    pqxx::work txn(*connection, "ultracore-time-travel-setup");
    if (exists) txn.exec0("DROP SCHEMA " + q + " CASCADE");
    txn.exec0("CREATE SCHEMA " + q);
    engine::PgWriter writer(txn, schema);
    if (sdk::Status status = projection->setupSchema(writer); !status) {
      throw CtlError("projection '" + spec->name + "': schema setup in '" + schema +
                     "' failed: " + status.message());
    }
    txn.exec0("CREATE TABLE " + q +
              ".ultracore_time_travel (projection text NOT NULL, until text NOT NULL, "
              "until_kind text NOT NULL, until_time timestamptz, status text NOT NULL, "
              "started_at timestamptz NOT NULL DEFAULT now(), built_at timestamptz, "
              "events bigint NOT NULL DEFAULT 0, skipped bigint NOT NULL DEFAULT 0, "
              "duplicates bigint NOT NULL DEFAULT 0, end_offsets jsonb NOT NULL, "
              "plugin text NOT NULL, schema_version int NOT NULL, error text)");
    txn.exec0("CREATE TABLE " + q +
              ".ultracore_time_travel_skipped (topic text NOT NULL, partition int NOT NULL, "
              "\"offset\" bigint NOT NULL, event_id text, reason text NOT NULL, "
              "PRIMARY KEY (topic, partition, \"offset\"))");
    // The build's own duplicate check (processed_events' shape, engine/postgres/dedupe_store):
    // in the target schema, not in memory, so a build over any history stays bounded.
    txn.exec0("CREATE TABLE " + q +
              ".ultracore_time_travel_applied (projection text NOT NULL, event_id text NOT NULL, "
              "aggregate_id text NOT NULL, event_type text NOT NULL, topic text NOT NULL, "
              "partition integer NOT NULL, \"offset\" bigint NOT NULL, fingerprint bigint, "
              "processed_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (projection, event_id))");
    const bool by_time = until.kind == TimeTravelUntil::Kind::kTime;
    txn.exec_params0(
        "INSERT INTO " + q +
            ".ultracore_time_travel (projection, until, until_kind, until_time, status, "
            "end_offsets, plugin, schema_version) VALUES ($1, $2, $3, "
            "CASE WHEN $3 = 'time' THEN to_timestamp($4::bigint / 1000.0) END, 'building', "
            "$5::jsonb, $6, $7)",
        spec->name, until.describe(), by_time ? "time" : "offsets", until.time_ms,
        end_offsets.dump(), spec->plugin, projection->schemaVersion());
    txn.exec0("COMMENT ON SCHEMA " + q + " IS " +
              txn.quote("UltraCore time travel: projection " + spec->name + " until " +
                        until.describe() + "; see ultracore_time_travel (not live)"));
    txn.commit();
  } catch (const CtlError&) {
    throw;
  } catch (const std::exception& e) {
    throw CtlError("creating schema '" + schema + "': " + e.what());
  }

  std::fprintf(
      stderr, "time travel: projection '%s' into schema '%s', until %s; reading %zu partition(s)\n",
      spec->name.c_str(), schema.c_str(), until.describe().c_str(), ends.size());

  Builder builder(*connection, *projection, schema, spec->on_error);
  std::size_t read = 0, after_until = 0;
  const auto markFailed = [&](const std::string& error) {
    try {
      auto fresh = context.connect();
      pqxx::work txn(*fresh);
      txn.exec_params0("UPDATE " + q +
                           ".ultracore_time_travel SET status = 'failed', error = $1, events = $2, "
                           "skipped = $3, duplicates = $4",
                       error, static_cast<std::int64_t>(builder.applied()),
                       static_cast<std::int64_t>(builder.skipped()),
                       static_cast<std::int64_t>(builder.duplicates()));
      txn.commit();
    } catch (const std::exception& e) {
      std::fprintf(stderr, "could not mark the build failed in %s.ultracore_time_travel: %s\n",
                   schema.c_str(), e.what());
    }
  };
  try {
    const auto& stop = installStopSignals();
    std::size_t open = 0;
    std::map<TopicPartition, bool> done;
    rd_kafka_topic_partition_list_t* list =
        rd_kafka_topic_partition_list_new(static_cast<int>(ends.size()));
    for (const auto& [tp, end] : ends) {
      done[tp] = end <= 0;
      if (end <= 0) continue;
      rd_kafka_topic_partition_list_add(list, tp.first.c_str(), tp.second)->offset =
          RD_KAFKA_OFFSET_BEGINNING;
      ++open;
    }
    const rd_kafka_resp_err_t assign_err = rd_kafka_assign(consumer.get(), list);
    rd_kafka_topic_partition_list_destroy(list);
    if (assign_err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      throw CtlError(std::string("cannot assign the partitions: ") + rd_kafka_err2str(assign_err));
    }
    const auto finish = [&](const TopicPartition& tp) {
      if (done[tp]) return;
      done[tp] = true;
      --open;
      rd_kafka_topic_partition_list_t* one = rd_kafka_topic_partition_list_new(1);
      rd_kafka_topic_partition_list_add(one, tp.first.c_str(), tp.second);
      rd_kafka_pause_partitions(consumer.get(), one);  // nothing beyond the end is needed
      rd_kafka_topic_partition_list_destroy(one);
    };
    const std::size_t max_batch = static_cast<std::size_t>(std::max(1, spec->batch.max_events));
    std::vector<Item> batch;
    auto last_progress = std::chrono::steady_clock::now();
    while (open > 0) {
      if (stop.load()) throw CtlError("interrupted");
      rd_kafka_message_t* message = rd_kafka_consumer_poll(consumer.get(), 200);
      if (message != nullptr) {
        const TopicPartition tp{message->rkt ? rd_kafka_topic_name(message->rkt) : "",
                                message->partition};
        const auto end_it = ends.find(tp);
        if (message->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
          if (end_it != ends.end() && message->offset >= end_it->second) finish(tp);
        } else if (message->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
          const std::string error = rd_kafka_message_errstr(message);
          const bool fatal = message->err == RD_KAFKA_RESP_ERR__AUTO_OFFSET_RESET ||
                             message->err == RD_KAFKA_RESP_ERR_OFFSET_OUT_OF_RANGE ||
                             message->err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART ||
                             message->err == RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION;
          rd_kafka_message_destroy(message);
          if (fatal) throw CtlError("Kafka: " + tpText(tp) + ": " + error);
          std::fprintf(stderr, "kafka: %s (retrying)\n", error.c_str());
          continue;
        } else if (end_it != ends.end() && !done[tp]) {
          engine::KafkaRecord record = engine::KafkaRecord::copyOf(*message);
          if (record.offset < end_it->second) {
            ++read;
            const bool belongs = until.kind == TimeTravelUntil::Kind::kOffsets ||
                                 (record.timestamp_ms >= 0 && record.timestamp_ms <= until.time_ms);
            if (belongs) {
              Item item{std::move(record), std::nullopt, sdk::Status::ok()};
              auto envelope =
                  sdk::parseEnvelope(item.record.value ? *item.record.value : std::string_view());
              if (envelope) {
                item.event.emplace(
                    std::move(envelope.value()),
                    sdk::RecordPosition{item.record.topic, item.record.partition,
                                        item.record.offset, item.record.timestamp_ms});
              } else {
                item.parse_status = envelope.status();
              }
              batch.push_back(std::move(item));
            } else {
              ++after_until;
            }
          }
          if (message->offset + 1 >= end_it->second) finish(tp);
        }
        rd_kafka_message_destroy(message);
      }
      if (batch.size() >= max_batch || (message == nullptr && !batch.empty()) || open == 0) {
        builder.applyBatch(batch);
        batch.clear();
      }
      if (std::chrono::steady_clock::now() - last_progress > std::chrono::seconds(2)) {
        last_progress = std::chrono::steady_clock::now();
        std::fprintf(
            stderr,
            "time travel: %zu record(s) read, %zu applied, %zu skipped, %zu partition(s) to go\n",
            read, builder.applied(), builder.skipped(), open);
      }
    }
    builder.applyBatch(batch);
    rd_kafka_consumer_close(consumer.get());

    pqxx::work txn(*connection, "ultracore-time-travel-done");
    txn.exec_params0("UPDATE " + q +
                         ".ultracore_time_travel SET status = 'complete', built_at = now(), "
                         "events = $1, skipped = $2, duplicates = $3",
                     static_cast<std::int64_t>(builder.applied()),
                     static_cast<std::int64_t>(builder.skipped()),
                     static_cast<std::int64_t>(builder.duplicates()));
    txn.commit();
  } catch (const CtlError& e) {
    markFailed(e.what());
    throw CtlError(std::string(e.what()) + "; schema '" + schema +
                   "' is incomplete (status 'failed' in " + schema +
                   ".ultracore_time_travel; --replace rebuilds it)");
  } catch (const std::exception& e) {
    markFailed(e.what());
    throw CtlError(std::string(e.what()) + "; schema '" + schema +
                   "' is incomplete (status 'failed'; --replace rebuilds it)");
  }

  std::printf("time travel build of projection '%s' into schema '%s': complete\n",
              spec->name.c_str(), schema.c_str());
  std::printf("  until:       %s (%s)\n", until.describe().c_str(),
              until.kind == TimeTravelUntil::Kind::kTime ? "records with Kafka timestamp <= it"
                                                         : "records with offset < next offset");
  std::printf("  applied:     %zu event(s)\n", builder.applied());
  std::printf(
      "  skipped:     %zu event(s) (on_error %s; listed in %s.ultracore_time_travel_skipped), "
      "%zu duplicate event_id(s)\n",
      builder.skipped(), engine::toString(spec->on_error), schema.c_str(), builder.duplicates());
  if (until.kind == TimeTravelUntil::Kind::kTime) {
    std::printf("  later:       %zu record(s) with a timestamp after until (not applied)\n",
                after_until);
  }
  std::printf("  end offsets: ");
  bool first = true;
  for (const auto& [tp, end] : ends) {
    std::printf("%s%s=%lld", first ? "" : ", ", tpText(tp).c_str(), static_cast<long long>(end));
    first = false;
  }
  std::printf("\n  query it:    SELECT * FROM %s.ultracore_time_travel;\n", schema.c_str());
}

}  // namespace ultracore::ctl
