// A well-formed plugin offering two trivial projections.
//
// Keep this library unloadable: nothing here may throw through libstdc++ or nlohmann::json
// (std::to_string in their exception paths leaves an STB_GNU_UNIQUE symbol, and glibc never
// unloads a library that has one). The loader test checks that test_ok goes away once nothing
// holds it; that is what makes its "a projection keeps its library alive" check meaningful.
#include <span>
#include <string>

#include "ultracore/sdk/sdk.h"

namespace ultracore::plugins::test_ok {

/// Reports the schema version the context's config asks for: a test can see that the context
/// reached the plugin, and that it stays valid for the projection's life.
class OkProjection : public sdk::Projection {
 public:
  explicit OkProjection(const sdk::ProjectionContext& context) : context_(context) {}

  int schemaVersion() const override {
    // Read through std::map and get_ptr(), which never throw (see the top of this file).
    const auto* config = context_.config.get_ptr<const nlohmann::json::object_t*>();
    if (config == nullptr) return 1;
    const auto entry = config->find("schema_version");
    if (entry == config->end()) return 1;
    const auto* version = entry->second.get_ptr<const nlohmann::json::number_integer_t*>();
    return version == nullptr ? 1 : static_cast<int>(*version);
  }
  sdk::Status setupSchema(sdk::Writer& /*db*/) override { return sdk::Status::ok(); }
  sdk::Status apply(std::span<const sdk::Event> /*events*/, sdk::Writer& /*db*/) override {
    return sdk::Status::ok();
  }

 protected:
  const sdk::ProjectionContext& context_;
};

/// Logs from its destructor, which runs inside the plugin: proves the engine destroys the
/// object through the plugin's destroy function, and when.
class CounterProjection final : public OkProjection {
 public:
  using OkProjection::OkProjection;

  ~CounterProjection() override {
    if (context_.logger != nullptr) {
      context_.logger->info("counter projection '" + context_.projection_name + "' destroyed");
    }
  }
};

}  // namespace ultracore::plugins::test_ok

ULTRACORE_PLUGIN(test_ok,
                 ULTRACORE_PROJECTION("ok", "ok", ultracore::plugins::test_ok::OkProjection),
                 ULTRACORE_PROJECTION("counter", "counter",
                                      ultracore::plugins::test_ok::CounterProjection))
