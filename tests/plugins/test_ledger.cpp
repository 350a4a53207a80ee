// A projection that is not idempotent by nature: it appends every event id to a text column
// and sums amounts. Applied twice, an event shows twice; lost, it is missing. The crash and
// rebalance tests compare its table with a clean run.
//
// Events: any type; event_data {"amount": <integer>}. An event of type "Poison" is rejected
// with a handler error (for the error-policy tests), unless its event_id is in
// {schema}.cured: that is how a test "fixes the plugin" before retrying a dead letter.
// {schema}.commit_modes records the synchronous_commit setting each batch ran under.
//
// Its API has one command that publishes several events, for the tests of atomic publishing:
// POST /api/v1/ledger/{id}/entries {"topic": T, "amounts": [1, 2, ...], "also_to": T2?}
// publishes one "Entry" event per amount to T, then, with also_to, one more to T2 (a topic that
// does not exist makes the whole command fail: none of its events may become visible).
//
// Each event may carry event_data {"sleep_ms": N}: the batch sleeps the sum of them in one
// statement (pg_sleep), so under a statement_timeout a batch fails while its parts pass. With
// {"sleep_in": SCHEMA} it sleeps only in that schema (the live one, not a rebuild's).

#include <map>
#include <string>
#include <vector>

#include "ultracore/sdk/sdk.h"

namespace ultracore::tests {
namespace {

using sdk::Status;

class LedgerProjection final : public sdk::Projection {
 public:
  explicit LedgerProjection(const sdk::ProjectionContext&) {}

  int schemaVersion() const override { return 1; }

  Status setupSchema(sdk::Writer& db) override {
    return db.exec(
        "CREATE TABLE IF NOT EXISTS {schema}.ledger ("
        " aggregate_id text PRIMARY KEY, event_ids text NOT NULL, total bigint NOT NULL,"
        " events integer NOT NULL);"
        "CREATE TABLE IF NOT EXISTS {schema}.cured (event_id text PRIMARY KEY);"
        "CREATE TABLE IF NOT EXISTS {schema}.commit_modes (synchronous_commit text PRIMARY KEY)");
  }

  Status apply(std::span<const sdk::Event> events, sdk::Writer& db) override {
    struct Fold {
      std::string ids;
      long long total = 0;
      int count = 0;
    };
    std::map<std::string, Fold> folds;
    long long sleep_ms = 0;
    for (const auto& event : events) {
      if (event.data().value("sleep_in", db.schema()) != db.schema()) continue;
      sleep_ms += event.data().value("sleep_ms", 0LL);
    }
    if (sleep_ms > 0) {
      auto slept = db.query("SELECT pg_sleep($1::double precision / 1000)", {std::to_string(sleep_ms)});
      if (!slept) return slept.status();
    }
    for (const auto& event : events) {
      if (event.eventType() == "Poison") {
        auto cured = db.query("SELECT 1 FROM {schema}.cured WHERE event_id = $1", {event.eventId()});
        if (!cured) return cured.status();
        if (cured->rows.empty()) return Status::handlerError("poison event " + event.eventId());
      }
      const auto amount = event.data().value("amount", 0LL);
      Fold& fold = folds[event.aggregateId()];
      fold.ids += (fold.ids.empty() ? "" : ",") + event.eventId();
      fold.total += amount;
      ++fold.count;
    }
    if (Status seen = db.exec("INSERT INTO {schema}.commit_modes "
                              "VALUES (current_setting('synchronous_commit')) ON CONFLICT DO NOTHING");
        !seen) {
      return seen;
    }
    std::vector<sdk::Params> rows;
    for (const auto& [id, fold] : folds) {
      rows.push_back({id, fold.ids, std::to_string(fold.total), std::to_string(fold.count)});
    }
    return db.execBatch(
                 "INSERT INTO {schema}.ledger AS l (aggregate_id, event_ids, total, events) "
                 "SELECT id, ids, total::bigint, n::int FROM batch "
                 "ON CONFLICT (aggregate_id) DO UPDATE SET "
                 "event_ids = l.event_ids || ',' || EXCLUDED.event_ids, "
                 "total = l.total + EXCLUDED.total, events = l.events + EXCLUDED.events",
                 {"id", "ids", "total", "n"}, rows)
        .status();
  }
};

class LedgerApi final : public sdk::RouteTable {
 public:
  explicit LedgerApi(const sdk::ApiContext&) {
    sdk::RouteSpec spec;
    spec.method = "POST";
    spec.path = "/api/v1/ledger/{id}/entries";
    spec.kind = sdk::RouteKind::kCommand;
    spec.projection = "ledger";
    spec.summary = "Publish one Entry event per amount (test plugin)";
    route(std::move(spec),
          [](const sdk::Request& request, sdk::Reader&) { return entries(request); });
  }

 private:
  static sdk::Reply entries(const sdk::Request& request) {
    std::string topic;
    if (auto error = sdk::requireString(request.body, "topic", topic)) return *error;
    const auto amounts = request.body.find("amounts");
    if (amounts == request.body.end() || !amounts->is_array() || amounts->empty()) {
      return sdk::Reply::error(400, "invalid_field", "field 'amounts' must be a non-empty array",
                               "amounts");
    }
    std::vector<sdk::NewEvent> events;
    for (const auto& amount : *amounts) {
      if (!amount.is_number_integer()) {
        return sdk::Reply::error(400, "invalid_field", "amounts must be integers", "amounts");
      }
      events.push_back({topic, "Entry", "Ledger", request.param("id"), std::nullopt,
                        nlohmann::json{{"amount", amount}}});
    }
    if (const auto also = request.body.find("also_to"); also != request.body.end() && also->is_string()) {
      events.push_back({also->get<std::string>(), "Entry", "Ledger", request.param("id"),
                        std::nullopt, nlohmann::json{{"amount", 0}}});
    }
    sdk::Reply reply = sdk::Reply::publish(events.front());
    reply.events = std::move(events);
    return reply;
  }
};

}  // namespace
}  // namespace ultracore::tests

ULTRACORE_PLUGIN(test_ledger,
                 ULTRACORE_PROJECTION("ledger", "ledger", ultracore::tests::LedgerProjection),
                 ULTRACORE_API("ledger", ultracore::tests::LedgerApi))
