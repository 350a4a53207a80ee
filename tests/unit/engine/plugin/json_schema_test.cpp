// The event catalog's JSON Schema subset (engine/plugin/json_schema.h): each keyword accepts
// what it should and rejects what it should, naming the path and the rule; checkSchema
// refuses keywords of the wrong shape and patterns that do not compile.

#include "engine/plugin/json_schema.h"

#include <string>

#include <gtest/gtest.h>

namespace ultracore::engine {
namespace {

using nlohmann::json;

/// "path rule" of the violation, or "ok".
std::string check(const json& schema, const json& value) {
  const auto violation = validateJson(schema, value);
  return violation ? violation->path + " " + violation->rule : "ok";
}

TEST(JsonSchema, TypeAcceptsItsKindsOnly) {
  EXPECT_EQ(check({{"type", "string"}}, "x"), "ok");
  EXPECT_EQ(check({{"type", "string"}}, 1), " type");
  EXPECT_EQ(check({{"type", "integer"}}, 3), "ok");
  EXPECT_EQ(check({{"type", "integer"}}, 3.0), "ok");  // JSON Schema: 3.0 is an integer
  EXPECT_EQ(check({{"type", "integer"}}, 3.5), " type");
  EXPECT_EQ(check({{"type", "number"}}, 3.5), "ok");
  EXPECT_EQ(check({{"type", "boolean"}}, "true"), " type");
  EXPECT_EQ(check({{"type", "null"}}, nullptr), "ok");
  EXPECT_EQ(check({{"type", {"string", "null"}}}, nullptr), "ok");
  EXPECT_EQ(check({{"type", {"string", "null"}}}, 2), " type");
  EXPECT_EQ(check({{"type", "string"}, {"nullable", true}}, nullptr), "ok");
  EXPECT_EQ(check({{"type", "object"}}, json::array()), " type");
  EXPECT_EQ(check({{"type", "array"}}, json::array()), "ok");
  EXPECT_EQ(check(nullptr, 42), "ok");
  EXPECT_EQ(check(json::object(), "anything"), "ok");
}

TEST(JsonSchema, RequiredPropertiesAndAdditionalProperties) {
  const json schema{{"type", "object"},
                    {"required", {"email"}},
                    {"properties", {{"email", {{"type", "string"}}}, {"age", {{"type", "integer"}}}}},
                    {"additionalProperties", false}};
  EXPECT_EQ(check(schema, {{"email", "a@b"}}), "ok");
  EXPECT_EQ(check(schema, {{"age", 3}}), "/email required");
  EXPECT_EQ(check(schema, {{"email", 3}}), "/email type");
  EXPECT_EQ(check(schema, {{"email", "a@b"}, {"age", "x"}}), "/age type");
  EXPECT_EQ(check(schema, {{"email", "a@b"}, {"nick", "x"}}), "/nick additionalProperties");
  const json typed_extra{{"type", "object"}, {"additionalProperties", {{"type", "integer"}}}};
  EXPECT_EQ(check(typed_extra, {{"n", 1}}), "ok");
  EXPECT_EQ(check(typed_extra, {{"n", "1"}}), "/n type");
  // Names are JSON Pointer tokens: '/' and '~' escaped.
  const json strict{{"type", "object"}, {"additionalProperties", false}};
  EXPECT_EQ(check(strict, {{"a/b~c", 1}}), "/a~1b~0c additionalProperties");
}

TEST(JsonSchema, EnumBoundsLengthsAndPattern) {
  EXPECT_EQ(check({{"enum", {"EUR", "USD"}}}, "EUR"), "ok");
  EXPECT_EQ(check({{"enum", {"EUR", "USD"}}}, "GBP"), " enum");
  EXPECT_EQ(check({{"minimum", 1}}, 1), "ok");
  EXPECT_EQ(check({{"minimum", 1}}, 0.5), " minimum");
  EXPECT_EQ(check({{"maximum", 10}}, 11), " maximum");
  EXPECT_EQ(check({{"maximum", 10}}, "11"), "ok");  // bounds apply to numbers only
  EXPECT_EQ(check({{"minLength", 2}}, "a"), " minLength");
  EXPECT_EQ(check({{"maxLength", 2}}, "ab"), "ok");
  EXPECT_EQ(check({{"maxLength", 2}}, "abc"), " maxLength");
  EXPECT_EQ(check({{"maxLength", 2}}, "\xC3\xA9\xC3\xA9"), "ok");  // two code points, four bytes
  EXPECT_EQ(check({{"pattern", "^[A-Z]{3}$"}}, "EUR"), "ok");
  EXPECT_EQ(check({{"pattern", "^[A-Z]{3}$"}}, "eur"), " pattern");
  EXPECT_EQ(check({{"pattern", "[0-9]"}}, "abc1"), "ok");  // unanchored, as JSON Schema says
  EXPECT_EQ(check({{"pattern", "a"}}, std::string(kMaxPatternInput + 1, 'a')), " pattern");
}

TEST(JsonSchema, ItemsAndNestingReportTheFullPath) {
  const json schema{{"type", "object"},
                    {"properties",
                     {{"lines",
                       {{"type", "array"},
                        {"items",
                         {{"type", "object"},
                          {"required", {"amount"}},
                          {"properties", {{"amount", {{"type", "string"}, {"pattern", "^[0-9]+$"}}}}}}}}}}}};
  EXPECT_EQ(check(schema, {{"lines", {{{"amount", "1"}}, {{"amount", "2"}}}}}), "ok");
  EXPECT_EQ(check(schema, {{"lines", {{{"amount", "1"}}, {{"amount", "x"}}}}}), "/lines/1/amount pattern");
  EXPECT_EQ(check(schema, {{"lines", {{{"amount", "1"}}, json::object()}}}), "/lines/1/amount required");
  const auto violation = validateJson(schema, {{"lines", {{{"amount", "x"}}}}});
  ASSERT_TRUE(violation);
  EXPECT_EQ(violation->message, "must match the pattern ^[0-9]+$");
}

TEST(JsonSchema, CheckSchemaRefusesWrongShapes) {
  EXPECT_FALSE(checkSchema(nullptr));
  EXPECT_FALSE(checkSchema({{"type", "object"}, {"properties", {{"a", {{"type", {"string", "null"}}}}}}}));
  const auto path_rule = [](const json& schema) {
    const auto error = checkSchema(schema);
    return error ? error->path + " " + error->rule : "ok";
  };
  EXPECT_EQ(path_rule({{"type", "text"}}), "/type type");
  EXPECT_EQ(path_rule({{"required", "email"}}), "/required required");
  EXPECT_EQ(path_rule({{"maxLength", -1}}), "/maxLength maxLength");
  EXPECT_EQ(path_rule({{"pattern", "("}}), "/pattern pattern");
  EXPECT_EQ(path_rule({{"properties", {{"a", {{"minimum", "0"}}}}}}), "/properties/a/minimum minimum");
  EXPECT_EQ(path_rule({{"items", {{"enum", 1}}}}), "/items/enum enum");
  EXPECT_EQ(path_rule({{"additionalProperties", "no"}}), "/additionalProperties additionalProperties");
  EXPECT_EQ(path_rule(json::array()), " schema");
}

}  // namespace
}  // namespace ultracore::engine
