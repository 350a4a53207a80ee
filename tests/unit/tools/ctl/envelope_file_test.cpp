#include "tools/ctl/envelope_file.h"

#include <regex>

#include <gtest/gtest.h>

namespace ultracore::ctl {
namespace {

const char kValid[] =
    R"({"event_id":"e1","event_type":"T","aggregate_id":"A1","event_data":{"x":1}})";

TEST(CtlEnvelopeFile, JsonLinesSkipBlankLinesAndNameTheLineOfEachError) {
  const std::string text = std::string(kValid) + "\n\n" +
                           R"({"event_id":"e2","aggregate_id":"A2"})" + "\n{oops\n" + kValid + "\n";
  const EnvelopeFile file = readEnvelopeFile(text, "in.jsonl", {});
  ASSERT_EQ(file.errors.size(), 2u);
  EXPECT_EQ(file.errors[0], "in.jsonl:3: invalid envelope: 'event_type' is missing");
  EXPECT_EQ(file.errors[1].rfind("in.jsonl:4: not valid JSON", 0), 0u) << file.errors[1];
  ASSERT_EQ(file.entries.size(), 2u);
  EXPECT_EQ(file.entries[0].where, "in.jsonl:1");
  EXPECT_EQ(file.entries[0].aggregate_id, "A1");
  EXPECT_EQ(file.entries[1].where, "in.jsonl:5");
}

TEST(CtlEnvelopeFile, ArrayNamesTheIndexAndASingleObjectMaySpanLines) {
  const EnvelopeFile array =
      readEnvelopeFile(std::string("[\n") + kValid + ",\n" +
                           R"({"event_id":"e2","event_type":"T","aggregate_id":""})" + "\n]",
                       "-", {});
  ASSERT_EQ(array.errors.size(), 1u);
  EXPECT_EQ(array.errors[0], "stdin: array index 1: invalid envelope: 'aggregate_id' is empty");
  const EnvelopeFile single = readEnvelopeFile(
      "\n{\n  \"event_id\": \"e1\",\n  \"event_type\": \"T\",\n  \"aggregate_id\": \"A\"\n}\n",
      "one.json", {});
  ASSERT_TRUE(single.errors.empty()) << single.errors[0];
  ASSERT_EQ(single.entries.size(), 1u);
  EXPECT_EQ(single.entries[0].where, "one.json:2");
  EXPECT_FALSE(readEnvelopeFile("  \n", "empty", {}).errors.empty());
  EXPECT_FALSE(readEnvelopeFile("[]", "empty", {}).errors.empty());
}

// The deep nesting the envelope fuzz target found (sdk/json_depth.h) also reached this reader,
// which copies each document: the file is refused instead.
TEST(CtlEnvelopeFile, AFileNestedTooDeeplyIsAnErrorNotACrash) {
  const std::string deep = R"({"event_id":"e","event_type":"T","aggregate_id":"A","event_data":)" +
                           std::string(100000, '[') + std::string(100000, ']') + "}\n";
  const EnvelopeFile file = readEnvelopeFile(deep, "deep.jsonl", {});
  ASSERT_EQ(file.errors.size(), 1u);
  EXPECT_EQ(file.errors[0], "deep.jsonl: JSON nested deeper than 100 levels");
  EXPECT_TRUE(file.entries.empty());
}

// Found by tests/fuzz/produce_file_fuzz.cpp: nlohmann throws out_of_range (not parse_error)
// for a number too large for a double, and ultracore-ctl produce aborted (uncaught exception).
TEST(CtlEnvelopeFile, ANumberTooLargeIsAnErrorOfItsLineNotAnAbort) {
  const std::string text = std::string(kValid) + "\n11111e1111110\n";
  const EnvelopeFile lines = readEnvelopeFile(text, "big.jsonl", {});
  ASSERT_EQ(lines.errors.size(), 1u);
  EXPECT_EQ(lines.errors[0].rfind("big.jsonl:2: not valid JSON: number overflow", 0), 0u)
      << lines.errors[0];
  const EnvelopeFile array = readEnvelopeFile("[" + std::string(kValid) + ", 1e999]", "big.json", {});
  ASSERT_EQ(array.errors.size(), 1u);
  EXPECT_EQ(array.errors[0].rfind("big.json: not valid JSON: number overflow", 0), 0u)
      << array.errors[0];
}

TEST(CtlEnvelopeFile, GenerateIdsFillsOnlyWhatIsMissing) {
  const std::string text = std::string(R"({"event_type":"T","aggregate_id":"A"})") + "\n" + kValid;
  const EnvelopeFile strict = readEnvelopeFile(text, "f", {});
  ASSERT_EQ(strict.errors.size(), 1u);
  EXPECT_NE(strict.errors[0].find("'event_id' is missing"), std::string::npos);
  const EnvelopeFile filled = readEnvelopeFile(text, "f", {true});
  ASSERT_TRUE(filled.errors.empty());
  ASSERT_EQ(filled.entries.size(), 2u);
  const std::string id = filled.entries[0].document["event_id"];
  EXPECT_TRUE(std::regex_match(
      id, std::regex("[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")))
      << id;
  EXPECT_TRUE(std::regex_match(filled.entries[0].document["occurred_at"].get<std::string>(),
                               std::regex(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)")));
  EXPECT_EQ(filled.entries[1].document["event_id"], "e1");
  EXPECT_NE(randomUuid(), randomUuid());
}

}  // namespace
}  // namespace ultracore::ctl
