#pragma once
/// @file
/// The sdk::Logger handed to plugins: spdlog, tagged with plugin and projection names.

#include <string>

#include "ultracore/sdk/logger.h"

namespace ultracore::engine {

class PluginLogger final : public sdk::Logger {
 public:
  explicit PluginLogger(std::string tag) : tag_(std::move(tag)) {}
  void log(sdk::LogLevel level, std::string_view message) noexcept override;

 private:
  std::string tag_;
};

}  // namespace ultracore::engine
