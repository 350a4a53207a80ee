#pragma once
/// @file
/// The plugin entry point. A plugin is a shared library exporting exactly one C function,
/// `ultracore_plugin_entry`, written by the ULTRACORE_PLUGIN macro:
///
///   ULTRACORE_PLUGIN(customers,
///                    ULTRACORE_PROJECTION("customers", "customers", CustomersProjection))
///
/// The function returns a static descriptor. The loader reads `abi_version` (the first field)
/// and `build_fingerprint` before it touches anything else, and refuses a mismatch.
///
/// The factories below are generated inside the plugin: they catch every exception the
/// plugin's code throws, so none crosses into the engine.

#include <cstddef>
#include <cstdint>
#include <exception>
#include <iterator>
#include <memory>
#include <span>
#include <string>

#include "ultracore/sdk/projection.h"
#include "ultracore/sdk/version.h"

namespace ultracore::sdk {

/// One projection a plugin offers. `create` returns nullptr and fills `error` on failure.
struct ProjectionFactory {
  const char* name = nullptr;            ///< what the manifest's `projection:` names
  const char* default_schema = nullptr;  ///< schema used when the manifest sets none
  Projection* (*create)(const ProjectionContext* context, std::string* error) = nullptr;
  void (*destroy)(Projection* projection) = nullptr;
};

/// Static for the life of the loaded library. Layout is ABI: append only, bump kAbiVersion.
struct PluginDescriptor {
  std::uint32_t abi_version;  ///< must stay the first field
  const char* name;
  const char* sdk_version;
  const char* build_fingerprint;
  const ProjectionFactory* projections;
  std::size_t projection_count;
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

}  // namespace detail

/// Factory for projection type T, constructed as T(const ProjectionContext&).
template <typename T>
constexpr ProjectionFactory makeProjectionFactory(const char* name, const char* default_schema) {
  return ProjectionFactory{name, default_schema, &detail::createGuarded<T>,
                           &detail::destroyGuarded};
}

}  // namespace ultracore::sdk

#define ULTRACORE_PROJECTION(name, default_schema, Type) \
  ::ultracore::sdk::makeProjectionFactory<Type>(name, default_schema)

/// Exports the plugin's entry point. Arguments after the name: ULTRACORE_PROJECTION(...) items.
#define ULTRACORE_PLUGIN(plugin_name, ...)                                                      \
  extern "C" __attribute__((visibility("default"))) const ::ultracore::sdk::PluginDescriptor*  \
  ultracore_plugin_entry() {                                                                    \
    static const ::ultracore::sdk::ProjectionFactory kProjections[] = {                        \
        __VA_ARGS__ __VA_OPT__(, )::ultracore::sdk::ProjectionFactory{}};                      \
    static const ::ultracore::sdk::PluginDescriptor kDescriptor{                               \
        ::ultracore::sdk::kAbiVersion, #plugin_name, ::ultracore::sdk::kSdkVersion,             \
        ::ultracore::sdk::kBuildFingerprint, kProjections, std::size(kProjections) - 1};       \
    return &kDescriptor;                                                                        \
  }
