#include "engine/plugin/json_schema.h"

#include <cmath>
#include <map>
#include <memory>
#include <mutex>
#include <regex>
#include <set>
#include <vector>

#include "ultracore/sdk/config_error.h"

namespace ultracore::engine {
namespace {

using nlohmann::json;

const std::set<std::string> kTypeNames = {"object", "array",   "string", "integer",
                                          "number", "boolean", "null"};

std::string typeName(const json& value) {
  switch (value.type()) {
    case json::value_t::object: return "object";
    case json::value_t::array: return "array";
    case json::value_t::string: return "string";
    case json::value_t::number_integer:
    case json::value_t::number_unsigned: return "integer";
    case json::value_t::number_float: return "number";
    case json::value_t::boolean: return "boolean";
    case json::value_t::null: return "null";
    default: return "unknown";
  }
}

bool hasType(const json& value, const std::string& type) {
  if (type == "number") return value.is_number();
  if (type == "integer") {
    if (value.is_number_integer()) return true;
    // 3.0 is an integer in JSON Schema.
    return value.is_number_float() && std::isfinite(value.get<double>()) &&
           std::floor(value.get<double>()) == value.get<double>();
  }
  return typeName(value) == type;
}

/// Code points of a UTF-8 string (continuation bytes are not counted).
std::size_t codePoints(const std::string& text) {
  std::size_t count = 0;
  for (unsigned char c : text) {
    if ((c & 0xC0) != 0x80) ++count;
  }
  return count;
}

/// Compiled patterns, shared by every thread; patterns come from plugins, so the set is small.
std::shared_ptr<const std::regex> compiled(const std::string& pattern) {
  static std::mutex mutex;
  static std::map<std::string, std::shared_ptr<const std::regex>> cache;
  std::lock_guard lock(mutex);
  auto& slot = cache[pattern];
  if (!slot) slot = std::make_shared<const std::regex>(pattern, std::regex::ECMAScript);
  return slot;
}

/// A count keyword's value (minLength, maxLength): a non-negative integer, however stored.
std::optional<std::size_t> countOf(const json& value) {
  if (value.is_number_unsigned()) return value.get<std::size_t>();
  if (value.is_number_integer() && value.get<std::int64_t>() >= 0) {
    return static_cast<std::size_t>(value.get<std::int64_t>());
  }
  return std::nullopt;
}

std::string shortJson(const json& value) {
  std::string text = value.dump();
  if (text.size() > 80) text = text.substr(0, 77) + "...";
  return text;
}

std::optional<SchemaViolation> fail(const std::string& path, const std::string& rule,
                                    std::string message) {
  return SchemaViolation{path, rule, std::move(message)};
}

std::optional<SchemaViolation> validateAt(const json& schema, const json& value,
                                          const std::string& path) {
  if (!schema.is_object()) return std::nullopt;  // null, true or {}: anything

  if (value.is_null() && schema.value("nullable", false) == true) return std::nullopt;
  if (const auto it = schema.find("type"); it != schema.end()) {
    std::vector<std::string> allowed;
    if (it->is_string()) allowed.push_back(it->get<std::string>());
    if (it->is_array()) {
      for (const auto& name : *it) {
        if (name.is_string()) allowed.push_back(name.get<std::string>());
      }
    }
    bool ok = allowed.empty();
    for (const auto& type : allowed) ok = ok || hasType(value, type);
    if (!ok) {
      std::string expected;
      for (const auto& type : allowed) expected += (expected.empty() ? "" : " or ") + type;
      return fail(path, "type", "must be " + expected + ", not " + typeName(value));
    }
  }
  if (const auto it = schema.find("enum"); it != schema.end() && it->is_array()) {
    bool found = false;
    for (const auto& option : *it) found = found || option == value;
    if (!found) return fail(path, "enum", "must be one of " + shortJson(*it));
  }
  if (value.is_number()) {
    const double number = value.get<double>();
    if (const auto it = schema.find("minimum"); it != schema.end() && it->is_number() &&
                                                number < it->get<double>()) {
      return fail(path, "minimum", "must be at least " + it->dump());
    }
    if (const auto it = schema.find("maximum"); it != schema.end() && it->is_number() &&
                                                number > it->get<double>()) {
      return fail(path, "maximum", "must be at most " + it->dump());
    }
  }
  if (value.is_string()) {
    const std::string& text = value.get_ref<const std::string&>();
    const std::size_t length = codePoints(text);
    if (const auto it = schema.find("minLength");
        it != schema.end() && countOf(*it) && length < *countOf(*it)) {
      return fail(path, "minLength", "must be at least " + it->dump() + " characters long");
    }
    if (const auto it = schema.find("maxLength");
        it != schema.end() && countOf(*it) && length > *countOf(*it)) {
      return fail(path, "maxLength", "must be at most " + it->dump() + " characters long");
    }
    if (const auto it = schema.find("pattern"); it != schema.end() && it->is_string()) {
      const std::string& pattern = it->get_ref<const std::string&>();
      if (text.size() > kMaxPatternInput) {
        return fail(path, "pattern",
                    "is longer than " + std::to_string(kMaxPatternInput) +
                        " bytes, too long to match against pattern " + pattern);
      }
      try {
        if (!std::regex_search(text, *compiled(pattern))) {
          return fail(path, "pattern", "must match the pattern " + pattern);
        }
      } catch (const std::regex_error& e) {
        return fail(path, "pattern", "the schema's pattern " + pattern + " is invalid: " + e.what());
      }
    }
  }
  if (value.is_array()) {
    if (const auto it = schema.find("items"); it != schema.end() && it->is_object()) {
      for (std::size_t i = 0; i < value.size(); ++i) {
        if (auto violation = validateAt(*it, value[i], path + "/" + std::to_string(i))) {
          return violation;
        }
      }
    }
  }
  if (value.is_object()) {
    if (const auto it = schema.find("required"); it != schema.end() && it->is_array()) {
      for (const auto& name : *it) {
        if (name.is_string() && !value.contains(name.get<std::string>())) {
          const std::string field = name.get<std::string>();
          return fail(path + "/" + sdk::configPointerSegment(field), "required",
                      "is required (missing field '" + field + "')");
        }
      }
    }
    const auto properties = schema.find("properties");
    const bool has_properties = properties != schema.end() && properties->is_object();
    const auto additional = schema.find("additionalProperties");
    for (const auto& [name, member] : value.items()) {
      const std::string member_path = path + "/" + sdk::configPointerSegment(name);
      if (has_properties && properties->contains(name)) {
        if (auto violation = validateAt((*properties)[name], member, member_path)) return violation;
        continue;
      }
      if (additional == schema.end()) continue;
      if (additional->is_boolean() && !additional->get<bool>()) {
        return fail(member_path, "additionalProperties",
                    "is not allowed (the schema lists no field '" + name + "')");
      }
      if (additional->is_object()) {
        if (auto violation = validateAt(*additional, member, member_path)) return violation;
      }
    }
  }
  return std::nullopt;
}

std::optional<SchemaViolation> checkAt(const json& schema, const std::string& path) {
  if (schema.is_null() || schema.is_boolean()) return std::nullopt;
  if (!schema.is_object()) return fail(path, "schema", "a schema must be an object, true or false");
  const auto wrong = [&](const std::string& keyword, const std::string& expected) {
    return fail(path + "/" + keyword, keyword, "must be " + expected);
  };
  if (const auto it = schema.find("type"); it != schema.end()) {
    const auto known = [](const json& name) {
      return name.is_string() && kTypeNames.count(name.get<std::string>()) > 0;
    };
    bool ok = known(*it);
    if (it->is_array() && !it->empty()) {
      ok = true;
      for (const auto& name : *it) ok = ok && known(name);
    }
    if (!ok) {
      return wrong("type", "one of object, array, string, integer, number, boolean, null, or a "
                           "list of them");
    }
  }
  if (const auto it = schema.find("nullable"); it != schema.end() && !it->is_boolean()) {
    return wrong("nullable", "a boolean");
  }
  if (const auto it = schema.find("enum"); it != schema.end() && !it->is_array()) {
    return wrong("enum", "an array");
  }
  for (const char* keyword : {"minimum", "maximum"}) {
    if (const auto it = schema.find(keyword); it != schema.end() && !it->is_number()) {
      return wrong(keyword, "a number");
    }
  }
  for (const char* keyword : {"minLength", "maxLength"}) {
    if (const auto it = schema.find(keyword); it != schema.end() && !countOf(*it)) {
      return wrong(keyword, "a non-negative integer");
    }
  }
  if (const auto it = schema.find("required"); it != schema.end()) {
    bool ok = it->is_array();
    if (ok) {
      for (const auto& name : *it) ok = ok && name.is_string();
    }
    if (!ok) return wrong("required", "an array of field names");
  }
  if (const auto it = schema.find("pattern"); it != schema.end()) {
    if (!it->is_string()) return wrong("pattern", "a string (an ECMAScript regular expression)");
    try {
      compiled(it->get<std::string>());
    } catch (const std::regex_error& e) {
      return wrong("pattern", std::string("a valid ECMAScript regular expression (") + e.what() +
                                  ")");
    }
  }
  if (const auto it = schema.find("properties"); it != schema.end()) {
    if (!it->is_object()) return wrong("properties", "an object of schemas");
    for (const auto& [name, member] : it->items()) {
      if (auto error = checkAt(member, path + "/properties/" + sdk::configPointerSegment(name))) return error;
    }
  }
  if (const auto it = schema.find("items"); it != schema.end()) {
    if (!it->is_object() && !it->is_boolean()) return wrong("items", "a schema (arrays of schemas are not supported)");
    if (auto error = checkAt(*it, path + "/items")) return error;
  }
  if (const auto it = schema.find("additionalProperties"); it != schema.end()) {
    if (!it->is_object() && !it->is_boolean()) {
      return wrong("additionalProperties", "a boolean or a schema");
    }
    if (auto error = checkAt(*it, path + "/additionalProperties")) return error;
  }
  return std::nullopt;
}

}  // namespace

std::optional<SchemaViolation> validateJson(const json& schema, const json& value) {
  return validateAt(schema, value, "");
}

std::optional<SchemaViolation> checkSchema(const json& schema) { return checkAt(schema, ""); }

}  // namespace ultracore::engine
