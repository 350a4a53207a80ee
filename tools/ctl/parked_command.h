#pragma once
/// @file
/// `ultracore-ctl parked list`: aggregates held back by the `park` policy and their events.

#include <CLI/CLI.hpp>

#include "tools/ctl/ctl_context.h"

namespace ultracore::ctl {

void registerParkedCommands(CLI::App& app, const CtlContext& context);

}  // namespace ultracore::ctl
