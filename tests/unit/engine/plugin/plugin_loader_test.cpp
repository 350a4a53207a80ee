#include "engine/plugin/plugin_loader.h"

#include <dlfcn.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "ultracore/sdk/sdk.h"

namespace ultracore::engine {
namespace {

namespace fs = std::filesystem;

fs::path pluginPath(const std::string& plugin) {
  return fs::path(ULTRACORE_TEST_PLUGIN_DIR) / ("libultracore_" + plugin + ".so");
}

/// Asks the dynamic linker, without loading anything, whether the library is still mapped.
bool isLoaded(const fs::path& library) {
  void* handle = dlopen(library.c_str(), RTLD_NOW | RTLD_NOLOAD);
  if (handle == nullptr) return false;
  dlclose(handle);
  return true;
}

class RecordingLogger final : public sdk::Logger {
 public:
  void log(sdk::LogLevel /*level*/, std::string_view message) noexcept override {
    messages.emplace_back(message);
  }
  std::size_t count(std::string_view part) const {
    return static_cast<std::size_t>(
        std::count_if(messages.begin(), messages.end(),
                      [&](const std::string& m) { return m.find(part) != std::string::npos; }));
  }
  std::vector<std::string> messages;
};

class NullWriter final : public sdk::Writer {
 public:
  const std::string& schema() const override { return schema_; }
  sdk::Status exec(std::string_view /*sql*/, const sdk::Params& /*params*/) override {
    return sdk::Status::ok();
  }
  sdk::Result<sdk::Rows> query(std::string_view /*sql*/, const sdk::Params& /*params*/) override {
    return sdk::Rows{};
  }
  sdk::Result<sdk::Rows> execBatch(std::string_view /*sql*/,
                                   const std::vector<std::string>& /*columns*/,
                                   const std::vector<sdk::Params>& /*rows*/) override {
    return sdk::Rows{};
  }

 private:
  std::string schema_ = "test";
};

sdk::ProjectionContext makeContext(sdk::Logger* logger, nlohmann::json config = {}) {
  sdk::ProjectionContext context;
  context.projection_name = "under_test";
  context.schema = "test";
  context.config = config.is_null() ? nlohmann::json::object() : std::move(config);
  context.logger = logger;
  return context;
}

template <typename Call>
PluginError captureError(Call&& call) {
  try {
    call();
  } catch (const PluginError& e) {
    return e;
  }
  ADD_FAILURE() << "expected a PluginError, nothing was thrown";
  return PluginError(PluginErrorCode::kOpenFailed, "<nothing thrown>");
}

void expectError(const PluginError& error, PluginErrorCode code,
                 std::initializer_list<std::string> parts) {
  const std::string message = error.what();
  EXPECT_EQ(code, error.code()) << "got " << toString(error.code()) << ": " << message;
  EXPECT_EQ(std::string::npos, message.find('\n')) << "not one line: " << message;
  for (const std::string& part : parts) {
    EXPECT_NE(std::string::npos, message.find(part)) << "expected '" << part << "' in: " << message;
  }
}

void expectLoadError(const std::string& plugin, PluginErrorCode code,
                     std::initializer_list<std::string> parts) {
  PluginRegistry registry;
  const PluginError error = captureError([&] { registry.load(plugin, pluginPath(plugin)); });
  expectError(error, code, parts);
  EXPECT_EQ(nullptr, registry.find(plugin)) << "a refused plugin must not be registered";
}

const std::string kEntry = std::string("symbol '") + sdk::kPluginEntrySymbol + "'";

TEST(PluginLoaderTest, LoadsOkPluginAndCreatesProjection) {
  PluginRegistry registry;
  const LoadedPlugin& plugin = registry.load("ok_plugin", pluginPath("test_ok"));

  EXPECT_EQ("ok_plugin", plugin.name());
  EXPECT_EQ(pluginPath("test_ok"), plugin.path());
  EXPECT_STREQ("test_ok", plugin.descriptor().name);
  EXPECT_STREQ(sdk::kSdkVersion, plugin.descriptor().sdk_version);
  EXPECT_EQ((std::vector<std::string>{"ok", "counter"}), plugin.projectionNames());
  EXPECT_NE(nullptr, plugin.findProjection("counter"));
  EXPECT_EQ(nullptr, plugin.findProjection("nope"));
  EXPECT_EQ(&plugin, registry.find("ok_plugin"));
  EXPECT_EQ(nullptr, registry.find("test_ok"));

  RecordingLogger logger;
  const std::shared_ptr<sdk::Projection> projection =
      plugin.createProjection("ok", makeContext(&logger, {{"schema_version", 3}}));
  ASSERT_NE(nullptr, projection);
  EXPECT_EQ(3, projection->schemaVersion());
  NullWriter writer;
  EXPECT_TRUE(projection->setupSchema(writer).isOk());
  EXPECT_TRUE(projection->apply({}, writer).isOk());
}

TEST(PluginLoaderTest, ProjectionKeepsLibraryLoadedAfterRegistryIsDestroyed) {
  const fs::path library = pluginPath("test_ok");
  RecordingLogger logger;  // outlives the projection, as the engine's logger does
  std::shared_ptr<sdk::Projection> projection;
  {
    auto registry = std::make_unique<PluginRegistry>();
    const LoadedPlugin& plugin = registry->load("ok", library);
    // The caller's context dies here too: the loader keeps its own copy for the projection.
    projection = plugin.createProjection("counter", makeContext(&logger, {{"schema_version", 7}}));
    registry.reset();
  }
  ASSERT_TRUE(isLoaded(library)) << "the projection must hold its library";

  // Its vtable and code live in the library: this call crashes if the library was unloaded.
  EXPECT_EQ(7, projection->schemaVersion());
  EXPECT_EQ(0u, logger.count("destroyed"));

  projection.reset();
  EXPECT_EQ(1u, logger.count("counter projection 'under_test' destroyed"))
      << "destroy must run inside the plugin, exactly once";
  EXPECT_FALSE(isLoaded(library)) << "the last object gone, nothing holds the library";
}

TEST(PluginLoaderTest, MissingFileIsOpenFailedWithLoaderReason) {
  const fs::path missing = fs::path(ULTRACORE_TEST_PLUGIN_DIR) / "libultracore_missing.so";
  PluginRegistry registry;
  expectError(captureError([&] { registry.load("missing", missing); }),
              PluginErrorCode::kOpenFailed,
              {"plugin 'missing'", missing.string(), "No such file or directory"});
}

TEST(PluginLoaderTest, FileThatIsNotALibraryIsOpenFailed) {
  const fs::path text = fs::temp_directory_path() /
                        ("ultracore_plugin_loader_test_" + std::to_string(getpid()) + ".so");
  {
    std::ofstream out(text);
    out << "This is a text file, not an ELF shared object; dlopen must refuse it.\n"
        << std::string(128, '#') << "\n";
  }
  PluginRegistry registry;
  const PluginError error = captureError([&] { registry.load("text", text); });
  fs::remove(text);
  expectError(error, PluginErrorCode::kOpenFailed,
              {"plugin 'text'", text.string(), "invalid ELF header"});
}

TEST(PluginLoaderTest, LibraryWithoutEntryPointIsRefused) {
  expectLoadError("test_no_entry", PluginErrorCode::kMissingEntryPoint,
                  {pluginPath("test_no_entry").string(), kEntry, "not exported"});
}

TEST(PluginLoaderTest, NullDescriptorIsRefused) {
  expectLoadError("test_null_descriptor", PluginErrorCode::kNullDescriptor,
                  {pluginPath("test_null_descriptor").string(), kEntry, "null descriptor"});
}

TEST(PluginLoaderTest, WrongAbiVersionIsRefusedBeforeAnythingElseIsRead) {
  const std::string versions = "ABI version " + std::to_string(sdk::kAbiVersion + 6) +
                               ", engine expects " + std::to_string(sdk::kAbiVersion);
  expectLoadError(
      "test_wrong_abi", PluginErrorCode::kAbiMismatch,
      {"plugin 'test_wrong_abi'", pluginPath("test_wrong_abi").string(), kEntry, versions});
}

TEST(PluginLoaderTest, WrongFingerprintIsRefusedNamingBoth) {
  expectLoadError("test_wrong_fingerprint", PluginErrorCode::kFingerprintMismatch,
                  {pluginPath("test_wrong_fingerprint").string(), kEntry,
                   "'gcc-0.0.0;libstdc++-19700101;cxx-201703;nlohmann_json-0.0'",
                   std::string("engine expects '") + sdk::kBuildFingerprint + "'"});
}

TEST(PluginLoaderTest, FactoryWithoutDestroyIsRefused) {
  expectLoadError("test_incomplete_factory", PluginErrorCode::kInvalidDescriptor,
                  {pluginPath("test_incomplete_factory").string(), kEntry,
                   "projection 'leaky' has no destroy function"});
}

TEST(PluginLoaderTest, ProjectionOfferedTwiceIsDuplicate) {
  expectLoadError(
      "test_duplicate_name", PluginErrorCode::kDuplicateName,
      {pluginPath("test_duplicate_name").string(), kEntry, "projection 'twice' is offered twice"});
}

TEST(PluginLoaderTest, CreateThatThrowsIsCreateFailedWithPluginText) {
  PluginRegistry registry;
  const LoadedPlugin& plugin = registry.load("throws", pluginPath("test_create_throws"));
  RecordingLogger logger;
  expectError(
      captureError([&] {
        plugin.createProjection("throws", makeContext(&logger, {{"reason", "bad config"}}));
      }),
      PluginErrorCode::kCreateFailed,
      {pluginPath("test_create_throws").string(), "projection 'throws'", "boom: bad config"});
}

TEST(PluginLoaderTest, CreateThatReturnsNullWithoutErrorIsReported) {
  PluginRegistry registry;
  const LoadedPlugin& plugin = registry.load("null", pluginPath("test_create_null"));
  RecordingLogger logger;
  expectError(captureError([&] { plugin.createProjection("null", makeContext(&logger)); }),
              PluginErrorCode::kCreateReturnedNull,
              {pluginPath("test_create_null").string(), "projection 'null'", "returned null"});
}

TEST(PluginLoaderTest, UnknownProjectionListsWhatThePluginOffers) {
  PluginRegistry registry;
  const LoadedPlugin& plugin = registry.load("ok", pluginPath("test_ok"));
  RecordingLogger logger;
  expectError(captureError([&] { plugin.createProjection("nope", makeContext(&logger)); }),
              PluginErrorCode::kUnknownProjection,
              {"plugin 'ok'", "projection 'nope'", "it offers: ok, counter"});
}

TEST(PluginLoaderTest, ManifestNameLoadedTwiceIsDuplicate) {
  PluginRegistry registry;
  const LoadedPlugin& first = registry.load("shared", pluginPath("test_ok"));
  expectError(captureError([&] { registry.load("shared", pluginPath("test_create_null")); }),
              PluginErrorCode::kDuplicateName,
              {"plugin 'shared'", pluginPath("test_create_null").string(),
               "already loaded from " + pluginPath("test_ok").string()});
  EXPECT_EQ(&first, registry.find("shared"));
}

TEST(PluginLoaderTest, SameLibraryUnderTwoManifestNamesIsDuplicate) {
  PluginRegistry registry;
  const LoadedPlugin& first = registry.load("first", pluginPath("test_ok"));
  expectError(captureError([&] { registry.load("second", pluginPath("test_ok")); }),
              PluginErrorCode::kDuplicateName,
              {"plugin 'second'", pluginPath("test_ok").string(), kEntry,
               "descriptor name 'test_ok' is already loaded as plugin 'first'"});
  EXPECT_EQ(nullptr, registry.find("second"));

  // Refusing the second name must not unload the library under the first one.
  RecordingLogger logger;
  EXPECT_EQ(1, first.createProjection("ok", makeContext(&logger))->schemaVersion());
}

TEST(PluginLoaderTest, EveryErrorCodeHasAName) {
  const std::vector<std::string> names = {toString(PluginErrorCode::kOpenFailed),
                                          toString(PluginErrorCode::kMissingEntryPoint),
                                          toString(PluginErrorCode::kNullDescriptor),
                                          toString(PluginErrorCode::kAbiMismatch),
                                          toString(PluginErrorCode::kFingerprintMismatch),
                                          toString(PluginErrorCode::kDuplicateName),
                                          toString(PluginErrorCode::kUnknownProjection),
                                          toString(PluginErrorCode::kCreateFailed),
                                          toString(PluginErrorCode::kCreateReturnedNull),
                                          toString(PluginErrorCode::kInvalidDescriptor)};
  for (const std::string& name : names) EXPECT_NE("unknown", name);
  EXPECT_EQ("abi_mismatch", std::string(toString(PluginErrorCode::kAbiMismatch)));
}

}  // namespace
}  // namespace ultracore::engine

namespace ultracore::engine {
namespace {

// The event catalog (issue 16) is optional: a plugin without one loads with a null catalog; a
// malformed one is refused at load, naming the entry.
TEST(PluginLoaderTest, PluginWithoutCatalogLoadsWithNone) {
  PluginRegistry registry;
  EXPECT_TRUE(registry.load("ok_plugin", pluginPath("test_ok")).catalog().is_null());
}

TEST(PluginLoaderTest, CatalogNamingAProjectionThePluginLacksIsRefused) {
  expectLoadError("test_bad_catalog", PluginErrorCode::kInvalidCatalog,
                  {pluginPath("test_bad_catalog").string(), "symbol 'ultracore_plugin_catalog'",
                   "projection 'nope', event type 'ThingMade': the plugin offers no projection 'nope'"});
}

}  // namespace
}  // namespace ultracore::engine
