#pragma once
/// @file
/// `ultracore-ctl status [PROJECTION] [--json]`: per projection and partition, the stored
/// offset (PostgreSQL), the log end (Kafka, a short-lived handle with the manifest's kafka
/// properties), the lag, the runner's state and last error (ultracore_projection_status), and
/// events/s when the engine's admin endpoint answers.
/// `ultracore-ctl pause|resume PROJECTION`: through the admin endpoint (admin.listen, or
/// --admin-url), with admin.token (else api.token) as bearer token.

#include <CLI/CLI.hpp>

#include "tools/ctl/ctl_context.h"

namespace ultracore::ctl {

void registerStatusCommands(CLI::App& app, const CtlContext& context);

}  // namespace ultracore::ctl
