#pragma once
/// @file
/// What a projection generation stores under its key (migrations/0004_generations.sql), for
/// the engine's drop/cancel/reset and ultracore-ctl's offline reset.

#include <string>

#include <pqxx/transaction_base>

namespace ultracore::engine {

/// Drops `schema` (if it exists) and deletes everything stored under `key`: offsets,
/// processed_events, dead letters, skipped and parked events. Status rows are by runner name:
/// a rebuild's runner (named after its key, `name@gN`) loses its row; the live runner's row
/// (the projection's name) stays.
void purgeGeneration(pqxx::transaction_base& txn, const std::string& schema, const std::string& key);

}  // namespace ultracore::engine
