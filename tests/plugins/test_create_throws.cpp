// A projection whose constructor throws; the SDK's factory catches it inside the plugin.
#include <span>
#include <stdexcept>
#include <string>

#include "ultracore/sdk/sdk.h"

namespace ultracore::plugins::test_create_throws {

class ThrowingProjection final : public sdk::Projection {
 public:
  explicit ThrowingProjection(const sdk::ProjectionContext& context) {
    throw std::runtime_error("boom: " + context.config.value("reason", std::string("no reason")));
  }

  int schemaVersion() const override { return 1; }
  sdk::Status setupSchema(sdk::Writer& /*db*/) override { return sdk::Status::ok(); }
  sdk::Status apply(std::span<const sdk::Event> /*events*/, sdk::Writer& /*db*/) override {
    return sdk::Status::ok();
  }
};

}  // namespace ultracore::plugins::test_create_throws

ULTRACORE_PLUGIN(test_create_throws,
                 ULTRACORE_PROJECTION("throws", "throws",
                                      ultracore::plugins::test_create_throws::ThrowingProjection))
