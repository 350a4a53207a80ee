#pragma once
/// @file
/// `ultracore-ctl produce TOPIC FILE [--generate-ids]` (FILE `-` = stdin): sends envelopes
/// (JSON lines, one JSON array, or one object) to a topic. Every envelope is validated with
/// the SDK's parser before anything is sent: one invalid envelope -> exit 2 naming FILE:LINE
/// (or the array index) and nothing produced. Key = aggregate_id, idempotent producer,
/// acks=all, key partitioning like the engine's API (murmur2); waits for every delivery report.

#include <CLI/CLI.hpp>

#include "tools/ctl/ctl_context.h"

namespace ultracore::ctl {

void registerProduceCommands(CLI::App& app, const CtlContext& context);

}  // namespace ultracore::ctl
