#include "engine/http/console_messages.h"

#include <algorithm>
#include <charconv>
#include <memory>
#include <string_view>
#include <vector>

#include <librdkafka/rdkafka.h>

#include "engine/kafka/kafka_config.h"
#include "engine/kafka/topic_admin.h"
#include "engine/runner/envelope.h"

namespace ultracore::engine {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

constexpr auto kSetupTimeout = std::chrono::seconds(5);
constexpr std::size_t kMaxValueBytes = 256 * 1024;

struct PartitionListDeleter {
  void operator()(rd_kafka_topic_partition_list_t* list) const {
    rd_kafka_topic_partition_list_destroy(list);
  }
};
using PartitionList = std::unique_ptr<rd_kafka_topic_partition_list_t, PartitionListDeleter>;
struct MessageDeleter {
  void operator()(rd_kafka_message_t* message) const { rd_kafka_message_destroy(message); }
};

/// Text as JSON: itself when valid UTF-8, else \x hex (json's replace would lose bytes).
json bytesJson(const std::string& bytes) {
  try {
    return json::parse(json(bytes).dump());  // throws on invalid UTF-8
  } catch (const json::exception&) {
    static constexpr char kDigits[] = "0123456789abcdef";
    std::string out = "\\x";
    for (unsigned char c : bytes) {
      out.push_back(kDigits[c >> 4]);
      out.push_back(kDigits[c & 0xf]);
    }
    return out;
  }
}

/// Whether a filter value appears verbatim in a JSON text that holds it as a string: only
/// when JSON never escapes it (printable ASCII without quote, backslash or slash).
bool searchableVerbatim(const std::string& value) {
  return std::all_of(value.begin(), value.end(), [](char c) {
    return c >= 0x20 && c < 0x7f && c != '"' && c != '\\' && c != '/';
  });
}

class Matcher {
 public:
  explicit Matcher(const MessageQuery& query) : query_(query) {
    for (const std::string* field : {&query.aggregate_id, &query.event_type, &query.event_id}) {
      if (!field->empty() && searchableVerbatim(*field)) needles_.push_back(*field);
    }
  }
  bool matches(const rd_kafka_message_t& message) const {
    if (!query_.key.empty()) {
      if (message.key == nullptr ||
          std::string_view(static_cast<const char*>(message.key), message.key_len) != query_.key) {
        return false;
      }
    }
    if (query_.aggregate_id.empty() && query_.event_type.empty() && query_.event_id.empty()) {
      return true;
    }
    if (message.payload == nullptr) return false;
    const std::string_view value(static_cast<const char*>(message.payload), message.len);
    // Most records of a big topic fail here, without a JSON parse.
    for (const std::string& needle : needles_) {
      if (value.find(needle) == std::string_view::npos) return false;
    }
    const auto envelope = parseEnvelope(value);
    if (!envelope.isOk()) return false;
    const auto& e = envelope.value();
    return (query_.aggregate_id.empty() || e.aggregate_id == query_.aggregate_id) &&
           (query_.event_type.empty() || e.event_type == query_.event_type) &&
           (query_.event_id.empty() || e.event_id == query_.event_id);
  }

 private:
  const MessageQuery& query_;
  std::vector<std::string> needles_;
};

}  // namespace

std::map<std::int32_t, std::int64_t> parseCursor(const std::string& text) {
  std::map<std::int32_t, std::int64_t> cursor;
  if (text.empty()) return cursor;
  for (std::size_t at = 0;;) {
    const std::size_t comma = std::min(text.find(',', at), text.size());
    const std::string item = text.substr(at, comma - at);
    const std::size_t colon = item.find(':');
    std::int32_t partition = -1;
    std::int64_t offset = -1;
    const bool ok =
        colon != std::string::npos &&
        std::from_chars(item.data(), item.data() + colon, partition).ptr == item.data() + colon &&
        std::from_chars(item.data() + colon + 1, item.data() + item.size(), offset).ptr ==
            item.data() + item.size() &&
        partition >= 0 && offset >= 0;
    if (!ok) {
      throw MessageQueryError(400, "bad_request",
                              "cursor must be partition:offset pairs separated by commas, e.g. "
                              "0:120,1:98 (got '" + text + "')");
    }
    cursor[partition] = offset;
    if (comma == text.size()) return cursor;
    at = comma + 1;  // an empty item after a trailing comma is refused above
  }
}

std::string formatCursor(const std::map<std::int32_t, std::int64_t>& cursor) {
  std::string text;
  for (const auto& [partition, offset] : cursor) {
    if (!text.empty()) text += ",";
    text += std::to_string(partition) + ":" + std::to_string(offset);
  }
  return text;
}

json recordJson(const KafkaRecord& record) {
  json out = {{"topic", record.topic},
              {"partition", record.partition},
              {"offset", record.offset},
              {"timestamp_ms", record.timestamp_ms},
              {"timestamp", record.timestamp_ms >= 0 ? json(isoTimeMs(record.timestamp_ms)) : json()},
              {"key", record.key ? bytesJson(*record.key) : json()}};
  json headers = json::array();
  for (const auto& [name, value] : record.headers) {
    headers.push_back({{"key", name}, {"value", value ? bytesJson(*value) : json()}});
  }
  out["headers"] = std::move(headers);
  if (!record.value) {
    out["value"] = nullptr;
    out["parse_error"] = "the record has no value (a tombstone)";
    return out;
  }
  const std::string& value = *record.value;
  const auto envelope = parseEnvelope(value);
  if (envelope.isOk()) {
    out["envelope"] = json::parse(value);
    out["aggregate_id"] = envelope.value().aggregate_id;
    out["event_type"] = envelope.value().event_type;
    out["event_id"] = envelope.value().event_id;
    return out;
  }
  out["parse_error"] = envelope.status().message();
  if (value.size() > kMaxValueBytes) {
    out["value"] = bytesJson(value.substr(0, kMaxValueBytes));
    out["truncated"] = true;
  } else {
    out["value"] = bytesJson(value);
  }
  return out;
}

json MessageBrowser::search(const MessageQuery& query, std::chrono::milliseconds budget) const {
  const auto started = Clock::now();
  const std::map<std::string, std::string> enforced = {
      {"client.id", "ultracore-console"},
      // Needed by assign() in librdkafka; never joined, nothing committed or stored.
      {"group.id", "ultracore-console-browser"},
      {"enable.auto.commit", "false"},
      {"enable.auto.offset.store", "false"},
      {"enable.partition.eof", "true"},
      {"allow.auto.create.topics", "false"},
      {"auto.offset.reset", "earliest"},
      // The dev broker answers a fetch only when this wait ends; Kafka as soon as data is there.
      {"fetch.wait.max.ms", "10"},
      {"queued.max.messages.kbytes", "32768"},
      {"max.partition.fetch.bytes", "4194304"}};
  const KafkaHandle rk = makeUnsubscribedConsumer({&kafka_, &enforced}, "console");
  rd_kafka_t* raw = rk.get();

  const auto cluster = describeCluster(raw, kSetupTimeout);
  const auto topic = cluster.find(query.topic);
  if (topic == cluster.end()) {
    throw MessageQueryError(404, "unknown_topic", "the cluster has no topic '" + query.topic + "'");
  }
  std::vector<std::int32_t> partitions;
  for (const auto& p : topic->second.partitions) {
    if (!query.partition || *query.partition == p.id) partitions.push_back(p.id);
  }
  if (partitions.empty()) {
    throw MessageQueryError(404, "unknown_partition",
                            "topic '" + query.topic + "' has no partition " +
                                std::to_string(query.partition.value_or(-1)) + " (it has " +
                                std::to_string(topic->second.partitions.size()) + ")");
  }
  if (!query.cursor.empty()) {
    for (const auto& [partition, offset] : query.cursor) {
      if (std::find(partitions.begin(), partitions.end(), partition) == partitions.end()) {
        throw MessageQueryError(400, "bad_request",
                                "the cursor names partition " + std::to_string(partition) +
                                    ", which this query does not read");
      }
    }
    // The cursor lists every partition still to read; the others are done.
    partitions.erase(std::remove_if(partitions.begin(), partitions.end(),
                                    [&](std::int32_t p) { return query.cursor.count(p) == 0; }),
                     partitions.end());
  }

  // Where each partition starts and ends (its high watermark now).
  std::map<std::int32_t, std::int64_t> next, end;
  std::map<std::int32_t, std::int64_t> low;
  const int setup_ms = static_cast<int>(std::chrono::milliseconds(kSetupTimeout).count());
  for (const std::int32_t p : partitions) {
    std::int64_t lo = 0, hi = 0;
    const rd_kafka_resp_err_t err =
        rd_kafka_query_watermark_offsets(raw, query.topic.c_str(), p, &lo, &hi, setup_ms);
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      throw std::runtime_error("watermarks of " + query.topic + "[" + std::to_string(p) +
                               "]: " + rd_kafka_err2str(err));
    }
    low[p] = lo;
    end[p] = hi;
  }
  const std::int64_t per_partition =
      static_cast<std::int64_t>((query.limit + partitions.size() - 1) / partitions.size());
  if (query.start == MessageQuery::Start::kTime && query.cursor.empty()) {
    PartitionList list(rd_kafka_topic_partition_list_new(static_cast<int>(partitions.size())));
    for (const std::int32_t p : partitions) {
      rd_kafka_topic_partition_list_add(list.get(), query.topic.c_str(), p)->offset = query.time_ms;
    }
    const rd_kafka_resp_err_t err = rd_kafka_offsets_for_times(raw, list.get(), setup_ms);
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      throw std::runtime_error(std::string("offsets for time: ") + rd_kafka_err2str(err));
    }
    for (int i = 0; i < list->cnt; ++i) {
      const auto& e = list->elems[i];
      next[e.partition] = e.err == RD_KAFKA_RESP_ERR_NO_ERROR && e.offset >= 0 ? e.offset : end[e.partition];
    }
  }
  for (const std::int32_t p : partitions) {
    std::int64_t start = 0;
    if (!query.cursor.empty()) {
      start = query.cursor.at(p);
    } else if (query.single) {
      start = query.offset;
      end[p] = std::min(end[p], query.offset + 1);
    } else {
      switch (query.start) {
        case MessageQuery::Start::kOldest: start = low[p]; break;
        case MessageQuery::Start::kNewest: start = end[p] - per_partition; break;
        case MessageQuery::Start::kOffset: start = query.offset; break;
        case MessageQuery::Start::kTime: start = next[p]; break;
      }
    }
    next[p] = std::clamp(start, low[p], std::max(low[p], end[p]));
  }

  std::int64_t to_scan = 0;
  for (const std::int32_t p : partitions) to_scan += std::max<std::int64_t>(0, end[p] - next[p]);
  std::vector<KafkaRecord> matches;
  std::int64_t scanned = 0;
  const Matcher matcher(query);
  // One partition at a time: librdkafka reads a single partition about four times faster
  // than six at once (docs/PERFORMANCE.md, "Operator console"), and the cursor keeps the
  // others where they were.
  const auto deadline = started + budget;
  for (const std::int32_t p : partitions) {
    if (next[p] >= end[p]) continue;
    if (matches.size() >= query.limit || Clock::now() >= deadline) break;
    PartitionList assignment(rd_kafka_topic_partition_list_new(1));
    rd_kafka_topic_partition_list_add(assignment.get(), query.topic.c_str(), p)->offset = next[p];
    if (const rd_kafka_resp_err_t err = rd_kafka_assign(raw, assignment.get())) {
      throw std::runtime_error(std::string("assign: ") + rd_kafka_err2str(err));
    }
    while (next[p] < end[p] && matches.size() < query.limit) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
      if (left.count() <= 0) break;
      std::unique_ptr<rd_kafka_message_t, MessageDeleter> message(
          rd_kafka_consumer_poll(raw, static_cast<int>(std::min<long long>(left.count(), 100))));
      if (!message || message->partition != p) continue;
      if (message->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
        next[p] = std::max(next[p], end[p]);  // gaps (control records) end below the watermark
        continue;
      }
      if (message->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        throw std::runtime_error(std::string("reading ") + query.topic + ": " +
                                 rd_kafka_message_errstr(message.get()));
      }
      if (message->offset < next[p]) continue;
      next[p] = message->offset + 1;
      if (message->offset >= end[p]) continue;
      ++scanned;
      if (matcher.matches(*message)) matches.push_back(KafkaRecord::copyOf(*message));
    }
    rd_kafka_assign(raw, nullptr);
  }

  std::sort(matches.begin(), matches.end(), [](const KafkaRecord& a, const KafkaRecord& b) {
    return std::tie(a.timestamp_ms, a.partition, a.offset) < std::tie(b.timestamp_ms, b.partition, b.offset);
  });
  json records = json::array();
  for (const KafkaRecord& record : matches) records.push_back(recordJson(record));
  std::map<std::int32_t, std::int64_t> cursor;
  for (const std::int32_t p : partitions) {
    if (next[p] < end[p]) cursor[p] = next[p];
  }
  json ends = json::object();
  for (const std::int32_t p : partitions) ends[std::to_string(p)] = end[p];
  return {{"topic", query.topic},
          {"partitions", partitions},
          {"records", std::move(records)},
          {"scanned", scanned},
          {"to_scan", to_scan},
          {"done", cursor.empty()},
          {"cursor", cursor.empty() ? json() : json(formatCursor(cursor))},
          {"end_offsets", ends},
          {"elapsed_ms", std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started).count()}};
}

}  // namespace ultracore::engine
