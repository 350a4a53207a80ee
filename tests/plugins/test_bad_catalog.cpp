// A plugin whose event catalog (issue 16) declares a consumer for a projection it does not
// offer, and a schema with a pattern that does not compile: the loader refuses it
// (invalid_catalog), naming the first problem.
#include <span>

#include "ultracore/sdk/sdk.h"

namespace ultracore::plugins::test_bad_catalog {

class Projection final : public sdk::Projection {
 public:
  explicit Projection(const sdk::ProjectionContext&) {}
  int schemaVersion() const override { return 1; }
  sdk::Status setupSchema(sdk::Writer&) override { return sdk::Status::ok(); }
  sdk::Status apply(std::span<const sdk::Event>, sdk::Writer&) override { return sdk::Status::ok(); }
};

sdk::EventCatalog catalog() {
  return sdk::EventCatalog()
      .consumes("things", "ThingMade", {{"type", "object"}})
      .consumes("nope", "ThingMade", {{"type", "object"}})
      .produces("POST /things", "things.events", "ThingMade", {{"pattern", "("}});
}

}  // namespace ultracore::plugins::test_bad_catalog

ULTRACORE_PLUGIN(test_bad_catalog,
                 ULTRACORE_PROJECTION("things", "things",
                                      ultracore::plugins::test_bad_catalog::Projection))
ULTRACORE_EVENT_CATALOG(ultracore::plugins::test_bad_catalog::catalog)
