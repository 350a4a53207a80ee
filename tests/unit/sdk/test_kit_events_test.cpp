// The test kit's pure parts: envelope parsing (same rules as the engine), JSON lines, the
// writer's SQL helpers. No database.

#include <sstream>

#include <gtest/gtest.h>

#include "ultracore/sdk/testing/events.h"
#include "ultracore/sdk/testing/pg_writer.h"

namespace kit = ultracore::sdk::testing;
using ultracore::sdk::StatusCode;

TEST(TestKitEnvelope, ParsesWithTheEngineDefaults) {
  auto envelope = kit::parseEnvelope(
      R"({"event_id":"e1","event_type":"T","aggregate_id":"A","event_data":{"x":1}})");
  ASSERT_TRUE(envelope.isOk()) << envelope.status().message();
  EXPECT_EQ(envelope->tenant_id, "DEFAULT");
  EXPECT_EQ(envelope->aggregate_type, "");
  EXPECT_FALSE(envelope->aggregate_version.has_value());
  EXPECT_EQ(envelope->event_data["x"], 1);
}

TEST(TestKitEnvelope, RejectsWhatTheEngineRejects) {
  for (const auto& [text, field] : std::vector<std::pair<std::string, std::string>>{
           {"oops", "not valid JSON"},
           {"[1]", "not a JSON object"},
           {R"({"event_type":"T","aggregate_id":"A"})", "'event_id' is missing"},
           {R"({"event_id":"","event_type":"T","aggregate_id":"A"})", "'event_id' is empty"},
           {R"({"event_id":"e","event_type":"T","aggregate_id":"A","aggregate_version":0})",
            "'aggregate_version'"},
           {R"({"event_id":"e","event_type":"T","aggregate_id":"A","event_data":[1]})",
            "'event_data' must be an object"}}) {
    auto envelope = kit::parseEnvelope(text);
    ASSERT_FALSE(envelope.isOk()) << text;
    EXPECT_EQ(envelope.status().code(), StatusCode::kInvalidEvent);
    EXPECT_NE(envelope.status().message().find(field), std::string::npos)
        << envelope.status().message();
  }
}

TEST(TestKitEventLog, ReadsJsonLinesWithTopicsAndOffsets) {
  std::istringstream in(
      "# a comment\n"
      R"({"event_id":"e1","event_type":"T","aggregate_id":"A"})" "\n"
      "\n"
      R"({"topic":"other","partition":2,"value":{"event_id":"e2","event_type":"T","aggregate_id":"B"}})" "\n"
      R"({"event_id":"e3","event_type":"T","aggregate_id":"A"})" "\n");
  kit::EventLog log;
  log.addJsonLines(in, "main");
  ASSERT_EQ(log.size(), 3U);
  EXPECT_EQ(log.events()[0].topic(), "main");
  EXPECT_EQ(log.events()[0].offset(), 0);
  EXPECT_EQ(log.events()[1].topic(), "other");
  EXPECT_EQ(log.events()[1].partition(), 2);
  EXPECT_EQ(log.events()[1].offset(), 0);
  EXPECT_EQ(log.events()[2].offset(), 1);
  EXPECT_EQ(log.events()[2].eventId(), "e3");
}

TEST(TestKitEventLog, NamesTheLineOfABadEnvelope) {
  std::istringstream in(R"({"event_id":"e1","event_type":"T","aggregate_id":"A"})" "\n"
                        R"({"event_id":"e2","aggregate_id":"A"})" "\n");
  kit::EventLog log;
  try {
    log.addJsonLines(in, "main", "events.jsonl");
    FAIL() << "no exception";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("events.jsonl:2: invalid envelope: 'event_type' is missing"),
              std::string::npos)
        << e.what();
  }
}

TEST(TestKitWriterHelpers, ArrayLiteralsAndSchemaPlaceholders) {
  EXPECT_EQ(kit::detail::toArrayLiteral({std::string("a"), std::nullopt, std::string("b\"c\\")}),
            R"({"a",NULL,"b\"c\\"})");
  EXPECT_EQ(kit::detail::expandSchema("SELECT * FROM {schema}.t JOIN {schema}.u", "\"s\""),
            "SELECT * FROM \"s\".t JOIN \"s\".u");
  EXPECT_EQ(kit::detail::quoteIdentifier("we\"ird"), "\"we\"\"ird\"");
}
