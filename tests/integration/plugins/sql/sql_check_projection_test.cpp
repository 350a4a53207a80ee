// `ultracore-ctl check-projection NAME --sample N`: the test kit's determinism check on the
// first N records of the topic, for a sql view. A deterministic view passes; one that writes
// random() is caught, with the differing rows.

#include <fstream>

#include <gtest/gtest.h>

#include "engine_harness.h"

namespace ultracore::testing {
namespace {

using namespace std::chrono_literals;

constexpr const char* kAccounts = "ultracore.accounts.events";

TEST(SqlCheckProjectionTest, PassesADeterministicViewAndCatchesOneThatIsNot) {
  DevBroker broker(DevBroker::Options{1, 3, {kAccounts}});
  TestDatabase db;
  TempDir dir;
  const auto manifest = dir.path() / "projections.yaml";
  auto view = [](const std::string& name, const std::string& value) {
    return "  - name: " + name + "\n    plugin: sql\n    topics: [" + std::string(kAccounts) +
           "]\n    config:\n      schema_version: 1\n"
           "      tables: CREATE TABLE IF NOT EXISTS {schema}.totals (account_id text PRIMARY "
           "KEY, total numeric NOT NULL)\n      on:\n        FundsDeposited: \"INSERT INTO "
           "{schema}.totals VALUES (:aggregate_id, " + value + ") ON CONFLICT (account_id) DO "
           "UPDATE SET total = totals.total + EXCLUDED.total\"\n";
  };
  {
    std::ofstream out(manifest);
    out << "kafka:\n  bootstrap.servers: " << broker.bootstrap() << "\npostgres:\n  url: "
        << db.url() << "\nplugins:\n  - { name: sql, library: "
        << (binaryDir() / "plugins/sql/libultracore_sql.so").string() << " }\nprojections:\n"
        << view("totals", ":data.amount::numeric") << view("noisy", "random()::numeric");
  }
  std::vector<Record> records;
  for (int i = 0; i < 120; ++i) {
    const std::string account = "ACC-" + std::to_string(i % 9);
    records.push_back({kAccounts, account,
                       envelope("evt-" + std::to_string(i), "FundsDeposited", account,
                                {{"amount", std::to_string(i) + ".5"}})});
  }
  produce(broker.bootstrap(), records);

  auto [status, output] =
      runCtl(manifest, {"check-projection", "totals", "--sample", "100"}, dir.path() / "ok.log", 300s);
  EXPECT_EQ(status, 0) << output;
  EXPECT_NE(output.find("check-projection totals: 100 events from ultracore.accounts.events"),
            std::string::npos)
      << output;
  EXPECT_NE(output.find("totals: deterministic on this sample (2 tables"), std::string::npos)
      << output;

  auto [noisy_status, noisy_output] =
      runCtl(manifest, {"check-projection", "noisy", "--sample", "30"}, dir.path() / "noisy.log", 300s);
  EXPECT_EQ(noisy_status, 1) << noisy_output;
  EXPECT_NE(noisy_output.find("DIFFERS"), std::string::npos) << noisy_output;
  EXPECT_NE(noisy_output.find("table totals:"), std::string::npos) << noisy_output;
  EXPECT_NE(noisy_output.find("noisy: NOT deterministic on this sample"), std::string::npos)
      << noisy_output;
}

}  // namespace
}  // namespace ultracore::testing
