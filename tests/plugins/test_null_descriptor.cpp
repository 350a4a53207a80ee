// The entry point exists but returns no descriptor.
#include "ultracore/sdk/plugin.h"

extern "C" __attribute__((visibility("default"))) const ultracore::sdk::PluginDescriptor*
ultracore_plugin_entry() {
  return nullptr;
}
