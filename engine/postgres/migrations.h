#pragma once
/// @file
/// The engine's own schema (migrations/*.sql, compiled in), applied at start-up.

#include <string>
#include <vector>

#include <pqxx/connection>

namespace ultracore::engine {

/// Applies every migration not yet recorded in ultracore_migrations, in file-name order, in
/// one transaction holding an advisory lock, so engines starting together do not race.
/// Returns the names it applied (empty when the database was up to date). Throws on failure.
std::vector<std::string> applyEngineMigrations(pqxx::connection_base& connection);

}  // namespace ultracore::engine
