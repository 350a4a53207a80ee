// Right ABI version, built "by another toolchain". The projection fields are unusable on
// purpose: the loader must refuse the fingerprint before it reads them.
#include "ultracore/sdk/plugin.h"

namespace {
const ultracore::sdk::PluginDescriptor kDescriptor{
    ultracore::sdk::kAbiVersion,
    "test_wrong_fingerprint",
    ultracore::sdk::kSdkVersion,
    "gcc-0.0.0;libstdc++-19700101;cxx-201703;nlohmann_json-0.0",
    nullptr,
    3};
}  // namespace

extern "C" __attribute__((visibility("default"))) const ultracore::sdk::PluginDescriptor*
ultracore_plugin_entry() {
  return &kDescriptor;
}
