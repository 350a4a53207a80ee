#pragma once
/// @file
/// `ultracore-ctl rebuild | rollback | drop | reset`: a projection's generations, through the
/// engine's admin endpoint (the engine runs the plugin, so it builds and switches).
/// `reset --offline` works on PostgreSQL alone while the engine is stopped.

#include <string>

#include <CLI/CLI.hpp>

#include "tools/ctl/ctl_context.h"

namespace ultracore::ctl {

struct LiveRebuildOptions {
  std::string projection;
  std::string admin_url;
  bool no_wait = false;
  bool cancel = false;
  bool plain = false;  ///< progress as plain lines even on a terminal
};

/// Zero-downtime rebuild: asks the engine to build the next generation and follows its
/// progress (a bar on a terminal, lines otherwise) until it is live.
void liveRebuild(const CtlContext& context, const LiveRebuildOptions& options);

/// Registers rollback, drop and reset (rebuild is registered by rebuild_command).
void registerGenerationCommands(CLI::App& app, const CtlContext& context);

}  // namespace ultracore::ctl
