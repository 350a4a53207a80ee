#include "sql_config.h"

#include <algorithm>
#include <cctype>

#include "ultracore/sdk/config_error.h"

namespace ultracore::plugins::sql {
namespace {

using sdk::configErrorAt;
using sdk::configPointerSegment;

bool isIdentifierStart(char c) {
  return std::isalpha(static_cast<unsigned char>(c)) != 0 || c == '_';
}
bool isIdentifierChar(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '_';
}

std::string joined(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& name : names) out += (out.empty() ? ":" : ", :") + name;
  return out;
}

/// Finds the `:name` parameters of `text`, skipping string literals, quoted identifiers,
/// dollar quotes and comments; `::` is a cast. A mistake is appended to `errors`.
std::vector<Parameter> scanParameters(const std::string& text, const std::string& pointer,
                                      std::vector<std::string>& errors) {
  std::vector<Parameter> out;
  const std::size_t n = text.size();
  std::size_t i = 0;
  auto skipQuoted = [&](char quote, bool backslash) {
    ++i;
    while (i < n) {
      if (backslash && text[i] == '\\') {
        i += 2;
        continue;
      }
      if (text[i] == quote) {
        if (i + 1 < n && text[i + 1] == quote) {
          i += 2;
          continue;
        }
        ++i;
        return;
      }
      ++i;
    }
  };
  while (i < n) {
    const char c = text[i];
    if (c == '\'') {
      const bool escape = i > 0 && (text[i - 1] == 'E' || text[i - 1] == 'e') &&
                          (i < 2 || !isIdentifierChar(text[i - 2]));
      skipQuoted('\'', escape);
    } else if (c == '"') {
      skipQuoted('"', false);
    } else if (c == '-' && i + 1 < n && text[i + 1] == '-') {
      while (i < n && text[i] != '\n') ++i;
    } else if (c == '/' && i + 1 < n && text[i + 1] == '*') {
      int depth = 0;
      while (i < n) {
        if (text.compare(i, 2, "/*") == 0) {
          ++depth;
          i += 2;
        } else if (text.compare(i, 2, "*/") == 0) {
          i += 2;
          if (--depth == 0) break;
        } else {
          ++i;
        }
      }
    } else if (c == '$') {
      std::size_t j = i + 1;
      if (j < n && std::isdigit(static_cast<unsigned char>(text[j])) != 0) {
        errors.push_back(configErrorAt(pointer, i,
                                       "positional parameter '$" + std::string(1, text[j]) +
                                           "...': use named parameters (:aggregate_id, "
                                           ":data.amount, ...)"));
        ++i;
        continue;
      }
      while (j < n && isIdentifierChar(text[j])) ++j;
      if (j < n && text[j] == '$' && (j == i + 1 || isIdentifierStart(text[i + 1]))) {
        const std::string tag = text.substr(i, j + 1 - i);
        const std::size_t end = text.find(tag, j + 1);
        i = end == std::string::npos ? n : end + tag.size();
      } else {
        ++i;
      }
    } else if (c == ':') {
      if (i + 1 < n && text[i + 1] == ':') {
        i += 2;  // a cast
        continue;
      }
      if (i + 1 < n && isIdentifierStart(text[i + 1])) {
        std::size_t j = i + 1;
        while (j < n && (isIdentifierChar(text[j]) ||
                         (text[j] == '.' && j + 1 < n && isIdentifierStart(text[j + 1])))) {
          ++j;
        }
        Parameter parameter;
        parameter.name = text.substr(i + 1, j - i - 1);
        parameter.offset = i;
        if (j < n && text[j] == '!') {
          parameter.required = true;
          ++j;
        }
        parameter.length = j - i;
        out.push_back(std::move(parameter));
        i = j;
        continue;
      }
      ++i;
    } else {
      ++i;
    }
  }
  return out;
}

bool knownParameter(const std::string& name) {
  const auto& envelope = envelopeParameters();
  if (std::find(envelope.begin(), envelope.end(), name) != envelope.end()) return true;
  return name == "data" || name.rfind("data.", 0) == 0;
}

std::string trimmedStatement(const std::string& text) {
  std::string out = text;
  while (!out.empty() && (std::isspace(static_cast<unsigned char>(out.back())) != 0 ||
                          out.back() == ';')) {
    out.pop_back();
  }
  return out;
}

bool startsWithSelect(const std::string& text) {
  std::size_t i = 0;
  while (i < text.size() && std::isspace(static_cast<unsigned char>(text[i])) != 0) ++i;
  if (text.size() - i < 6) return false;
  for (std::size_t k = 0; k < 6; ++k) {
    if (std::tolower(static_cast<unsigned char>(text[i + k])) != "select"[k]) return false;
  }
  return text.size() == i + 6 || !isIdentifierChar(text[i + 6]);
}

void addStatement(SqlConfig& config, const std::string& type, const nlohmann::json& value,
                  const std::string& pointer, std::vector<std::string>& errors) {
  if (!value.is_string()) {
    errors.push_back(configErrorAt(pointer, 0,
                                   "a statement of '" + type + "' must be a string of SQL, got " +
                                       std::string(value.type_name())));
    return;
  }
  Statement statement;
  statement.event_type = type;
  statement.pointer = pointer;
  statement.text = trimmedStatement(value.get<std::string>());
  if (statement.text.find_first_not_of(" \t\r\n") == std::string::npos) {
    errors.push_back(configErrorAt(pointer, 0, "empty statement for '" + type + "'"));
    return;
  }
  if (statement.text.find("$ultracore_sql$") != std::string::npos) {
    errors.push_back(configErrorAt(pointer, statement.text.find("$ultracore_sql$"),
                                   "'$ultracore_sql$' is reserved (it quotes the compiled "
                                   "function's body)"));
    return;
  }
  statement.parameters = scanParameters(statement.text, pointer, errors);
  for (const Parameter& parameter : statement.parameters) {
    if (!knownParameter(parameter.name)) {
      errors.push_back(configErrorAt(
          pointer, parameter.offset,
          "unknown parameter ':" + parameter.name + "'; known: " + joined(envelopeParameters()) +
              ", :data (event_data as JSON) and :data.<path> (a field of event_data, e.g. "
              ":data.amount or :data.address.city)"));
    }
  }
  statement.select = startsWithSelect(statement.text);
  statement.index = config.by_type[type].size() + 1;
  config.by_type[type].push_back(config.statements.size());
  config.statements.push_back(std::move(statement));
}

}  // namespace

const std::vector<std::string>& envelopeParameters() {
  static const std::vector<std::string> kNames = {
      "event_id",  "event_type",  "aggregate_type",    "aggregate_id", "tenant_id", "user_id",
      "occurred_at", "aggregate_version", "topic", "partition", "offset"};
  return kNames;
}

SqlConfig parseConfig(const nlohmann::json& json, std::vector<std::string>& errors) {
  SqlConfig config;
  if (!json.is_object()) {
    errors.push_back(configErrorAt("", 0,
                                   "the sql plugin needs `config:` with schema_version, tables "
                                   "and on"));
    return config;
  }
  static const std::vector<std::string> kKeys = {"schema_version", "tables", "on",
                                                 "unknown_events"};
  for (const auto& [key, value] : json.items()) {
    if (std::find(kKeys.begin(), kKeys.end(), key) == kKeys.end()) {
      errors.push_back(configErrorAt("/" + configPointerSegment(key), 0,
                                     "unknown key '" + key +
                                         "' in config of the sql plugin; expected schema_version, "
                                         "tables, on, unknown_events"));
    }
  }
  if (!json.contains("schema_version")) {
    errors.push_back(configErrorAt("", 0, "config needs schema_version (an integer >= 1)"));
  } else if (const auto& v = json["schema_version"];
             !v.is_number_integer() || v.get<long long>() < 1 || v.get<long long>() > 1000000) {
    errors.push_back(configErrorAt("/schema_version", 0,
                                   "schema_version must be an integer >= 1, got " + v.dump()));
  } else {
    config.schema_version = v.get<int>();
  }
  if (!json.contains("tables")) {
    errors.push_back(configErrorAt("", 0,
                                   "config needs tables (the DDL of the view's tables in "
                                   "{schema}, CREATE TABLE IF NOT EXISTS ...)"));
  } else if (!json["tables"].is_string()) {
    errors.push_back(configErrorAt("/tables", 0, "tables must be a string of SQL DDL"));
  } else {
    config.tables = json["tables"].get<std::string>();
    if (config.tables.find("{schema}") == std::string::npos) {
      errors.push_back(configErrorAt("/tables", 0,
                                     "tables never names {schema}: create the view's tables in "
                                     "{schema} (e.g. CREATE TABLE IF NOT EXISTS {schema}.daily "
                                     "...), so that rebuilds and time travel get their own"));
    }
  }
  if (json.contains("unknown_events")) {
    const auto& v = json["unknown_events"];
    if (v == "reject") {
      config.reject_unknown = true;
    } else if (v != "ignore") {
      errors.push_back(configErrorAt("/unknown_events", 0,
                                     "unknown_events must be ignore or reject, got " + v.dump()));
    }
  }
  if (!json.contains("on")) {
    errors.push_back(configErrorAt("", 0,
                                   "config needs on: a map from event type to its statement(s)"));
  } else if (!json["on"].is_object() || json["on"].empty()) {
    errors.push_back(configErrorAt("/on", 0,
                                   "on must map event types to a statement or a list of them"));
  } else {
    for (const auto& [type, value] : json["on"].items()) {
      const std::string pointer = "/on/" + configPointerSegment(type);
      if (type.empty() || type.find("$ultracore_sql$") != std::string::npos) {
        errors.push_back(configErrorAt(pointer, 0, "not an event type: '" + type + "'"));
        continue;
      }
      if (value.is_array()) {
        if (value.empty()) {
          errors.push_back(configErrorAt(pointer, 0, "no statement for '" + type + "'"));
        }
        for (std::size_t i = 0; i < value.size(); ++i) {
          addStatement(config, type, value[i], pointer + "/" + std::to_string(i), errors);
        }
      } else {
        addStatement(config, type, value, pointer, errors);
      }
    }
  }
  return config;
}

}  // namespace ultracore::plugins::sql
