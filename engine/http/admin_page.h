#pragma once
/// @file
/// The admin endpoint's status page (GET /): one self-contained HTML document (inline CSS and
/// script, no external resources) that polls /api/v1/projections every second and draws each
/// projection's state (and its error, if any), counters, lag per partition and SVG charts of
/// throughput and lag over the last five minutes (history kept by the engine, so the charts are
/// full as soon as the page opens). With a token, open it as `/#token=<admin token>`; a missing
/// or wrong token shows an "Access denied" message. Element classes and data-* attributes
/// (data-projection, data-state, tr.partition[data-lag], svg[data-series]) are what the
/// headless-browser test reads: keep them.

#include <string>

namespace ultracore::engine {

const std::string& adminPageHtml();

}  // namespace ultracore::engine
