#pragma once
/// @file
/// The admin console's Catalog view (issue 16), GET /catalog on the admin port: one
/// self-contained HTML document (inline CSS and script, no external resources) that reads
/// GET /api/v1/catalog every two seconds and lists, per topic, each event type with its
/// schema, its producers (API routes) and consumers (projections), and how many events of it
/// the engine's projections have consumed; event types no consumer declares are marked. Like
/// the status page it carries no data itself: with a token, open it as `/catalog#token=...`.
/// Element classes and data-* attributes (section.topic[data-topic], tr.event-type[data-type]
/// [data-seen][data-declared], .undeclared-seen) are what the headless-browser test reads.

#include <string>

namespace ultracore::engine {

const std::string& catalogPageHtml();

}  // namespace ultracore::engine
