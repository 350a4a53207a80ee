#pragma once
/// @file
/// `ultracore-ctl processed-events stats|prune [--dry-run]`: the idempotency record per
/// projection (rows, bytes, oldest, what dedupe.retention would remove) and pruning it now.

#include <CLI/CLI.hpp>

#include "tools/ctl/ctl_context.h"

namespace ultracore::ctl {

void registerProcessedEventsCommands(CLI::App& app, const CtlContext& context);

}  // namespace ultracore::ctl
