// Integration tests of ultracore-devbroker: real librdkafka clients against a broker process
// started per test (ephemeral ports), and the dev stack's PostgreSQL.

#include <gtest/gtest.h>
#include <httplib.h>
#include <librdkafka/rdkafka.h>

#include <chrono>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <pqxx/pqxx>
#include <set>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "test_support.h"

namespace {

using namespace std::chrono_literals;
using ultracore::testing::DevBroker;
using ultracore::testing::TestDatabase;
using Clock = std::chrono::steady_clock;

struct Header {
  std::string name;
  std::optional<std::string> value;
  bool operator==(const Header&) const = default;
};

struct Record {
  std::string topic;
  int32_t partition = -1;
  int64_t offset = -1;
  std::optional<std::string> key;
  std::optional<std::string> value;
  std::vector<Header> headers;
  int64_t timestamp = -1;
  bool operator==(const Record&) const = default;
};

std::ostream& operator<<(std::ostream& out, const Record& r) {
  out << r.topic << "[" << r.partition << "]@" << r.offset << " key=" << r.key.value_or("<null>")
      << " value=" << r.value.value_or("<null>") << " ts=" << r.timestamp << " headers={";
  for (const auto& h : r.headers) out << h.name << "=" << h.value.value_or("<null>") << ",";
  return out << "}";
}

struct KafkaDeleter {
  void operator()(rd_kafka_t* rk) const {
    if (rd_kafka_type(rk) == RD_KAFKA_CONSUMER) rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
  }
};
using Kafka = std::unique_ptr<rd_kafka_t, KafkaDeleter>;

/// Delivery reports of a producer, in arrival order.
struct Deliveries {
  std::vector<std::pair<rd_kafka_resp_err_t, int64_t>> reports;
};

void onDelivery(rd_kafka_t*, const rd_kafka_message_t* m, void* opaque) {
  static_cast<Deliveries*>(opaque)->reports.emplace_back(m->err, m->offset);
}

Kafka makeClient(rd_kafka_type_t type, const std::map<std::string, std::string>& props,
                 Deliveries* deliveries = nullptr) {
  char err[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  for (const auto& [k, v] : props) {
    if (rd_kafka_conf_set(conf, k.c_str(), v.c_str(), err, sizeof(err)) != RD_KAFKA_CONF_OK) {
      rd_kafka_conf_destroy(conf);
      throw std::runtime_error(k + ": " + err);
    }
  }
  if (deliveries) {
    rd_kafka_conf_set_dr_msg_cb(conf, onDelivery);
    rd_kafka_conf_set_opaque(conf, deliveries);
  }
  rd_kafka_t* rk = rd_kafka_new(type, conf, err, sizeof(err));
  if (!rk) {
    rd_kafka_conf_destroy(conf);
    throw std::runtime_error(err);
  }
  if (type == RD_KAFKA_CONSUMER) rd_kafka_poll_set_consumer(rk);
  return Kafka(rk);
}

Kafka makeProducer(const DevBroker& broker, Deliveries* deliveries,
                   std::map<std::string, std::string> extra = {}) {
  std::map<std::string, std::string> props = {{"bootstrap.servers", broker.bootstrap()},
                                              {"enable.idempotence", "true"},
                                              {"linger.ms", "5"}};
  for (auto& [k, v] : extra) props[k] = v;
  return makeClient(RD_KAFKA_PRODUCER, props, deliveries);
}

rd_kafka_resp_err_t produce(rd_kafka_t* rk, const Record& r) {
  rd_kafka_headers_t* headers = nullptr;
  if (!r.headers.empty()) {
    headers = rd_kafka_headers_new(r.headers.size());
    for (const auto& h : r.headers)
      rd_kafka_header_add(headers, h.name.data(), static_cast<ssize_t>(h.name.size()),
                          h.value ? h.value->data() : nullptr,
                          h.value ? static_cast<ssize_t>(h.value->size()) : 0);
  }
  const void* key = r.key ? r.key->data() : nullptr;
  size_t key_size = r.key ? r.key->size() : 0;
  void* value = r.value ? const_cast<char*>(r.value->data()) : nullptr;
  size_t value_size = r.value ? r.value->size() : 0;
  int64_t timestamp = r.timestamp > 0 ? r.timestamp : 0;
  auto err = rd_kafka_producev(
      rk, RD_KAFKA_V_TOPIC(r.topic.c_str()),
      RD_KAFKA_V_PARTITION(r.partition >= 0 ? r.partition : RD_KAFKA_PARTITION_UA),
      RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_KEY(key, key_size),
      RD_KAFKA_V_VALUE(value, value_size), RD_KAFKA_V_TIMESTAMP(timestamp),
      RD_KAFKA_V_HEADERS(headers), RD_KAFKA_V_END);
  if (err && headers) rd_kafka_headers_destroy(headers);
  return err;
}

Record toRecord(const rd_kafka_message_t* m) {
  Record r;
  r.topic = rd_kafka_topic_name(m->rkt);
  r.partition = m->partition;
  r.offset = m->offset;
  if (m->key) r.key.emplace(static_cast<const char*>(m->key), m->key_len);
  if (m->payload) r.value.emplace(static_cast<const char*>(m->payload), m->len);
  r.timestamp = rd_kafka_message_timestamp(m, nullptr);
  rd_kafka_headers_t* headers = nullptr;
  if (rd_kafka_message_headers(m, &headers) == RD_KAFKA_RESP_ERR_NO_ERROR) {
    const char* name = nullptr;
    const void* value = nullptr;
    size_t size = 0;
    for (size_t i = 0; !rd_kafka_header_get_all(headers, i, &name, &value, &size); ++i)
      r.headers.push_back({name, value ? std::optional<std::string>(
                                             std::string(static_cast<const char*>(value), size))
                                       : std::nullopt});
  }
  return r;
}

/// Topic -> partition count, from the broker's metadata.
std::map<std::string, int> topicPartitions(const DevBroker& broker) {
  Kafka rk = makeClient(RD_KAFKA_PRODUCER, {{"bootstrap.servers", broker.bootstrap()}});
  const rd_kafka_metadata_t* md = nullptr;
  auto err = rd_kafka_metadata(rk.get(), 1, nullptr, &md, 10000);
  if (err) throw std::runtime_error(std::string("metadata: ") + rd_kafka_err2str(err));
  std::map<std::string, int> out;
  for (int i = 0; i < md->topic_cnt; ++i) out[md->topics[i].topic] = md->topics[i].partition_cnt;
  rd_kafka_metadata_destroy(md);
  return out;
}

/// Every record of the given topics, read by assignment from the start to the high watermark.
std::vector<Record> readAll(const DevBroker& broker, const std::map<std::string, int>& topics) {
  Kafka rk = makeClient(RD_KAFKA_CONSUMER, {{"bootstrap.servers", broker.bootstrap()},
                                            {"group.id", "readall"},
                                            {"enable.auto.commit", "false"},
                                            {"enable.partition.eof", "false"}});
  rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(16);
  std::map<std::pair<std::string, int32_t>, int64_t> ends;
  for (const auto& [topic, partitions] : topics) {
    for (int32_t p = 0; p < partitions; ++p) {
      int64_t low = 0, high = 0;
      auto err = rd_kafka_query_watermark_offsets(rk.get(), topic.c_str(), p, &low, &high, 10000);
      if (err) throw std::runtime_error(std::string("watermarks: ") + rd_kafka_err2str(err));
      EXPECT_EQ(low, 0) << topic << "[" << p << "]";
      if (high > 0) {
        ends[{topic, p}] = high;
        rd_kafka_topic_partition_list_add(list, topic.c_str(), p)->offset =
            RD_KAFKA_OFFSET_BEGINNING;
      }
    }
  }
  rd_kafka_assign(rk.get(), list);
  rd_kafka_topic_partition_list_destroy(list);
  std::vector<Record> out;
  std::map<std::pair<std::string, int32_t>, int64_t> next;
  auto done = [&] {
    for (const auto& [tp, end] : ends)
      if (next[tp] < end) return false;
    return true;
  };
  auto deadline = Clock::now() + 30s;
  while (!done() && Clock::now() < deadline) {
    rd_kafka_message_t* m = rd_kafka_consumer_poll(rk.get(), 200);
    if (!m) continue;
    if (!m->err) {
      out.push_back(toRecord(m));
      next[{out.back().topic, m->partition}] = m->offset + 1;
    }
    rd_kafka_message_destroy(m);
  }
  EXPECT_TRUE(done()) << "timed out reading the topics back";
  std::sort(out.begin(), out.end(), [](const Record& a, const Record& b) {
    return std::tie(a.topic, a.partition, a.offset) < std::tie(b.topic, b.partition, b.offset);
  });
  return out;
}

void flushAndExpectDelivered(rd_kafka_t* rk, Deliveries& deliveries, size_t count) {
  rd_kafka_flush(rk, 15000);
  ASSERT_EQ(deliveries.reports.size(), count);
  for (const auto& [err, offset] : deliveries.reports)
    ASSERT_EQ(err, RD_KAFKA_RESP_ERR_NO_ERROR) << rd_kafka_err2str(err);
}

nlohmann::json getJson(const DevBroker& broker, const std::string& path) {
  httplib::Client client(broker.controlUrl());
  auto res = client.Get(path.c_str());
  if (!res) throw std::runtime_error("GET " + path + " failed");
  EXPECT_EQ(res->status, 200) << res->body;
  return nlohmann::json::parse(res->body);
}

TEST(DevBroker, ProducedRecordsComeBackThroughAConsumerGroup) {
  DevBroker broker({.brokers = 1, .partitions = 6, .topics = {"it.roundtrip:3"}});
  Deliveries deliveries;
  Kafka producer = makeProducer(broker, &deliveries);
  constexpr int kCount = 30;
  std::map<std::string, Record> sent;
  for (int i = 0; i < kCount; ++i) {
    Record r;
    r.topic = "it.roundtrip";
    r.key = "CUST-" + std::to_string(i);
    r.value = R"({"n":)" + std::to_string(i) + "}";
    r.headers = {{"event_type", "CustomerCreated"}, {"seq", std::to_string(i)}};
    ASSERT_EQ(produce(producer.get(), r), RD_KAFKA_RESP_ERR_NO_ERROR);
    sent[*r.key] = r;
  }
  flushAndExpectDelivered(producer.get(), deliveries, kCount);

  Kafka consumer = makeClient(RD_KAFKA_CONSUMER, {{"bootstrap.servers", broker.bootstrap()},
                                                  {"group.id", "it-roundtrip-group"},
                                                  {"auto.offset.reset", "earliest"},
                                                  {"enable.partition.eof", "false"}});
  rd_kafka_topic_partition_list_t* topics = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(topics, "it.roundtrip", RD_KAFKA_PARTITION_UA);
  ASSERT_EQ(rd_kafka_subscribe(consumer.get(), topics), RD_KAFKA_RESP_ERR_NO_ERROR);
  rd_kafka_topic_partition_list_destroy(topics);

  std::map<std::string, Record> received;
  std::set<int32_t> partitions;
  auto deadline = Clock::now() + 60s;
  while (received.size() < sent.size() && Clock::now() < deadline) {
    rd_kafka_message_t* m = rd_kafka_consumer_poll(consumer.get(), 200);
    if (!m) continue;
    if (!m->err) {
      Record r = toRecord(m);
      partitions.insert(r.partition);
      ASSERT_TRUE(r.key.has_value());
      EXPECT_EQ(received.count(*r.key), 0U) << "duplicate " << r;
      received[*r.key] = r;
    }
    rd_kafka_message_destroy(m);
  }
  ASSERT_EQ(received.size(), sent.size());
  for (const auto& [key, r] : sent) {
    const Record& got = received.at(key);
    EXPECT_EQ(got.value, r.value) << got;
    EXPECT_EQ(got.headers, r.headers) << got;
  }
  EXPECT_GT(partitions.size(), 1U) << "keys should spread over the 3 partitions";
}

TEST(DevBroker, RestartWithDataDirKeepsTopicsRecordsAndOffsets) {
  DevBroker broker({.brokers = 1, .partitions = 5, .topics = {"it.first", "it.second:3"}});
  broker.control("/topics?name=it.third&partitions=2");

  Deliveries deliveries;
  Kafka producer = makeProducer(broker, &deliveries);
  std::vector<Record> sent;
  const int64_t t0 = 1767225600000;  // fixed CreateTime, 2026-01-01
  for (int i = 0; i < 40; ++i) {
    Record r;
    r.topic = i % 2 ? "it.first" : "it.second";
    r.partition = i % (i % 2 ? 5 : 3);
    r.key = "agg-" + std::to_string(i % 7);
    r.value = "payload-" + std::to_string(i);
    r.timestamp = t0 + i * 1000;
    r.headers = {{"event_id", "e-" + std::to_string(i)}, {"tenant", "DEFAULT"}};
    sent.push_back(r);
  }
  // The corners: null key, tombstone, empty value and key, null and empty header values,
  // binary bytes, a third topic made through the control channel.
  sent.push_back({"it.second", 0, -1, std::nullopt, "no key", {}, t0 + 50000});
  sent.push_back({"it.second", 1, -1, "deleted", std::nullopt, {{"why", "tombstone"}}, t0 + 51000});
  sent.push_back({"it.first", 4, -1, "", "", {{"n", std::nullopt}, {"e", ""}}, t0 + 52000});
  sent.push_back(
      {"it.third", 1, -1, std::string("k\0y", 3), std::string("\x01\x00\xff", 3), {}, t0 + 53000});
  for (const auto& r : sent) ASSERT_EQ(produce(producer.get(), r), RD_KAFKA_RESP_ERR_NO_ERROR);
  flushAndExpectDelivered(producer.get(), deliveries, sent.size());
  producer.reset();

  const std::map<std::string, int> expected_topics = {
      {"it.first", 5}, {"it.second", 3}, {"it.third", 2}};
  EXPECT_EQ(topicPartitions(broker), expected_topics);
  std::vector<Record> before = readAll(broker, expected_topics);
  ASSERT_EQ(before.size(), sent.size());
  for (const auto& r : sent) {  // what was sent is there, in per-partition order
    EXPECT_NE(std::find_if(before.begin(), before.end(),
                           [&](const Record& b) {
                             return b.topic == r.topic && b.partition == r.partition &&
                                    b.key == r.key && b.value == r.value &&
                                    b.headers == r.headers && b.timestamp == r.timestamp;
                           }),
              before.end())
        << "missing " << r;
  }
  const std::string old_bootstrap = broker.bootstrap();

  broker.stop();
  broker.start();
  EXPECT_EQ(topicPartitions(broker), expected_topics);
  std::vector<Record> after = readAll(broker, expected_topics);
  ASSERT_EQ(after.size(), before.size());
  for (size_t i = 0; i < before.size(); ++i) EXPECT_EQ(after[i], before[i]);

  // The journal goes on after a restore: a record produced now survives the next restart at
  // the offset it got.
  Deliveries more;
  producer = makeProducer(broker, &more);
  Record extra{"it.second", 2, -1, "late", "after-restart", {{"h", "v"}}, t0 + 60000};
  ASSERT_EQ(produce(producer.get(), extra), RD_KAFKA_RESP_ERR_NO_ERROR);
  flushAndExpectDelivered(producer.get(), more, 1);
  producer.reset();
  extra.offset = more.reports[0].second;
  broker.stop();
  broker.start();
  std::vector<Record> third = readAll(broker, expected_topics);
  ASSERT_EQ(third.size(), before.size() + 1);
  EXPECT_NE(std::find(third.begin(), third.end(), extra), third.end()) << "lost " << extra;

  auto topics = getJson(broker, "/topics");
  int64_t total = 0;
  for (const auto& t : topics["topics"])
    for (const auto& w : t["watermarks"]) total += w["high"].get<int64_t>();
  EXPECT_EQ(total, static_cast<int64_t>(third.size()));
}

TEST(DevBroker, ControlChannelTakesBrokersDownAndInjectsErrors) {
  DevBroker broker({.brokers = 1, .partitions = 6, .topics = {"it.control:1"}});
  auto health = getJson(broker, "/health");
  EXPECT_EQ(health["status"], "ok");
  EXPECT_EQ(health["bootstrap"], broker.bootstrap());

  Deliveries deliveries;
  Kafka producer = makeProducer(
      broker, &deliveries, {{"message.timeout.ms", "2000"}, {"reconnect.backoff.max.ms", "200"}});
  ASSERT_EQ(produce(producer.get(), {"it.control", 0, -1, "k", "warm-up", {}, 0}), 0);
  flushAndExpectDelivered(producer.get(), deliveries, 1);

  // Down: the record cannot be delivered within its 2 s message timeout.
  broker.control("/brokers/1/down");
  ASSERT_EQ(produce(producer.get(), {"it.control", 0, -1, "k", "while-down", {}, 0}), 0);
  rd_kafka_flush(producer.get(), 5000);
  ASSERT_EQ(deliveries.reports.size(), 2U);
  EXPECT_NE(deliveries.reports[1].first, RD_KAFKA_RESP_ERR_NO_ERROR);

  // Up: a record goes through again once the client has reconnected.
  broker.control("/brokers/1/up");
  auto deadline = Clock::now() + 20s;
  bool delivered = false;
  while (!delivered && Clock::now() < deadline) {
    size_t before = deliveries.reports.size();
    ASSERT_EQ(produce(producer.get(), {"it.control", 0, -1, "k", "after-up", {}, 0}), 0);
    rd_kafka_flush(producer.get(), 5000);
    ASSERT_EQ(deliveries.reports.size(), before + 1);
    delivered = deliveries.reports.back().first == RD_KAFKA_RESP_ERR_NO_ERROR;
  }
  EXPECT_TRUE(delivered) << "no delivery within 20 s of /brokers/1/up";
  producer.reset();

  // A pushed Produce error reaches a producer that does not retry.
  broker.control("/errors?api=Produce&code=NOT_ENOUGH_REPLICAS&count=1");
  Deliveries plain;
  Kafka no_retry =
      makeProducer(broker, &plain, {{"enable.idempotence", "false"}, {"retries", "0"}});
  ASSERT_EQ(produce(no_retry.get(), {"it.control", 0, -1, "k", "fails", {}, 0}), 0);
  rd_kafka_flush(no_retry.get(), 10000);
  ASSERT_EQ(plain.reports.size(), 1U);
  EXPECT_EQ(plain.reports[0].first, RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS)
      << rd_kafka_err2str(plain.reports[0].first);
  ASSERT_EQ(produce(no_retry.get(), {"it.control", 0, -1, "k", "succeeds", {}, 0}), 0);
  rd_kafka_flush(no_retry.get(), 10000);
  ASSERT_EQ(plain.reports.size(), 2U);
  EXPECT_EQ(plain.reports[1].first, RD_KAFKA_RESP_ERR_NO_ERROR);

  // Round-trip delay is felt by the client.
  broker.control("/brokers/1/rtt?ms=400");
  auto start = Clock::now();
  ASSERT_EQ(produce(no_retry.get(), {"it.control", 0, -1, "k", "slow", {}, 0}), 0);
  rd_kafka_flush(no_retry.get(), 10000);
  EXPECT_GE(Clock::now() - start, 350ms);
  broker.control("/brokers/1/rtt?ms=0");

  // Bad input is a 4xx with a JSON error.
  EXPECT_THROW(broker.control("/errors?api=NoSuchApi&code=1"), std::runtime_error);
  EXPECT_THROW(broker.control("/brokers/9/down"), std::runtime_error);
  EXPECT_THROW(broker.control("/topics?name=it.control"), std::runtime_error);  // exists
  try {
    broker.control("/brokers/1/rtt?ms=-5");
    ADD_FAILURE() << "negative rtt accepted";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("400"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("\"error\""), std::string::npos) << e.what();
  }
}

TEST(DevStackPostgres, SelectOneOnAFreshDatabase) {
  TestDatabase db;
  pqxx::connection conn(db.url());
  pqxx::work tx(conn);
  EXPECT_EQ(tx.exec1("select 1")[0].as<int>(), 1);
  EXPECT_EQ(tx.exec1("select current_database()")[0].as<std::string>(), db.name());
}

}  // namespace
