#pragma once
/// @file
/// Writer: the projection's handle on PostgreSQL during one batch.
///
/// Every statement is parameterized ($1, $2, ...): values from events never become SQL text.
/// The placeholder `{schema}` in a statement is replaced by the projection's schema, quoted as
/// an identifier, so that the same plugin can build into another schema (rebuild, time travel).
///
/// All statements of one batch run in the batch's single transaction together with the
/// engine's processed_events rows and offsets: they commit together or not at all.

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ultracore/sdk/status.h"
#include "ultracore/sdk/version.h"

namespace ultracore::sdk {

/// One text parameter or result cell; std::nullopt is SQL NULL. Cast in SQL ($1::numeric).
using Value = std::optional<std::string>;
using Params = std::vector<Value>;

/// The rows a statement returned, as text.
struct Rows {
  std::vector<std::string> columns;
  std::vector<std::vector<Value>> rows;

  std::size_t size() const { return rows.size(); }
  bool empty() const { return rows.empty(); }
  /// Index of a column by name, or -1.
  int column(std::string_view name) const {
    for (std::size_t i = 0; i < columns.size(); ++i) {
      if (columns[i] == name) return static_cast<int>(i);
    }
    return -1;
  }
};

/// Owned by the engine and valid only during the call it is passed to (setupSchema or
/// apply); used from the calling thread only. Failures come back as Status: a statement error
/// aborts the batch's transaction, so after a failed call the projection should return that
/// Status rather than go on.
class ULTRACORE_SDK_API Writer {
 public:
  virtual ~Writer() = default;

  /// The schema this projection instance writes into (unquoted).
  virtual const std::string& schema() const = 0;

  /// Runs one parameterized statement. Without parameters, `sql` may hold several statements
  /// separated by ';' (handy for DDL in setupSchema).
  virtual Status exec(std::string_view sql, const Params& params = {}) = 0;

  /// Runs one parameterized statement and returns its rows.
  virtual Result<Rows> query(std::string_view sql, const Params& params = {}) = 0;

  /// Set-based write of many rows in one round trip. The statement sees the rows as a
  /// relation named `batch` whose columns are `columns` (all text; cast them in SQL) plus
  /// `ord` (bigint, 1-based position in `rows`). Example:
  ///
  ///   db.execBatch("INSERT INTO {schema}.t (id, n) SELECT id, n::int FROM batch "
  ///                "ON CONFLICT (id) DO UPDATE SET n = EXCLUDED.n",
  ///                {"id", "n"}, rows);
  ///
  /// Column names must be lower-case identifiers; every row must have one value per column.
  /// Returns the statement's rows (RETURNING or SELECT), empty otherwise.
  ///
  /// To update existing rows, key the target by the batch's ids as well as joining on them:
  ///
  ///   "UPDATE {schema}.t SET n = t.n + b.n::int FROM batch b "
  ///   "WHERE t.id = ANY (ARRAY(SELECT id FROM batch)) AND t.id = b.id"
  ///
  /// With a plain `t.id = b.id` PostgreSQL's default costs (random_page_cost 4) often hash the
  /// whole table for a batch of a few hundred rows, once per batch; the `ANY` makes it fetch
  /// the batch's rows through the index (docs/PERFORMANCE.md: 3x faster at 70,000 rows).
  virtual Result<Rows> execBatch(std::string_view sql, const std::vector<std::string>& columns,
                                 const std::vector<Params>& rows) = 0;
};

}  // namespace ultracore::sdk
