#include "engine/manifest/env_expand.h"

namespace ultracore::engine {
namespace {

bool isVariableName(std::string_view name) {
  if (name.empty()) return false;
  for (std::size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    const bool letter = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
    const bool digit = c >= '0' && c <= '9';
    if (!letter && !(digit && i > 0)) return false;
  }
  return true;
}

}  // namespace

std::string expandEnv(std::string_view text, const EnvLookup& env) {
  std::string out;
  out.reserve(text.size());
  std::size_t i = 0;
  while (i < text.size()) {
    const char c = text[i];
    if (c != '$' || i + 1 == text.size() || (text[i + 1] != '$' && text[i + 1] != '{')) {
      out += c;
      ++i;
      continue;
    }
    if (text[i + 1] == '$') {
      out += '$';
      i += 2;
      continue;
    }
    const std::size_t close = text.find('}', i + 2);
    if (close == std::string_view::npos) {
      throw EnvExpansionError("unterminated '${' (write '$$' for a literal '$')");
    }
    const std::string_view inner = text.substr(i + 2, close - i - 2);
    const std::size_t dash = inner.find(":-");
    const std::string_view name = inner.substr(0, dash);
    if (!isVariableName(name)) {
      throw EnvExpansionError("invalid environment variable name '" + std::string(name) +
                              "' in '${" + std::string(inner) + "}'");
    }
    const std::optional<std::string> value = env ? env(std::string(name)) : std::nullopt;
    if (dash != std::string_view::npos) {
      // Like the shell's and docker compose's ':-': an empty value also takes the default.
      if (value && !value->empty()) {
        out += *value;
      } else {
        out += inner.substr(dash + 2);
      }
    } else if (value) {
      out += *value;
    } else {
      throw EnvExpansionError("environment variable '" + std::string(name) +
                              "' is not set (write ${" + std::string(name) +
                              ":-default} to give a default)");
    }
    i = close + 1;
  }
  return out;
}

}  // namespace ultracore::engine
