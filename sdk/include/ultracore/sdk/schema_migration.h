#pragma once
/// @file
/// Helpers for setupSchema() when a table's key changes in place. Header only; each call runs
/// on the Writer it is given, inside setupSchema()'s transaction.

#include <string>
#include <vector>

#include "ultracore/sdk/status.h"
#include "ultracore/sdk/writer.h"

namespace ultracore::sdk {

/// Makes `{schema}.<table>`'s primary key exactly `columns` (in that order), replacing the
/// one it has. Idempotent: when the key is already `columns`, nothing runs. `replaced` tells
/// whether the key was changed by this call. The table must exist; `table` and `columns` are
/// lower-case identifiers written by the plugin, never data.
inline Status ensurePrimaryKey(Writer& db, const std::string& table,
                               const std::vector<std::string>& columns, bool& replaced) {
  replaced = false;
  auto current = db.query(
      "SELECT c.conname::text, a.attname::text FROM pg_constraint c "
      "JOIN pg_class t ON t.oid = c.conrelid "
      "JOIN pg_namespace n ON n.oid = t.relnamespace "
      "CROSS JOIN LATERAL unnest(c.conkey) WITH ORDINALITY AS k(attnum, ord) "
      "JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum "
      "WHERE n.nspname = $1 AND t.relname = $2 AND c.contype = 'p' ORDER BY k.ord",
      {db.schema(), table});
  if (!current) return current.status();
  std::vector<std::string> have;
  for (const auto& row : current->rows) have.push_back(row[1].value_or(""));
  if (have == columns) return Status::ok();
  std::string list;
  for (const auto& column : columns) list += (list.empty() ? "" : ", ") + column;
  std::string sql = "ALTER TABLE {schema}." + table + " ";
  if (!current->empty()) {
    std::string name = "\"";  // a catalog name: quoted as an identifier
    for (char c : current->rows[0][0].value_or("")) {
      if (c == '"') name.push_back('"');
      name.push_back(c);
    }
    name.push_back('"');
    sql += "DROP CONSTRAINT " + name + ", ";
  }
  sql += "ADD PRIMARY KEY (" + list + ")";
  if (Status s = db.exec(sql, {}); !s) return s;
  replaced = true;
  return Status::ok();
}

}  // namespace ultracore::sdk
