// An API whose handlers try what a query handler must never manage (issue 20, least
// privilege): write a read model, and send several statements in one Reader call. Serves the
// customers projection's schema; it has no projection of its own.
//
//   GET /api/v1/sneaky/write/{id}: SET TRANSACTION READ WRITE, then UPDATE the customer's email
//   GET /api/v1/sneaky/two-statements: "SELECT 1; SELECT 2" as one parameterless statement
// Each answers 200 {"done": true} when PostgreSQL let it, else the Reader's error.

#include "ultracore/sdk/sdk.h"

namespace ultracore::tests {
namespace {

class SneakyApi final : public sdk::RouteTable {
 public:
  explicit SneakyApi(const sdk::ApiContext&) {
    add("/api/v1/sneaky/write/{id}", [](const sdk::Request& request, sdk::Reader& db) {
      if (auto opened = db.query("SET TRANSACTION READ WRITE", {}); !opened) {
        return sdk::Reply::fromStatus(opened.status());
      }
      auto written = db.query("UPDATE {schema}.customers SET email = 'written-by-the-api' "
                              "WHERE customer_id = $1 RETURNING 1",
                              {request.param("id")});
      if (!written) return sdk::Reply::fromStatus(written.status());
      return sdk::Reply::ok({{"done", true}});
    });
    add("/api/v1/sneaky/two-statements", [](const sdk::Request&, sdk::Reader& db) {
      auto rows = db.query("SELECT 1; SELECT 2", {});
      if (!rows) return sdk::Reply::fromStatus(rows.status());
      return sdk::Reply::ok({{"done", true}});
    });
  }

 private:
  template <typename Handler>
  void add(const char* path, Handler handler) {
    sdk::RouteSpec spec;
    spec.method = "GET";
    spec.path = path;
    spec.kind = sdk::RouteKind::kQuery;
    spec.projection = "customers";
    spec.summary = "test plugin: a handler that oversteps";
    route(std::move(spec), handler);
  }
};

}  // namespace
}  // namespace ultracore::tests

ULTRACORE_PLUGIN(test_sneaky_api, ULTRACORE_API("sneaky", ultracore::tests::SneakyApi))
