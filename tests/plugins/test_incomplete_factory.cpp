// A hand-written factory without a destroy function: the engine could never free what it
// creates, so the loader refuses the plugin.
#include <string>

#include "ultracore/sdk/plugin.h"

namespace {
ultracore::sdk::Projection* createNothing(const ultracore::sdk::ProjectionContext* /*context*/,
                                          std::string* /*error*/) {
  return nullptr;
}

const ultracore::sdk::ProjectionFactory kProjections[] = {
    {"leaky", "leaky", &createNothing, nullptr}};
const ultracore::sdk::PluginDescriptor kDescriptor{ultracore::sdk::kAbiVersion,
                                                   "test_incomplete_factory",
                                                   ultracore::sdk::kSdkVersion,
                                                   ultracore::sdk::kBuildFingerprint,
                                                   kProjections,
                                                   1};
}  // namespace

extern "C" __attribute__((visibility("default"))) const ultracore::sdk::PluginDescriptor*
ultracore_plugin_entry() {
  return &kDescriptor;
}
