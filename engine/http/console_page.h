#pragma once
/// @file
/// The operator console's part of the admin page (admin_page.h): the navigation and the views
/// beyond projections (topics, consumer groups, message browser, one record, dead letters and
/// parked aggregates), as inline CSS and script: no external resources.
///
/// Every view has its address in the URL fragment, e.g.
/// `/#view=messages&topic=ultracore.customers.events&aggregate_id=CUST-1&token=...`, so a
/// view can be shared and the browser's back button pages back. Adding a view: one more
/// `registerView({id, title, show(params, element), hide()})` call in a script of the page
/// (the navigation lists the views in the order they were registered; `nav: false` keeps a
/// detail view out of it; `href: "/page"` makes the entry a link to a page of its own, as the
/// event catalog at /catalog is). Element ids, classes and data-* attributes are what the
/// headless-browser tests (tests/integration/console) read: keep them.

#include <string>

namespace ultracore::engine {

const std::string& consolePageStyle();
const std::string& consolePageScript();

}  // namespace ultracore::engine
