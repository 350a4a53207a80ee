#include "engine/postgres/api_role.h"

#include <stdexcept>

#include <pqxx/except>
#include <pqxx/nontransaction>
#include <pqxx/transaction>

namespace ultracore::engine {

void prepareApiRole(pqxx::connection& connection, const std::string& role, bool engine_sets_role) {
  const std::string quoted = connection.quote_name(role);
  bool exists = false;
  {
    pqxx::nontransaction txn(connection, "ultracore-api-role");
    exists = !txn.exec_params("SELECT 1 FROM pg_roles WHERE rolname = $1", role).empty();
  }
  if (!exists) {
    try {
      pqxx::nontransaction(connection, "ultracore-api-role").exec0("CREATE ROLE " + quoted + " NOLOGIN");
    } catch (const pqxx::sql_error& e) {
      // 42710 duplicate_object, 23505 unique_violation: another engine created it meanwhile.
      const std::string state = e.sqlstate();
      if (state != "42710" && state != "23505") {
        throw std::runtime_error(
            "the API's PostgreSQL role '" + role + "' does not exist and this engine's user cannot "
            "create it (" + e.what() + "). Create it once as a superuser: CREATE ROLE " + quoted +
            " NOLOGIN; (or set postgres.api_role to another existing role)");
      }
    }
  }
  pqxx::work txn(connection, "ultracore-api-role");
  // Concurrent GRANTs on one table fail ("tuple concurrently updated"): one engine at a time.
  txn.exec("SELECT pg_advisory_xact_lock(hashtext('ultracore.api.role'))");
  // ultracore_api_aggregates: the positions a command waits for (its lock is taken on the
  // engine's own login, never with this role).
  txn.exec0("GRANT SELECT ON ultracore_offsets, ultracore_generations, ultracore_api_aggregates TO " +
            quoted);
  txn.exec0("GRANT SELECT, INSERT, DELETE ON ultracore_api_idempotency TO " + quoted);
  if (engine_sets_role &&
      !txn.exec("SELECT pg_has_role(current_user, " + txn.quote(role) + ", 'MEMBER')")[0][0].as<bool>()) {
    try {
      txn.exec0("GRANT " + quoted + " TO CURRENT_USER");
    } catch (const pqxx::sql_error& e) {
      throw std::runtime_error(
          "without postgres.api_url the API runs SET ROLE " + quoted + ", and this engine's user "
          "is not a member of that role nor may make itself one (" + e.what() + "). Either give "
          "the API its own login (postgres.api_url), or run once as a superuser: GRANT " + quoted +
          " TO <the engine's user>;");
    }
  }
  txn.commit();
}

void grantSchemaToApiRole(pqxx::transaction_base& txn, const std::string& schema,
                          const std::string& role) {
  const std::string quoted_role = txn.quote_name(role);
  const std::string quoted_schema = txn.quote_name(schema);
  txn.exec0("GRANT USAGE ON SCHEMA " + quoted_schema + " TO " + quoted_role);
  txn.exec0("GRANT SELECT ON ALL TABLES IN SCHEMA " + quoted_schema + " TO " + quoted_role);
}

}  // namespace ultracore::engine
