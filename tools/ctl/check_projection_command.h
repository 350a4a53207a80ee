#pragma once
/// @file
/// `ultracore-ctl check-projection PROJECTION [--sample N]`: the test kit's determinism check
/// (sdk/testing/determinism.h) on the first N records of the projection's topics: the read
/// model built from them in throwaway schemas must be the same again, with batches of 1 and
/// 7, and with every event delivered twice plus a restart half-way. Works for any plugin,
/// C++ or a sql view.

#include <CLI/CLI.hpp>

#include "tools/ctl/ctl_context.h"

namespace ultracore::ctl {

void registerCheckProjectionCommand(CLI::App& app, const CtlContext& context);

}  // namespace ultracore::ctl
