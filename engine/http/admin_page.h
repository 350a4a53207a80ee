#pragma once
/// @file
/// The admin endpoint's status page (GET /): one self-contained HTML document (inline CSS and
/// script, no external resources) that polls /api/v1/projections every second and draws each
/// projection's state, its lag per partition and SVG charts of throughput and lag over the
/// last five minutes. With a token, open it as `/#token=<admin token>`.

#include <string>

namespace ultracore::engine {

const std::string& adminPageHtml();

}  // namespace ultracore::engine
