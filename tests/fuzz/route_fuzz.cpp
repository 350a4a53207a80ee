// The API's route matcher (engine/http/route_path.h). Input: a pattern, a newline, a path.
// Construction either succeeds or throws std::invalid_argument; a match binds exactly the
// pattern's parameters, each to a non-empty segment without '/'.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <string_view>

#include "engine/http/route_path.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const std::size_t newline = input.find('\n');
  const std::string pattern(input.substr(0, newline));
  const std::string_view path =
      newline == std::string_view::npos ? std::string_view(pattern) : input.substr(newline + 1);
  ultracore::engine::splitPath(path);
  try {
    const ultracore::engine::RoutePath route(pattern);
    const auto names = route.parameters();
    const auto params = route.match(path);
    if (params) {
      if (params->size() > names.size()) std::abort();
      for (const auto& name : names) {
        const auto it = params->find(name);
        if (it == params->end() || it->second.empty() ||
            it->second.find('/') != std::string::npos) {
          std::abort();
        }
      }
    }
  } catch (const std::invalid_argument&) {
  }
  return 0;
}
