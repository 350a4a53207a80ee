#pragma once
/// @file
/// One-line diagnostics on stderr (stdout carries only the bootstrap and control lines).

#include <string>

namespace ultracore::devbroker {

/// Writes "<UTC time> devbroker: <message>" to stderr. Thread-safe.
void logLine(const std::string& message);

}  // namespace ultracore::devbroker
