// A hand-written factory that returns nullptr without saying why.
#include <string>

#include "ultracore/sdk/plugin.h"

namespace {
ultracore::sdk::Projection* createNothing(const ultracore::sdk::ProjectionContext* /*context*/,
                                          std::string* /*error*/) {
  return nullptr;
}

void destroyProjection(ultracore::sdk::Projection* projection) { delete projection; }

const ultracore::sdk::ProjectionFactory kProjections[] = {
    {"null", "null", &createNothing, &destroyProjection}};
const ultracore::sdk::PluginDescriptor kDescriptor{
    ultracore::sdk::kAbiVersion,       "test_create_null", ultracore::sdk::kSdkVersion,
    ultracore::sdk::kBuildFingerprint, kProjections,       1};
}  // namespace

extern "C" __attribute__((visibility("default"))) const ultracore::sdk::PluginDescriptor*
ultracore_plugin_entry() {
  return &kDescriptor;
}
