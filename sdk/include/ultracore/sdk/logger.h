#pragma once
/// @file
/// Logger: the engine's log, tagged with the plugin's and projection's names.

#include <string>
#include <string_view>

#include "ultracore/sdk/version.h"

namespace ultracore::sdk {

enum class LogLevel : int { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3 };

/// Owned by the engine; outlives every object the plugin creates. Thread-safe.
class ULTRACORE_SDK_API Logger {
 public:
  virtual ~Logger() = default;
  virtual void log(LogLevel level, std::string_view message) noexcept = 0;

  void debug(std::string_view message) noexcept { log(LogLevel::kDebug, message); }
  void info(std::string_view message) noexcept { log(LogLevel::kInfo, message); }
  void warn(std::string_view message) noexcept { log(LogLevel::kWarn, message); }
  void error(std::string_view message) noexcept { log(LogLevel::kError, message); }
};

}  // namespace ultracore::sdk
