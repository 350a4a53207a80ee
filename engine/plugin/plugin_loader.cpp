#include "engine/plugin/plugin_loader.h"

#include <dlfcn.h>

#include <boost/dll/shared_library.hpp>
#include <cstring>
#include <exception>
#include <set>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>

#include "engine/plugin/json_schema.h"

namespace ultracore::engine {

namespace {

namespace dll = boost::dll;

/// A message travels to a log line or to stderr from main: keep it on one line even when a
/// plugin's own error text spans several.
std::string oneLine(std::string text) {
  for (char& c : text) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  return text;
}

std::string describe(const std::string& name, const std::filesystem::path& path) {
  return "plugin '" + name + "' (" + path.string() + ")";
}

std::string atEntry(const std::string& name, const std::filesystem::path& path) {
  return describe(name, path) + ": symbol '" + sdk::kPluginEntrySymbol + "'";
}

/// Messages name the file the engine really opened, whatever directory it was started from.
std::filesystem::path absolutePath(const std::filesystem::path& path) {
  if (path.empty()) return path;
  std::error_code ec;
  std::filesystem::path absolute = std::filesystem::absolute(path, ec);
  return ec ? path : absolute.lexically_normal();
}

/// Owns what a plugin-created object needs for its whole life: the library its code and
/// vtable live in, and the context it was created with (ProjectionContext promises to stay
/// valid for the projection's life). Destroys the object with the plugin's own function,
/// so the plugin's allocator frees what the plugin allocated. Boost.DLL tutorial 8.
struct LibraryHoldingDeleter {
  std::shared_ptr<dll::shared_library> library;  // first member: released last
  std::shared_ptr<const sdk::ProjectionContext> context;
  void (*destroy)(sdk::Projection*) = nullptr;

  void operator()(sdk::Projection* projection) const noexcept { destroy(projection); }
};

/// The same for an Api.
struct ApiLibraryHoldingDeleter {
  std::shared_ptr<dll::shared_library> library;  // first member: released last
  std::shared_ptr<const sdk::ApiContext> context;
  void (*destroy)(sdk::Api*) = nullptr;

  void operator()(sdk::Api* api) const noexcept { destroy(api); }
};

/// Checks one of the descriptor's factory arrays (projections or APIs): present when counted,
/// every entry named, with create and destroy, and no name twice. `kind` names the entries in
/// messages ("projection", "API").
template <typename Factory>
void validateFactories(const std::string& at, const std::string& kind, const Factory* factories,
                       std::size_t count) {
  if (count > 0 && factories == nullptr) {
    throw PluginError(PluginErrorCode::kInvalidDescriptor,
                      at + ": descriptor lists " + std::to_string(count) + " " + kind +
                          "s but no " + kind + " array");
  }
  std::set<std::string_view> seen;
  for (std::size_t i = 0; i < count; ++i) {
    const Factory& factory = factories[i];
    if (factory.name == nullptr || *factory.name == '\0') {
      throw PluginError(PluginErrorCode::kInvalidDescriptor,
                        at + ": " + kind + " #" + std::to_string(i) + " has no name");
    }
    const std::string entry = kind + " '" + factory.name + "'";
    if (factory.create == nullptr) {
      throw PluginError(PluginErrorCode::kInvalidDescriptor,
                        at + ": " + entry + " has no create function");
    }
    if (factory.destroy == nullptr) {
      throw PluginError(PluginErrorCode::kInvalidDescriptor,
                        at + ": " + entry + " has no destroy function");
    }
    if (!seen.insert(factory.name).second) {
      throw PluginError(PluginErrorCode::kDuplicateName, at + ": " + entry + " is offered twice");
    }
  }
}

/// Rejects a descriptor whose fields the loader cannot use. Runs after the ABI and fingerprint
/// checks, so the layout is known to be ours.
void validateDescriptor(const std::string& name, const std::filesystem::path& path,
                        const sdk::PluginDescriptor& descriptor) {
  const std::string at = atEntry(name, path);
  if (descriptor.name == nullptr || *descriptor.name == '\0') {
    throw PluginError(PluginErrorCode::kInvalidDescriptor, at + ": descriptor has no name");
  }
  validateFactories(at, "projection", descriptor.projections, descriptor.projection_count);
  validateFactories(at, "API", descriptor.apis, descriptor.api_count);
}

/// The plugin's event catalog (issue 16): the optional `ultracore_plugin_catalog` symbol's
/// JSON text, checked: the format the engine reads, every entry named, every consumer one of
/// the plugin's projections, every schema of a shape the validator understands. Null when the
/// plugin exports none. Throws PluginError.
nlohmann::json readCatalog(const std::string& name, const std::filesystem::path& path,
                           dll::shared_library& library, const sdk::PluginDescriptor& descriptor) {
  if (!library.has(sdk::kPluginCatalogSymbol)) return nullptr;
  const std::string at =
      describe(name, path) + ": symbol '" + sdk::kPluginCatalogSymbol + "'";
  using CatalogSignature = std::remove_pointer_t<sdk::PluginCatalogFunction>;
  const sdk::PluginCatalogFunction function =
      &library.get<CatalogSignature>(sdk::kPluginCatalogSymbol);
  const char* text = function();
  if (text == nullptr) {
    throw PluginError(PluginErrorCode::kInvalidCatalog, at + ": returned null");
  }
  nlohmann::json catalog = nlohmann::json::parse(text, nullptr, false);
  const auto invalid = [&](const std::string& why) {
    return PluginError(PluginErrorCode::kInvalidCatalog, at + ": " + why);
  };
  if (!catalog.is_object()) throw invalid("not a JSON object");
  if (catalog.contains("error")) {
    throw invalid("building the catalog failed: " + catalog["error"].dump());
  }
  if (catalog["format"] != sdk::kCatalogFormat) {
    throw invalid("catalog format " + catalog["format"].dump() +
                  ", engine reads " + std::to_string(sdk::kCatalogFormat) +
                  "; rebuild the plugin against this SDK");
  }
  std::set<std::string> projections;
  for (std::size_t i = 0; i < descriptor.projection_count; ++i) {
    projections.insert(descriptor.projections[i].name);
  }
  for (const char* list : {"consumes", "produces"}) {
    if (!catalog[list].is_array()) throw invalid(std::string("'") + list + "' is not an array");
    for (const auto& entry : catalog[list]) {
      const auto text = [&](const char* key) {
        const auto it = entry.find(key);
        return it != entry.end() && it->is_string() ? it->get<std::string>() : std::string();
      };
      if (!entry.is_object()) throw invalid(std::string("an entry of '") + list + "' is not an object");
      const std::string owner_key = std::string(list) == "consumes" ? "projection" : "route";
      const std::string type = text("event_type");
      const std::string owner = text(owner_key.c_str());
      if (type.empty() || owner.empty() || (owner_key == "route" && text("topic").empty())) {
        throw invalid(std::string("an entry of '") + list + "' lacks " + owner_key +
                      (owner_key == "route" ? ", topic" : "") + " or event_type: " + entry.dump());
      }
      const std::string what = owner_key + " '" + owner + "', event type '" + type + "'";
      if (owner_key == "projection" && projections.count(owner) == 0) {
        throw invalid(what + ": the plugin offers no projection '" + owner + "'");
      }
      if (owner_key == "route") {
        const auto space = owner.find(' ');
        if (space == std::string::npos || space == 0 || owner.size() <= space + 1 ||
            owner[space + 1] != '/') {
          throw invalid(what + ": a route is \"METHOD /path\", e.g. \"POST /api/v1/customers\"");
        }
      }
      if (auto error = checkSchema(entry.contains("schema") ? entry["schema"] : nlohmann::json())) {
        throw invalid(what + ": schema" + error->path + ": " + error->rule + " " +
                      error->message);
      }
    }
  }
  return catalog;
}

/// Opens the library and returns it with its checked descriptor. Throws PluginError.
std::shared_ptr<LoadedPlugin> openPlugin(const std::string& name,
                                         const std::filesystem::path& path) {
  if (path.empty()) {
    throw PluginError(PluginErrorCode::kOpenFailed,
                      "plugin '" + name + "': the library path is empty");
  }
  auto library = std::make_shared<dll::shared_library>();
  std::error_code ec;
  library->load(path, dll::load_mode::rtld_now | dll::load_mode::rtld_local, ec);
  if (ec) {
    // dlerror() says why (missing file, missing dependency, bad ELF, undefined symbol); Boost's
    // own error code is always "bad file descriptor". Boost reads dlerror() the same way.
    const char* reason = dlerror();
    throw PluginError(PluginErrorCode::kOpenFailed,
                      describe(name, path) + ": cannot load the library: " +
                          (reason != nullptr ? std::string(reason) : ec.message()));
  }

  const std::string at = atEntry(name, path);
  if (!library->has(sdk::kPluginEntrySymbol)) {
    throw PluginError(PluginErrorCode::kMissingEntryPoint,
                      at + ": not exported by the library (a plugin defines it with "
                           "ULTRACORE_PLUGIN)");
  }
  using EntrySignature = std::remove_pointer_t<sdk::PluginEntryFunction>;
  const sdk::PluginEntryFunction entry = &library->get<EntrySignature>(sdk::kPluginEntrySymbol);
  const sdk::PluginDescriptor* descriptor = entry();
  if (descriptor == nullptr) {
    throw PluginError(PluginErrorCode::kNullDescriptor, at + ": returned a null descriptor");
  }

  // Only abi_version is known to be where we expect until it matches: read nothing else first.
  if (descriptor->abi_version != sdk::kAbiVersion) {
    throw PluginError(PluginErrorCode::kAbiMismatch,
                      at + ": ABI version " + std::to_string(descriptor->abi_version) +
                          ", engine expects " + std::to_string(sdk::kAbiVersion));
  }
  const char* fingerprint = descriptor->build_fingerprint;
  if (fingerprint == nullptr || std::strcmp(fingerprint, sdk::kBuildFingerprint) != 0) {
    const std::string plugin_fingerprint =
        fingerprint == nullptr ? std::string("(null)") : "'" + std::string(fingerprint) + "'";
    throw PluginError(PluginErrorCode::kFingerprintMismatch,
                      at + ": build fingerprint " + plugin_fingerprint + ", engine expects '" +
                          sdk::kBuildFingerprint +
                          "'; rebuild the plugin with the engine's compiler and libraries");
  }

  validateDescriptor(name, path, *descriptor);
  nlohmann::json catalog = readCatalog(name, path, *library, *descriptor);
  return std::make_shared<LoadedPlugin>(name, path, std::move(library), descriptor,
                                        std::move(catalog));
}

}  // namespace

const char* toString(PluginErrorCode code) {
  switch (code) {
    case PluginErrorCode::kOpenFailed:
      return "open_failed";
    case PluginErrorCode::kMissingEntryPoint:
      return "missing_entry_point";
    case PluginErrorCode::kNullDescriptor:
      return "null_descriptor";
    case PluginErrorCode::kAbiMismatch:
      return "abi_mismatch";
    case PluginErrorCode::kFingerprintMismatch:
      return "fingerprint_mismatch";
    case PluginErrorCode::kDuplicateName:
      return "duplicate_name";
    case PluginErrorCode::kUnknownProjection:
      return "unknown_projection";
    case PluginErrorCode::kCreateFailed:
      return "create_failed";
    case PluginErrorCode::kCreateReturnedNull:
      return "create_returned_null";
    case PluginErrorCode::kInvalidDescriptor:
      return "invalid_descriptor";
    case PluginErrorCode::kUnknownApi:
      return "unknown_api";
    case PluginErrorCode::kInvalidCatalog:
      return "invalid_catalog";
  }
  return "unknown";
}

PluginError::PluginError(PluginErrorCode code, const std::string& message)
    : std::runtime_error(oneLine(message)), code_(code) {}

LoadedPlugin::LoadedPlugin(std::string name, std::filesystem::path path,
                           std::shared_ptr<boost::dll::shared_library> library,
                           const sdk::PluginDescriptor* descriptor, nlohmann::json catalog)
    : name_(std::move(name)),
      path_(std::move(path)),
      library_(std::move(library)),
      descriptor_(descriptor),
      catalog_(std::move(catalog)) {}

std::vector<std::string> LoadedPlugin::projectionNames() const {
  std::vector<std::string> names;
  names.reserve(descriptor_->projection_count);
  for (std::size_t i = 0; i < descriptor_->projection_count; ++i) {
    names.emplace_back(descriptor_->projections[i].name);
  }
  return names;
}

const sdk::ProjectionFactory* LoadedPlugin::findProjection(const std::string& name) const {
  for (std::size_t i = 0; i < descriptor_->projection_count; ++i) {
    if (name == descriptor_->projections[i].name) return &descriptor_->projections[i];
  }
  return nullptr;
}

std::shared_ptr<sdk::Projection> LoadedPlugin::createProjection(
    const std::string& projection, const sdk::ProjectionContext& context) const {
  const std::string at = describe(name_, path_) + ": projection '" + projection + "'";
  const sdk::ProjectionFactory* factory = findProjection(projection);
  if (factory == nullptr) {
    std::string offered;
    for (const std::string& candidate : projectionNames()) {
      offered += (offered.empty() ? "" : ", ") + candidate;
    }
    throw PluginError(PluginErrorCode::kUnknownProjection,
                      at + ": not offered by this plugin; it offers: " +
                          (offered.empty() ? std::string("none") : offered));
  }

  auto owned_context = std::make_shared<const sdk::ProjectionContext>(context);
  std::string error;
  sdk::Projection* raw = nullptr;
  try {
    raw = factory->create(owned_context.get(), &error);
  } catch (const std::exception& e) {
    // ULTRACORE_PLUGIN's factories catch everything; a hand-written one might not.
    throw PluginError(PluginErrorCode::kCreateFailed,
                      at + ": create threw across the plugin boundary: " + e.what());
  } catch (...) {
    throw PluginError(PluginErrorCode::kCreateFailed,
                      at + ": create threw an exception of unknown type across the plugin "
                           "boundary");
  }

  // Own the object before anything else can throw, so it is always destroyed by the plugin.
  std::shared_ptr<sdk::Projection> object;
  if (raw != nullptr) {
    object = std::shared_ptr<sdk::Projection>(
        raw, LibraryHoldingDeleter{library_, std::move(owned_context), factory->destroy});
  }
  if (!error.empty()) {
    throw PluginError(PluginErrorCode::kCreateFailed, at + ": create failed: " + error);
  }
  if (object == nullptr) {
    throw PluginError(PluginErrorCode::kCreateReturnedNull,
                      at + ": create returned null without an error");
  }
  return object;
}

std::vector<std::string> LoadedPlugin::apiNames() const {
  std::vector<std::string> names;
  for (std::size_t i = 0; i < descriptor_->api_count; ++i) {
    names.emplace_back(descriptor_->apis[i].name);
  }
  return names;
}

std::shared_ptr<sdk::Api> LoadedPlugin::createApi(const std::string& api,
                                                  const sdk::ApiContext& context) const {
  const std::string at = describe(name_, path_) + ": API '" + api + "'";
  const sdk::ApiFactory* factory = nullptr;
  for (std::size_t i = 0; i < descriptor_->api_count; ++i) {
    if (api == descriptor_->apis[i].name) factory = &descriptor_->apis[i];
  }
  if (factory == nullptr) {
    throw PluginError(PluginErrorCode::kUnknownApi, at + ": not offered by this plugin");
  }
  auto owned_context = std::make_shared<const sdk::ApiContext>(context);
  std::string error;
  sdk::Api* raw = nullptr;
  try {
    raw = factory->create(owned_context.get(), &error);
  } catch (...) {
    throw PluginError(PluginErrorCode::kCreateFailed,
                      at + ": create threw across the plugin boundary");
  }
  std::shared_ptr<sdk::Api> object;
  if (raw != nullptr) {
    object = std::shared_ptr<sdk::Api>(
        raw, ApiLibraryHoldingDeleter{library_, std::move(owned_context), factory->destroy});
  }
  if (!error.empty()) {
    throw PluginError(PluginErrorCode::kCreateFailed, at + ": create failed: " + error);
  }
  if (object == nullptr) {
    throw PluginError(PluginErrorCode::kCreateReturnedNull,
                      at + ": create returned null without an error");
  }
  return object;
}

const LoadedPlugin& PluginRegistry::load(const std::string& name,
                                         const std::filesystem::path& path) {
  const std::filesystem::path absolute = absolutePath(path);
  if (const auto existing = plugins_.find(name); existing != plugins_.end()) {
    throw PluginError(PluginErrorCode::kDuplicateName,
                      describe(name, absolute) + ": a plugin named '" + name +
                          "' is already loaded from " + existing->second->path().string());
  }

  std::shared_ptr<LoadedPlugin> plugin = openPlugin(name, absolute);
  for (const auto& [other_name, other] : plugins_) {
    if (std::strcmp(other->descriptor().name, plugin->descriptor().name) == 0) {
      throw PluginError(PluginErrorCode::kDuplicateName,
                        atEntry(name, absolute) + ": descriptor name '" +
                            plugin->descriptor().name + "' is already loaded as " +
                            describe(other_name, other->path()));
    }
  }
  return *plugins_.emplace(name, std::move(plugin)).first->second;
}

const LoadedPlugin* PluginRegistry::find(const std::string& name) const {
  const auto it = plugins_.find(name);
  return it == plugins_.end() ? nullptr : it->second.get();
}

}  // namespace ultracore::engine
