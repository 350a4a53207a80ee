// The message browser's pure parts: the continuation cursor's text form, and how one record
// is shown (envelope, or raw value with the envelope parser's error; bytes that are not UTF-8
// as \x hex).

#include "engine/http/console_messages.h"

#include <gtest/gtest.h>

namespace ultracore::engine {
namespace {

using nlohmann::json;

TEST(MessageCursorTest, RoundTripsAndRefusesMalformedText) {
  const std::map<std::int32_t, std::int64_t> cursor = {{0, 120}, {3, 0}, {11, 98765432109}};
  EXPECT_EQ(formatCursor(cursor), "0:120,3:0,11:98765432109");
  EXPECT_EQ(parseCursor("0:120,3:0,11:98765432109"), cursor);
  EXPECT_TRUE(parseCursor("").empty());
  for (const char* bad : {"0", "0:", ":5", "a:1", "0:1,", "0:-1", "-1:4", "0:1;1:2", "0:1x"}) {
    try {
      parseCursor(bad);
      ADD_FAILURE() << "accepted '" << bad << "'";
    } catch (const MessageQueryError& e) {
      EXPECT_EQ(e.status(), 400);
      EXPECT_NE(std::string(e.what()).find(bad), std::string::npos) << e.what();
    }
  }
}

KafkaRecord record(std::optional<std::string> key, std::optional<std::string> value) {
  KafkaRecord r;
  r.topic = "t";
  r.partition = 2;
  r.offset = 41;
  r.timestamp_ms = 1795964761983;
  r.key = std::move(key);
  r.value = std::move(value);
  r.headers = {{"trace", std::string("abc")}, {"empty", std::nullopt}};
  return r;
}

TEST(RecordJsonTest, ShowsTheEnvelopeOrTheRawValueWithTheParsersError) {
  const json ok = recordJson(record(std::string("CUST-1"),
                                    std::string(R"({"event_id":"e1","event_type":"CustomerCreated","aggregate_id":"CUST-1","event_data":{"a":1}})")));
  EXPECT_EQ(ok["partition"], 2);
  EXPECT_EQ(ok["offset"], 41);
  EXPECT_EQ(ok["timestamp"], "2026-11-29T15:06:01.983Z");
  EXPECT_EQ(ok["key"], "CUST-1");
  EXPECT_EQ(ok["headers"], json::parse(R"([{"key":"trace","value":"abc"},{"key":"empty","value":null}])"));
  EXPECT_EQ(ok["envelope"]["event_data"]["a"], 1);
  EXPECT_EQ(ok["aggregate_id"], "CUST-1");
  EXPECT_EQ(ok["event_type"], "CustomerCreated");
  EXPECT_FALSE(ok.contains("parse_error"));

  const json missing = recordJson(record(std::nullopt, std::string(R"({"event_type":"X","aggregate_id":"A"})")));
  EXPECT_FALSE(missing.contains("envelope"));
  EXPECT_TRUE(missing["key"].is_null());
  EXPECT_EQ(missing["value"], R"({"event_type":"X","aggregate_id":"A"})");
  EXPECT_NE(missing["parse_error"].get<std::string>().find("'event_id' is missing"), std::string::npos) << missing;

  const json binary = recordJson(record(std::string("\xff\x01", 2), std::string("not json \xc3")));
  EXPECT_EQ(binary["key"], "\\xff01");
  EXPECT_EQ(binary["value"], "\\x6e6f74206a736f6e20c3");
  EXPECT_NE(binary["parse_error"].get<std::string>().find("not valid JSON"), std::string::npos) << binary;

  const json tombstone = recordJson(record(std::string("K"), std::nullopt));
  EXPECT_TRUE(tombstone["value"].is_null());
  EXPECT_NE(tombstone["parse_error"].get<std::string>().find("tombstone"), std::string::npos);
}

}  // namespace
}  // namespace ultracore::engine
