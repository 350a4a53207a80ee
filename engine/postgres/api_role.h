#pragma once
/// @file
/// The API's PostgreSQL role (issue 20, least privilege): what the command/query API may do in
/// the database, granted by the engine that owns the tables. The role reads the projections'
/// schemas and the offsets (consistency waits), and reads, inserts and deletes Idempotency-Key
/// rows; nothing else. The API connects either as a login that is (a member of) this role
/// (manifest postgres.api_url), or with the engine's url and `SET ROLE` (README, "Security").

#include <string>

#include <pqxx/connection>
#include <pqxx/transaction_base>

namespace ultracore::engine {

/// Makes sure `role` exists (creates it NOLOGIN when the engine's user may create roles) and
/// grants it the engine tables the API uses. With `engine_sets_role` (no postgres.api_url),
/// the engine's user must be able to SET ROLE to it: made a member when it is not. Idempotent; safe when several engines (or test
/// databases of one cluster: roles are cluster-wide) do it at once. Throws std::runtime_error
/// with the SQL an operator runs when the role is missing and cannot be created.
void prepareApiRole(pqxx::connection& connection, const std::string& role, bool engine_sets_role);

/// Lets `role` read every table of `schema` (USAGE + SELECT on all its tables, as they are
/// now: call after the projection's setupSchema()). Runs in `txn`.
void grantSchemaToApiRole(pqxx::transaction_base& txn, const std::string& schema,
                          const std::string& role);

}  // namespace ultracore::engine
