// Static group membership: the group.instance.id each runner derives from the engine's
// --instance-id must be unique per runner of a group and acceptable to Kafka.

#include <stdexcept>
#include <vector>

#include <gtest/gtest.h>

#include "engine/runner/projection_runner.h"

namespace ultracore::engine {
namespace {

TEST(StaticMemberId, NamesInstanceKeyAndWorker) {
  EXPECT_EQ(staticMemberId("engine-a", "accounts", 0), "engine-a.accounts.w0");
  EXPECT_EQ(staticMemberId("engine-a", "accounts", 1), "engine-a.accounts.w1");
}

TEST(StaticMemberId, ReplacesCharactersKafkaRejects) {
  // A rebuild's key is "name@gN": '@' is not allowed in a group.instance.id.
  EXPECT_EQ(staticMemberId("e1", "customers@g2", 3), "e1.customers-g2.w3");
}

TEST(StaticMemberId, DiffersBetweenInstancesAndGenerations) {
  EXPECT_NE(staticMemberId("a", "p", 0), staticMemberId("b", "p", 0));
  EXPECT_NE(staticMemberId("a", "p", 0), staticMemberId("a", "p@g2", 0));
}

TEST(ValidateInstanceId, AcceptsKafkasCharacters) {
  EXPECT_NO_THROW(validateInstanceId("engine-1"));
  EXPECT_NO_THROW(validateInstanceId("host_7.dc-2"));
}

TEST(ValidateInstanceId, RejectsEmptyLongAndForeignCharacters) {
  for (const std::string& bad : std::vector<std::string>{"", "has space", "a/b", "a@b", "é", std::string(101, 'x')}) {
    EXPECT_THROW(validateInstanceId(bad), std::invalid_argument) << "'" << bad << "'";
  }
  try {
    validateInstanceId("a b");
    FAIL() << "no exception";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("'a b'"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace ultracore::engine
