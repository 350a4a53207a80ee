// A valid shared library that exports something, but not ultracore_plugin_entry.
extern "C" __attribute__((visibility("default"))) int ultracore_plugin_entry_v0() { return 0; }
