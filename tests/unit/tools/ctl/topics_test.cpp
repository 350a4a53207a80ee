#include <gtest/gtest.h>

#include "engine/manifest/manifest.h"
#include "tools/ctl/topics_command.h"

namespace ultracore::ctl {
namespace {

engine::Manifest parse(const std::string& yaml) {
  return engine::parseManifest(yaml, "/srv/uc/config/projections.yaml", {});
}

const std::string kProjections = R"(projections:
  - {name: customers, plugin: p, topics: [a.events, b.events]}
  - {name: summary, plugin: p, topics: [b.events, c.events]}
)";
const std::string kHead = "postgres: {url: x}\nplugins: [{name: p, library: p.so}]\n";

TEST(DeclaredTopics, TheTopicsSectionWhenPresent) {
  const auto manifest = parse(kHead + R"(topics:
  a.events: {partitions: 6, replication_factor: 3, config: {retention.ms: "-1"}}
  b.events: {partitions: 2}
  c.events: {partitions: 1}
  extra.events: {partitions: 4}
)" + kProjections);
  const auto topics = declaredTopics(manifest);
  ASSERT_EQ(topics.size(), 4u);
  EXPECT_EQ(topics[0].name, "a.events");
  EXPECT_EQ(topics[0].partitions, 6);
  EXPECT_EQ(topics[0].replication_factor, 3);
  EXPECT_EQ(topics[0].config, (std::map<std::string, std::string>{{"retention.ms", "-1"}}));
  EXPECT_EQ(topics[1].replication_factor, -1);
  EXPECT_EQ(topics[3].name, "extra.events");
}

TEST(DeclaredTopics, WithoutASectionEveryProjectionTopicOnceWithBrokerDefaults) {
  const auto topics = declaredTopics(parse(kHead + kProjections));
  ASSERT_EQ(topics.size(), 3u);
  EXPECT_EQ(topics[0].name, "a.events");
  EXPECT_EQ(topics[1].name, "b.events");
  EXPECT_EQ(topics[2].name, "c.events");
  for (const auto& topic : topics) {
    EXPECT_EQ(topic.partitions, -1) << topic.name;
    EXPECT_EQ(topic.replication_factor, -1) << topic.name;
    EXPECT_TRUE(topic.config.empty()) << topic.name;
  }
}

struct DifferenceCase {
  std::string name;
  DeclaredTopic declared;
  ExistingTopic existing;
  std::vector<std::string> expected;
};

std::ostream& operator<<(std::ostream& out, const DifferenceCase& c) { return out << c.name; }

class TopicDifferences : public ::testing::TestWithParam<DifferenceCase> {};

TEST_P(TopicDifferences, ListsEachOne) {
  const auto& c = GetParam();
  EXPECT_EQ(topicDifferences(c.declared, c.existing), c.expected);
}

INSTANTIATE_TEST_SUITE_P(
    Topics, TopicDifferences,
    ::testing::Values(
        DifferenceCase{"AsDeclared",
                       {"t", 6, 3, {{"retention.ms", "-1"}}},
                       {"t", 6, {3, 3, 3, 3, 3, 3}, {{"retention.ms", "-1"}}},
                       {}},
        DifferenceCase{"BrokerDefaultsAreNotCompared",
                       {"t", -1, -1, {}},
                       {"t", 4, {1, 1, 1, 1}, {}},
                       {}},
        DifferenceCase{"Partitions", {"t", 6, -1, {}}, {"t", 3, {1, 1, 1}, {}},
                       {"partitions: declared 6, actual 3"}},
        DifferenceCase{"ReplicationFactor", {"t", 2, 3, {}}, {"t", 2, {1, 1}, {}},
                       {"replication_factor: declared 3, actual 1"}},
        DifferenceCase{"ReplicationFactorDiffersBetweenPartitions", {"t", 2, 3, {}},
                       {"t", 2, {3, 2}, {}},
                       {"replication_factor: declared 3, actual 2..3 (differs between "
                        "partitions)"}},
        DifferenceCase{"ConfigValue",
                       {"t", 1, -1, {{"retention.ms", "-1"}, {"cleanup.policy", "delete"}}},
                       {"t", 1, {1}, {{"retention.ms", "604800000"}, {"cleanup.policy", "delete"}}},
                       {"config retention.ms: declared -1, actual 604800000"}},
        DifferenceCase{"ConfigNotReported", {"t", 1, -1, {{"retention.mss", "1"}}},
                       {"t", 1, {1}, {}},
                       {"config retention.mss: declared 1, actual: not reported by the broker "
                        "(not a topic config?)"}},
        DifferenceCase{"EverythingAtOnce", {"t", 6, 3, {{"a", "1"}, {"b", "2"}}},
                       {"t", 3, {1, 1, 1}, {{"a", "1"}, {"b", "3"}}},
                       {"partitions: declared 6, actual 3",
                        "replication_factor: declared 3, actual 1",
                        "config b: declared 2, actual 3"}}),
    [](const ::testing::TestParamInfo<DifferenceCase>& info) { return info.param.name; });

}  // namespace
}  // namespace ultracore::ctl
