// The plugin author's path, end to end, in a temporary directory outside the repository:
// install the SDK, scaffold a plugin with tools/new-plugin, build it against the installed
// SDK, run its own test (the test kit), add it to a copy of config/projections.yaml, start
// the engine, produce its event, and find the row.


#include <csignal>
#include <fstream>
#include <regex>
#include <sstream>

#include <gtest/gtest.h>

#include "engine_harness.h"

namespace ultracore::testing {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

std::string readFile(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream out;
  out << in.rdbuf();
  return out.str();
}

/// Runs a command to completion; returns its exit status and fills `log` with its output.
int run(const std::vector<std::string>& argv, const fs::path& log,
        std::map<std::string, std::string> env = {}, std::chrono::seconds timeout = 600s) {
  Subprocess process(argv, std::move(env), log);
  const auto status = process.wait(timeout);
  return status.value_or(-1);
}

TEST(ScaffoldTest, ScaffoldedPluginBuildsAgainstTheInstalledSdkAndRunsInTheEngine) {
  TestDatabase db;  // throws with a clear message when there is no PostgreSQL
  TempDir tmp;
  ASSERT_EQ(fs::path(tmp.path()).string().rfind(sourceDir().string(), 0), std::string::npos);
  const fs::path prefix = tmp.path() / "sdk";
  const std::string name = "e2e_widgets";
  const fs::path project = tmp.path() / name;
  const fs::path build = project / "build";

  // 1. Install the SDK from this build.
  ASSERT_EQ(run({CMAKE_COMMAND_PATH, "--install", binaryDir().string(), "--prefix", prefix.string()},
                tmp.path() / "install.log"),
            0)
      << readFile(tmp.path() / "install.log");
  ASSERT_TRUE(fs::exists(prefix / "include/ultracore/sdk/version.h"));
  ASSERT_TRUE(fs::exists(prefix / "include/ultracore/sdk/testing/testing.h"));

  // 2. Scaffold.
  ASSERT_EQ(run({(sourceDir() / "tools/new-plugin").string(), name, "--dir", tmp.path().string()},
                tmp.path() / "scaffold.log"),
            0)
      << readFile(tmp.path() / "scaffold.log");
  for (const char* file : {"CMakeLists.txt", "README.md", "manifest-snippet.yaml",
                           "src/e2e_widgets_projection.cpp", "tests/e2e_widgets_test.cpp"}) {
    EXPECT_TRUE(fs::exists(project / file)) << file;
  }
  // Refuses to overwrite.
  EXPECT_NE(run({(sourceDir() / "tools/new-plugin").string(), name, "--dir", tmp.path().string()},
                tmp.path() / "scaffold2.log"),
            0);

  // 3. Build it against the installed SDK only, warning-free, and run its own test.
  const fs::path configure_log = tmp.path() / "configure.log";
  ASSERT_EQ(run({CMAKE_COMMAND_PATH, "-S", project.string(), "-B", build.string(),
                 "-DCMAKE_PREFIX_PATH=" + prefix.string(), "-DCMAKE_COMPILE_WARNING_AS_ERROR=ON"},
                configure_log),
            0)
      << readFile(configure_log);
  const fs::path build_log = tmp.path() / "build.log";
  ASSERT_EQ(run({CMAKE_COMMAND_PATH, "--build", build.string(), "-j2"}, build_log), 0)
      << readFile(build_log);
  const fs::path library = build / "plugins" / name / ("libultracore_" + name + ".so");
  ASSERT_TRUE(fs::exists(library)) << readFile(build_log);
  const fs::path ctest_log = tmp.path() / "ctest.log";
  ASSERT_EQ(run({CTEST_COMMAND_PATH, "--test-dir", build.string(), "-V"}, ctest_log,
                {{"ULTRACORE_TEST_PG", postgresAdminUrl()}}),
            0)
      << readFile(ctest_log);
  EXPECT_NE(readFile(ctest_log).find("[  PASSED  ] 3 tests"), std::string::npos)
      << readFile(ctest_log);
  EXPECT_EQ(readFile(ctest_log).find("SKIPPED"), std::string::npos) << readFile(ctest_log);

  // 4. A copy of the shipped manifest with the new plugin added (and absolute library paths,
  //    free ports), pointed at this test's broker and database through the environment.
  std::string manifest = readFile(sourceDir() / "config/projections.yaml");
  manifest = std::regex_replace(manifest, std::regex(R"(\.\./build/)"), binaryDir().string() + "/");
  manifest = std::regex_replace(manifest, std::regex(R"(127\.0\.0\.1:8000)"),
                                "127.0.0.1:" + std::to_string(freePort()));
  manifest = std::regex_replace(manifest, std::regex(R"(127\.0\.0\.1:9464)"),
                                "127.0.0.1:" + std::to_string(freePort()));
  const std::string plugin_entry =
      "  - { name: " + name + ", library: " + library.string() + " }\n";
  const auto plugins_at = manifest.find("\nplugins:\n");
  ASSERT_NE(plugins_at, std::string::npos) << "config/projections.yaml has no 'plugins:' line";
  manifest.insert(plugins_at + std::string("\nplugins:\n").size(), plugin_entry);
  ASSERT_EQ(manifest.rfind("\nprojections:\n") > plugins_at, true);
  // The snippet's projection entry, as the README tells the author to paste it.
  const std::string snippet = readFile(project / "manifest-snippet.yaml");
  const auto projection_at = snippet.find("  - name: " + name);
  ASSERT_NE(projection_at, std::string::npos) << snippet;
  if (manifest.back() != '\n') manifest += "\n";
  manifest += snippet.substr(projection_at);
  // Its topic under the manifest's topics: (every projection topic must be declared there).
  const std::string topic_line = "  " + name + ".events: { partitions: 6 }\n";
  ASSERT_NE(snippet.find(topic_line), std::string::npos) << snippet;
  const auto topics_at = manifest.find("\ntopics:\n");
  ASSERT_NE(topics_at, std::string::npos) << "config/projections.yaml has no 'topics:' line";
  manifest.insert(topics_at + std::string("\ntopics:\n").size(), topic_line);
  const fs::path manifest_path = tmp.path() / "projections.yaml";
  std::ofstream(manifest_path) << manifest;

  DevBroker broker(DevBroker::Options{
      1, 3, {"ultracore.customers.events", "ultracore.accounts.events", name + ".events"}});
  // The API's login too (postgres.api_url), else it would read the dev stack's database.
  const std::map<std::string, std::string> env = {{"ULTRACORE_KAFKA", broker.bootstrap()},
                                                  {"ULTRACORE_PG", db.url()},
                                                  {"ULTRACORE_API_PG", db.url()}};
  const fs::path check_log = tmp.path() / "check.log";
  ASSERT_EQ(run({binPath("ultracore-engine").string(), "--config", manifest_path.string(), "--check"},
                check_log, env, 120s),
            0)
      << readFile(check_log) << "\nmanifest:\n" << manifest;

  Subprocess engine({binPath("ultracore-engine").string(), "--config", manifest_path.string()}, env,
                    tmp.path() / "engine.log");
  ASSERT_TRUE(waitForEngineRunning(engine)) << engine.log();

  // 5. Produce the scaffold's event and find the row.
  produce(broker.bootstrap(),
          {{name + ".events", "W-1",
            R"({"event_id":"e2e-1","event_type":"ItemRecorded","aggregate_id":"W-1",)"
            R"("occurred_at":"2026-11-26T12:00:00.000Z","event_data":{"label":"hello"}})"}});
  EXPECT_TRUE(waitUntil(
      [&] {
        return queryValue(db.url(), "SELECT label || ' ' || events FROM e2e_widgets.items "
                                    "WHERE item_id = 'W-1'") == "hello 1";
      },
      60s))
      << engine.log();
  EXPECT_EQ(queryValue(db.url(), "SELECT count(*) FROM processed_events WHERE projection = "
                                 "'e2e_widgets' AND event_id = 'e2e-1'"),
            "1");

  engine.signal(SIGTERM);
  EXPECT_EQ(engine.wait(60s), 0) << engine.log();
}

}  // namespace
}  // namespace ultracore::testing
