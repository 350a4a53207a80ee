// `ultracore-engine --check` on sql views: each kind of mistake is reported with its message
// and its file:line:column in the manifest (table-driven), and a good view passes.

#include <algorithm>
#include <fstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <pqxx/pqxx>

#include "test_support.h"

namespace ultracore::testing {
namespace {

using namespace std::chrono_literals;

/// A view whose parts a case replaces. `@` marks where the mistake is: the test removes it
/// and expects the error at that line and column.
struct CheckCase {
  std::string name;
  std::string config;   ///< the lines under `config:` (6 spaces of indentation)
  std::string message;  ///< expected in the error, after "<file>:<line>:<column>: "
};

const std::string kTables =
    "      schema_version: 1\n"
    "      tables: |\n"
    "        CREATE TABLE IF NOT EXISTS {schema}.daily (\n"
    "          account_id text, day date, deposits numeric NOT NULL DEFAULT 0,\n"
    "          PRIMARY KEY (account_id, day))\n";

const std::string kDeposit =
    "      on:\n"
    "        FundsDeposited: |\n"
    "          INSERT INTO {schema}.daily (account_id, day, deposits)\n"
    "          VALUES (:aggregate_id, :occurred_at::date, :data.amount!::numeric)\n"
    "          ON CONFLICT (account_id, day) DO UPDATE SET deposits = daily.deposits + EXCLUDED.deposits\n";

std::vector<CheckCase> cases() {
  return {
      {"unknown parameter", kTables +
                                "      on:\n"
                                "        FundsDeposited: |\n"
                                "          INSERT INTO {schema}.daily (account_id, day)\n"
                                "          VALUES (:aggregate_id, @:ocurred_at::date)\n",
       "unknown parameter ':ocurred_at'"},
      {"unknown parameter in a list item", kTables +
                                               "      on:\n"
                                               "        FundsDeposited:\n"
                                               "          - SELECT 1\n"
                                               "          - \"DELETE FROM {schema}.daily WHERE account_id = @:aggregate\"\n",
       "unknown parameter ':aggregate'"},
      {"positional parameter", kTables +
                                   "      on:\n"
                                   "        FundsDeposited: DELETE FROM {schema}.daily WHERE account_id = @$1\n",
       "positional parameter '$1...'"},
      {"unknown config key", kTables + kDeposit + "      unknown_event: @reject\n",
       "unknown key 'unknown_event' in config of the sql plugin"},
      {"bad unknown_events", kTables + kDeposit + "      unknown_events: @drop\n",
       "unknown_events must be ignore or reject"},
      {"bad schema_version",
       "      schema_version: @zero\n      tables: CREATE TABLE {schema}.t (x int)\n" + kDeposit,
       "schema_version must be an integer >= 1"},
      {"statement that is not text", kTables +
                                         "      on:\n"
                                         "        FundsDeposited: @{ sql: SELECT 1 }\n",
       "a statement of 'FundsDeposited' must be a string of SQL"},
      {"SQL PostgreSQL rejects in a statement", kTables +
                                                     "      on:\n"
                                                     "        FundsDeposited: |\n"
                                                     "          INSERT INTO {schema}.daily (account_id, day, deposits)\n"
                                                     "          VALUES (:aggregate_id, :occurred_at::date, :data.amount::numeric)\n"
                                                     "          @ON CONFLICT (account_id, dy) DO NOTHING\n",
       "PostgreSQL rejects statement 1 of FundsDeposited: SQLSTATE 42703: column \"dy\" does not "
       "exist"},
      {"SQL PostgreSQL rejects: a parameter needs a cast", kTables +
                                                               "      on:\n"
                                                               "        FundsDeposited: |\n"
                                                               "          @UPDATE {schema}.daily SET deposits = deposits + :data.amount\n",
       "PostgreSQL rejects statement 1 of FundsDeposited: SQLSTATE 42883: operator does not exist: "
       "numeric + text"},
      {"SQL PostgreSQL rejects in tables",
       "      schema_version: 1\n"
       "      tables: |\n"
       "        CREATE TABLE IF NOT EXISTS {schema}.daily (\n"
       "        @  account_id text, day dat)\n" +
           kDeposit,
       "PostgreSQL rejects tables: SQLSTATE 42704: type \"dat\" does not exist"},
      {"tables outside {schema}",
       "      schema_version: 1\n      tables: @CREATE TABLE IF NOT EXISTS public.daily (x int)\n" +
           kDeposit,
       "tables never names {schema}"},
  };
}

class SqlCheckTest : public ::testing::Test {
 protected:
  /// Writes a manifest with one sql view (and, `with_accounts`, the accounts projection on
  /// the same topic after it); returns its path.
  std::filesystem::path write(const std::string& name, const std::string& config,
                              bool with_accounts = false) {
    const auto path = dir_.path() / (name + ".yaml");
    std::ofstream out(path);
    out << "postgres:\n  url: " << db_.url() << "\nplugins:\n  - { name: sql, library: "
        << (binaryDir() / "plugins/sql/libultracore_sql.so").string() << " }\n";
    if (with_accounts) {
      out << "  - { name: accounts, library: "
          << (binaryDir() / "plugins/accounts/libultracore_accounts.so").string() << " }\n";
    }
    out << "projections:\n  - name: daily_view\n    plugin: sql\n"
        << "    topics: [ultracore.accounts.events]\n    config:\n"
        << config;
    if (with_accounts) {
      out << "  - { name: accounts, plugin: accounts, topics: [ultracore.accounts.events] }\n";
    }
    return path;
  }

  TestDatabase db_;
  TempDir dir_;
};

TEST_F(SqlCheckTest, EachKindOfMistakeIsReportedWithItsPlaceInTheManifest) {
  int n = 0;
  for (const CheckCase& c : cases()) {
    SCOPED_TRACE(c.name);
    // The manifest's line and column of the '@' marker, which is then removed (config's
    // lines start at line 10 of the manifest write() makes).
    const std::size_t marker = c.config.find('@');
    ASSERT_NE(marker, std::string::npos);
    const std::string before = c.config.substr(0, marker);
    const int line = 10 + static_cast<int>(std::count(before.begin(), before.end(), '\n'));
    const int column = static_cast<int>(marker - (before.rfind('\n') + 1)) + 1;
    std::string config = c.config;
    config.erase(marker, 1);
    const auto manifest = write("case" + std::to_string(++n), config);
    Subprocess check({binPath("ultracore-engine").string(), "--config", manifest.string(),
                      "--check", "--log-level", "warn"});
    ASSERT_EQ(check.wait(60s), 2) << check.log();
    const std::string expected = manifest.string() + ":" + std::to_string(line) + ":" +
                                 std::to_string(column) + ": " + c.message;
    EXPECT_NE(check.log().find(expected), std::string::npos)
        << "expected: " << expected << "\ngot: " << check.log();
  }
}

// The event catalog knows what the accounts topic carries (the accounts plugin declares its
// routes' and projection's types): a statement for a type nobody declares there is a
// warning, at the statement, with the nearest declared name; --check still passes.
TEST_F(SqlCheckTest, AnEventTypeNoTopicOfTheViewCarriesIsAWarningAtItsStatement) {
  std::string config = kTables + kDeposit +
                       "        FundsDeposted: @SELECT 1\n"
                       "        AccountOpened: SELECT 1\n";
  const std::size_t marker = config.find('@');
  const std::string before = config.substr(0, marker);
  const int line = 11 + static_cast<int>(std::count(before.begin(), before.end(), '\n'));
  const int column = static_cast<int>(marker - (before.rfind('\n') + 1)) + 1;
  config.erase(marker, 1);
  // Line 10 + 1: the accounts plugin's line comes before the config.
  const auto manifest = write("typo", config, /*with_accounts=*/true);
  Subprocess check({binPath("ultracore-engine").string(), "--config", manifest.string(),
                    "--check", "--log-level", "warn"});
  ASSERT_EQ(check.wait(60s), 0) << check.log();
  const std::string expected = "warning: " + manifest.string() + ":" + std::to_string(line) + ":" +
                               std::to_string(column) +
                               ": projection 'daily_view': no producer or consumer declares event "
                               "type 'FundsDeposted' on its topics (ultracore.accounts.events), so "
                               "its statements may never run; did you mean 'FundsDeposited'?";
  EXPECT_NE(check.log().find(expected), std::string::npos) << "expected: " << expected << "\ngot: " << check.log();
  EXPECT_EQ(check.log().find("'FundsDeposited' on its topics"), std::string::npos) << check.log();
  EXPECT_EQ(check.log().find("'AccountOpened' on its topics"), std::string::npos) << check.log();
}

TEST_F(SqlCheckTest, AGoodViewPassesAndLeavesNoScratchSchema) {
  const auto manifest = write("good", kTables + kDeposit);
  Subprocess check({binPath("ultracore-engine").string(), "--config", manifest.string(),
                    "--check", "--log-level", "warn"});
  ASSERT_EQ(check.wait(60s), 0) << check.log();
  EXPECT_NE(check.log().find("ok (1 plugins, 1 projections)"), std::string::npos) << check.log();
  pqxx::connection connection(db_.url());
  pqxx::nontransaction txn(connection);
  EXPECT_EQ(txn.exec1("SELECT count(*) FROM information_schema.schemata WHERE schema_name LIKE "
                      "'ultracore_check%' OR schema_name = 'daily_view'")[0]
                .as<int>(),
            0);
}

// Not parameters: ':name' in string literals, quoted identifiers, dollar quotes and
// comments; '::' is a cast. An unknown name there would fail the check.
TEST_F(SqlCheckTest, NamesInLiteralsAndCommentsAreNotParametersAndCastsParse) {
  const auto manifest = write(
      "literals", kTables +
                      "      on:\n"
                      "        FundsDeposited: |\n"
                      "          -- :not_a_parameter in a comment\n"
                      "          INSERT INTO {schema}.daily (account_id, day, deposits) /* :nor_this */\n"
                      "          SELECT :aggregate_id || ':literal' || $tag$:dollar$tag$ || E'\\':esc',\n"
                      "                 :occurred_at::date, :data.amount!::numeric\n"
                      "          ON CONFLICT (account_id, day) DO NOTHING -- a last comment\n");
  Subprocess check({binPath("ultracore-engine").string(), "--config", manifest.string(),
                    "--check", "--log-level", "warn"});
  EXPECT_EQ(check.wait(60s), 0) << check.log();
}

}  // namespace
}  // namespace ultracore::testing
