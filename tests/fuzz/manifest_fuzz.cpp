// The manifest loader (engine/manifest) on any text: it either returns a Manifest or throws
// ManifestError; any other exception, crash or sanitizer report is a bug.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include "engine/manifest/manifest.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  // A fixed environment: ${KAFKA} and ${PG} are set, ${EMPTY} is empty, anything else unset.
  const ultracore::engine::EnvLookup env =
      [](const std::string& name) -> std::optional<std::string> {
    if (name == "KAFKA") return std::string("localhost:9092");
    if (name == "PG") return std::string("postgresql://u@localhost/db");
    if (name == "EMPTY") return std::string();
    return std::nullopt;
  };
  try {
    ultracore::engine::parseManifest(text, "/fuzz/config/projections.yaml", env);
  } catch (const ultracore::engine::ManifestError&) {
  }
  return 0;
}
