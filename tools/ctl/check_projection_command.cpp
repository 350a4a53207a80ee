#include "tools/ctl/check_projection_command.h"

#include <algorithm>
#include <cstdio>
#include <map>
#include <memory>
#include <vector>

#include <librdkafka/rdkafka.h>

#include "engine/kafka/kafka_record.h"
#include "engine/manifest/manifest.h"
#include "engine/plugin/plugin_loader.h"
#include "tools/ctl/kafka_client.h"
#include "ultracore/sdk/envelope.h"
#include "ultracore/sdk/testing/projection_run.h"

namespace ultracore::ctl {
namespace {

using sdk::testing::ProjectionRun;
using sdk::testing::ProjectionSource;
using sdk::testing::SchemaSnapshot;

struct Options {
  std::string projection;
  std::size_t sample = 1000;
};

/// The first `sample` records of `topics` (each partition from its start, in its order; the
/// partitions interleaved as they arrive), as events. Records whose envelope does not parse
/// are counted in `invalid` and left out (the engine would treat them as poison).
std::vector<sdk::Event> readSample(const CtlContext& context, const engine::Manifest& manifest,
                                   const engine::ProjectionSpec& spec, std::size_t sample,
                                   std::size_t& invalid) {
  auto properties = context.kafkaProperties(manifest);
  for (const auto& [key, value] : spec.kafka) properties[key] = value;
  if (!context.bootstrap.empty()) properties["bootstrap.servers"] = context.bootstrap;
  engine::KafkaHandle consumer = makeAssignConsumer(
      properties, {{"auto.offset.reset", "earliest"}, {"enable.partition.eof", "true"}});
  std::map<std::pair<std::string, std::int32_t>, std::int64_t> ends;
  rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(8);
  for (const auto& topic : spec.topics) {
    for (const std::int32_t partition : topicPartitions(consumer.get(), topic)) {
      const auto [low, high] = watermarks(consumer.get(), topic, partition);
      if (high <= low) continue;
      ends[{topic, partition}] = high;
      rd_kafka_topic_partition_list_add(list, topic.c_str(), partition)->offset =
          RD_KAFKA_OFFSET_BEGINNING;
    }
  }
  const rd_kafka_resp_err_t err = rd_kafka_assign(consumer.get(), list);
  rd_kafka_topic_partition_list_destroy(list);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    throw CtlError(std::string("cannot assign the partitions: ") + rd_kafka_err2str(err));
  }
  std::vector<sdk::Event> events;
  const auto& stop = installStopSignals();
  while (events.size() < sample && !ends.empty()) {
    if (stop.load()) throw CtlError("interrupted");
    rd_kafka_message_t* message = rd_kafka_consumer_poll(consumer.get(), 200);
    if (message == nullptr) continue;
    const std::pair<std::string, std::int32_t> tp{
        message->rkt ? rd_kafka_topic_name(message->rkt) : "", message->partition};
    if (message->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
      ends.erase(tp);
    } else if (message->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      const std::string error = rd_kafka_message_errstr(message);
      rd_kafka_message_destroy(message);
      throw CtlError("Kafka: " + tp.first + "[" + std::to_string(tp.second) + "]: " + error);
    } else if (const auto it = ends.find(tp); it != ends.end()) {
      engine::KafkaRecord record = engine::KafkaRecord::copyOf(*message);
      if (record.offset + 1 >= it->second) ends.erase(it);
      auto envelope = sdk::parseEnvelope(record.value ? *record.value : std::string_view());
      if (envelope) {
        events.emplace_back(std::move(envelope.value()),
                            sdk::RecordPosition{record.topic, record.partition, record.offset,
                                                record.timestamp_ms});
      } else {
        ++invalid;
      }
    }
    rd_kafka_message_destroy(message);
  }
  return events;
}

/// "" when equal, else the tables and (a few) rows that differ.
std::string difference(const SchemaSnapshot& expected, const SchemaSnapshot& actual) {
  std::string out;
  for (const auto& [table, want] : expected) {
    const auto it = actual.find(table);
    if (it == actual.end()) {
      out += "\n  table " + table + " is missing";
      continue;
    }
    std::vector<std::string> only_want, only_got;
    std::set_difference(want.rows.begin(), want.rows.end(), it->second.rows.begin(),
                        it->second.rows.end(), std::back_inserter(only_want));
    std::set_difference(it->second.rows.begin(), it->second.rows.end(), want.rows.begin(),
                        want.rows.end(), std::back_inserter(only_got));
    if (want.columns != it->second.columns) out += "\n  table " + table + ": columns differ";
    if (only_want.empty() && only_got.empty()) continue;
    out += "\n  table " + table + ": " + std::to_string(want.rows.size()) + " vs " +
           std::to_string(it->second.rows.size()) + " rows";
    for (std::size_t i = 0; i < std::min<std::size_t>(5, only_want.size()); ++i) {
      out += "\n    - " + only_want[i];
    }
    for (std::size_t i = 0; i < std::min<std::size_t>(5, only_got.size()); ++i) {
      out += "\n    + " + only_got[i];
    }
  }
  for (const auto& [table, ignored] : actual) {
    if (expected.count(table) == 0) out += "\n  table " + table + " is unexpected";
  }
  return out;
}

void checkProjection(const CtlContext& context, const Options& options) {
  const engine::Manifest manifest = engine::loadManifest(context.config);
  const engine::ProjectionSpec* spec = manifest.findProjection(options.projection);
  if (spec == nullptr) {
    throw CtlError("no projection '" + options.projection + "' in " + context.config, 2);
  }
  const engine::PluginSpec* plugin_spec = manifest.findPlugin(spec->plugin);
  engine::PluginRegistry plugins;
  const engine::LoadedPlugin& plugin = plugins.load(plugin_spec->name, plugin_spec->library);
  const sdk::ProjectionFactory* factory = plugin.findProjection(spec->projection);
  if (factory == nullptr) {
    throw CtlError("projection '" + spec->name + "': plugin '" + spec->plugin +
                       "' offers no projection '" + spec->projection + "'",
                   2);
  }
  std::size_t invalid = 0;
  const auto events = readSample(context, manifest, *spec, options.sample, invalid);
  std::printf("check-projection %s: %zu events from %s%s\n", spec->name.c_str(), events.size(),
              spec->topics.size() == 1 ? spec->topics[0].c_str() : "its topics",
              invalid == 0 ? "" : (" (" + std::to_string(invalid) + " invalid envelopes left out)").c_str());
  std::fflush(stdout);
  const ProjectionSource source = ProjectionSource::fromPlugin(plugin_spec->library.string(),
                                                               factory->name);
  ProjectionRun::Options run_options;
  run_options.projection_name = spec->name;
  run_options.config = spec->config;
  const std::string url = context.postgresUrl();
  auto build = [&](const std::vector<sdk::Event>& input, std::size_t batch, bool restart,
                   SchemaSnapshot& out) -> sdk::Status {
    ProjectionRun run(url, source, run_options);
    std::span<const sdk::Event> all(input);
    if (restart) {
      if (auto s = run.apply(all.first(input.size() / 2), batch); !s) return s;
      run.restart();
      if (auto s = run.apply(all.subspan(input.size() / 2), batch); !s) return s;
    } else if (auto s = run.apply(all, batch); !s) {
      return s;
    }
    out = run.snapshot();
    return sdk::Status::ok();
  };
  SchemaSnapshot reference;
  if (auto s = build(events, 500, false, reference); !s) {
    throw CtlError("the projection fails on the sample (batches of 500): " + s.message() +
                   "\n(the engine would follow on_error; check-projection needs a sample it "
                   "applies: see `ultracore-ctl dead-letters list`)");
  }
  std::vector<sdk::Event> doubled;
  for (std::size_t i = 0; i < events.size(); ++i) {
    doubled.push_back(events[i]);
    if (i > 0) doubled.push_back(events[i - 1]);
  }
  doubled.insert(doubled.end(), events.begin(), events.end());
  struct Variant {
    const char* name;
    const std::vector<sdk::Event>* events;
    std::size_t batch;
    bool restart;
  };
  const Variant variants[] = {{"a second build from scratch", &events, 500, false},
                              {"batches of 1", &events, 1, false},
                              {"batches of 7", &events, 7, false},
                              {"every event delivered again (batches of 3) with a restart",
                               &doubled, 3, true}};
  bool same = true;
  for (const Variant& v : variants) {
    SchemaSnapshot other;
    const sdk::Status s = build(*v.events, v.batch, v.restart, other);
    std::string diff = s ? difference(reference, other) : "\n  failed: " + s.message();
    std::printf("  %-60s %s%s\n", v.name, diff.empty() ? "same" : "DIFFERS", diff.c_str());
    same = same && diff.empty();
  }
  std::size_t rows = 0;
  for (const auto& [table, snapshot] : reference) rows += snapshot.rows.size();
  std::printf("%s: %s (%zu tables, %zu rows)\n", spec->name.c_str(),
              same ? "deterministic on this sample" : "NOT deterministic on this sample",
              reference.size(), rows);
  if (!same) throw CtlError("projection '" + spec->name + "' is not deterministic", 1);
}

}  // namespace

void registerCheckProjectionCommand(CLI::App& app, const CtlContext& context) {
  auto options = std::make_shared<Options>();
  auto* cmd = app.add_subcommand(
      "check-projection",
      "the test kit's determinism check on a sample of the projection's topics: built again, "
      "with batches of 1 and 7, and with duplicates and a restart, in throwaway schemas, it "
      "must give the same tables (exit 1 with the differing rows if not)");
  cmd->add_option("projection", options->projection, "the manifest's projection name")
      ->required();
  cmd->add_option("--sample", options->sample,
                  "records to read from the start of its topics (default 1000)")
      ->check(CLI::Range(std::size_t{1}, std::size_t{1000000}));
  cmd->callback([&context, options] { checkProjection(context, *options); });
}

}  // namespace ultracore::ctl
