#pragma once
/// @file
/// Test kit, part 2: an sdk::Writer over one libpqxx transaction, with the engine's semantics
/// (`{schema}` expansion, parameters as text, execBatch's `batch` relation with `ord`).
///
/// Why libpqxx here: the SDK proper has no database dependency (the engine owns the
/// connection), but a projection test must run the plugin's SQL against a real PostgreSQL.
/// The engine's writer is engine-internal, so the kit carries its own copy of that logic and
/// only test executables pay for libpqxx (link UltraCore::testing). libpqxx 6.4 cannot bind a
/// container, so a batch travels as one text[] literal per column, as in the engine.
///
/// Borrowed for one call like the engine's writer; the transaction belongs to the caller.
/// Use from the thread that owns the transaction.

#include <cctype>
#include <string>
#include <string_view>
#include <vector>

#include <pqxx/pqxx>

#include "ultracore/sdk/status.h"
#include "ultracore/sdk/writer.h"

namespace ultracore::sdk::testing {

namespace detail {

inline std::string quoteIdentifier(const std::string& name) {
  std::string out = "\"";
  for (char c : name) {
    if (c == '"') out.push_back('"');
    out.push_back(c);
  }
  return out + "\"";
}

inline bool isLowerIdentifier(const std::string& name) {
  if (name.empty() || name.size() > 63) return false;
  if (!(std::islower(static_cast<unsigned char>(name[0])) || name[0] == '_')) return false;
  for (char c : name) {
    const auto u = static_cast<unsigned char>(c);
    if (!(std::islower(u) || std::isdigit(u) || c == '_')) return false;
  }
  return true;
}

/// `{"a","b\"c",NULL}`: every element double-quoted with `"` and `\` escaped.
inline std::string toArrayLiteral(const std::vector<Value>& values) {
  std::string out = "{";
  for (std::size_t i = 0; i < values.size(); ++i) {
    if (i > 0) out.push_back(',');
    if (!values[i]) {
      out += "NULL";
      continue;
    }
    out.push_back('"');
    for (char c : *values[i]) {
      if (c == '"' || c == '\\') out.push_back('\\');
      out.push_back(c);
    }
    out.push_back('"');
  }
  return out + "}";
}

inline std::string expandSchema(std::string_view sql, const std::string& quoted_schema) {
  static constexpr std::string_view kPlaceholder = "{schema}";
  std::string out;
  std::size_t pos = 0;
  for (std::size_t hit; (hit = sql.find(kPlaceholder, pos)) != std::string_view::npos;
       pos = hit + kPlaceholder.size()) {
    out.append(sql.substr(pos, hit - pos)).append(quoted_schema);
  }
  return out.append(sql.substr(pos));
}

inline bool startsWithWith(std::string_view sql, std::size_t& after) {
  std::size_t i = 0;
  while (i < sql.size() && std::isspace(static_cast<unsigned char>(sql[i]))) ++i;
  if (sql.size() - i < 5) return false;
  for (std::size_t k = 0; k < 4; ++k) {
    if (std::tolower(static_cast<unsigned char>(sql[i + k])) != "with"[k]) return false;
  }
  if (!std::isspace(static_cast<unsigned char>(sql[i + 4]))) return false;
  after = i + 4;
  return true;
}

inline Rows toRows(const pqxx::result& result) {
  Rows rows;
  const auto columns = static_cast<std::size_t>(result.columns());
  for (std::size_t c = 0; c < columns; ++c) rows.columns.emplace_back(result.column_name(c));
  for (const auto& row : result) {
    std::vector<Value> values;
    for (const auto& field : row) {
      values.push_back(field.is_null() ? Value() : Value(std::string(field.c_str(), field.size())));
    }
    rows.rows.push_back(std::move(values));
  }
  return rows;
}

/// Maps what libpqxx threw to the Status the engine's writer would return.
inline Status statusFromCurrentException() {
  try {
    throw;
  } catch (const pqxx::broken_connection& e) {
    return {StatusCode::kTransient, std::string("connection lost: ") + e.what()};
  } catch (const pqxx::sql_error& e) {
    const std::string state = e.sqlstate();
    // serialization_failure, deadlock_detected, lock_not_available, admin shutdown class
    if (state == "40001" || state == "40P01" || state == "55P03" || state.rfind("57P", 0) == 0) {
      return {StatusCode::kTransient, e.what()};
    }
    return {StatusCode::kDatabaseError, "SQLSTATE " + state + ": " + e.what()};
  } catch (const std::exception& e) {
    return {StatusCode::kDatabaseError, e.what()};
  }
}

}  // namespace detail

class PgTestWriter final : public Writer {
 public:
  PgTestWriter(pqxx::transaction_base& txn, std::string schema)
      : txn_(txn), schema_(std::move(schema)), quoted_schema_(detail::quoteIdentifier(schema_)) {}

  const std::string& schema() const override { return schema_; }

  Status exec(std::string_view sql, const Params& params = {}) override {
    return run(detail::expandSchema(sql, quoted_schema_), params).status();
  }

  Result<Rows> query(std::string_view sql, const Params& params = {}) override {
    return run(detail::expandSchema(sql, quoted_schema_), params);
  }

  Result<Rows> execBatch(std::string_view sql, const std::vector<std::string>& columns,
                         const std::vector<Params>& rows) override {
    if (columns.empty()) return Status::invalidArgument("execBatch: no columns");
    std::string names, arrays;
    for (std::size_t c = 0; c < columns.size(); ++c) {
      if (!detail::isLowerIdentifier(columns[c]) || columns[c] == "ord") {
        return Status::invalidArgument("execBatch: bad column name '" + columns[c] + "'");
      }
      names += (c > 0 ? ", " : "") + columns[c];
      arrays += (c > 0 ? ", $" : "$") + std::to_string(c + 1) + "::text[]";
    }
    std::vector<std::vector<Value>> by_column(columns.size());
    for (std::size_t r = 0; r < rows.size(); ++r) {
      if (rows[r].size() != columns.size()) {
        return Status::invalidArgument("execBatch: row " + std::to_string(r) + " has " +
                                       std::to_string(rows[r].size()) + " values for " +
                                       std::to_string(columns.size()) + " columns");
      }
      for (std::size_t c = 0; c < columns.size(); ++c) by_column[c].push_back(rows[r][c]);
    }
    Params params;
    for (const auto& column : by_column) params.emplace_back(detail::toArrayLiteral(column));
    const std::string cte = "batch AS (SELECT * FROM unnest(" + arrays +
                            ") WITH ORDINALITY AS b(" + names + ", ord))";
    const std::string body = detail::expandSchema(sql, quoted_schema_);
    std::size_t after = 0;
    const std::string statement = detail::startsWithWith(body, after)
                                      ? "WITH " + cte + "," + body.substr(after)
                                      : "WITH " + cte + " " + body;
    return run(statement, params);
  }

  /// Statements sent so far: round trips per batch, for tests that care.
  std::size_t statementCount() const { return statements_; }

 private:
  Result<Rows> run(const std::string& sql, const Params& params) {
    std::vector<const char*> pointers;
    for (const auto& param : params) pointers.push_back(param ? param->c_str() : nullptr);
    ++statements_;
    try {
      // Without parameters the simple query protocol runs, which accepts several statements.
      if (params.empty()) return detail::toRows(txn_.exec(sql));
      return detail::toRows(txn_.exec_params(sql, pqxx::prepare::make_dynamic_params(pointers)));
    } catch (...) {
      return detail::statusFromCurrentException();
    }
  }

  pqxx::transaction_base& txn_;
  std::string schema_;
  std::string quoted_schema_;
  std::size_t statements_ = 0;
};

}  // namespace ultracore::sdk::testing
