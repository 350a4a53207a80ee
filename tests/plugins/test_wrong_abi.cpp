// A hand-written descriptor from a future ABI. Every field after abi_version is unusable on
// purpose: the loader must refuse the ABI before it reads any of them.
#include "ultracore/sdk/plugin.h"

namespace {
const ultracore::sdk::PluginDescriptor kDescriptor{
    ultracore::sdk::kAbiVersion + 6, nullptr, nullptr, nullptr, nullptr, 3};
}  // namespace

extern "C" __attribute__((visibility("default"))) const ultracore::sdk::PluginDescriptor*
ultracore_plugin_entry() {
  return &kDescriptor;
}
