#include "engine/http/consistency_token.h"

#include <gtest/gtest.h>

namespace ultracore::engine {
namespace {

TEST(ConsistencyToken, RoundTripsPositionsWhoseTopicHoldsColons) {
  const std::vector<ConsistencyPosition> positions{{"a:b", 3, 42},
                                                   {"ultracore.accounts.events", 0, 9}};
  const std::string token = encodeConsistencyToken(positions);
  EXPECT_EQ(token, "a:b:3:42,ultracore.accounts.events:0:9");
  EXPECT_EQ(decodeConsistencyToken(token), positions);
}

TEST(ConsistencyToken, RefusesWhatIsNotTopicPartitionOffset) {
  for (const char* bad : {"", ",", "t:1", ":1:2", "t::2", "t:1:", "t:1:2,", "t:1:2,,t:1:2",
                          "t:-1:2", "t:1:-0", "t: 1:2", "t:+1:2", "t:1:2 ", "t:1:0x10",
                          "t:99999999999:1", "t:1:99999999999999999999"}) {
    EXPECT_EQ(decodeConsistencyToken(bad), std::nullopt) << bad;
  }
}

TEST(IfMatch, ReadsAVersionBareQuotedOrWeak) {
  EXPECT_EQ(parseIfMatch("7"), 7);
  EXPECT_EQ(parseIfMatch("\"7\""), 7);
  EXPECT_EQ(parseIfMatch("W/\"12\""), 12);
  EXPECT_EQ(parseIfMatch("0"), 0);
  EXPECT_EQ(parseIfMatch("999999999999999999"), 999999999999999999);
}

TEST(IfMatch, RefusesAnythingElse) {
  for (const char* bad : {"", "\"\"", "W/", "W/\"\"", "*", "-1", "+1", " 7", "7 ", "\"7", "7\"",
                          "\"7\", \"8\"", "0x10", "1e3", "1000000000000000000", "w/\"7\""}) {
    EXPECT_EQ(parseIfMatch(bad), std::nullopt) << bad;
  }
}

}  // namespace
}  // namespace ultracore::engine
