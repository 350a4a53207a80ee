#pragma once
// The `sql` plugin's configuration: the manifest entry's `config:` map, parsed and checked
// (docs/PLUGINS.md, "A view without C++"). No database needed; mistakes come back as
// sdk::configErrorAt() lines so that the engine shows their file:line:column.

#include <cstddef>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace ultracore::plugins::sql {

/// One `:name` (or `:name!`) in a statement.
struct Parameter {
  std::string name;        ///< "aggregate_id", "data.amount", ...
  bool required = false;   ///< written `:name!`
  std::size_t offset = 0;  ///< of the ':' in the statement text
  std::size_t length = 0;  ///< of ":name" or ":name!"
};

/// One statement of one event type, as written, with its parameters in text order.
struct Statement {
  std::string event_type;
  std::size_t index = 0;  ///< 1-based among the event type's statements
  std::string pointer;    ///< JSON pointer into config: "/on/FundsDeposited" or ".../0"
  std::string text;       ///< without trailing ';' and blanks
  std::vector<Parameter> parameters;
  bool select = false;    ///< starts with SELECT (run for its side effects)
};

struct SqlConfig {
  int schema_version = 0;
  std::string tables;
  std::vector<Statement> statements;  ///< by event type (map order), then as listed
  std::map<std::string, std::vector<std::size_t>> by_type;  ///< indexes into statements
  bool reject_unknown = false;  ///< unknown_events: reject
};

/// The envelope parameters (DESIGN.md's envelope plus the record's position).
const std::vector<std::string>& envelopeParameters();

/// Parses `config`. Every mistake is one line of `errors` (configErrorAt text); the config is
/// usable only when `errors` is empty.
SqlConfig parseConfig(const nlohmann::json& config, std::vector<std::string>& errors);

/// `text` with each parameter replaced by `replace(i)` (i indexes statement.parameters) and
/// every `{schema}` by `quoted_schema`. Newlines are kept, so line numbers do not move.
template <typename F>
std::string rewrite(const Statement& statement, const std::string& quoted_schema, F&& replace) {
  std::string out;
  std::size_t at = 0;
  auto copy = [&](std::size_t end) {
    static const std::string kSchema = "{schema}";
    while (at < end) {
      const std::size_t hit = statement.text.find(kSchema, at);
      if (hit == std::string::npos || hit + kSchema.size() > end) break;
      out.append(statement.text, at, hit - at);
      out += quoted_schema;
      at = hit + kSchema.size();
    }
    out.append(statement.text, at, end - at);
    at = end;
  };
  for (std::size_t i = 0; i < statement.parameters.size(); ++i) {
    copy(statement.parameters[i].offset);
    out += replace(i);
    at += statement.parameters[i].length;
  }
  copy(statement.text.size());
  return out;
}

}  // namespace ultracore::plugins::sql
