#pragma once
/// @file
/// `ultracore-ctl rebuild PROJECTION`: zero-downtime rebuild (generation_commands.h).

#include <CLI/CLI.hpp>

#include "tools/ctl/ctl_context.h"

namespace ultracore::ctl {

void registerRebuildCommands(CLI::App& app, const CtlContext& context);

}  // namespace ultracore::ctl
