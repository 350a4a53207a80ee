#include "kafka_test_support.h"

#include <fstream>
#include <iterator>
#include <memory>
#include <stdexcept>

#include <gtest/gtest.h>
#include <httplib.h>
#include <librdkafka/rdkafka.h>

namespace ultracore::testing {

std::filesystem::path writeKafkaManifest(const TempDir& dir, const std::string& bootstrap,
                                         const std::string& postgres_url,
                                         const std::string& kafka_yaml,
                                         const std::string& projections_yaml,
                                         const std::string& name) {
  const auto path = writeManifest(dir, bootstrap, postgres_url, projections_yaml, name);
  std::ifstream in(path);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const std::string harness_lines = "  session.timeout.ms: 3000\n  heartbeat.interval.ms: 500\n";
  const auto at = text.find(harness_lines);
  if (at == std::string::npos) throw std::runtime_error("writeManifest changed its kafka: block");
  text.replace(at, harness_lines.size(), kafka_yaml);
  std::ofstream(path) << text;
  return path;
}

void cleanPass(const TempDir& dir, const std::string& bootstrap, const std::string& url,
               const std::string& topic, std::size_t records_in_log) {
  using namespace std::chrono_literals;
  auto manifest = writeManifest(dir, bootstrap, url,
                                "  - name: ledger\n" + kLedger + "    topics: [" + topic +
                                    "]\n    group_id: clean-pass\n",
                                "clean.yaml");
  auto engine = startEngine(manifest, dir.path() / "clean.log");
  ASSERT_TRUE(waitForEngineRunning(*engine)) << engine->log();
  ASSERT_TRUE(waitUntil([&] { return storedSum(url) == std::to_string(records_in_log); }, 240s))
      << engine->log();
  engine->signal(SIGTERM);
  EXPECT_EQ(engine->wait(60s), 0) << engine->log();
}

void expectSameAsCleanPass(const std::string& url, const std::string& clean_url,
                           std::size_t distinct) {
  EXPECT_EQ(queryValue(url, "SELECT sum(events) FROM ledger.ledger"), std::to_string(distinct));
  EXPECT_EQ(ledgerRows(url), ledgerRows(clean_url));
  EXPECT_EQ(processedRows(url), processedRows(clean_url));
  EXPECT_EQ(offsetRows(url), offsetRows(clean_url));
}

void setApiPort(const std::filesystem::path& manifest, int port) {
  std::ifstream in(manifest);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const std::string any_port = "api:\n  listen: 127.0.0.1:0\n";
  const auto at = text.find(any_port);
  if (at == std::string::npos) throw std::runtime_error(manifest.string() + " has no api block");
  text.replace(at, any_port.size(), "api:\n  listen: 127.0.0.1:" + std::to_string(port) + "\n");
  std::ofstream(manifest) << text;
}

std::filesystem::path writeApiManifest(const TempDir& dir, const std::string& bootstrap,
                                       const std::string& postgres_url, int port,
                                       const std::string& name) {
  auto manifest = writeKafkaManifest(
      dir, bootstrap, postgres_url, "  session.timeout.ms: 6000\n",
      "  - { name: customers, plugin: customers, topics: [ultracore.customers.events],"
      " workers: 2, batch: { max_events: 500, max_wait_ms: 5 } }\n"
      "  - { name: accounts, plugin: accounts, topics: [ultracore.accounts.events],"
      " batch: { max_events: 500, max_wait_ms: 5 } }\n",
      name);
  setApiPort(manifest, port);
  return manifest;
}

bool waitForApiReady(int port, std::chrono::seconds timeout) {
  httplib::Client client("127.0.0.1", port);
  client.set_read_timeout(30, 0);
  return waitUntil([&] {
    auto res = client.Get("/readyz");
    return res && res->status == 200;
  }, timeout);
}

namespace {

struct HandleDeleter {
  void operator()(rd_kafka_t* rk) const { rd_kafka_destroy(rk); }
};
using Handle = std::unique_ptr<rd_kafka_t, HandleDeleter>;

Handle newProducer(const std::vector<std::pair<std::string, std::string>>& properties) {
  char error[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  for (const auto& [key, value] : properties) {
    if (rd_kafka_conf_set(conf, key.c_str(), value.c_str(), error, sizeof(error)) !=
        RD_KAFKA_CONF_OK) {
      rd_kafka_conf_destroy(conf);
      throw std::runtime_error(key + ": " + error);
    }
  }
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, error, sizeof(error));
  if (rk == nullptr) {
    rd_kafka_conf_destroy(conf);
    throw std::runtime_error(std::string("rd_kafka_new: ") + error);
  }
  return Handle(rk);
}

void check(rd_kafka_error_t* error, const std::string& what) {
  if (error == nullptr) return;
  const std::string message = what + ": " + rd_kafka_error_string(error);
  rd_kafka_error_destroy(error);
  throw std::runtime_error(message);
}

}  // namespace

std::pair<std::int64_t, std::int64_t> watermarks(const std::string& bootstrap,
                                                 const std::string& topic, int partition) {
  Handle rk = newProducer({{"bootstrap.servers", bootstrap}, {"log_level", "3"}});
  std::int64_t low = -1;
  std::int64_t high = -1;
  const rd_kafka_resp_err_t err =
      rd_kafka_query_watermark_offsets(rk.get(), topic.c_str(), partition, &low, &high, 10000);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    throw std::runtime_error("watermarks of " + topic + "[" + std::to_string(partition) +
                             "]: " + rd_kafka_err2str(err));
  }
  return {low, high};
}

std::string storedSum(const std::string& url, const std::string& projection) {
  try {
    return queryValue(url, "SELECT coalesce(sum(next_offset), 0) FROM ultracore_offsets "
                           "WHERE next_offset >= 0" +
                               (projection.empty() ? "" : " AND projection = '" + projection + "'"));
  } catch (const std::exception&) {
    return "0";
  }
}

std::string ledgerRows(const std::string& url) {
  return tableChecksum(url, "SELECT aggregate_id, event_ids, total, events FROM ledger.ledger");
}

std::string processedRows(const std::string& url) {
  return tableChecksum(url, "SELECT projection, event_id, aggregate_id, event_type, topic, "
                            "partition, \"offset\" FROM processed_events");
}

std::string offsetRows(const std::string& url) {
  return tableChecksum(url,
                       "SELECT projection, topic, partition, next_offset FROM ultracore_offsets");
}

std::vector<std::string> readTopic(const std::string& bootstrap, const std::string& topic,
                                   int partitions) {
  char error[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  for (const auto& [key, value] : std::vector<std::pair<std::string, std::string>>{
           {"bootstrap.servers", bootstrap},
           {"group.id", "ultracore-test-reader"},  // required by librdkafka; never joined
           {"enable.auto.commit", "false"},
           {"enable.partition.eof", "true"},
           {"isolation.level", "read_committed"},
           {"log_level", "3"}}) {
    if (rd_kafka_conf_set(conf, key.c_str(), value.c_str(), error, sizeof(error)) != RD_KAFKA_CONF_OK) {
      rd_kafka_conf_destroy(conf);
      throw std::runtime_error(key + ": " + error);
    }
  }
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, error, sizeof(error));
  if (rk == nullptr) throw std::runtime_error(std::string("rd_kafka_new: ") + error);
  Handle handle(rk);
  rd_kafka_poll_set_consumer(rk);
  rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(partitions);
  int open = 0;
  for (int p = 0; p < partitions; ++p) {
    if (watermarks(bootstrap, topic, p).second == 0) continue;  // empty: no EOF event comes
    rd_kafka_topic_partition_list_add(list, topic.c_str(), p)->offset = RD_KAFKA_OFFSET_BEGINNING;
    ++open;
  }
  rd_kafka_assign(rk, list);
  rd_kafka_topic_partition_list_destroy(list);
  std::vector<std::string> values;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  while (open > 0) {
    if (std::chrono::steady_clock::now() > deadline) throw std::runtime_error("readTopic: timed out");
    rd_kafka_message_t* message = rd_kafka_consumer_poll(rk, 500);
    if (message == nullptr) continue;
    if (message->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
      --open;
    } else if (message->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      const std::string why = rd_kafka_message_errstr(message);
      rd_kafka_message_destroy(message);
      throw std::runtime_error("readTopic: " + why);
    } else {
      values.emplace_back(static_cast<const char*>(message->payload), message->len);
    }
    rd_kafka_message_destroy(message);
  }
  rd_kafka_consumer_close(rk);
  return values;
}

void produceTransactions(const std::string& bootstrap, const std::string& transactional_id,
                         const std::vector<std::vector<Record>>& transactions,
                         const std::vector<bool>& commit) {
  Handle rk = newProducer({{"bootstrap.servers", bootstrap},
                           {"transactional.id", transactional_id},
                           {"acks", "all"},
                           {"linger.ms", "5"}});
  check(rd_kafka_init_transactions(rk.get(), 60000), "init_transactions");
  for (std::size_t t = 0; t < transactions.size(); ++t) {
    check(rd_kafka_begin_transaction(rk.get()), "begin_transaction");
    for (const auto& record : transactions[t]) {
      const rd_kafka_resp_err_t err = rd_kafka_producev(
          rk.get(), RD_KAFKA_V_TOPIC(record.topic.c_str()),
          RD_KAFKA_V_PARTITION(record.partition < 0 ? RD_KAFKA_PARTITION_UA : record.partition),
          RD_KAFKA_V_KEY(record.key.data(), record.key.size()),
          RD_KAFKA_V_VALUE(const_cast<char*>(record.value.data()), record.value.size()),
          RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
      if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        throw std::runtime_error(std::string("produce in a transaction: ") + rd_kafka_err2str(err));
      }
    }
    if (commit[t]) {
      check(rd_kafka_commit_transaction(rk.get(), 60000), "commit_transaction");
    } else {
      // Flush first, so the aborted records really are in the log (then marked aborted).
      rd_kafka_flush(rk.get(), 60000);
      check(rd_kafka_abort_transaction(rk.get(), 60000), "abort_transaction");
    }
  }
}

}  // namespace ultracore::testing
