#pragma once
/// @file
/// `ultracore-ctl tail TOPIC [--from-beginning] [--max N] [--partition P] [--raw]
/// [--exit-at-end]`: prints
/// each record of a topic with its position, timestamp, key and headers, then its envelope as
/// indented JSON. A value that is not a valid envelope (sdk::parseEnvelope) is still shown,
/// with the parser's error. Reads with assign() (no consumer group); Ctrl-C/SIGTERM exit 0.

#include <CLI/CLI.hpp>

#include "tools/ctl/ctl_context.h"

namespace ultracore::ctl {

void registerTailCommands(CLI::App& app, const CtlContext& context);

}  // namespace ultracore::ctl
