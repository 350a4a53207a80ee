// The consistency-token decoder (engine/http/consistency_token.h), which reads `consistent_with`
// from any client. A decoded token re-encodes to a token that decodes to the same positions.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "engine/http/consistency_token.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace ultracore::engine;
  const std::string token(reinterpret_cast<const char*>(data), size);
  const auto positions = decodeConsistencyToken(token);
  if (!positions) return 0;
  for (const auto& p : *positions) {
    if (p.topic.empty() || p.partition < 0 || p.offset < 0) std::abort();
  }
  const auto again = decodeConsistencyToken(encodeConsistencyToken(*positions));
  if (!again || *again != *positions) std::abort();
  return 0;
}
