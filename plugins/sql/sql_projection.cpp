// The `sql` projection: a read model written in the manifest (docs/PLUGINS.md, "A view
// without C++"). `config:` gives the tables' DDL and, per event type, the statements to run,
// with named parameters taken from the envelope and event_data.
//
// setupSchema() creates the tables and compiles the statements into one PL/pgSQL function in
// the projection's schema, `ultracore_sql_apply(jsonb)`, which loops over a batch in order
// and runs the statements with the event's values in PL/pgSQL variables: parameters are
// bound (plans cached per connection), never spliced into SQL, and a batch is one round trip
// (docs/PERFORMANCE.md measures it). It also PREPAREs every statement, so that SQL PostgreSQL
// rejects is reported at start (and by `ultracore-engine --check`, against a scratch schema)
// with its place in the manifest.

#include <charconv>
#include <set>
#include <string>
#include <vector>

#include "sql_config.h"
#include "ultracore/sdk/config_error.h"
#include "ultracore/sdk/sdk.h"

namespace ultracore::plugins::sql {
namespace {

using sdk::Event;
using sdk::Status;

std::string quoteIdentifier(const std::string& name) {
  std::string out = "\"";
  for (char c : name) {
    if (c == '"') out.push_back('"');
    out.push_back(c);
  }
  return out + "\"";
}

std::string quoteLiteral(const std::string& text) {
  std::string out = "'";
  for (char c : text) {
    if (c == '\'') out.push_back('\'');
    out.push_back(c);
  }
  return out + "'";
}

/// The offset in `text` of the start of 1-based line `line`.
std::size_t lineStart(const std::string& text, int line) {
  std::size_t at = 0;
  for (int l = 1; l < line; ++l) {
    const std::size_t next = text.find('\n', at);
    if (next == std::string::npos) return at;
    at = next + 1;
  }
  return at;
}

/// PostgreSQL's "LINE n:" in an error message (libpq's default verbosity), or 1.
int errorLine(const std::string& message) {
  const auto at = message.find("LINE ");
  if (at == std::string::npos) return 1;
  int line = 1;
  const char* begin = message.data() + at + 5;
  std::from_chars(begin, message.data() + message.size(), line);
  return line < 1 ? 1 : line;
}

/// The first line of a PostgreSQL message, without libpq's "ERROR:  " prefix.
std::string firstLine(std::string message) {
  if (const auto nl = message.find('\n'); nl != std::string::npos) message.resize(nl);
  if (const auto at = message.find("ERROR:  "); at != std::string::npos) message.erase(at, 8);
  return message;
}

class SqlProjection final : public sdk::Projection {
 public:
  explicit SqlProjection(const sdk::ProjectionContext& context)
      : name_(context.projection_name), logger_(context.logger) {
    std::vector<std::string> errors;
    config_ = parseConfig(context.config, errors);
    if (!errors.empty()) {
      std::string message;
      for (const auto& error : errors) message += (message.empty() ? "" : "\n") + error;
      throw std::runtime_error(message);
    }
    // One PL/pgSQL variable per distinct parameter name.
    for (const Statement& statement : config_.statements) {
      for (const Parameter& parameter : statement.parameters) {
        if (variables_.emplace(parameter.name, "uc_p" + std::to_string(variables_.size() + 1))
                .second) {
          if (parameter.name == "data" || parameter.name.rfind("data.", 0) == 0) send_data_ = true;
        }
      }
    }
  }

  int schemaVersion() const override { return config_.schema_version; }

  Status setupSchema(sdk::Writer& db) override {
    const std::string schema = quoteIdentifier(db.schema());
    // What made the tables in this schema: `tables:` may change only with schema_version.
    if (Status s = db.exec("CREATE TABLE IF NOT EXISTS " + schema +
                           ".ultracore_sql_config (one boolean PRIMARY KEY DEFAULT true CHECK "
                           "(one), schema_version integer NOT NULL, tables text NOT NULL)");
        !s) {
      return s;
    }
    auto stored = db.query("SELECT schema_version, tables FROM " + schema +
                           ".ultracore_sql_config");
    if (!stored) return stored.status();
    if (!stored->empty()) {
      const int version = std::stoi(stored->rows[0][0].value_or("0"));
      const std::string& tables = stored->rows[0][1].value_or("");
      if (version == config_.schema_version && tables != config_.tables) {
        return Status::invalidArgument(sdk::configErrorAt(
            "/tables", 0,
            "tables changed without a new schema_version: the tables in schema '" + db.schema() +
                "' were made by the old text (schema_version " + std::to_string(version) +
                "). Raise schema_version and rebuild the view from the log: ultracore-ctl "
                "rebuild " + name_));
      }
      if (version > config_.schema_version) {
        return Status::invalidArgument(sdk::configErrorAt(
            "/schema_version", 0,
            "schema_version " + std::to_string(config_.schema_version) +
                " is older than the tables in schema '" + db.schema() + "' (version " +
                std::to_string(version) + "); rebuild the view: ultracore-ctl rebuild " + name_));
      }
      if (version < config_.schema_version && logger_ != nullptr) {
        logger_->warn("projection '" + name_ + "': schema_version " + std::to_string(version) +
                      " -> " + std::to_string(config_.schema_version) + " in schema '" +
                      db.schema() + "': tables ran on the existing tables (CREATE TABLE IF NOT "
                      "EXISTS leaves an existing table as it is). Rebuild to build them from the "
                      "log: ultracore-ctl rebuild " + name_);
      }
    }
    if (Status s = db.exec(expand(config_.tables, schema)); !s) {
      return Status(s.code(), sdk::configErrorAt(
                                  "/tables", lineStart(config_.tables, errorLine(s.message())),
                                  "PostgreSQL rejects tables: " + firstLine(s.message())));
    }
    if (Status s = db.exec("INSERT INTO " + schema + ".ultracore_sql_config (schema_version, "
                           "tables) VALUES ($1::integer, $2) ON CONFLICT (one) DO UPDATE SET "
                           "schema_version = EXCLUDED.schema_version, tables = EXCLUDED.tables",
                           {std::to_string(config_.schema_version), config_.tables});
        !s) {
      return s;
    }
    if (Status s = checkStatements(db, schema); !s) return s;
    return db.exec(functionSql(schema));
  }

  Status apply(std::span<const Event> events, sdk::Writer& db) override {
    nlohmann::json batch = nlohmann::json::array();
    std::vector<const Event*> sent;
    sent.reserve(events.size());
    for (const Event& event : events) {
      if (config_.by_type.count(event.eventType()) == 0) {
        if (!config_.reject_unknown) continue;
        return Status::invalidEvent("unknown event type '" + event.eventType() +
                                    "' for sql projection '" + name_ +
                                    "' (unknown_events: reject): " + describe(event));
      }
      nlohmann::json item = {{"event_type", event.eventType()}};
      for (const auto& [name, variable] : variables_) {
        if (name == "event_id") item[name] = event.eventId();
        else if (name == "aggregate_type") item[name] = event.aggregateType();
        else if (name == "aggregate_id") item[name] = event.aggregateId();
        else if (name == "tenant_id") item[name] = event.tenantId();
        else if (name == "user_id") item[name] = event.userId();
        else if (name == "occurred_at") item[name] = event.occurredAt();
        else if (name == "aggregate_version" && event.aggregateVersion())
          item[name] = std::to_string(*event.aggregateVersion());
        else if (name == "topic") item[name] = event.topic();
        else if (name == "partition") item[name] = std::to_string(event.partition());
        else if (name == "offset") item[name] = std::to_string(event.offset());
      }
      if (send_data_) item["event_data"] = event.data();
      batch.push_back(std::move(item));
      sent.push_back(&event);
    }
    if (sent.empty()) return Status::ok();
    Status status = db.exec("SELECT " + quoteIdentifier(db.schema()) +
                                ".ultracore_sql_apply($1::jsonb)",
                            {batch.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)});
    if (status) return status;
    return attribute(status, sent);
  }

 private:
  static std::string expand(const std::string& sql, const std::string& schema) {
    std::string out;
    std::size_t at = 0;
    for (std::size_t hit; (hit = sql.find("{schema}", at)) != std::string::npos;) {
      out.append(sql, at, hit - at);
      out += schema;
      at = hit + 8;
    }
    return out + sql.substr(at);
  }

  static std::string describe(const Event& event) {
    return event.topic() + "[" + std::to_string(event.partition()) + "]@" +
           std::to_string(event.offset()) + " event_id=" + event.eventId();
  }

  /// The function's error names the batch position and statement: name the event instead.
  Status attribute(const Status& status, const std::vector<const Event*>& sent) const {
    const std::string& message = status.message();
    const auto at = message.find("uc_event=");
    if (at == std::string::npos) return status;
    std::size_t event = 0, statement = 0;
    const char* p = message.data() + at + 9;
    const char* end = message.data() + message.size();
    std::from_chars(p, end, event);
    const auto st = message.find("uc_statement=", at);
    if (st != std::string::npos) {
      std::from_chars(message.data() + st + 13, end, statement);
    }
    if (event < 1 || event > sent.size() || statement >= config_.statements.size()) return status;
    const Event& e = *sent[event - 1];
    const Statement& s = config_.statements[statement];
    std::string cause = message;
    if (const auto colon = message.find(": ", st); colon != std::string::npos) {
      cause = message.substr(0, message.find("ERROR:")) + message.substr(colon + 2);
    }
    if (const auto nl = cause.find("\nCONTEXT:"); nl != std::string::npos) cause.resize(nl);
    return Status(status.code(), "sql projection '" + name_ + "': statement " +
                                     std::to_string(s.index) + " of " + s.event_type +
                                     " (config" + s.pointer + ") failed for " + describe(e) +
                                     ": " + cause);
  }

  /// PREPAREs every statement with its parameters as text, as the function will run it. The
  /// first one PostgreSQL rejects ends the check (its error aborts the transaction).
  Status checkStatements(sdk::Writer& db, const std::string& schema) {
    for (const Statement& statement : config_.statements) {
      std::string types;
      for (std::size_t i = 0; i < statement.parameters.size(); ++i) {
        types += i == 0 ? "text" : ", text";
      }
      const std::string sql = rewrite(statement, schema, [](std::size_t i) {
        return "$" + std::to_string(i + 1);
      });
      Status s = db.exec("PREPARE ultracore_sql_check" +
                         (types.empty() ? std::string() : "(" + types + ")") + " AS " + sql);
      if (!s) {
        if (s.code() == sdk::StatusCode::kTransient) return s;
        return Status(s.code(),
                      sdk::configErrorAt(statement.pointer,
                                         lineStart(statement.text, errorLine(s.message())),
                                         "PostgreSQL rejects statement " +
                                             std::to_string(statement.index) + " of " +
                                             statement.event_type + ": " + firstLine(s.message())));
      }
      if (Status d = db.exec("DEALLOCATE ultracore_sql_check"); !d) return d;
    }
    return Status::ok();
  }

  std::string variable(const std::string& name) const { return variables_.at(name); }

  /// The value of parameter `name` for the event in uc_ev (text or NULL).
  static std::string extraction(const std::string& name) {
    if (name == "data") return "(uc_ev->'event_data')::text";
    if (name.rfind("data.", 0) == 0) {
      std::string path;
      std::size_t at = 5;
      while (at <= name.size()) {
        std::size_t dot = name.find('.', at);
        if (dot == std::string::npos) dot = name.size();
        path += (path.empty() ? "" : ",") + name.substr(at, dot - at);  // [A-Za-z0-9_] only
        at = dot + 1;
      }
      return "uc_ev #>> '{event_data," + path + "}'";
    }
    return "uc_ev->>" + quoteLiteral(name);
  }

  std::string functionSql(const std::string& schema) const {
    std::string declare;
    for (const auto& [name, variable] : variables_) declare += "  " + variable + " text;\n";
    std::string body;
    for (const auto& [type, indexes] : config_.by_type) {
      body += "    WHEN " + quoteLiteral(type) + " THEN\n";
      std::set<std::string> assigned;
      for (std::size_t index : indexes) {
        for (const Parameter& parameter : config_.statements[index].parameters) {
          if (!assigned.insert(parameter.name).second) continue;
          body += "      " + variable(parameter.name) + " := " + extraction(parameter.name) + ";\n";
        }
      }
      // Every required value is checked before the event's first statement runs.
      std::set<std::string> checked;
      for (std::size_t index : indexes) {
        for (const Parameter& parameter : config_.statements[index].parameters) {
          if (!parameter.required || !checked.insert(parameter.name).second) continue;
          body += "      IF " + variable(parameter.name) + " IS NULL THEN uc_statement := " +
                  std::to_string(index) +
                  "; RAISE EXCEPTION USING ERRCODE = 'UC001', MESSAGE = " +
                  quoteLiteral("required parameter :" + parameter.name +
                               "! is missing or null in the event") +
                  "; END IF;\n";
        }
      }
      for (std::size_t index : indexes) {
        const Statement& statement = config_.statements[index];
        body += "      uc_statement := " + std::to_string(index) + ";\n";
        std::string sql = rewrite(statement, schema, [&](std::size_t i) {
          return variable(statement.parameters[i].name);
        });
        if (statement.select) {
          const auto at = sql.find_first_not_of(" \t\r\n");
          sql = sql.substr(0, at) + "PERFORM" + sql.substr(at + 6);
        }
        body += "      " + sql + "\n      ;\n";  // own line: the statement may end in a comment
      }
    }
    return "CREATE OR REPLACE FUNCTION " + schema +
           ".ultracore_sql_apply(uc_batch jsonb) RETURNS void LANGUAGE plpgsql AS "
           "$ultracore_sql$\n#variable_conflict use_column\nDECLARE\n"
           "  uc_ev jsonb;\n  uc_event bigint := 0;\n  uc_statement integer := -1;\n"
           "  uc_state text;\n  uc_message text;\n" +
           declare +
           "BEGIN\n"
           "  FOR uc_ev IN SELECT e FROM jsonb_array_elements(uc_batch) WITH ORDINALITY AS "
           "t(e, n) ORDER BY n LOOP\n"
           "    uc_event := uc_event + 1;\n"
           "    CASE uc_ev->>'event_type'\n" +
           body +
           "    ELSE NULL;\n"
           "    END CASE;\n"
           "  END LOOP;\n"
           "EXCEPTION WHEN OTHERS THEN\n"
           "  GET STACKED DIAGNOSTICS uc_state = RETURNED_SQLSTATE, uc_message = MESSAGE_TEXT;\n"
           "  RAISE EXCEPTION USING ERRCODE = uc_state, MESSAGE = 'uc_event=' || uc_event || "
           "' uc_statement=' || uc_statement || ': ' || uc_message;\n"
           "END\n$ultracore_sql$";
  }

  std::string name_;
  sdk::Logger* logger_;
  SqlConfig config_;
  std::map<std::string, std::string> variables_;  ///< parameter name -> PL/pgSQL variable
  bool send_data_ = false;
};

}  // namespace
}  // namespace ultracore::plugins::sql

ULTRACORE_PLUGIN(sql, ULTRACORE_PROJECTION("*", "", ultracore::plugins::sql::SqlProjection))
