// `ultracore-ctl rebuild --until` (tools/ctl/time_travel.h): any text either parses or throws
// CtlError with exit code 2 (bad input); anything else is a bug.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "tools/ctl/time_travel.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    const auto until = ultracore::ctl::parseUntil(text);
    if (until.kind == ultracore::ctl::TimeTravelUntil::Kind::kOffsets) {
      if (until.offsets.empty()) std::abort();
      for (const auto& [tp, offset] : until.offsets) {
        if (tp.first.empty() || tp.second < 0 || offset < 0) std::abort();
      }
    }
  } catch (const ultracore::ctl::CtlError& e) {
    if (e.exitCode() != 2) std::abort();
  }
  return 0;
}
