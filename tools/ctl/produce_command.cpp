#include "tools/ctl/produce_command.h"

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <iterator>
#include <map>
#include <memory>
#include <set>
#include <sstream>

#include "engine/http/catalog.h"
#include "engine/manifest/manifest.h"
#include "engine/plugin/plugin_loader.h"
#include "tools/ctl/envelope_file.h"
#include "tools/ctl/kafka_client.h"

namespace ultracore::ctl {
namespace {

struct Options {
  std::string topic;
  std::string file;
  bool generate_ids = false;
  bool no_validate = false;  ///< skip the event catalog's schemas
  int max_errors_shown = 20;
};

struct Delivery {
  bool reported = false;
  rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;
  std::int32_t partition = -1;
  std::int64_t offset = -1;
};

void onDelivery(rd_kafka_t*, const rd_kafka_message_t* message, void*) {
  auto* delivery = static_cast<Delivery*>(message->_private);
  delivery->reported = true;
  delivery->err = message->err;
  delivery->partition = message->partition;
  delivery->offset = message->offset;
}

std::string readAll(const std::string& file) {
  if (file == "-") {
    return std::string(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
  }
  std::ifstream in(file, std::ios::binary);
  if (!in) throw CtlError("cannot read " + file, 2);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

/// The entries whose event_data breaks a schema the manifest's plugins declare for its type on
/// `topic` (issue 16), as "WHERE: reason". A plugin that does not load is reported on stderr and
/// left out: its declarations are not checked.
std::vector<std::string> catalogErrors(const engine::Manifest& manifest, const EnvelopeFile& file,
                                       const std::string& topic) {
  engine::PluginRegistry plugins;
  for (const auto& plugin : manifest.plugins) {
    try {
      plugins.load(plugin.name, plugin.library);
    } catch (const engine::PluginError& e) {
      std::fprintf(stderr, "warning: the event catalog of plugin '%s' is not checked: %s\n",
                   plugin.name.c_str(), e.what());
    }
  }
  const auto catalog = engine::EventCatalog::build(manifest, plugins);
  std::vector<std::string> errors;
  for (const auto& entry : file.entries) {
    const auto type = entry.document.find("event_type");
    const auto data = entry.document.find("event_data");
    if (type == entry.document.end() || !type->is_string()) continue;  // the parser checked
    const nlohmann::json event_data =
        data == entry.document.end() ? nlohmann::json::object() : nlohmann::json::parse(data->dump());
    if (const auto rejected = catalog.validate(topic, type->get<std::string>(), event_data)) {
      errors.push_back(entry.where + ": " + rejected->message());
    }
  }
  return errors;
}

void produce(const CtlContext& context, const Options& options) {
  const auto manifest = engine::loadManifest(context.config);
  const std::map<std::string, std::string> properties =
      producerProperties(context.kafkaProperties(manifest));

  // Validate everything first: nothing is sent unless every envelope is valid.
  const EnvelopeFile file =
      readEnvelopeFile(readAll(options.file), options.file, {options.generate_ids});
  if (!file.errors.empty()) {
    for (std::size_t i = 0;
         i < file.errors.size() && i < static_cast<std::size_t>(options.max_errors_shown); ++i) {
      std::fprintf(stderr, "%s\n", file.errors[i].c_str());
    }
    if (file.errors.size() > static_cast<std::size_t>(options.max_errors_shown)) {
      std::fprintf(stderr, "... and %zu more\n", file.errors.size() - options.max_errors_shown);
    }
    throw CtlError(std::to_string(file.errors.size()) + " invalid envelope(s) in " +
                       (options.file == "-" ? "stdin" : options.file) + "; nothing produced",
                   2);
  }
  if (!options.no_validate) {
    const std::vector<std::string> errors = catalogErrors(manifest, file, options.topic);
    for (std::size_t i = 0;
         i < errors.size() && i < static_cast<std::size_t>(options.max_errors_shown); ++i) {
      std::fprintf(stderr, "%s\n", errors[i].c_str());
    }
    if (errors.size() > static_cast<std::size_t>(options.max_errors_shown)) {
      std::fprintf(stderr, "... and %zu more\n", errors.size() - options.max_errors_shown);
    }
    if (!errors.empty()) {
      throw CtlError(std::to_string(errors.size()) + " event(s) in " +
                         (options.file == "-" ? "stdin" : options.file) +
                         " break the event catalog's schemas; nothing produced "
                         "(--no-validate skips the catalog)",
                     2);
    }
  }

  const std::map<std::string, std::string> defaults = {
      {"partitioner", "murmur2_random"}, {"message.timeout.ms", "30000"}, {"linger.ms", "5"}};
  const std::map<std::string, std::string> forced = {
      {"enable.idempotence", "true"}, {"acks", "all"}, {"client.id", "ultracore-ctl"}};
  engine::KafkaConf conf;
  try {
    conf = engine::makeKafkaConf({&defaults, &properties, &forced});
  } catch (const engine::KafkaConfigError& e) {
    throw CtlError(e.what(), 2);
  }
  rd_kafka_conf_set_dr_msg_cb(conf.get(), onDelivery);
  rd_kafka_conf_set_log_cb(
      conf.get(), [](const rd_kafka_t*, int level, const char* facility, const char* message) {
        if (level <= 3) std::fprintf(stderr, "kafka: %s: %s\n", facility, message);
      });
  char error[512];
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf.get(), error, sizeof(error));
  if (rk == nullptr) throw CtlError(std::string("cannot create a Kafka producer: ") + error);
  conf.release();
  engine::KafkaHandle producer(rk);
  // Fails fast (exit 2) on a topic that does not exist instead of waiting message.timeout.ms.
  topicPartitions(producer.get(), options.topic);

  std::vector<Delivery> deliveries(file.entries.size());
  for (std::size_t i = 0; i < file.entries.size(); ++i) {
    const auto& entry = file.entries[i];
    const std::string value = entry.document.dump();
    for (;;) {
      const rd_kafka_resp_err_t err =
          rd_kafka_producev(producer.get(), RD_KAFKA_V_TOPIC(options.topic.c_str()),
                            RD_KAFKA_V_KEY(entry.aggregate_id.data(), entry.aggregate_id.size()),
                            RD_KAFKA_V_VALUE(const_cast<char*>(value.data()), value.size()),
                            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                            RD_KAFKA_V_OPAQUE(&deliveries[i]), RD_KAFKA_V_END);
      if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
        rd_kafka_poll(producer.get(), 50);
        continue;
      }
      if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        deliveries[i] = {true, err, -1, -1};
      }
      break;
    }
    rd_kafka_poll(producer.get(), 0);
  }
  // Every delivery report arrives within message.timeout.ms; flush until they all did.
  while (rd_kafka_outq_len(producer.get()) > 0) rd_kafka_flush(producer.get(), 1000);
  rd_kafka_poll(producer.get(), 0);

  std::map<std::int32_t, std::pair<std::int64_t, std::int64_t>> ranges;  // first, last offset
  std::map<std::int32_t, std::size_t> counts;
  std::size_t delivered = 0;
  std::vector<std::string> failures;
  for (std::size_t i = 0; i < deliveries.size(); ++i) {
    const Delivery& d = deliveries[i];
    if (!d.reported || d.err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      failures.push_back(file.entries[i].where + ": " +
                         (d.reported ? rd_kafka_err2str(d.err) : "no delivery report"));
      continue;
    }
    ++delivered;
    auto [it, inserted] = ranges.try_emplace(d.partition, d.offset, d.offset);
    if (!inserted) {
      it->second.first = std::min(it->second.first, d.offset);
      it->second.second = std::max(it->second.second, d.offset);
    }
    ++counts[d.partition];
  }
  std::printf("produced %zu of %zu event(s) to %s\n", delivered, deliveries.size(),
              options.topic.c_str());
  for (const auto& [partition, range] : ranges) {
    std::printf("  partition %d: %zu event(s), offsets %lld..%lld\n", partition, counts[partition],
                static_cast<long long>(range.first), static_cast<long long>(range.second));
  }
  if (!failures.empty()) {
    for (const auto& failure : failures)
      std::fprintf(stderr, "not delivered: %s\n", failure.c_str());
    throw CtlError(std::to_string(failures.size()) + " event(s) not delivered (the others were)");
  }
}

}  // namespace

void registerProduceCommands(CLI::App& app, const CtlContext& context) {
  auto options = std::make_shared<Options>();
  auto* cmd = app.add_subcommand(
      "produce",
      "send envelopes from a file to a topic (key = aggregate_id); all are validated first");
  cmd->add_option("topic", options->topic, "the topic")->required();
  cmd->add_option("file", options->file, "JSON lines, one JSON array or one object; - reads stdin")
      ->required();
  cmd->add_flag("--generate-ids", options->generate_ids,
                "fill a missing event_id with a new UUID and a missing occurred_at with now "
                "(default: a missing event_id is an error)");
  cmd->add_flag("--no-validate", options->no_validate,
                "do not check event_data against the schemas the manifest's plugins declare "
                "(the event catalog)");
  cmd->callback([&context, options] { produce(context, *options); });
}

}  // namespace ultracore::ctl
