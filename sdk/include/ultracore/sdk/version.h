#pragma once
/// @file
/// The SDK and ABI versions, and the build fingerprint the loader compares before it calls
/// anything else in a plugin. Header only; no engine dependency.

#include <cstdint>

#include <nlohmann/json.hpp>

#define ULTRACORE_SDK_STRINGIFY_DETAIL(x) #x
#define ULTRACORE_SDK_STRINGIFY(x) ULTRACORE_SDK_STRINGIFY_DETAIL(x)

#ifdef _GLIBCXX_DEBUG
#define ULTRACORE_SDK_GLIBCXX_DEBUG "1"
#else
#define ULTRACORE_SDK_GLIBCXX_DEBUG "0"
#endif

/// Compiler, C++ standard library (and its string ABI and debug mode, which change layouts),
/// language level and JSON library: the C++ ABI of every type that crosses the boundary
/// (std::string, std::vector, nlohmann::json) depends on all of them.
#define ULTRACORE_BUILD_FINGERPRINT                                                         \
  "compiler-" __VERSION__ ";libstdc++-" ULTRACORE_SDK_STRINGIFY(__GLIBCXX__) ";cxx11abi-"  \
      ULTRACORE_SDK_STRINGIFY(_GLIBCXX_USE_CXX11_ABI) ";glibcxx_debug-"                    \
      ULTRACORE_SDK_GLIBCXX_DEBUG ";cxx-" ULTRACORE_SDK_STRINGIFY(__cplusplus)            \
      ";nlohmann_json-" ULTRACORE_SDK_STRINGIFY(NLOHMANN_JSON_VERSION_MAJOR) "."           \
      ULTRACORE_SDK_STRINGIFY(NLOHMANN_JSON_VERSION_MINOR) "." ULTRACORE_SDK_STRINGIFY(    \
          NLOHMANN_JSON_VERSION_PATCH)

/// Marks the SDK's interface classes visible, so their type information is shared between
/// the engine and plugins built with -fvisibility=hidden.
#define ULTRACORE_SDK_API __attribute__((visibility("default")))

namespace ultracore::sdk {

/// Bumped whenever the descriptor layout or any interface in this SDK changes incompatibly.
/// The loader refuses a plugin whose descriptor carries another value.
constexpr std::uint32_t kAbiVersion = 3;  // 2: PluginDescriptor::apis (HTTP API); 3: RouteSpec::reads, ::aggregate

/// Human-facing SDK release; informative, logged by the loader.
constexpr const char* kSdkVersion = "0.2.1";

constexpr const char* kBuildFingerprint = ULTRACORE_BUILD_FINGERPRINT;

}  // namespace ultracore::sdk
