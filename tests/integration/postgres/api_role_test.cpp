// The API's PostgreSQL role (issue 20, least privilege) against a real PostgreSQL: what the
// engine grants it, and what an engine whose user may not create roles says at start-up.

#include <gtest/gtest.h>
#include <pqxx/connection>
#include <pqxx/nontransaction>
#include <pqxx/transaction>

#include "engine/postgres/api_role.h"
#include "engine/postgres/migrations.h"
#include "support/test_support.h"

namespace ultracore::testing {
namespace {

/// `url` with its user replaced (the dev cluster trusts loopback logins).
std::string asUser(std::string url, const std::string& user) {
  const auto at = url.find("postgres@");
  if (at != std::string::npos) url.replace(at, 8, user);
  return url;
}

bool hasPrivilege(pqxx::connection& c, const std::string& role, const std::string& table,
                  const std::string& privilege) {
  pqxx::nontransaction txn(c);
  return txn.exec_params1("SELECT has_table_privilege($1, $2, $3)", role, table, privilege)[0].as<bool>();
}

TEST(ApiRoleTest, GetsReadsOfTheProjectionsAndOffsetsAndTheIdempotencyTableOnly) {
  TestDatabase db;
  pqxx::connection owner(db.url());
  engine::applyEngineMigrations(owner);
  const std::string role = "ultracore_api_roletest";
  for (int pass = 0; pass < 2; ++pass) {  // idempotent: every start does it again
    engine::prepareApiRole(owner, role, /*engine_sets_role=*/true);
    pqxx::work txn(owner);
    txn.exec0("CREATE SCHEMA IF NOT EXISTS shop; CREATE TABLE IF NOT EXISTS shop.items (id text PRIMARY KEY)");
    engine::grantSchemaToApiRole(txn, "shop", role);
    txn.commit();
  }
  EXPECT_TRUE(hasPrivilege(owner, role, "shop.items", "SELECT"));
  EXPECT_TRUE(hasPrivilege(owner, role, "ultracore_offsets", "SELECT"));
  EXPECT_TRUE(hasPrivilege(owner, role, "ultracore_generations", "SELECT"));
  EXPECT_TRUE(hasPrivilege(owner, role, "ultracore_api_aggregates", "SELECT"));
  EXPECT_FALSE(hasPrivilege(owner, role, "ultracore_api_aggregates", "UPDATE"));
  for (const char* privilege : {"SELECT", "INSERT", "DELETE"}) {
    EXPECT_TRUE(hasPrivilege(owner, role, "ultracore_api_idempotency", privilege)) << privilege;
  }
  for (const char* privilege : {"INSERT", "UPDATE", "DELETE", "TRUNCATE"}) {
    EXPECT_FALSE(hasPrivilege(owner, role, "shop.items", privilege)) << privilege;
    EXPECT_FALSE(hasPrivilege(owner, role, "ultracore_offsets", privilege)) << privilege;
  }
  EXPECT_FALSE(hasPrivilege(owner, role, "ultracore_api_idempotency", "UPDATE"));
  EXPECT_FALSE(hasPrivilege(owner, role, "processed_events", "SELECT"));
}

// An engine whose PostgreSQL user may not create roles fails at start-up with the statement an
// operator runs once, instead of serving the API as the tables' owner.
TEST(ApiRoleTest, AnEngineThatCannotCreateTheRoleSaysWhatToRun) {
  TestDatabase db;
  pqxx::connection owner(db.url());
  pqxx::nontransaction(owner).exec(
      "DO $$ BEGIN CREATE ROLE ultracore_roletest_engine LOGIN; EXCEPTION WHEN duplicate_object "
      "OR unique_violation THEN NULL; END $$; GRANT ALL ON SCHEMA public TO ultracore_roletest_engine");
  pqxx::connection engine_user(asUser(db.url(), "ultracore_roletest_engine"));
  engine::applyEngineMigrations(engine_user);
  try {
    engine::prepareApiRole(engine_user, "ultracore_roletest_never_created", /*engine_sets_role=*/true);
    FAIL() << "a missing role that cannot be created was accepted";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("CREATE ROLE \"ultracore_roletest_never_created\" NOLOGIN"),
              std::string::npos)
        << e.what();
  }
  EXPECT_TRUE(pqxx::nontransaction(owner)
                  .exec("SELECT 1 FROM pg_roles WHERE rolname = 'ultracore_roletest_never_created'")
                  .empty());
}

}  // namespace
}  // namespace ultracore::testing
