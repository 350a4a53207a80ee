#include "engine/postgres/pg_writer.h"

#include <cctype>

#include <pqxx/prepared_statement>
#include <pqxx/result>

#include "engine/postgres/pg_errors.h"
#include "engine/postgres/sql_array.h"

namespace ultracore::engine {
namespace {

bool isLowerIdentifier(const std::string& name) {
  if (name.empty() || name.size() > 63) return false;
  if (!(std::islower(static_cast<unsigned char>(name[0])) || name[0] == '_')) return false;
  for (char c : name) {
    if (!(std::islower(static_cast<unsigned char>(c)) || std::isdigit(static_cast<unsigned char>(c)) ||
          c == '_')) {
      return false;
    }
  }
  return true;
}

std::string quoteIdentifier(const std::string& name) {
  std::string out = "\"";
  for (char c : name) {
    if (c == '"') out.push_back('"');
    out.push_back(c);
  }
  out.push_back('"');
  return out;
}

/// Splits a statement that starts with its own WITH so the batch CTE can be prepended.
bool startsWithWith(std::string_view sql, std::size_t& after) {
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

sdk::Rows toRows(const pqxx::result& result) {
  sdk::Rows rows;
  const auto columns = static_cast<std::size_t>(result.columns());
  rows.columns.reserve(columns);
  for (std::size_t c = 0; c < columns; ++c) rows.columns.emplace_back(result.column_name(c));
  rows.rows.reserve(result.size());
  for (const auto& row : result) {
    std::vector<sdk::Value> values;
    values.reserve(columns);
    for (const auto& field : row) {
      if (field.is_null()) {
        values.emplace_back(std::nullopt);
      } else {
        values.emplace_back(std::string(field.c_str(), field.size()));
      }
    }
    rows.rows.push_back(std::move(values));
  }
  return rows;
}

}  // namespace

std::string expandSchema(std::string_view sql, const std::string& quoted_schema) {
  static constexpr std::string_view kPlaceholder = "{schema}";
  std::string out;
  out.reserve(sql.size() + 16);
  std::size_t pos = 0;
  while (true) {
    const std::size_t hit = sql.find(kPlaceholder, pos);
    if (hit == std::string_view::npos) break;
    out.append(sql.substr(pos, hit - pos));
    out.append(quoted_schema);
    pos = hit + kPlaceholder.size();
  }
  out.append(sql.substr(pos));
  return out;
}

PgWriter::PgWriter(pqxx::transaction_base& txn, std::string schema, bool extended_only)
    : txn_(txn),
      schema_(std::move(schema)),
      quoted_schema_(quoteIdentifier(schema_)),
      extended_only_(extended_only) {}

sdk::Result<sdk::Rows> PgWriter::run(const std::string& sql, const sdk::Params& params) {
  std::vector<const char*> pointers;
  pointers.reserve(params.size());
  for (const auto& param : params) pointers.push_back(param ? param->c_str() : nullptr);
  ++statements_;
  try {
    // Without parameters the simple query protocol runs, which accepts several statements;
    // exec_params with none is PQexecParams: the extended protocol, one statement.
    if (params.empty() && !extended_only_) return toRows(txn_.exec(sql));
    return toRows(txn_.exec_params(sql, pqxx::prepare::make_dynamic_params(pointers)));
  } catch (...) {
    return statusFromCurrentException();
  }
}

sdk::Status PgWriter::exec(std::string_view sql, const sdk::Params& params) {
  return run(expandSchema(sql, quoted_schema_), params).status();
}

sdk::Result<sdk::Rows> PgWriter::query(std::string_view sql, const sdk::Params& params) {
  return run(expandSchema(sql, quoted_schema_), params);
}

sdk::Result<sdk::Rows> PgWriter::execBatch(std::string_view sql,
                                           const std::vector<std::string>& columns,
                                           const std::vector<sdk::Params>& rows) {
  if (columns.empty()) return sdk::Status::invalidArgument("execBatch: no columns");
  std::string names;
  std::string arrays;
  for (std::size_t c = 0; c < columns.size(); ++c) {
    if (!isLowerIdentifier(columns[c]) || columns[c] == "ord") {
      return sdk::Status::invalidArgument("execBatch: bad column name '" + columns[c] + "'");
    }
    if (c > 0) {
      names += ", ";
      arrays += ", ";
    }
    names += columns[c];
    // Appended piece by piece: `"$" + std::to_string(...)` trips g++ 12's -Wrestrict false
    // positive at -O3 (the Release build).
    arrays += '$';
    arrays += std::to_string(c + 1);
    arrays += "::text[]";
  }
  std::vector<std::vector<sdk::Value>> by_column(columns.size());
  for (auto& column : by_column) column.reserve(rows.size());
  for (std::size_t r = 0; r < rows.size(); ++r) {
    if (rows[r].size() != columns.size()) {
      return sdk::Status::invalidArgument("execBatch: row " + std::to_string(r) + " has " +
                                          std::to_string(rows[r].size()) + " values for " +
                                          std::to_string(columns.size()) + " columns");
    }
    for (std::size_t c = 0; c < columns.size(); ++c) by_column[c].push_back(rows[r][c]);
  }
  sdk::Params params;
  params.reserve(columns.size());
  for (const auto& column : by_column) params.emplace_back(toArrayLiteral(column));

  const std::string batch_cte = "batch AS (SELECT * FROM unnest(" + arrays +
                                ") WITH ORDINALITY AS b(" + names + ", ord))";
  const std::string body = expandSchema(sql, quoted_schema_);
  std::size_t after_with = 0;
  std::string statement;
  if (startsWithWith(body, after_with)) {
    statement = "WITH " + batch_cte + "," + body.substr(after_with);
  } else {
    statement = "WITH " + batch_cte + " " + body;
  }
  return run(statement, params);
}

}  // namespace ultracore::engine
