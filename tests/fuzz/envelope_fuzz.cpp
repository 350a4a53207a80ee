// The engine's envelope parser (sdk/include/ultracore/sdk/envelope.h) on any Kafka record value.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "ultracore/sdk/envelope.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const auto envelope = ultracore::sdk::parseEnvelope(text);
  if (envelope.isOk()) {
    // What the parser promises for an accepted envelope.
    const auto& e = envelope.value();
    if (e.event_id.empty() || e.event_type.empty() || e.aggregate_id.empty() ||
        e.tenant_id.empty() || !e.event_data.is_object() ||
        (e.aggregate_version && *e.aggregate_version < 1)) {
      std::abort();
    }
  } else if (envelope.status().message().rfind("invalid envelope: ", 0) != 0) {
    std::abort();
  }
  return 0;
}
