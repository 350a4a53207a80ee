#pragma once
/// @file
/// The plugin entry point. A plugin is a shared library exporting exactly one C function,
/// `ultracore_plugin_entry`, written by the ULTRACORE_PLUGIN macro:
///
///   ULTRACORE_PLUGIN(customers,
///                    ULTRACORE_PROJECTION("customers", "customers", CustomersProjection),
///                    ULTRACORE_API("customers", CustomersApi))
///
/// Items may come in any order and number; ULTRACORE_API items are optional (ABI 2).
///
/// The function returns a static descriptor. The loader reads `abi_version` (the first field)
/// and `build_fingerprint` before it touches anything else, and refuses a mismatch.
///
/// The factories below are generated inside the plugin: they catch every exception the
/// plugin's code throws, so none crosses into the engine.

#include <array>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <iterator>
#include <memory>
#include <span>
#include <string>
#include <type_traits>

#include "ultracore/sdk/api.h"
#include "ultracore/sdk/projection.h"
#include "ultracore/sdk/version.h"

namespace ultracore::sdk {

/// One projection a plugin offers. `create` returns nullptr and fills `error` on failure.
struct ProjectionFactory {
  /// What the manifest's `projection:` names. "*" offers a projection of any name: a generic
  /// projection that each manifest entry configures (plugins/sql), matched when no other
  /// projection of the plugin has the name asked for.
  const char* name = nullptr;
  const char* default_schema = nullptr;  ///< schema used when the manifest sets none
  Projection* (*create)(const ProjectionContext* context, std::string* error) = nullptr;
  void (*destroy)(Projection* projection) = nullptr;
};

/// One command/query API a plugin offers. `create` returns nullptr and fills `error` on failure.
struct ApiFactory {
  const char* name = nullptr;  ///< for messages and the docs
  Api* (*create)(const ApiContext* context, std::string* error) = nullptr;
  void (*destroy)(Api* api) = nullptr;
};

/// Static for the life of the loaded library. Layout is ABI: append only, bump kAbiVersion.
struct PluginDescriptor {
  std::uint32_t abi_version;  ///< must stay the first field
  const char* name;
  const char* sdk_version;
  const char* build_fingerprint;
  const ProjectionFactory* projections;
  std::size_t projection_count;
  // ABI 2
  const ApiFactory* apis = nullptr;
  std::size_t api_count = 0;
};

using PluginEntryFunction = const PluginDescriptor* (*)();
constexpr const char* kPluginEntrySymbol = "ultracore_plugin_entry";

namespace detail {

/// Forwards to the plugin's projection, turning exceptions into Status.
class GuardedProjection final : public Projection {
 public:
  explicit GuardedProjection(std::unique_ptr<Projection> inner) : inner_(std::move(inner)) {}

  int schemaVersion() const override {
    try {
      return inner_->schemaVersion();
    } catch (...) {
      return -1;
    }
  }
  Status setupSchema(Writer& db) override {
    return guard([&] { return inner_->setupSchema(db); });
  }
  Status apply(std::span<const Event> events, Writer& db) override {
    return guard([&] { return inner_->apply(events, db); });
  }

 private:
  template <typename F>
  static Status guard(F&& call) noexcept {
    try {
      return call();
    } catch (const std::exception& e) {
      return Status::handlerError(std::string("exception: ") + e.what());
    } catch (...) {
      return Status::handlerError("exception of unknown type");
    }
  }

  std::unique_ptr<Projection> inner_;
};

template <typename T>
Projection* createGuarded(const ProjectionContext* context, std::string* error) noexcept {
  try {
    return new GuardedProjection(std::make_unique<T>(*context));
  } catch (const std::exception& e) {
    if (error != nullptr) *error = e.what();
  } catch (...) {
    if (error != nullptr) *error = "exception of unknown type";
  }
  return nullptr;
}

inline void destroyGuarded(Projection* projection) noexcept { delete projection; }

/// Forwards to the plugin's Api, turning exceptions into a 500 Reply.
class GuardedApi final : public Api {
 public:
  explicit GuardedApi(std::unique_ptr<Api> inner) : inner_(std::move(inner)) {}

  std::vector<RouteSpec> routes() const override {
    try {
      return inner_->routes();
    } catch (...) {
      return {};
    }
  }
  nlohmann::json schemas() const override {
    try {
      return inner_->schemas();
    } catch (...) {
      return nlohmann::json::object();
    }
  }
  Reply handle(const Request& request, Reader& db) override {
    try {
      return inner_->handle(request, db);
    } catch (const std::exception& e) {
      return Reply::error(500, "handler_error", std::string("exception: ") + e.what());
    } catch (...) {
      return Reply::error(500, "handler_error", "exception of unknown type");
    }
  }

 private:
  std::unique_ptr<Api> inner_;
};

template <typename T>
Api* createGuardedApi(const ApiContext* context, std::string* error) noexcept {
  try {
    return new GuardedApi(std::make_unique<T>(*context));
  } catch (const std::exception& e) {
    if (error != nullptr) *error = e.what();
  } catch (...) {
    if (error != nullptr) *error = "exception of unknown type";
  }
  return nullptr;
}

inline void destroyGuardedApi(Api* api) noexcept { delete api; }

/// The items of type T among ULTRACORE_PLUGIN's arguments, in order, plus an empty sentinel
/// (so that a plugin without any still has an array).
template <typename T, typename... Items>
auto collect(const Items&... items) {
  constexpr std::size_t count = (std::size_t{0} + ... + (std::is_same_v<T, Items> ? 1 : 0));
  std::array<T, count + 1> out{};
  std::size_t i = 0;
  (
      [&](const auto& item) {
        if constexpr (std::is_same_v<T, std::decay_t<decltype(item)>>) out[i++] = item;
      }(items),
      ...);
  return out;
}

}  // namespace detail

/// Factory for projection type T, constructed as T(const ProjectionContext&).
template <typename T>
constexpr ProjectionFactory makeProjectionFactory(const char* name, const char* default_schema) {
  return ProjectionFactory{name, default_schema, &detail::createGuarded<T>,
                           &detail::destroyGuarded};
}

/// Factory for API type T, constructed as T(const ApiContext&).
template <typename T>
constexpr ApiFactory makeApiFactory(const char* name) {
  return ApiFactory{name, &detail::createGuardedApi<T>, &detail::destroyGuardedApi};
}

}  // namespace ultracore::sdk

#define ULTRACORE_PROJECTION(name, default_schema, Type) \
  ::ultracore::sdk::makeProjectionFactory<Type>(name, default_schema)

#define ULTRACORE_API(name, Type) ::ultracore::sdk::makeApiFactory<Type>(name)

/// Exports the plugin's entry point. Arguments after the name: ULTRACORE_PROJECTION(...) and
/// ULTRACORE_API(...) items, in any order.
#define ULTRACORE_PLUGIN(plugin_name, ...)                                                      \
  extern "C" __attribute__((visibility("default"))) const ::ultracore::sdk::PluginDescriptor*  \
  ultracore_plugin_entry() {                                                                    \
    static const auto kProjections =                                                           \
        ::ultracore::sdk::detail::collect<::ultracore::sdk::ProjectionFactory>(__VA_ARGS__);   \
    static const auto kApis =                                                                  \
        ::ultracore::sdk::detail::collect<::ultracore::sdk::ApiFactory>(__VA_ARGS__);          \
    static const ::ultracore::sdk::PluginDescriptor kDescriptor{                               \
        ::ultracore::sdk::kAbiVersion, #plugin_name, ::ultracore::sdk::kSdkVersion,             \
        ::ultracore::sdk::kBuildFingerprint, kProjections.data(), kProjections.size() - 1,     \
        kApis.data(), kApis.size() - 1};                                                        \
    return &kDescriptor;                                                                        \
  }
