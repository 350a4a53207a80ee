#include "engine/postgres/sql_array.h"

#include <stdexcept>

namespace ultracore::engine {
namespace {

void appendQuoted(std::string& out, const std::string& value) {
  out.push_back('"');
  for (char c : value) {
    if (c == '"' || c == '\\') out.push_back('\\');
    out.push_back(c);
  }
  out.push_back('"');
}

template <typename Element, typename Append>
std::string buildLiteral(const std::vector<Element>& values, Append append) {
  std::string out = "{";
  for (std::size_t i = 0; i < values.size(); ++i) {
    if (i > 0) out.push_back(',');
    append(out, values[i]);
  }
  out.push_back('}');
  return out;
}

}  // namespace

std::string toArrayLiteral(const std::vector<sdk::Value>& values) {
  return buildLiteral(values, [](std::string& out, const sdk::Value& value) {
    if (value) {
      appendQuoted(out, *value);
    } else {
      out += "NULL";
    }
  });
}

std::string toArrayLiteral(const std::vector<std::string>& values) {
  return buildLiteral(values, appendQuoted);
}

std::vector<sdk::Value> parseArrayLiteral(const std::string& literal) {
  if (literal.size() < 2 || literal.front() != '{' || literal.back() != '}') {
    throw std::invalid_argument("not an array literal: " + literal);
  }
  std::vector<sdk::Value> out;
  std::size_t i = 1;
  const std::size_t end = literal.size() - 1;
  if (i == end) return out;
  while (i <= end) {
    std::string element;
    bool quoted = false;
    if (literal[i] == '"') {
      quoted = true;
      ++i;
      while (i < end && literal[i] != '"') {
        if (literal[i] == '\\' && i + 1 < end) ++i;
        element.push_back(literal[i++]);
      }
      ++i;  // closing quote
    } else {
      while (i < end && literal[i] != ',') element.push_back(literal[i++]);
    }
    if (!quoted && element == "NULL") {
      out.emplace_back(std::nullopt);
    } else {
      out.emplace_back(std::move(element));
    }
    ++i;  // the comma, or past the end
  }
  return out;
}

}  // namespace ultracore::engine
