#include "ultracore/sdk/json_depth.h"

#include <string>

#include <gtest/gtest.h>

#include "ultracore/sdk/envelope.h"

namespace ultracore::sdk {
namespace {

std::string nested(std::size_t depth) {
  return std::string(depth, '[') + std::string(depth, ']');
}

TEST(JsonDepth, CountsArraysAndObjectsButNotBracketsInStrings) {
  EXPECT_FALSE(jsonNestingExceeds(nested(100)));
  EXPECT_TRUE(jsonNestingExceeds(nested(101)));
  EXPECT_FALSE(jsonNestingExceeds(R"({"a": {"b": [1, {"c": "[[[[{{{{"}]}})", 4));
  EXPECT_TRUE(jsonNestingExceeds(R"({"a": {"b": [1, {"c": "x"}]}})", 3));
  EXPECT_FALSE(jsonNestingExceeds(R"(["\"[[[", "\\", []])", 2));  // escapes end no string early
  EXPECT_FALSE(jsonNestingExceeds("]]]]" + nested(100)));           // stray closers count nothing
}

// Found by tests/fuzz/envelope_fuzz.cpp: an envelope whose event_data nests 100,000 levels
// overflowed the stack when the parser copied event_data (SIGSEGV in the engine).
TEST(JsonDepth, ADeeplyNestedEnvelopeIsAnInvalidEventNotACrash) {
  const std::string head = R"({"event_id":"e","event_type":"T","aggregate_id":"A","event_data":{"x":)";
  const auto deep = parseEnvelope(head + nested(100000) + "}}");
  ASSERT_FALSE(deep.isOk());
  EXPECT_EQ(deep.status().message(), "invalid envelope: nested deeper than 100 levels");
  EXPECT_TRUE(parseEnvelope(head + nested(90) + "}}").isOk());
}

}  // namespace
}  // namespace ultracore::sdk
