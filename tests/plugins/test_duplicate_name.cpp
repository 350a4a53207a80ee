// Offers two projections under one name: the manifest could not tell them apart.
#include <span>

#include "ultracore/sdk/sdk.h"

namespace ultracore::plugins::test_duplicate_name {

class NoopProjection final : public sdk::Projection {
 public:
  explicit NoopProjection(const sdk::ProjectionContext& /*context*/) {}

  int schemaVersion() const override { return 1; }
  sdk::Status setupSchema(sdk::Writer& /*db*/) override { return sdk::Status::ok(); }
  sdk::Status apply(std::span<const sdk::Event> /*events*/, sdk::Writer& /*db*/) override {
    return sdk::Status::ok();
  }
};

}  // namespace ultracore::plugins::test_duplicate_name

ULTRACORE_PLUGIN(test_duplicate_name,
                 ULTRACORE_PROJECTION("twice", "first",
                                      ultracore::plugins::test_duplicate_name::NoopProjection),
                 ULTRACORE_PROJECTION("twice", "second",
                                      ultracore::plugins::test_duplicate_name::NoopProjection))
