#pragma once
/// @file
/// `ultracore-ctl rebuild PROJECTION`: the zero-downtime rebuild through the engine
/// (generation_commands.h), or with `--until TIME|OFFSETS --into SCHEMA [--replace]` time travel
/// (time_travel.h): the projection's read model as it was at that moment, built into a schema
/// of its own for audit queries.

#include <CLI/CLI.hpp>

#include "tools/ctl/ctl_context.h"

namespace ultracore::ctl {

void registerRebuildCommands(CLI::App& app, const CtlContext& context);

}  // namespace ultracore::ctl
