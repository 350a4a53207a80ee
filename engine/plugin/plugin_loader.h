#pragma once
/// @file
/// Loads plugin libraries with Boost.DLL and creates the objects they offer. Every object a
/// plugin creates holds its library alive (STYLE.md, "library_holding_deleter").
/// Load on the main thread at start-up; libraries are never unloaded while objects live.

#include <filesystem>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "ultracore/sdk/catalog.h"
#include "ultracore/sdk/plugin.h"

namespace boost::dll {
class shared_library;
}

namespace ultracore::engine {

enum class PluginErrorCode {
  kOpenFailed,           ///< dlopen failed (missing file, missing dependency, not a library)
  kMissingEntryPoint,    ///< no ultracore_plugin_entry symbol
  kNullDescriptor,       ///< the entry point returned nullptr
  kAbiMismatch,          ///< descriptor's abi_version differs from the engine's
  kFingerprintMismatch,  ///< built with another compiler / standard library / JSON library
  kDuplicateName,        ///< two plugins with one name, or one plugin offering a name twice
  kUnknownProjection,    ///< the plugin offers no projection of that name
  kCreateFailed,         ///< the factory threw (caught in the plugin) or reported an error
  kCreateReturnedNull,   ///< the factory returned nullptr without an error
  kInvalidDescriptor,    ///< descriptor incomplete: no name, null projections or factory fields
  kUnknownApi,           ///< the plugin offers no API of that name
  kInvalidCatalog,       ///< ultracore_plugin_catalog's text is not a valid event catalog
};
const char* toString(PluginErrorCode code);

/// One line naming the path, the symbol and the reason.
class PluginError : public std::runtime_error {
 public:
  PluginError(PluginErrorCode code, const std::string& message);
  PluginErrorCode code() const { return code_; }

 private:
  PluginErrorCode code_;
};

/// A loaded library and its validated descriptor.
class LoadedPlugin {
 public:
  LoadedPlugin(std::string name, std::filesystem::path path,
               std::shared_ptr<boost::dll::shared_library> library,
               const sdk::PluginDescriptor* descriptor,
               nlohmann::json catalog = nullptr);

  const std::string& name() const { return name_; }
  const std::filesystem::path& path() const { return path_; }
  const sdk::PluginDescriptor& descriptor() const { return *descriptor_; }
  std::vector<std::string> projectionNames() const;
  const sdk::ProjectionFactory* findProjection(const std::string& name) const;

  /// Creates a projection; the returned pointer keeps the library loaded and destroys the
  /// object through the plugin's own destroy function. Throws PluginError.
  std::shared_ptr<sdk::Projection> createProjection(const std::string& projection,
                                                    const sdk::ProjectionContext& context) const;

  /// The command/query APIs the plugin offers (ABI 2; none for older descriptors).
  std::vector<std::string> apiNames() const;
  /// Creates an API, owned like a projection (keeps the library loaded). Throws PluginError.
  std::shared_ptr<sdk::Api> createApi(const std::string& api, const sdk::ApiContext& context) const;

  /// The event catalog the plugin declares (ULTRACORE_EVENT_CATALOG, checked at load:
  /// {"format", "consumes": [...], "produces": [...]}); null when it declares none.
  const nlohmann::json& catalog() const { return catalog_; }

 private:
  std::string name_;
  std::filesystem::path path_;
  std::shared_ptr<boost::dll::shared_library> library_;
  const sdk::PluginDescriptor* descriptor_;
  nlohmann::json catalog_;
};

/// The set of plugins named in the manifest, by manifest name.
class PluginRegistry {
 public:
  /// Loads `path` under `name`; validates ABI version and fingerprint before anything else.
  /// Throws PluginError.
  const LoadedPlugin& load(const std::string& name, const std::filesystem::path& path);
  const LoadedPlugin* find(const std::string& name) const;
  /// Every loaded plugin, by manifest name.
  const std::map<std::string, std::shared_ptr<LoadedPlugin>>& all() const { return plugins_; }

 private:
  std::map<std::string, std::shared_ptr<LoadedPlugin>> plugins_;
};

}  // namespace ultracore::engine
