#include "tools/ctl/rebuild_command.h"

#include <memory>

#include "tools/ctl/generation_commands.h"

namespace ultracore::ctl {

void registerRebuildCommands(CLI::App& app, const CtlContext& context) {
  auto options = std::make_shared<LiveRebuildOptions>();
  auto* cmd = app.add_subcommand(
      "rebuild", "rebuild a projection from the log beside the live one, then switch (no downtime)");
  cmd->add_option("projection", options->projection, "the projection")->required();
  cmd->add_option("--admin-url", options->admin_url,
                  "the engine's admin endpoint (default: admin.listen)");
  cmd->add_flag("--no-wait", options->no_wait, "start it and return; follow with `status`");
  cmd->add_flag("--cancel", options->cancel, "stop a rebuild in progress and drop what it built");
  cmd->add_flag("--plain", options->plain, "progress as plain lines, even on a terminal");
  cmd->callback([&context, options] { liveRebuild(context, *options); });
}

}  // namespace ultracore::ctl
