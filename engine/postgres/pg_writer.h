#pragma once
/// @file
/// PgWriter: the engine's implementation of sdk::Writer on one libpqxx transaction.

#include <string>

#include <pqxx/transaction_base>

#include "ultracore/sdk/writer.h"

namespace ultracore::engine {

/// Replaces every `{schema}` in `sql` with the quoted identifier of `schema`.
std::string expandSchema(std::string_view sql, const std::string& quoted_schema);

/// Borrowed by a projection for one call; the transaction belongs to the caller.
class PgWriter final : public sdk::Writer {
 public:
  /// `extended_only`: every statement goes through the extended query protocol, parameters
  /// or not, so one call is exactly one statement (the API's Reader); otherwise a call without
  /// parameters uses the simple protocol and may hold several statements (setupSchema's DDL).
  PgWriter(pqxx::transaction_base& txn, std::string schema, bool extended_only = false);

  const std::string& schema() const override { return schema_; }
  sdk::Status exec(std::string_view sql, const sdk::Params& params) override;
  sdk::Result<sdk::Rows> query(std::string_view sql, const sdk::Params& params) override;
  sdk::Result<sdk::Rows> execBatch(std::string_view sql, const std::vector<std::string>& columns,
                                   const std::vector<sdk::Params>& rows) override;

  /// How many statements this writer sent (for tests and metrics: round trips per batch).
  std::size_t statementCount() const { return statements_; }

 private:
  sdk::Result<sdk::Rows> run(const std::string& sql, const sdk::Params& params);

  pqxx::transaction_base& txn_;
  std::string schema_;
  std::string quoted_schema_;
  bool extended_only_;
  std::size_t statements_ = 0;
};

}  // namespace ultracore::engine
