#include "engine/runner/plugin_logger.h"

#include <spdlog/spdlog.h>

namespace ultracore::engine {

void PluginLogger::log(sdk::LogLevel level, std::string_view message) noexcept {
  spdlog::level::level_enum spd = spdlog::level::info;
  switch (level) {
    case sdk::LogLevel::kDebug: spd = spdlog::level::debug; break;
    case sdk::LogLevel::kInfo: spd = spdlog::level::info; break;
    case sdk::LogLevel::kWarn: spd = spdlog::level::warn; break;
    case sdk::LogLevel::kError: spd = spdlog::level::err; break;
  }
  try {
    spdlog::log(spd, "[{}] {}", tag_, message);
  } catch (...) {  // logging must never throw into a plugin
  }
}

}  // namespace ultracore::engine
