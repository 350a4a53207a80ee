#include "engine/postgres/migrations.h"

#include <pqxx/result>
#include <pqxx/transaction>

namespace ultracore::engine {
namespace {

struct Migration {
  const char* name;
  const char* sql;
};

const Migration kMigrations[] = {
#include "engine_migrations.inc"
};

}  // namespace

std::vector<std::string> applyEngineMigrations(pqxx::connection_base& connection) {
  pqxx::work txn(connection, "ultracore-migrations");
  // Held until commit: a second engine waits here, then finds everything applied.
  txn.exec("SELECT pg_advisory_xact_lock(hashtext('ultracore.engine.migrations'))");
  txn.exec0(
      "CREATE TABLE IF NOT EXISTS ultracore_migrations ("
      " name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())");
  std::vector<std::string> applied;
  for (const auto& migration : kMigrations) {
    const auto found =
        txn.exec_params("SELECT 1 FROM ultracore_migrations WHERE name = $1", migration.name);
    if (!found.empty()) continue;
    txn.exec(migration.sql);
    txn.exec_params0("INSERT INTO ultracore_migrations (name) VALUES ($1)", migration.name);
    applied.emplace_back(migration.name);
  }
  txn.commit();
  return applied;
}

}  // namespace ultracore::engine
