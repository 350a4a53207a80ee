#pragma once
/// @file
/// `ultracore-ctl dead-letters list|show|retry|discard`: the operator's side of
/// ultracore_dead_letters. A retry is performed by the engine (where the plugin is loaded):
/// this command marks the row retry_requested and waits, bounded, for the outcome.

#include <CLI/CLI.hpp>

#include "tools/ctl/ctl_context.h"

namespace ultracore::ctl {

void registerDeadLetterCommands(CLI::App& app, const CtlContext& context);

}  // namespace ultracore::ctl
