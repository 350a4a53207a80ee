#include "tools/ctl/time_travel.h"

#include <gtest/gtest.h>

namespace ultracore::ctl {
namespace {

std::int64_t timeOf(const std::string& text) {
  const TimeTravelUntil until = parseUntil(text);
  EXPECT_EQ(until.kind, TimeTravelUntil::Kind::kTime) << text;
  return until.time_ms;
}

int exitCodeOf(const std::string& text) {
  try {
    parseUntil(text);
  } catch (const CtlError& e) {
    return e.exitCode();
  }
  return 0;
}

TEST(CtlTimeTravelUntil, TimesInIso8601AndEpochMillis) {
  constexpr std::int64_t k0800 = 1795766400000;  // 2026-11-27T08:00:00Z
  EXPECT_EQ(timeOf("2026-11-27T08:00:00Z"), k0800);
  EXPECT_EQ(timeOf("2026-11-27T08:00:00.250Z"), k0800 + 250);
  EXPECT_EQ(timeOf("2026-11-27T08:00:00.2509Z"), k0800 + 250);  // ms are whole: floor
  EXPECT_EQ(timeOf("2026-11-27T09:00:00+01:00"), k0800);
  EXPECT_EQ(timeOf("2026-11-27T03:30:00-0430"), k0800);
  EXPECT_EQ(timeOf("2026-11-27 08:00Z"), k0800);
  EXPECT_EQ(timeOf(std::to_string(k0800 + 7)), k0800 + 7);
  EXPECT_EQ(parseUntil("2026-11-27T08:00:00.250Z").describe(), "2026-11-27T08:00:00.250Z");
  EXPECT_EQ(exitCodeOf("2026-11-27T08:00:00"), 2);  // no zone: ambiguous
  EXPECT_EQ(exitCodeOf("2026-02-30T08:00:00Z"), 2);
  EXPECT_EQ(exitCodeOf("yesterday"), 2);
  EXPECT_EQ(exitCodeOf(""), 2);
}

TEST(CtlTimeTravelUntil, OffsetLists) {
  const TimeTravelUntil until = parseUntil("b.events:1=7, a.events:0=15");
  ASSERT_EQ(until.kind, TimeTravelUntil::Kind::kOffsets);
  ASSERT_EQ(until.offsets.size(), 2u);
  EXPECT_EQ(until.offsets.at({"a.events", 0}), 15);
  EXPECT_EQ(until.offsets.at({"b.events", 1}), 7);
  EXPECT_EQ(until.describe(), "a.events:0=15,b.events:1=7");
  EXPECT_EQ(exitCodeOf("a:0=1,a:0=2"), 2);
  EXPECT_EQ(exitCodeOf("a:0=-1"), 2);
  EXPECT_EQ(exitCodeOf("a=1"), 2);
  EXPECT_EQ(exitCodeOf("a:0=1,"), 2);
}

// Found by tests/fuzz/until_fuzz.cpp: std::regex recursed once per character and a long
// --until overflowed the stack (SIGSEGV) instead of being refused.
TEST(CtlTimeTravelUntil, AVeryLongUntilIsRefusedNotACrash) {
  const std::string digits(200000, '1');
  EXPECT_EQ(exitCodeOf("t:1=" + digits), 2);
  EXPECT_EQ(exitCodeOf(std::string(200000, 'a') + ":1=1"), 2);
  EXPECT_EQ(exitCodeOf("2026-11-27T08:00:00." + digits + "Z"), 2);
  EXPECT_EQ(exitCodeOf(digits), 2);  // epoch milliseconds out of range
  try {
    parseUntil("t:1=" + digits);
  } catch (const CtlError& e) {
    EXPECT_LT(std::string(e.what()).size(), 200u) << "the message quotes at most 80 characters";
  }
  // Whitespace around an item is still allowed, whatever it is.
  EXPECT_EQ(parseUntil(" \t a:0=1 \n").offsets.at({"a", 0}), 1);
}

}  // namespace
}  // namespace ultracore::ctl
