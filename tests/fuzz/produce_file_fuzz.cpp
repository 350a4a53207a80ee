// `ultracore-ctl produce`'s file reader (tools/ctl/envelope_file.h): JSON lines, an array or one
// object. Any text gives entries and errors, never an exception; an entry passes the SDK parser.
// The first byte picks --generate-ids.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "tools/ctl/envelope_file.h"
#include "ultracore/sdk/envelope.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  ultracore::ctl::EnvelopeFileOptions options;
  options.generate_ids = (data[0] & 1) != 0;
  const std::string text(reinterpret_cast<const char*>(data) + 1, size - 1);
  const auto file = ultracore::ctl::readEnvelopeFile(text, "fuzz.jsonl", options);
  if (file.errors.empty()) {
    for (const auto& entry : file.entries) {
      const auto envelope = ultracore::sdk::envelopeFromJson(nlohmann::json(entry.document));
      if (!envelope.isOk() || envelope.value().aggregate_id != entry.aggregate_id) std::abort();
    }
  }
  return 0;
}
