#include "engine/http/fault_point.h"

#include <csignal>
#include <cstdlib>
#include <string>

#include <spdlog/spdlog.h>

namespace ultracore::engine {

void faultPoint(std::string_view point) {
  static const std::string armed = [] {
    const char* value = std::getenv("ULTRACORE_FAULT");
    return std::string(value == nullptr ? "" : value);
  }();
  if (armed.empty() || armed != point) return;
  spdlog::critical("fault injection (ULTRACORE_FAULT={}): killing this process", armed);
  spdlog::default_logger()->flush();
  std::raise(SIGKILL);
}

}  // namespace ultracore::engine
