#include "tools/ctl/tail_command.h"

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <memory>
#include <optional>
#include <set>

#include <nlohmann/json.hpp>

#include "engine/kafka/kafka_record.h"
#include "engine/manifest/manifest.h"
#include "tools/ctl/kafka_client.h"
#include "ultracore/sdk/envelope.h"
#include "ultracore/sdk/json_depth.h"

namespace ultracore::ctl {
namespace {

struct Options {
  std::string topic;
  bool from_beginning = false;
  std::optional<std::int64_t> max;
  std::optional<std::int32_t> partition;
  bool raw = false;
  bool exit_at_end = false;
};

/// Printable text: bytes below 0x20 (but tab/newline) as \xNN.
std::string printable(const std::string& bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  for (unsigned char c : bytes) {
    if (c >= 0x20 || c == '\n' || c == '\t') {
      out.push_back(static_cast<char>(c));
    } else {
      out += "\\x";
      out.push_back(kDigits[c >> 4]);
      out.push_back(kDigits[c & 0xf]);
    }
  }
  return out;
}

/// One record, as a block of lines followed by a blank line.
void printRecord(const engine::KafkaRecord& record, bool raw) {
  std::string out = record.topic + " partition " + std::to_string(record.partition) + " offset " +
                    std::to_string(record.offset) + "  " + isoTimeMs(record.timestamp_ms) +
                    "  key " + (record.key ? printable(*record.key) : "(null)") + "\n";
  for (const auto& [name, value] : record.headers) {
    out += "  header " + name + ": " + (value ? printable(*value) : "(null)") + "\n";
  }
  const std::string value = record.value.value_or("");
  const auto envelope = sdk::parseEnvelope(value);
  if (!envelope) out += "  error: " + envelope.status().message() + "\n";
  if (!record.value) {
    out += "(null value)\n";
  } else if (raw) {
    out += printable(value) + "\n";
  } else {
    // ordered_json: keys as the producer wrote them.
    // Too deep to dump safely (sdk/json_depth.h): printed raw, like a value that is not JSON.
    const auto document = sdk::jsonNestingExceeds(value)
                              ? nlohmann::ordered_json(nlohmann::ordered_json::value_t::discarded)
                              : nlohmann::ordered_json::parse(value, nullptr, false);
    // error_handler_t::replace: a string with invalid UTF-8 must not abort the printout.
    out +=
        document.is_discarded()
            ? printable(value) + "\n"
            : document.dump(2, ' ', false, nlohmann::ordered_json::error_handler_t::replace) + "\n";
  }
  out += "\n";
  std::fwrite(out.data(), 1, out.size(), stdout);
  std::fflush(stdout);
}

void tail(const CtlContext& context, const Options& options) {
  if (options.max && *options.max < 1) throw CtlError("--max must be at least 1", 2);
  const auto manifest = engine::loadManifest(context.config);
  const auto properties = context.kafkaProperties(manifest);
  // A reader on a closed pipe (tail | head) ends the command, quietly.
  std::signal(SIGPIPE, SIG_IGN);
  const auto& stop = installStopSignals();

  engine::KafkaHandle consumer = makeAssignConsumer(
      properties, {{"auto.offset.reset", "earliest"},
                   {"enable.partition.eof", options.exit_at_end ? "true" : "false"}});
  std::vector<std::int32_t> partitions = topicPartitions(consumer.get(), options.topic);
  if (options.partition) {
    if (std::find(partitions.begin(), partitions.end(), *options.partition) == partitions.end()) {
      throw CtlError("topic '" + options.topic + "' has no partition " +
                         std::to_string(*options.partition) + " (it has " +
                         std::to_string(partitions.size()) + ")",
                     2);
    }
    partitions = {*options.partition};
  }
  rd_kafka_topic_partition_list_t* list =
      rd_kafka_topic_partition_list_new(static_cast<int>(partitions.size()));
  for (const std::int32_t p : partitions) {
    rd_kafka_topic_partition_list_add(list, options.topic.c_str(), p)->offset =
        options.from_beginning ? RD_KAFKA_OFFSET_BEGINNING : RD_KAFKA_OFFSET_END;
  }
  const rd_kafka_resp_err_t err = rd_kafka_assign(consumer.get(), list);
  rd_kafka_topic_partition_list_destroy(list);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    throw CtlError("cannot assign " + options.topic + ": " + rd_kafka_err2str(err));
  }
  std::fprintf(stderr, "tailing %s (%zu partition(s)) from the %s; Ctrl-C stops\n",
               options.topic.c_str(), partitions.size(),
               options.from_beginning ? "beginning" : "log end");

  std::int64_t printed = 0;
  std::set<std::int32_t> at_end;  // --exit-at-end: partitions whose end was reached
  while (!stop.load() && (!options.max || printed < *options.max) &&
         (!options.exit_at_end || at_end.size() < partitions.size())) {
    rd_kafka_message_t* message = rd_kafka_consumer_poll(consumer.get(), 200);
    if (message == nullptr) continue;
    if (message->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
      at_end.erase(message->partition);
      printRecord(engine::KafkaRecord::copyOf(*message), options.raw);
      ++printed;
    } else if (message->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
      at_end.insert(message->partition);
    } else {
      std::fprintf(stderr, "kafka: %s\n", rd_kafka_message_errstr(message));
    }
    rd_kafka_message_destroy(message);
    if (std::ferror(stdout)) break;  // the reader went away
  }
  rd_kafka_consumer_close(consumer.get());
  std::fprintf(stderr, "%lld record(s)\n", static_cast<long long>(printed));
}

}  // namespace

void registerTailCommands(CLI::App& app, const CtlContext& context) {
  auto options = std::make_shared<Options>();
  auto* cmd = app.add_subcommand(
      "tail",
      "print a topic's records with their envelopes (invalid ones with the parser's "
      "error); reads without a consumer group");
  cmd->add_option("topic", options->topic, "the topic")->required();
  cmd->add_flag("--from-beginning", options->from_beginning,
                "start at the log start (default: the log end, only new records)");
  cmd->add_option("--max", options->max, "stop after N records");
  cmd->add_option("--partition", options->partition, "only this partition");
  cmd->add_flag("--raw", options->raw, "print the value as stored instead of indented JSON");
  cmd->add_flag("--exit-at-end", options->exit_at_end,
                "stop once every partition's end is reached (like kcat -e)");
  cmd->callback([&context, options] { tail(context, *options); });
}

}  // namespace ultracore::ctl
