#pragma once
/// @file
/// Fault injection for crash tests, off by default: the environment variable ULTRACORE_FAULT
/// names one point at which the process kills itself (SIGKILL, as `kill -9` would).
///
/// Points: `crash_after_publish` (the API, after a command's events are published, i.e. their
/// delivery reports came back, and before its Idempotency-Key is stored).

#include <string_view>

namespace ultracore::engine {

/// Kills this process with SIGKILL if ULTRACORE_FAULT equals `point` (read once); else nothing.
void faultPoint(std::string_view point);

}  // namespace ultracore::engine
