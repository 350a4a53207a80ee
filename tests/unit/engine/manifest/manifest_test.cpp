#include "engine/manifest/manifest.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <iterator>
#include <map>
#include <string>

#include "engine/manifest/env_expand.h"
#include "engine/manifest/suggest.h"

namespace ultracore::engine {
namespace {

using ::testing::HasSubstr;

const std::filesystem::path kFile = "/srv/ultracore/config/projections.yaml";

EnvLookup fakeEnv(std::map<std::string, std::string> vars) {
  return [vars = std::move(vars)](const std::string& name) -> std::optional<std::string> {
    const auto it = vars.find(name);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

Manifest parse(const std::string& yaml, std::map<std::string, std::string> vars = {}) {
  return parseManifest(yaml, kFile, fakeEnv(std::move(vars)));
}

// Lines 1-5 of most manifests below; the first projection entry starts on line 6.
std::string withProjectionForTopics(const std::string& topics_section = "");

const std::string kHead = R"(postgres: {url: "postgresql://pg/uc"}
plugins:
  - {name: customers, library: lib/libultracore_customers.so}
  - {name: accounts, library: /opt/uc/libultracore_accounts.so}
projections:
)";

// ---------------------------------------------------------------------------------------------
// Valid manifests

TEST(Manifest, DesignExampleRoundTripsWithDefaults) {
  const std::string yaml = R"(kafka:                      # any librdkafka property passes through
  bootstrap.servers: ${ULTRACORE_KAFKA:-127.0.0.1:9092}
postgres:
  url: ${ULTRACORE_PG:-postgresql://postgres@127.0.0.1:5432/ultracore}
api:   { listen: 127.0.0.1:8000 }
admin: { listen: 127.0.0.1:9464 }
plugins:
  - { name: customers, library: ../build/plugins/customers/libultracore_customers.so }
  - { name: accounts,  library: ../build/plugins/accounts/libultracore_accounts.so }
projections:
  - name: customers
    plugin: customers
    topics: [ultracore.customers.events]
    batch: { max_events: 500, max_wait_ms: 20 }
    on_error: dead_letter    # fail | skip | dead_letter
  - name: accounts
    plugin: accounts
    topics: [ultracore.accounts.events]
)";
  const Manifest m = parse(yaml);
  EXPECT_EQ(m.file, kFile);
  EXPECT_EQ(m.kafka, (std::map<std::string, std::string>{{"bootstrap.servers", "127.0.0.1:9092"}}));
  EXPECT_EQ(m.postgres_url, "postgresql://postgres@127.0.0.1:5432/ultracore");
  EXPECT_EQ(m.api_listen, "127.0.0.1:8000");
  EXPECT_EQ(m.admin_listen, "127.0.0.1:9464");
  EXPECT_EQ(m.api_token, "");
  EXPECT_EQ(m.admin_token, "");
  EXPECT_EQ(m.api_max_body_bytes, 1048576u);

  ASSERT_EQ(m.plugins.size(), 2u);
  EXPECT_EQ(m.plugins[0].name, "customers");
  EXPECT_EQ(m.plugins[0].library,
            "/srv/ultracore/build/plugins/customers/libultracore_customers.so");
  EXPECT_EQ(m.plugins[0].where.file, kFile.string());
  EXPECT_EQ(m.plugins[0].where.line, 8);
  EXPECT_EQ(m.plugins[0].where.column, 5);
  EXPECT_EQ(m.plugins[1].library, "/srv/ultracore/build/plugins/accounts/libultracore_accounts.so");

  ASSERT_EQ(m.projections.size(), 2u);
  const ProjectionSpec& c = m.projections[0];
  EXPECT_EQ(c.name, "customers");
  EXPECT_EQ(c.plugin, "customers");
  EXPECT_EQ(c.projection, "customers");
  EXPECT_EQ(c.topics, std::vector<std::string>{"ultracore.customers.events"});
  EXPECT_EQ(c.batch.max_events, 500);
  EXPECT_EQ(c.batch.max_wait_ms, 20);
  EXPECT_TRUE(c.batch.flush_when_idle);
  EXPECT_FALSE(c.batch.synchronous_commit);
  EXPECT_EQ(c.on_error, ErrorPolicy::kDeadLetter);
  EXPECT_EQ(c.retries, 0);
  EXPECT_EQ(c.workers, 1);
  EXPECT_EQ(c.schema, "");
  EXPECT_EQ(c.group_id, "ultracore.projection.customers");
  EXPECT_TRUE(c.kafka.empty());
  EXPECT_EQ(c.config, nlohmann::json::object());
  EXPECT_EQ(c.where.line, 11);
  EXPECT_EQ(c.where.column, 5);
  EXPECT_EQ(c.plugin_where.line, 12);
  EXPECT_EQ(c.plugin_where.column, 13);
  EXPECT_EQ(c.projection_where.line, 11);  // no projection: -> the entry
  EXPECT_EQ(c.projection_where.column, 5);

  const ProjectionSpec& a = m.projections[1];
  EXPECT_EQ(a.on_error, ErrorPolicy::kFail);
  EXPECT_EQ(a.batch.max_events, 500);
  EXPECT_EQ(a.batch.max_wait_ms, 20);
  EXPECT_EQ(a.group_id, "ultracore.projection.accounts");

  EXPECT_EQ(m.findPlugin("accounts"), &m.plugins[1]);
  EXPECT_EQ(m.findPlugin("nope"), nullptr);
  EXPECT_EQ(m.findProjection("accounts"), &m.projections[1]);
  EXPECT_EQ(m.findProjection("nope"), nullptr);
}

TEST(Manifest, EveryOptionalKey) {
  const std::string yaml = R"(kafka:
  bootstrap.servers: broker:9092
  enable.idempotence: true
  linger.ms: 5
postgres:
  url: postgresql://pg/uc
api: {listen: "0.0.0.0:0", token: s3cret, max_body_bytes: 4096}
admin: {listen: "[::1]:9464", token: adm}
plugins:
  - name: customers
    library: /opt/libc.so
projections:
  - name: customers_v2
    plugin: customers
    projection: customers
    topics: [a.events, b-events]
    batch: {max_events: 100000, max_wait_ms: 0, flush_when_idle: false, synchronous_commit: true}
    on_error: park
    retries: 3
    workers: 4
    schema: customers_v2
    group_id: my.group
    kafka: {fetch.min.bytes: 1024, auto.offset.reset: earliest}
    config:
      greeting: hello
      quoted: "42"
      count: 42
      ratio: 0.5
      flag: true
      nothing: ~
      list: [1, two, {three: 3}]
      big: 18446744073709551615
)";
  const Manifest m = parse(yaml);
  EXPECT_EQ(m.kafka, (std::map<std::string, std::string>{{"bootstrap.servers", "broker:9092"},
                                                         {"enable.idempotence", "true"},
                                                         {"linger.ms", "5"}}));
  EXPECT_EQ(m.api_listen, "0.0.0.0:0");
  EXPECT_EQ(m.api_token, "s3cret");
  EXPECT_EQ(m.api_max_body_bytes, 4096u);
  EXPECT_EQ(m.admin_listen, "[::1]:9464");
  EXPECT_EQ(m.admin_token, "adm");
  ASSERT_EQ(m.projections.size(), 1u);
  const ProjectionSpec& p = m.projections[0];
  EXPECT_EQ(p.projection, "customers");
  EXPECT_EQ(p.projection_where.line, 15);
  EXPECT_EQ(p.projection_where.column, 17);
  EXPECT_EQ(p.topics, (std::vector<std::string>{"a.events", "b-events"}));
  EXPECT_EQ(p.batch.max_events, 100000);
  EXPECT_EQ(p.batch.max_wait_ms, 0);
  EXPECT_FALSE(p.batch.flush_when_idle);
  EXPECT_TRUE(p.batch.synchronous_commit);
  EXPECT_EQ(p.on_error, ErrorPolicy::kPark);
  EXPECT_EQ(p.retries, 3);
  EXPECT_EQ(p.workers, 4);
  EXPECT_EQ(p.schema, "customers_v2");
  EXPECT_EQ(p.group_id, "my.group");
  EXPECT_EQ(p.kafka, (std::map<std::string, std::string>{{"fetch.min.bytes", "1024"},
                                                         {"auto.offset.reset", "earliest"}}));
  const nlohmann::json expected = {
      {"greeting", "hello"}, {"quoted", "42"},  {"count", 42},
      {"ratio", 0.5},        {"flag", true},    {"nothing", nullptr},
      {"list", nlohmann::json::array({1, "two", {{"three", 3}}})},
      {"big", 18446744073709551615ULL}};
  EXPECT_EQ(p.config, expected);
}

TEST(Manifest, EmptyListsAndSections) {
  const Manifest m = parse("postgres: {url: x}\nkafka:\napi:\nplugins: []\nprojections: []\n");
  EXPECT_TRUE(m.kafka.empty());
  EXPECT_EQ(m.api_listen, "127.0.0.1:8000");
  EXPECT_TRUE(m.plugins.empty());
  EXPECT_TRUE(m.projections.empty());
}

TEST(Manifest, TopicsSection) {
  const Manifest m = parse(R"(postgres: {url: x}
plugins: [{name: customers, library: a.so}]
topics:
  a.events: {partitions: 6}
  b-events:
    partitions: 3
    replication_factor: 3
    config: {retention.ms: -1, cleanup.policy: compact, min.insync.replicas: "${ISR}"}
  unused.events: {partitions: 1, config: {}}
projections:
  - {name: customers, plugin: customers, topics: [a.events, b-events]}
)",
                           {{"ISR", "2"}});
  EXPECT_TRUE(m.topics_declared);
  ASSERT_EQ(m.topics.size(), 3u);
  EXPECT_EQ(m.topics[0].name, "a.events");
  EXPECT_EQ(m.topics[0].partitions, 6);
  EXPECT_EQ(m.topics[0].replication_factor, -1);  // absent: the broker's default
  EXPECT_TRUE(m.topics[0].config.empty());
  EXPECT_EQ(m.topics[0].where.line, 4);
  EXPECT_EQ(m.topics[0].where.column, 3);
  EXPECT_EQ(m.topics[1].name, "b-events");
  EXPECT_EQ(m.topics[1].partitions, 3);
  EXPECT_EQ(m.topics[1].replication_factor, 3);
  EXPECT_EQ(m.topics[1].config, (std::map<std::string, std::string>{{"retention.ms", "-1"},
                                                                     {"cleanup.policy", "compact"},
                                                                     {"min.insync.replicas", "2"}}));
  EXPECT_EQ(m.topics[2].name, "unused.events");  // declared but read by no projection: fine
  EXPECT_EQ(m.findTopic("b-events"), &m.topics[1]);
  EXPECT_EQ(m.findTopic("nope"), nullptr);
}

TEST(Manifest, NoTopicsSectionDeclaresNothing) {
  const Manifest m = parse(withProjectionForTopics());
  EXPECT_FALSE(m.topics_declared);
  EXPECT_TRUE(m.topics.empty());
  EXPECT_EQ(m.projections.at(0).topics, std::vector<std::string>{"t"});
}

TEST(Manifest, ShippedManifestDeclaresEveryProjectionTopic) {
  const Manifest m = parseManifest(
      [] {
        std::ifstream in(std::filesystem::path(ULTRACORE_SOURCE_DIR) / "config/projections.yaml");
        return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
      }(),
      kFile, fakeEnv({}));
  ASSERT_TRUE(m.topics_declared);
  for (const char* name : {"ultracore.customers.events", "ultracore.accounts.events"}) {
    const TopicSpec* topic = m.findTopic(name);
    ASSERT_NE(topic, nullptr) << name;
    EXPECT_EQ(topic->partitions, 6) << name;
  }
}

TEST(Manifest, ToStringNamesEveryPolicy) {
  EXPECT_STREQ(toString(ErrorPolicy::kFail), "fail");
  EXPECT_STREQ(toString(ErrorPolicy::kSkip), "skip");
  EXPECT_STREQ(toString(ErrorPolicy::kDeadLetter), "dead_letter");
  EXPECT_STREQ(toString(ErrorPolicy::kPark), "park");
}

TEST(Manifest, ManifestErrorIsOneLine) {
  const ManifestError e({"a.yaml", 3, 7}, "bad\nthing");
  EXPECT_STREQ(e.what(), "a.yaml:3:7: bad\\nthing");
  EXPECT_EQ(e.where().line, 3);
  EXPECT_EQ(e.message(), "bad\nthing");
}

// ---------------------------------------------------------------------------------------------
// Library paths

TEST(Manifest, LibraryPathsResolveAgainstTheManifestFolder) {
  const Manifest m = parseManifest(R"(postgres: {url: x}
plugins:
  - {name: a, library: ../build/./plugins/a/liba.so}
  - {name: b, library: libb.so}
  - {name: c, library: /abs/../lib/libc.so}
projections: []
)",
                                   "/srv/uc/config/projections.yaml", {});
  ASSERT_EQ(m.plugins.size(), 3u);
  EXPECT_EQ(m.plugins[0].library, "/srv/uc/build/plugins/a/liba.so");
  EXPECT_EQ(m.plugins[1].library, "/srv/uc/config/libb.so");
  EXPECT_EQ(m.plugins[2].library, "/lib/libc.so");
  EXPECT_EQ(m.file, "/srv/uc/config/projections.yaml");
}

TEST(Manifest, RelativeManifestPathStillGivesAbsoluteLibraries) {
  const Manifest m = parseManifest(
      "postgres: {url: x}\nplugins: [{name: a, library: lib/liba.so}]\nprojections: []\n",
      "config/projections.yaml", {});
  ASSERT_EQ(m.plugins.size(), 1u);
  EXPECT_TRUE(m.plugins[0].library.is_absolute());
  EXPECT_EQ(m.plugins[0].library,
            (std::filesystem::current_path() / "config/lib/liba.so").lexically_normal());
}

// ---------------------------------------------------------------------------------------------
// Environment expansion

TEST(EnvExpansion, SetDefaultAndEscape) {
  const auto env = fakeEnv({{"HOST", "db"}, {"EMPTY", ""}, {"PORT", "5433"}});
  EXPECT_EQ(expandEnv("postgresql://${HOST}:${PORT}/x", env), "postgresql://db:5433/x");
  EXPECT_EQ(expandEnv("${UNSET:-fallback}", env), "fallback");
  EXPECT_EQ(expandEnv("${HOST:-fallback}", env), "db");
  EXPECT_EQ(expandEnv("${EMPTY:-fallback}", env), "fallback");
  EXPECT_EQ(expandEnv("${EMPTY}", env), "");
  EXPECT_EQ(expandEnv("${UNSET:-}", env), "");
  EXPECT_EQ(expandEnv("${UNSET:-a:-b}", env), "a:-b");
  EXPECT_EQ(expandEnv("cost $$5 and $${HOST}", env), "cost $5 and ${HOST}");
  EXPECT_EQ(expandEnv("a$ b$", env), "a$ b$");
  EXPECT_EQ(expandEnv("${UNSET:-${HOST}", env), "${HOST");  // the default ends at the first }
}

TEST(EnvExpansion, Errors) {
  const auto env = fakeEnv({});
  EXPECT_THROW(expandEnv("${NOPE}", env), EnvExpansionError);
  EXPECT_THROW(expandEnv("${NOPE", env), EnvExpansionError);
  EXPECT_THROW(expandEnv("${1BAD}", env), EnvExpansionError);
  EXPECT_THROW(expandEnv("${}", env), EnvExpansionError);
  EXPECT_THROW(expandEnv("${A B}", env), EnvExpansionError);
  EXPECT_THROW(expandEnv("${HOST}", EnvLookup{}), EnvExpansionError);  // empty lookup: none set
}

TEST(Manifest, SafeDefaultsAndTheirOverrides) {
  const Manifest loopback = parse("postgres: {url: x}\napi: {listen: \"127.0.0.2:8000\"}\n"
                                  "admin: {listen: \"[::1]:0\"}\nplugins: []\nprojections: []\n");
  EXPECT_FALSE(loopback.api_insecure);
  EXPECT_TRUE(loopback.api_hosts.empty());
  const Manifest open = parse(
      "postgres: {url: x}\napi: {listen: \"0.0.0.0:8000\", insecure: true, hosts: [Api.Example, "
      "\"[::1]\"]}\nadmin: {listen: \"10.0.0.5:9464\", token: adm, hosts: [ops.example]}\n"
      "plugins: []\nprojections: []\n");
  EXPECT_TRUE(open.api_insecure);
  EXPECT_EQ(open.api_hosts, (std::vector<std::string>{"api.example", "[::1]"}));
  EXPECT_EQ(open.admin_token, "adm");
  EXPECT_EQ(open.admin_hosts, std::vector<std::string>{"ops.example"});
  for (const char* host : {"127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost"}) {
    EXPECT_TRUE(isLoopbackHost(host)) << host;
  }
  for (const char* host : {"0.0.0.0", "::", "[::]", "10.0.0.5", "127.0.0.1.example", "api.example"}) {
    EXPECT_FALSE(isLoopbackHost(host)) << host;
  }
}

TEST(Manifest, TheApiRoleDefaultsToUltracoreApiAndTakesItsOwnUrl) {
  const Manifest defaults = parse("postgres: {url: x}\nplugins: []\nprojections: []\n");
  EXPECT_EQ(defaults.postgres_api_role, "ultracore_api");
  EXPECT_EQ(defaults.postgres_api_url, "");
  const Manifest own = parse(
      "postgres: {url: x, api_url: \"postgresql://api@h/db\", api_role: reader_1}\n"
      "plugins: []\nprojections: []\n");
  EXPECT_EQ(own.postgres_api_role, "reader_1");
  EXPECT_EQ(own.postgres_api_url, "postgresql://api@h/db");
  EXPECT_EQ(parse("postgres: {url: x, api_role: ''}\nplugins: []\nprojections: []\n").postgres_api_role, "");
}

TEST(Manifest, TokensBindTenants) {
  const Manifest m = parse(
      "postgres: {url: x}\napi:\n  listen: \"0.0.0.0:8000\"\n  tokens:\n"
      "    - {token: only-a, tenants: [tenant-a]}\n"
      "    - {token: gw, tenants: '*', gateway: true, user: gateway-7}\n"
      "plugins: []\nprojections: []\n");
  ASSERT_EQ(m.api_tokens.size(), 2u);
  EXPECT_TRUE(m.apiNeedsToken());
  EXPECT_EQ(m.api_tokens[0].token, "only-a");
  EXPECT_EQ(m.api_tokens[0].tenants, std::vector<std::string>{"tenant-a"});
  EXPECT_FALSE(m.api_tokens[0].all_tenants);
  EXPECT_EQ(m.api_tokens[0].where.line, 5);
  EXPECT_TRUE(m.api_tokens[1].all_tenants);
  EXPECT_EQ(m.api_tokens[1].user, "gateway-7");
}

TEST(Manifest, ExpandsEveryScalarValueButNoKey) {
  const Manifest m = parse(
      R"(kafka: {"${K}": "${V}"}
postgres: {url: "postgresql://${PGHOST}/uc"}
api: {token: "${TOKEN:-t0ken}", max_body_bytes: "${BODY}"}
plugins: [{name: "${PLUGIN}", library: "${LIBDIR}/lib.so"}]
projections:
  - name: customers
    plugin: customers
    topics: ["${TOPIC}"]
    batch: {max_events: "${MAX:-7}"}
    config:
      n: "${N}"
      m: ${N}
      lit: "$${N}"
)",
      {{"K", "k"},
       {"V", "v"},
       {"PGHOST", "db"},
       {"BODY", "2048"},
       {"PLUGIN", "customers"},
       {"LIBDIR", "/opt"},
       {"TOPIC", "t.events"},
       {"N", "12"}});
  EXPECT_EQ(m.kafka, (std::map<std::string, std::string>{{"${K}", "v"}}));
  EXPECT_EQ(m.postgres_url, "postgresql://db/uc");
  EXPECT_EQ(m.api_token, "t0ken");
  EXPECT_EQ(m.api_max_body_bytes, 2048u);
  EXPECT_EQ(m.plugins.at(0).library, "/opt/lib.so");
  EXPECT_EQ(m.projections.at(0).topics, std::vector<std::string>{"t.events"});
  EXPECT_EQ(m.projections.at(0).batch.max_events, 7);
  // Quoted stays a string; plain is typed after expansion.
  EXPECT_EQ(m.projections.at(0).config, (nlohmann::json{{"n", "12"}, {"m", 12}, {"lit", "${N}"}}));
}

// ---------------------------------------------------------------------------------------------
// Errors: substring of the message and the exact line:column.

struct ErrorCase {
  std::string name;
  std::string yaml;
  int line;
  int column;
  std::string substring;
  std::map<std::string, std::string> env = {};
};

std::ostream& operator<<(std::ostream& out, const ErrorCase& c) { return out << c.name; }

class ManifestErrors : public ::testing::TestWithParam<ErrorCase> {};

TEST_P(ManifestErrors, NamesFileLineAndColumn) {
  const ErrorCase& c = GetParam();
  try {
    parse(c.yaml, c.env);
    FAIL() << "no error for:\n" << c.yaml;
  } catch (const ManifestError& e) {
    EXPECT_THAT(e.message(), HasSubstr(c.substring));
    EXPECT_EQ(e.where().file, kFile.string());
    EXPECT_EQ(e.where().line, c.line) << e.what();
    EXPECT_EQ(e.where().column, c.column) << e.what();
    EXPECT_EQ(std::string(e.what()), kFile.string() + ":" + std::to_string(c.line) + ":" +
                                         std::to_string(c.column) + ": " + e.message());
    EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos);
  }
}

// A projection entry on lines 6.. after kHead, with extra lines appended.
std::string withProjection(const std::string& extra, const std::string& topics = "[t]") {
  return kHead + "  - name: customers\n    plugin: customers\n    topics: " + topics + "\n" +
         extra;
}

const std::string kMinimal = "postgres: {url: x}\nplugins: []\nprojections: []\n";

// A `topics:` section (if any) on lines 3.., then one projection reading topic 't'; its topics
// list is on the line after the section + 4.
std::string withProjectionForTopics(const std::string& topics_section) {
  return "postgres: {url: x}\nplugins: [{name: customers, library: a.so}]\n" + topics_section +
         "projections:\n  - name: customers\n    plugin: customers\n    topics: [t]\n";
}

INSTANTIATE_TEST_SUITE_P(
    Manifest, ManifestErrors,
    ::testing::Values(
        // YAML syntax: yaml-cpp's ParserException mark, made 1-based.
        ErrorCase{"SyntaxUnclosedFlowMap", "postgres: {url: x\nplugins: []\n", 2, 8,
                  "YAML syntax error: end of map flow not found"},
        ErrorCase{"SyntaxBadIndentation", "postgres:\n  url: x\n   bad: 1\n", 3, 7,
                  "YAML syntax error: illegal map value"},
        // yaml-cpp 0.7's LoadAll loops forever on these (a fuzz finding): an error instead.
        ErrorCase{"SyntaxStrayComma", ",\n", 1, 1,
                  "YAML syntax error: unexpected ',' where a value should start"},
        ErrorCase{"SyntaxStrayCommaAfterAScalar", "\"a\",\n", 1, 4,
                  "YAML syntax error: unexpected ','"},
        ErrorCase{"SyntaxStrayCommaInALaterDocument", kMinimal + "...\n,\n", 5, 1,
                  "YAML syntax error: unexpected ','"},
        ErrorCase{"EmptyManifest", "# nothing\n", 1, 1, "manifest is empty"},
        ErrorCase{"RootIsAList", "- a\n- b\n", 1, 1, "manifest must be a map of sections"},
        ErrorCase{"TwoDocuments", kMinimal + "---\nfoo: 1\n", 5, 1,
                  "more than one YAML document"},

        // Unknown keys, with a suggestion when one is near.
        ErrorCase{"UnknownBatchKey", withProjection("    batch: {max_event: 5}\n"), 9, 13,
                  "unknown key 'max_event' in batch; did you mean 'max_events'?"},
        ErrorCase{"UnknownProjectionKey", withProjection("    topic: [t]\n"), 9, 5,
                  "unknown key 'topic' in projection 'customers'; did you mean 'topics'?"},
        ErrorCase{"UnknownTopLevelKeyNoSuggestion", "zzzzzz: 1\n" + kMinimal, 1, 1,
                  "unknown key 'zzzzzz' at top level; expected one of kafka, postgres"},
        ErrorCase{"UnknownTopLevelKeyTypo", kMinimal + "projection: []\n", 4, 1,
                  "did you mean 'projections'?"},
        ErrorCase{"UnknownPluginKey",
                  "postgres: {url: x}\nplugins:\n  - {name: a, libary: x.so}\nprojections: []\n",
                  3, 15, "unknown key 'libary' in plugin 'a'; did you mean 'library'?"},
        ErrorCase{"UnknownPostgresKey",
                  "postgres: {url: x, urls: y}\nplugins: []\nprojections: []\n", 1, 20, "unknown key 'urls' in postgres; did you mean 'url'?"},
        ErrorCase{"UnknownApiKey", kMinimal + "api: {max_body: 1}\n", 4, 7,
                  "unknown key 'max_body' in api; did you mean 'max_body_bytes'?"},
        ErrorCase{"DuplicateKey", withProjection("    plugin: accounts\n"), 9, 5,
                  "duplicate key 'plugin' in projection 'customers' (first at line 7)"},

        // Wrong types.
        ErrorCase{"MaxEventsNotAnInteger", withProjection("    batch: {max_events: abc}\n"), 9,
                  25, "'max_events' must be an integer, got 'abc'"},
        ErrorCase{"MaxWaitIsAFloat", withProjection("    batch: {max_wait_ms: 1.5}\n"), 9, 26,
                  "'max_wait_ms' must be an integer, got '1.5'"},
        ErrorCase{"FlushWhenIdleNotABoolean", withProjection("    batch: {flush_when_idle: yes}\n"),
                  9, 30, "'flush_when_idle' must be true or false, got 'yes'"},
        ErrorCase{"SynchronousCommitNotABoolean",
                  withProjection("    batch: {synchronous_commit: on}\n"), 9, 33,
                  "'synchronous_commit' must be true or false, got 'on'"},
        ErrorCase{"RetriesIsAList", withProjection("    retries: [1]\n"), 9, 14,
                  "'retries' must be an integer, got a list"},
        ErrorCase{"RetentionWithoutUnit", withProjection("    dedupe: {retention: 7}\n"), 9, 25,
                  "'retention' must be 'forever' or a duration such as 90s, 30m, 12h or 7d, "
                  "got '7'"},
        ErrorCase{"RetentionZero", withProjection("    dedupe: {retention: 0d}\n"), 9, 25,
                  "'retention' must be 'forever' or a duration such as 90s, 30m, 12h or 7d, "
                  "got '0d'"},
        ErrorCase{"UnknownDedupeKey", withProjection("    dedupe: {retain: 7d}\n"), 9, 14,
                  "unknown key 'retain' in dedupe; expected one of retention"},
        ErrorCase{"BatchIsAScalar", withProjection("    batch: 5\n"), 9, 12,
                  "'batch' must be a map, got '5'"},
        ErrorCase{"UrlIsAMap", "postgres: {url: {a: 1}}\nplugins: []\nprojections: []\n", 1, 17,
                  "'url' must be a string, got a map"},
        ErrorCase{"UrlIsEmpty", "postgres: {url: \"\"}\nplugins: []\nprojections: []\n", 1, 17,
                  "'url' must not be empty"},
        ErrorCase{"UrlHasNoValue", "postgres:\n  url:\nplugins: []\nprojections: []\n", 2, 3,
                  "'url' must be a string, got an empty value"},
        ErrorCase{"TopicsIsAString", withProjection("", "t.events"), 8, 13,
                  "'topics' must be a list of topic names, got 't.events' (write [t.events])"},
        ErrorCase{"TopicIsAMap", withProjection("", "[{a: 1}]"), 8, 14,
                  "each topic must be a string, got a map"},
        ErrorCase{"PluginsIsAMap", "postgres: {url: x}\nplugins: {a: 1}\nprojections: []\n", 2,
                  10, "'plugins' must be a list"},
        ErrorCase{"ProjectionsIsEmptyValue", "postgres: {url: x}\nplugins: []\nprojections:\n",
                  3, 1, "'projections' must be a list, got an empty value"},
        ErrorCase{"ProjectionEntryIsAString", kHead + "  - customers\n", 6, 5,
                  "each projections entry must be a map, got 'customers'"},
        ErrorCase{"KafkaValueIsAMap", "kafka:\n  a.b: {c: 1}\n" + kMinimal, 2, 8,
                  "kafka property 'a.b' must be a string, got a map"},
        ErrorCase{"KafkaIsAList", "kafka: [a]\n" + kMinimal, 1, 8,
                  "'kafka' must be a map of librdkafka properties"},
        ErrorCase{"OnErrorUnknown", withProjection("    on_error: dead-letter\n"), 9, 15,
                  "'on_error' must be one of fail, skip, dead_letter, park; got 'dead-letter'; "
                  "did you mean 'dead_letter'?"},
        ErrorCase{"ListenWithoutPort", kMinimal + "api: {listen: localhost}\n", 4, 15,
                  "'listen' must be host:port"},
        // Safe defaults (issue 20): no empty token, no open port off loopback.
        ErrorCase{"EmptyApiToken", kMinimal + "api: {token: \"\"}\n", 4, 14,
                  "'token' must not be empty (an empty token would turn authentication off)"},
        ErrorCase{"EmptyAdminTokenFromEnvironment", kMinimal + "admin: {token: \"${ADMIN_TOKEN:-}\"}\n",
                  4, 16, "'token' must not be empty"},
        ErrorCase{"TokenWithSpace", kMinimal + "api: {token: \"a b\"}\n", 4, 14,
                  "'token' must be printable ASCII without spaces"},
        ErrorCase{"ApiOffLoopbackWithoutToken", kMinimal + "api: {listen: \"0.0.0.0:8000\"}\n", 4,
                  15, "api.listen '0.0.0.0:8000' is reachable from other machines: set api.token "
                      "(or api.insecure: true"},
        ErrorCase{"AdminOffLoopbackWithOnlyTheApiToken",
                  kMinimal + "api: {token: t}\nadmin: {listen: \"[::]:9464\"}\n", 5, 17,
                  "admin.listen '[::]:9464' is reachable from other machines: set admin.token"},
        // Tokens bound to tenants (issue 20).
        ErrorCase{"TokensStarWithoutGateway", kMinimal + "api: {tokens: [{token: a, tenants: '*'}]}\n",
                  4, 36, "tenants: '*' lets the token act for every tenant: declare it as a trusted "
                         "gateway's with gateway: true"},
        ErrorCase{"TokensDuplicate",
                  kMinimal + "api: {tokens: [{token: a, tenants: [x]}, {token: a, tenants: [y]}]}\n",
                  4, 50, "duplicate token (first at line 4)"},
        ErrorCase{"TokensRepeatApiToken",
                  kMinimal + "api: {token: a, tokens: [{token: a, tenants: [x]}]}\n", 4, 34,
                  "this token is also api.token"},
        ErrorCase{"TokensBadTenant", kMinimal + "api: {tokens: [{token: a, tenants: [\"a b\"]}]}\n",
                  4, 37, "'a b' is not a tenant id"},
        ErrorCase{"TokensUnknownKey", kMinimal + "api: {tokens: [{token: a, tenant: [x]}]}\n", 4, 27,
                  "unknown key 'tenant' in api.tokens entry; did you mean 'tenants'?"},
        ErrorCase{"ApiRoleNotAName",
                  "postgres: {url: x, api_role: \"Api Role\"}\nplugins: []\nprojections: []\n", 1,
                  30, "'api_role' must be a role name of [a-z0-9_]"},
        ErrorCase{"ApiUrlEmpty", "postgres: {url: x, api_url: \"\"}\nplugins: []\nprojections: []\n",
                  1, 29, "'api_url' must not be empty"},
        ErrorCase{"InsecureNotABoolean", kMinimal + "api: {insecure: yes}\n", 4, 17,
                  "'insecure' must be true or false"},
        ErrorCase{"HostsNotAList", kMinimal + "api: {hosts: a.example}\n", 4, 14,
                  "'hosts' must be a list of host names"},
        ErrorCase{"HostWithPort", kMinimal + "admin: {hosts: [\"a.example/x\"]}\n", 4, 17,
                  "'a.example/x' is not a host name"},
        ErrorCase{"ListenPortTooBig", kMinimal + "admin: {listen: \"127.0.0.1:70000\"}\n", 4,
                  17, "'listen' must be host:port"},
        ErrorCase{"ConfigKeyIsAList", withProjection("    config: {[a]: 1}\n"), 9, 14,
                  "keys in config must be plain names, got a list"},

        // Out of range.
        ErrorCase{"MaxEventsZero", withProjection("    batch: {max_events: 0}\n"), 9, 25,
                  "'max_events' must be between 1 and 100000, got 0"},
        ErrorCase{"MaxEventsTooBig", withProjection("    batch: {max_events: 100001}\n"), 9, 25,
                  "'max_events' must be between 1 and 100000, got 100001"},
        ErrorCase{"MaxEventsOverflow",
                  withProjection("    batch: {max_events: 99999999999999999999}\n"), 9, 25,
                  "'max_events' must be between 1 and 100000, got 99999999999999999999"},
        ErrorCase{"MaxWaitNegative", withProjection("    batch: {max_wait_ms: -1}\n"), 9, 26,
                  "'max_wait_ms' must be between 0 and 60000, got -1"},
        ErrorCase{"MaxWaitTooBig", withProjection("    batch: {max_wait_ms: 60001}\n"), 9, 26,
                  "'max_wait_ms' must be between 0 and 60000, got 60001"},
        ErrorCase{"RetriesNegative", withProjection("    retries: -1\n"), 9, 14,
                  "'retries' must be at least 0, got -1"},
        ErrorCase{"RetriesTooBig", withProjection("    retries: 99999999999\n"), 9, 14,
                  "'retries' must be at most 2147483647, got 99999999999"},
        ErrorCase{"WorkersZero", withProjection("    workers: 0\n"), 9, 14,
                  "'workers' must be between 1 and 64, got 0"},
        ErrorCase{"WorkersTooMany", withProjection("    workers: 65\n"), 9, 14,
                  "'workers' must be between 1 and 64, got 65"},
        ErrorCase{"WorkersNotAnInteger", withProjection("    workers: two\n"), 9, 14,
                  "'workers' must be an integer, got 'two'"},
        ErrorCase{"WorkersIsAList", withProjection("    workers: [2]\n"), 9, 14,
                  "'workers' must be an integer, got a list"},
        ErrorCase{"MaxBodyBytesZero", kMinimal + "api: {max_body_bytes: 0}\n", 4, 23,
                  "'max_body_bytes' must be between 1 and 1073741824, got 0"},

        // Missing required keys.
        ErrorCase{"MissingPostgres", "plugins: []\nprojections: []\n", 1, 1,
                  "missing required key 'postgres' at top level"},
        ErrorCase{"MissingPostgresUrl", "plugins: []\npostgres: {}\nprojections: []\n", 2, 11,
                  "missing required key 'url' in postgres"},
        ErrorCase{"MissingPostgresUrlEmptySection", "plugins: []\npostgres:\nprojections: []\n",
                  2, 1, "missing required key 'url' in postgres"},
        ErrorCase{"MissingPlugins", "postgres: {url: x}\nprojections: []\n", 1, 1,
                  "missing required key 'plugins' at top level"},
        ErrorCase{"MissingProjections", "postgres: {url: x}\nplugins: []\n", 1, 1,
                  "missing required key 'projections' at top level"},
        ErrorCase{"MissingProjectionName", kHead + "  - plugin: customers\n    topics: [t]\n", 6,
                  5, "missing required key 'name' in projections entry"},
        ErrorCase{"MissingProjectionPlugin", kHead + "  - name: customers\n    topics: [t]\n", 6,
                  5, "missing required key 'plugin' in projection 'customers'"},
        ErrorCase{"MissingProjectionTopics", kHead + "  - {name: customers, plugin: customers}\n",
                  6, 5, "missing required key 'topics' in projection 'customers'"},
        ErrorCase{"MissingPluginLibrary",
                  "postgres: {url: x}\nplugins:\n  - name: a\nprojections: []\n", 3, 5,
                  "missing required key 'library' in plugin 'a'"},
        ErrorCase{"MissingPluginName",
                  "postgres: {url: x}\nplugins:\n  - library: a.so\nprojections: []\n", 3, 5,
                  "missing required key 'name' in plugins entry"},

        // References and duplicates.
        ErrorCase{"PluginNotListed",
                  kHead + "  - name: ledger\n    plugin: ledger\n    topics: [t]\n", 7, 13,
                  "projection 'ledger' uses plugin 'ledger', which is not in plugins: (listed: "
                  "customers, accounts)"},
        ErrorCase{"PluginNotListedTypo",
                  kHead + "  - name: c\n    plugin: customer\n    topics: [t]\n", 7, 13,
                  "projection 'c' uses plugin 'customer', which is not in plugins: did you mean "
                  "'customers'?"},
        ErrorCase{"DuplicateProjectionName",
                  withProjection("  - name: customers\n    plugin: accounts\n    topics: [u]\n"),
                  9, 11, "duplicate projection name 'customers' (first at line 6)"},
        ErrorCase{"DuplicatePluginName",
                  "postgres: {url: x}\nplugins:\n  - {name: a, library: a.so}\n"
                  "  - {name: a, library: b.so}\nprojections: []\n",
                  4, 12, "duplicate plugin name 'a' (first at line 3)"},
        ErrorCase{"EmptyTopics", withProjection("", "[]"), 8, 13,
                  "'topics' of projection 'customers' is empty"},
        ErrorCase{"DuplicateTopic", withProjection("", "[t, u, t]"), 8, 20,
                  "topic 't' is listed twice"},
        ErrorCase{"BadTopicName", withProjection("", "[\"a b\"]"), 8, 14,
                  "'a b' is not a valid Kafka topic name"},
        ErrorCase{"SameSchema",
                  withProjection("    schema: crm\n  - name: accounts\n    plugin: accounts\n"
                                 "    topics: [u]\n    schema: crm\n"),
                  13, 13, "schema 'crm' is already used by projection 'customers' (line 6)"},
        ErrorCase{"SameGroupId",
                  withProjection("  - name: accounts\n    plugin: accounts\n    topics: [u]\n"
                                 "    group_id: ultracore.projection.customers\n"),
                  12, 15,
                  "group_id 'ultracore.projection.customers' is already used by projection "
                  "'customers' (line 6)"},
        ErrorCase{"KafkaGroupIdInProjection", withProjection("    kafka: {group.id: g}\n"), 9, 13,
                  "not kafka 'group.id'"},
        ErrorCase{"KafkaGroupIdAtTopLevel", "kafka:\n  group.id: g\n" + kMinimal, 2, 3,
                  "'group.id' is set per projection"},

        // The topics section (after kMinimal: `topics:` is line 4, its entries from line 5).
        ErrorCase{"TopicsIsAList", kMinimal + "topics: [a]\n", 4, 9,
                  "'topics' must be a map of topic name -> {partitions"},
        ErrorCase{"TopicEntryIsAScalar", kMinimal + "topics:\n  a.events: 6\n", 5, 13,
                  "topic 'a.events' must be a map with partitions"},
        ErrorCase{"TopicNameInvalid", kMinimal + "topics:\n  \"a b\": {partitions: 1}\n", 5, 3,
                  "'a b' is not a valid Kafka topic name"},
        ErrorCase{"TopicUnknownKey", kMinimal + "topics:\n  a: {partition: 1}\n", 5, 7,
                  "unknown key 'partition' in topic 'a'; did you mean 'partitions'?"},
        ErrorCase{"TopicMissingPartitions", kMinimal + "topics:\n  a: {replication_factor: 1}\n",
                  5, 6, "missing required key 'partitions' in topic 'a'"},
        ErrorCase{"TopicPartitionsZero", kMinimal + "topics:\n  a: {partitions: 0}\n", 5, 19,
                  "'partitions' must be between 1 and 100000, got 0"},
        ErrorCase{"TopicPartitionsNegative", kMinimal + "topics:\n  a: {partitions: -6}\n", 5,
                  19, "'partitions' must be between 1 and 100000, got -6"},
        ErrorCase{"TopicPartitionsNotAnInteger", kMinimal + "topics:\n  a: {partitions: six}\n",
                  5, 19, "'partitions' must be an integer, got 'six'"},
        ErrorCase{"TopicReplicationFactorZero",
                  kMinimal + "topics:\n  a: {partitions: 1, replication_factor: 0}\n", 5, 42,
                  "'replication_factor' must be between 1 and 32767, got 0"},
        ErrorCase{"TopicReplicationFactorIsAList",
                  kMinimal + "topics:\n  a: {partitions: 1, replication_factor: [3]}\n", 5, 42,
                  "'replication_factor' must be an integer, got a list"},
        ErrorCase{"TopicConfigIsAList",
                  kMinimal + "topics:\n  a: {partitions: 1, config: [retention.ms]}\n", 5, 30,
                  "'config' of topic 'a' must be a map of topic configs"},
        ErrorCase{"TopicConfigValueIsAMap",
                  kMinimal + "topics:\n  a:\n    partitions: 1\n    config:\n"
                             "      retention.ms: {x: 1}\n",
                  8, 21, "topic config 'retention.ms' must be a string, got a map"},
        ErrorCase{"TopicConfigDuplicateKey",
                  kMinimal + "topics:\n  a:\n    partitions: 1\n    config:\n"
                             "      retention.ms: 1\n      retention.ms: 2\n",
                  9, 7, "duplicate key 'retention.ms' in config of topic 'a'"},
        ErrorCase{"TopicDeclaredTwice",
                  kMinimal + "topics:\n  a: {partitions: 1}\n  a: {partitions: 2}\n", 6, 3,
                  "duplicate key 'a' in topics (first at line 5)"},
        ErrorCase{"ProjectionTopicNotDeclared",
                  withProjectionForTopics("topics:\n  u: {partitions: 1}\n"), 8, 14,
                  "topic 't' of projection 'customers' is not declared in topics: (declared: u); "
                  "declare it with its partitions"},
        ErrorCase{"ProjectionTopicNotDeclaredTypo",
                  withProjectionForTopics("topics:\n  tt: {partitions: 1}\n"), 8, 14,
                  "is not declared in topics: did you mean 'tt'?"},
        ErrorCase{"ProjectionTopicEmptyTopicsSection", withProjectionForTopics("topics:\n"), 7,
                  14, "is not declared in topics: (none declared)"},
        ErrorCase{"TopicPartitionsFromUnsetVariable",
                  kMinimal + "topics:\n  a:\n    partitions: ${NOPE}\n", 6, 17,
                  "environment variable 'NOPE' is not set"},

        // Names and schema identifiers.
        ErrorCase{"ProjectionNameUpperCase", kHead + "  - {name: Customers, plugin: customers, "
                                                     "topics: [t]}\n",
                  6, 12, "projection name 'Customers' must match [a-z][a-z0-9_]*"},
        ErrorCase{"PluginNameWithDash",
                  "postgres: {url: x}\nplugins: [{name: my-plugin, library: a.so}]\n"
                  "projections: []\n",
                  2, 18, "plugin name 'my-plugin' must match [a-z][a-z0-9_]*"},
        ErrorCase{"SchemaNotAnIdentifier", withProjection("    schema: 1crm\n"), 9, 13,
                  "schema '1crm' must match [a-z_][a-z0-9_]*"},
        ErrorCase{"SchemaTooLong", withProjection("    schema: " + std::string(49, 'a') + "\n"),
                  9, 13, "characters long; at most 48"},
        ErrorCase{"SchemaReserved", withProjection("    schema: pg_crm\n"), 9, 13,
                  "PostgreSQL reserves"},

        // Environment.
        ErrorCase{"UnsetVariable",
                  "postgres:\n  url: postgresql://${PGHOST}/uc\nplugins: []\nprojections: []\n",
                  2, 8, "environment variable 'PGHOST' is not set"},
        ErrorCase{"UnsetVariableInTopic", withProjection("", "[ok, \"${TOPIC}\"]"), 8, 18,
                  "environment variable 'TOPIC' is not set"},
        ErrorCase{"UnsetVariableInConfig",
                  withProjection("    config:\n      a:\n        - x\n        - ${NOPE}\n"), 12,
                  11, "environment variable 'NOPE' is not set"},
        ErrorCase{"UnterminatedReference", kMinimal + "api: {token: \"${TOKEN\"}\n", 4, 14,
                  "unterminated '${'"},
        ErrorCase{"ExpandedValueIsChecked",
                  withProjection("    batch:\n      max_events: ${N}\n"), 10, 19,
                  "'max_events' must be an integer, got 'ten'", {{"N", "ten"}}},
        // '{' and '}' are YAML flow indicators: unquoted ${VAR} inside {...} or [...] breaks
        // the YAML itself. Block style or quotes work (see ExpandsEveryScalarValueButNoKey).
        ErrorCase{"UnquotedReferenceInFlowMap", withProjection("    batch: {max_events: ${N}}\n"),
                  9, 26, "YAML syntax error", {{"N", "5"}}}),
    [](const ::testing::TestParamInfo<ErrorCase>& info) { return info.param.name; });

// ---------------------------------------------------------------------------------------------
// Files

class TempFolder {
 public:
  TempFolder() {
    std::string pattern = (std::filesystem::temp_directory_path() / "manifest_test.XXXXXX");
    if (!::mkdtemp(pattern.data())) throw std::runtime_error("mkdtemp failed");
    path_ = pattern;
  }
  ~TempFolder() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

void writeFile(const std::filesystem::path& path, const std::string& text) {
  std::ofstream(path) << text;
}

TEST(LoadManifest, ReadsAFileAndResolvesLibrariesNextToIt) {
  TempFolder folder;
  std::filesystem::create_directories(folder.path() / "config");
  const auto file = folder.path() / "config" / "projections.yaml";
  writeFile(file, withProjection("") + "    schema: ${ULTRACORE_MANIFEST_TEST_SCHEMA:-crm}\n");
  ::setenv("ULTRACORE_MANIFEST_TEST_SCHEMA", "crm_env", 1);
  const Manifest m = loadManifest(file);
  ::unsetenv("ULTRACORE_MANIFEST_TEST_SCHEMA");
  EXPECT_EQ(m.file, file);
  ASSERT_EQ(m.plugins.size(), 2u);
  EXPECT_EQ(m.plugins[0].library,
            folder.path() / "config" / "lib" / "libultracore_customers.so");
  EXPECT_EQ(m.plugins[1].library, "/opt/uc/libultracore_accounts.so");
  ASSERT_EQ(m.projections.size(), 1u);
  EXPECT_EQ(m.projections[0].schema, "crm_env");
}

TEST(LoadManifest, ErrorsNameTheFile) {
  TempFolder folder;
  const auto file = folder.path() / "bad.yaml";
  writeFile(file, "postgres: {url: x}\nplugins: []\nprojections: []\nbogus: 1\n");
  try {
    loadManifest(file);
    FAIL() << "no error";
  } catch (const ManifestError& e) {
    EXPECT_EQ(std::string(e.what()),
              file.string() + ":4:1: unknown key 'bogus' at top level; expected one of kafka, "
                              "postgres, api, admin, plugins, projections, topics");
  }
}

TEST(LoadManifest, MissingFile) {
  TempFolder folder;
  const auto file = folder.path() / "nope.yaml";
  try {
    loadManifest(file);
    FAIL() << "no error";
  } catch (const ManifestError& e) {
    EXPECT_EQ(e.where().line, 0);
    EXPECT_EQ(e.where().column, 0);
    EXPECT_THAT(e.what(), HasSubstr(file.string() + ":0:0: cannot open manifest file '" +
                                    file.string() + "': No such file or directory"));
  }
}

TEST(LoadManifest, FolderInsteadOfFile) {
  TempFolder folder;
  try {
    loadManifest(folder.path());
    FAIL() << "no error";
  } catch (const ManifestError& e) {
    EXPECT_EQ(e.where().line, 0);
    EXPECT_EQ(e.where().column, 0);
    EXPECT_THAT(e.message(), HasSubstr("cannot read manifest file '" + folder.path().string() +
                                       "': Is a directory"));
  }
}

TEST(LoadManifest, PathThroughAFile) {
  TempFolder folder;
  const auto file = folder.path() / "plain";
  writeFile(file, kMinimal);
  try {
    loadManifest(file / "projections.yaml");
    FAIL() << "no error";
  } catch (const ManifestError& e) {
    EXPECT_EQ(e.where().line, 0);
    EXPECT_EQ(e.where().column, 0);
    EXPECT_THAT(e.message(), HasSubstr("cannot open manifest file '" +
                                       (file / "projections.yaml").string() +
                                       "': Not a directory"));
  }
}

TEST(LoadManifest, UnreadableFile) {
  if (::geteuid() == 0) GTEST_SKIP() << "root reads any file";
  TempFolder folder;
  const auto file = folder.path() / "secret.yaml";
  writeFile(file, kMinimal);
  std::filesystem::permissions(file, std::filesystem::perms::none);
  try {
    loadManifest(file);
    FAIL() << "no error";
  } catch (const ManifestError& e) {
    EXPECT_EQ(e.where().line, 0);
    EXPECT_THAT(e.message(), HasSubstr("Permission denied"));
  }
}

// ---------------------------------------------------------------------------------------------
// Suggestions

TEST(Suggest, NearestNameOnlyWhenClose) {
  EXPECT_EQ(editDistance("max_event", "max_events"), 1u);
  EXPECT_EQ(editDistance("libary", "library"), 1u);
  EXPECT_EQ(editDistance("tpoics", "topics"), 1u);
  EXPECT_EQ(nearestName("max_event", {"max_events", "max_wait_ms"}), "max_events");
  EXPECT_EQ(nearestName("zzzzzz", {"kafka", "api"}), std::nullopt);
  EXPECT_EQ(nearestName("x", {}), std::nullopt);
}

}  // namespace
TEST(Manifest, DedupeRetention) {
  EXPECT_EQ(parse(withProjection("")).projections.at(0).dedupe_retention, 0);
  EXPECT_EQ(parse(withProjection("    dedupe: {retention: 7d}\n")).projections.at(0).dedupe_retention,
            7 * 86400);
  EXPECT_EQ(parse(withProjection("    dedupe: {retention: 90s}\n")).projections.at(0).dedupe_retention,
            90);
  EXPECT_EQ(parse(withProjection("    dedupe: {retention: 12h}\n")).projections.at(0).dedupe_retention,
            12 * 3600);
  EXPECT_EQ(
      parse(withProjection("    dedupe: {retention: forever}\n")).projections.at(0).dedupe_retention,
      0);
}

}  // namespace ultracore::engine

namespace ultracore::engine {
namespace {

// A plugin's configErrorAt markers (sdk/config_error.h) land on the manifest's line and column:
// inside a block scalar by line and column of the text, in a quoted or plain scalar by column.
TEST(ManifestConfigPlacement, MarkersBecomeFileLineColumnOfTheValueInsideConfig) {
  const Manifest m = parse(R"(postgres: {url: x}
plugins: [{name: p, library: /lib/p.so}]
projections:
  - name: v
    plugin: p
    topics: [t]
    config:
      tables: |
        CREATE TABLE a (
          x int)
      on:
        A: "INSERT :bad"
        B:
          - SELECT :x
)");
  const ProjectionSpec& spec = m.projections.at(0);
  const std::string f = kFile.string();
  EXPECT_EQ(placeConfigErrors("@config/tables#19: no", spec), f + ":10:11: no");
  EXPECT_EQ(placeConfigErrors("@config/tables#0: start", spec), f + ":9:9: start");
  EXPECT_EQ(placeConfigErrors("x @config/on/A#7: bad, @config/on/B/0#7: x", spec),
            "x " + f + ":12:20: bad, " + f + ":14:20: x");
  // Not in the manifest: the nearest enclosing value; no config at all: the entry.
  EXPECT_EQ(placeConfigErrors("@config/on/C#3: m", spec), f + ":12:9: m");
  EXPECT_EQ(placeConfigErrors("no marker @config", spec), "no marker @config");
}

}  // namespace
}  // namespace ultracore::engine
