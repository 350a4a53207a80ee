#include "engine/postgres/generation_store.h"

namespace ultracore::engine {

void purgeGeneration(pqxx::transaction_base& txn, const std::string& schema, const std::string& key) {
  txn.exec0("DROP SCHEMA IF EXISTS " + txn.quote_name(schema) + " CASCADE");
  for (const char* table :
       // Parked aggregates reference their dead letters: they go first.
       {"ultracore_offsets", "processed_events", "ultracore_parked_events",
        "ultracore_parked_aggregates", "ultracore_dead_letters", "ultracore_skipped_events"}) {
    txn.exec_params0(std::string("DELETE FROM ") + table + " WHERE projection = $1", key);
  }
  if (key.find("@g") != std::string::npos) {
    txn.exec_params0("DELETE FROM ultracore_projection_status WHERE projection = $1", key);
  }
}

}  // namespace ultracore::engine
